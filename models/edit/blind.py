"""Blind mode: make any per-frame processed video consistent, without latents (specs/consistency.md).

A U-Net `G` (BlindGenerator) is fitted to the video so that `G(original_t) ~ processed_t`
(fidelity) while the outputs of each (anchor, i) pair agree along the flow of the ORIGINAL video
(flow-masked bi-directional photometric loss, soft visibility masks): the original is steady, so its
flow is reliable, whereas the processed frames flicker. The photometric term supplies the consistency
that Deep Video Prior (Lei et al. 2020; seed 001 §4.6) can only get from the network's implicit prior
and early stopping, which blurs (tests/support/peers.py has that baseline, for benchmarks).
"""
from dataclasses import dataclass, field
from typing import Optional

import torch

from .generator import BlindGenerator, decode_frames
from .losses import CharbonnierSSIMDistance, pair_flows, photometric_loss, visibility_masks
from .optimize import epoch_schedule, report_progress


@dataclass
class BlindSettings:
    """epochs: passes over the non-anchor frames (one pair per iteration); lr: Adam learning rate;
    lambda_photo: weight of the photometric loss against fidelity (3: lower E_warp and higher fidelity
    than 1 on bench/edit); width, levels: U-Net size;
    anchor: anchor frame (None = middle); seed: initialisation and pair order; mean_look: weight the
    anchor's fidelity term 1 / (frames - 1), so every frame counts once per epoch and the output's look
    is the mean of the processed frames' (False: the anchor is in every pair at full weight, and the
    output takes the anchor frame's look; the windowed mode always uses the mean)."""
    epochs: int = 30
    lr: float = 1e-3
    lambda_photo: float = 3.0
    width: int = 32
    levels: int = 3
    anchor: Optional[int] = None
    seed: int = 0
    mean_look: bool = False


@dataclass
class BlindResult:
    """frames `[T,3,H,W]` CPU float32 in [0,1]; generator: the fitted BlindGenerator; losses: per
    iteration; distance: name of D; anchor: the anchor frame index."""
    frames: torch.Tensor
    generator: BlindGenerator
    losses: list = field(default_factory=list)
    distance: str = ""
    anchor: int = 0


def check_videos(original, processed):
    for name, video in (("original", original), ("processed", processed)):
        if not isinstance(video, torch.Tensor) or video.dim() != 4 or video.shape[1] != 3:
            shape = tuple(video.shape) if isinstance(video, torch.Tensor) else type(video).__name__
            raise ValueError(f"{name} must be RGB frames [T,3,H,W], got {shape}.")
    if original.shape != processed.shape:
        raise ValueError(f"original {tuple(original.shape)} and processed {tuple(processed.shape)} videos "
                         f"must have the same frame count and size; resize the processed frames to the "
                         f"original size first.")
    if original.shape[0] < 2:
        raise ValueError(f"temporal consistency needs at least 2 frames, got {original.shape[0]}.")


def anchor_flows(estimator, frames, anchor):
    """Flows of every frame with the anchor, without gradient -> (`F_{anc->t}`, `F_{t->anc}`), each
    `[T,2,H,W]` on the frames' device (zero at t = anchor)."""
    to_other = torch.zeros(frames.shape[0], 2, *frames.shape[-2:], device=frames.device)
    to_anchor = torch.zeros_like(to_other)
    with torch.no_grad():
        for t in range(frames.shape[0]):
            if t != anchor:
                forward, backward = pair_flows(estimator, frames[anchor:anchor + 1], frames[t:t + 1], 0)
                to_other[t], to_anchor[t] = forward[0].detach(), backward[0].detach()
    return to_other, to_anchor


def pair_step(generator, optimiser, distance, source, target, anchor, other, flows, lambda_photo,
              anchor_weight=1.0):
    """One Adam step on the pair (anchor, other): `D(G(source), target)` on both frames, weighted
    `anchor_weight : 1` (anchor : other; the two weights sum to 2 for any ratio, so the step size stays),
    plus `lambda_photo` x the masked bi-directional photometric loss between their outputs.

    source, target: `[T,3,H,W]`; flows: (`F_{anc->other}`, `F_{other->anc}`), each `[1,2,H,W]`, of the
    original video. Returns the loss (float).
    """
    pair = [anchor, other]
    frames = generator.decode(source[pair])
    weights = torch.tensor([anchor_weight, 1.0], device=frames.device) * (2 / (anchor_weight + 1))
    fidelity = distance(frames, target[pair]) @ weights
    forward, backward = flows
    mask_anchor, mask_other = visibility_masks(forward, backward)
    photo = photometric_loss(distance, frames[0:1], frames[1:2], forward, backward, mask_anchor, mask_other)
    loss = fidelity + lambda_photo * photo
    optimiser.zero_grad(set_to_none=True)
    loss.backward()
    optimiser.step()
    return float(loss.detach())


def blind_consistency(original, processed, estimator, settings=None, distance=None, progress=None,
                      device=None):
    """Fit a BlindGenerator: fidelity to `processed` + photometric consistency along original flow.

    Args:
        original: the input video `[T,3,H,W]` in [0,1] (T >= 2) — the flow is estimated on it once.
        processed: the per-frame processed video, same shape (flickers).
        estimator: flow estimator (`FlowEstimator` or module `(image1, image2) -> flow`).
        settings: BlindSettings; distance: D (default weight-free); device: where to fit (default:
            the frames' device).
        progress: `progress(done, total)` once for the flow, then after every iteration; may raise.
    Returns:
        BlindResult (deterministic for a seed on CPU).
    """
    settings = settings or BlindSettings()
    distance = distance or CharbonnierSSIMDistance()
    check_videos(original, processed)
    count = original.shape[0]
    anchor = (count - 1) // 2 if settings.anchor is None else settings.anchor
    if not 0 <= anchor < count:
        raise ValueError(f"anchor frame {anchor} is outside the video (0..{count - 1}).")
    if isinstance(settings.epochs, bool) or not isinstance(settings.epochs, int) or settings.epochs < 1 \
            or settings.lr <= 0:
        raise ValueError(f"epochs must be an integer >= 1 and lr > 0, got {settings.epochs!r} and {settings.lr}.")
    rng = torch.Generator().manual_seed(int(settings.seed))
    schedule = epoch_schedule(count, anchor, settings.epochs, rng)
    total = len(schedule) + 1
    losses = []
    with torch.inference_mode(False), torch.enable_grad():
        device = torch.device(device) if device is not None else original.device
        source = original.detach().clone().to(device, torch.float32)
        target = processed.detach().clone().to(device, torch.float32)
        report_progress(progress, 0, total)
        flow_to_other, flow_to_anchor = anchor_flows(estimator, source, anchor)
        report_progress(progress, 1, total)
        generator = BlindGenerator(settings.width, settings.levels, settings.seed, device)
        optimiser = torch.optim.Adam(generator.trainable_parameters(), lr=settings.lr)
        for other in schedule:
            losses.append(pair_step(generator, optimiser, distance, source, target, anchor, other,
                                    (flow_to_other[other:other + 1], flow_to_anchor[other:other + 1]),
                                    settings.lambda_photo, 1.0 / (count - 1) if settings.mean_look else 1.0))
            report_progress(progress, len(losses) + 1, total)
        generator.decoder.requires_grad_(False)
        frames = decode_frames(generator, source)
    return BlindResult(frames, generator, losses, distance.name, anchor)
