"""Peers for tests and benchmarks: a deliberately flickering per-frame upscaler and the Deep Video Prior
baseline. They stand in for what users chain Tame with; they are not product code."""
import hashlib

import torch
import torch.nn.functional as F

from ...kernels.frequency import split_frequencies
from ...models.edit.blind import check_videos
from ...models.edit.generator import BlindGenerator, decode_frames
from ...models.edit.optimize import report_progress
from ...models.vsr.wrapper import resize_upscaler


def _frame_seed(frame, seed):
    """A seed from the frame's bytes: the same frame always gets the same jitter, whatever the chunking."""
    digest = hashlib.blake2b(frame.detach().cpu().contiguous().numpy().tobytes(), digest_size=8,
                             key=int(seed).to_bytes(8, "little", signed=True)).digest()
    return int.from_bytes(digest, "little") & ((1 << 63) - 1)


def flickering_upscaler(scale=2, sharpen_range=(0.0, 1.5), grain=0.03, seed=0):
    """A deliberately flickering `upscale_fn` for tests and benchmarks (a stand-in for a generative
    per-frame upscaler): bicubic, then per frame a random unsharp-mask amount drawn from
    `sharpen_range` and random grain of standard deviation `grain` (before high-passing), both in the
    1-pass binomial high band of the output. The randomness is seeded by the frame's content and `seed`,
    so a repeated frame gets the same detail and results do not depend on chunking.
    Returns `[n,3,round(h*scale),round(w*scale)]` in [0,1].
    """
    bicubic = resize_upscaler("bicubic", scale)
    low_amount, high_amount = sharpen_range

    def upscale(images):
        enlarged = bicubic(images)
        detailed = []
        for lr_frame, frame in zip(images, enlarged):
            generator = torch.Generator().manual_seed(_frame_seed(lr_frame, seed))
            amount = low_amount + (high_amount - low_amount) * torch.rand((), generator=generator)
            noise = torch.randn(frame.shape, generator=generator).to(frame)
            _, frame_high = split_frequencies(frame[None])
            _, grain_high = split_frequencies(noise[None])
            detailed.append(frame[None] + amount.item() * frame_high + grain * grain_high)
        return torch.cat(detailed).clamp(0.0, 1.0)

    return upscale


def dvp_baseline(original, processed, iterations=None, lr=1e-4, width=32, levels=3, seed=0,
                 progress=None, device=None):
    """Deep Video Prior baseline: fit a U-Net `original_t -> processed_t` with an L1 loss, one random
    frame per iteration, and stop early (DVP's default is 25 epochs, Adam lr 1e-4; its perceptual
    VGG loss needs weights and is replaced by L1 here, and its iteratively reweighted training is
    left out). iterations: default 25 * T. Returns frames `[T,3,H,W]` CPU float32."""
    check_videos(original, processed)
    count = original.shape[0]
    iterations = 25 * count if iterations is None else int(iterations)
    if iterations < 0:
        raise ValueError(f"iterations must be >= 0, got {iterations}.")
    rng = torch.Generator().manual_seed(int(seed))
    order = torch.cat([torch.randperm(count, generator=rng) for _ in range(-(-iterations // count))])
    with torch.inference_mode(False), torch.enable_grad():
        device = torch.device(device) if device is not None else original.device
        source = original.detach().clone().to(device, torch.float32)
        target = processed.detach().clone().to(device, torch.float32)
        generator = BlindGenerator(width, levels, seed, device)
        optimiser = torch.optim.Adam(generator.trainable_parameters(), lr=lr)
        for step in range(iterations):
            index = int(order[step])
            loss = F.l1_loss(generator.decode(source[index:index + 1]), target[index:index + 1])
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
            report_progress(progress, step + 1, iterations)
        return decode_frames(generator, source)
