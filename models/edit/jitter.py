"""Direct per-frame editing with per-frame variation: a flickering edit for demos and benchmarks.

An edit is a direction in latent space (e.g. the latent offset of a colour shift, measured through
an encoder). Applied frame by frame, a real editing pipeline varies: here the strength is jittered per
frame and a small per-frame latent noise is added, which decodes to the typical flicker.
"""
from dataclasses import dataclass

import torch


@dataclass
class JitteredEdit:
    """latents `[T,C,h,w]` edited codes; strengths `[T]` the per-frame edit strength used."""
    latents: torch.Tensor
    strengths: torch.Tensor


def colour_shift(frames, shift):
    """Frames `[T,3,H,W]` in [0,1] plus an RGB offset `shift` (3 numbers), clamped to [0,1]."""
    offset = torch.as_tensor(shift, dtype=frames.dtype, device=frames.device)
    if offset.shape != (3,):
        raise ValueError(f"shift must be 3 numbers (R, G, B offsets), got shape {tuple(offset.shape)}.")
    return (frames + offset.view(1, 3, 1, 1)).clamp(0.0, 1.0)


def latent_direction(encode, frames, edited_frames, spatial=False):
    """Latent offset of an edit: `encode(edited) - encode(frames)`.

    encode: frames `[T,3,H,W]` -> codes `[T,C,h,w]` (e.g. `AutoencoderGenerator.encode`).
    spatial: False -> the mean offset per channel `[1,C,1,1]` (one global direction);
        True -> the per-frame offsets `[T,C,h,w]`.
    """
    if frames.shape != edited_frames.shape:
        raise ValueError(f"frames {tuple(frames.shape)} and edited_frames {tuple(edited_frames.shape)} "
                         f"must have the same shape.")
    with torch.no_grad():
        offset = encode(edited_frames) - encode(frames)
    return offset if spatial else offset.mean(dim=(0, 2, 3), keepdim=True)


def jittered_edit(latents, direction, strength=1.0, strength_jitter=0.5, noise=0.1, seed=0):
    """`W_t + s_t * direction + noise * sigma * n_t`: a per-frame edit with random variation.

    latents: `[T,C,h,w]` codes of the input frames; direction: broadcastable to them (`[1,C,1,1]`,
    `[C,h,w]`, `[T,C,h,w]`); strength: mean edit strength; strength_jitter: s_t uniform in
    `strength * (1 +- strength_jitter)`; noise: per-frame Gaussian latent noise `n_t`, in units of the
    latents' per-channel standard deviation sigma; seed: reproducible draws.
    """
    if latents.dim() != 4:
        raise ValueError(f"latents must be [T,C,h,w], got {tuple(latents.shape)}.")
    if strength_jitter < 0 or noise < 0:
        raise ValueError(f"strength_jitter and noise must be >= 0, got {strength_jitter} and {noise}.")
    direction = torch.as_tensor(direction, dtype=latents.dtype).to(latents.device)
    try:
        torch.broadcast_shapes(direction.shape, latents.shape)
    except RuntimeError as error:
        raise ValueError(f"direction {tuple(direction.shape)} does not broadcast to the latents "
                         f"{tuple(latents.shape)}.") from error
    gen = torch.Generator().manual_seed(int(seed))
    count = latents.shape[0]
    strengths = strength * (1.0 + strength_jitter * (2.0 * torch.rand(count, generator=gen) - 1.0))
    sigma = latents.std(dim=(0, 2, 3), keepdim=True)
    jitter = torch.randn(latents.shape, generator=gen).to(latents.device, latents.dtype)
    edited = latents + strengths.to(latents).view(-1, 1, 1, 1) * direction + noise * sigma * jitter
    return JitteredEdit(edited, strengths)
