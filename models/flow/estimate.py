"""Batched flow estimation over the frame pairs of a video, with any estimator module.

An estimator is an `nn.Module` called as `module(image1, image2) -> flow` on `[N,3,H,W]` images in
[0,1], returning `[N,2,H,W]` pixel flow from image1 to image2 at the input size (it pads internally).
"""
import torch

from ...kernels.warp import resize_flow
from .field import FlowSet

# Frame pairs per estimator call: batching amortises the built-in estimator's per-operation cost on
# small frames (bench/flow/RESULTS.md, real pairs, has the time per pair this way).
PAIRS_PER_BATCH = 4


class FlowEstimator:
    """The `TAME_FLOW_MODEL` payload: an estimator module, its name and the device it runs on."""

    def __init__(self, module, name, device="cpu", pairs_per_batch=PAIRS_PER_BATCH, forward_kwargs=None):
        self.module = module.to(device).eval()
        self.name = name
        self.device = torch.device(device)
        self.pairs_per_batch = pairs_per_batch
        self.forward_kwargs = forward_kwargs or {}

    def __repr__(self):
        return f"FlowEstimator({self.name}, {self.device})"

    def __call__(self, image1, image2):
        """`[N,3,H,W]` x2 (any device) -> `[N,2,H,W]` on the estimator's device, no gradient."""
        with torch.no_grad():
            return self.module(image1.to(self.device), image2.to(self.device), **self.forward_kwargs)


def video_pairs(num_frames, mode="consecutive", anchor=0):
    """Frame pairs (a, b): consecutive `(t, t+1)`, or every frame to an anchor `(t, anchor)`."""
    if num_frames < 2:
        raise ValueError(
            f"Flow needs at least 2 frames, got {num_frames}. Load more frames of the video.")
    if mode == "consecutive":
        return [(t, t + 1) for t in range(num_frames - 1)]
    if mode == "anchor":
        if not 0 <= anchor < num_frames:
            raise ValueError(f"anchor frame {anchor} is outside the video (0..{num_frames - 1}).")
        return [(t, anchor) for t in range(num_frames)]
    raise ValueError(f"unknown pair mode '{mode}' (use 'consecutive' or 'anchor')")


def _scaled_size(height, width, max_side):
    if not max_side or max(height, width) <= max_side:
        return height, width
    scale = max_side / max(height, width)
    return max(8, round(height * scale)), max(8, round(width * scale))


def _estimate(estimator, frames, index_a, index_b, work_size):
    """Flow `[n,2,H,W]` (CPU float32) from frames[index_a] to frames[index_b], estimated at work_size."""
    height, width = frames.shape[-2:]
    image1, image2 = frames[index_a], frames[index_b]
    if work_size != (height, width):
        image1 = torch.nn.functional.interpolate(image1, size=work_size, mode="area")
        image2 = torch.nn.functional.interpolate(image2, size=work_size, mode="area")
    flow = estimator(image1, image2).float()
    if work_size != (height, width):
        flow = resize_flow(flow, (height, width))
    return flow.cpu()


def estimate_video_flow(estimator, frames, mode="consecutive", anchor=0, bidirectional=True,
                        max_side=0, progress=None):
    """Flow between the pairs of a video.

    frames: `[T,3,H,W]` float in [0,1] (CPU is fine; chunks move to the estimator's device).
    mode: 'consecutive' (pairs (t, t+1)) or 'anchor' (pairs (t, anchor) for every t; zero flow at t = anchor).
    bidirectional: also estimate the backward fields F_{b->a}.
    max_side: estimate on frames downscaled so the longer side is at most this (0 = full size);
        vectors are rescaled back to full resolution.
    progress: `progress(done, total)` called once per batch of pairs; may raise to cancel.
    Returns a FlowSet with CPU float32 fields.
    """
    pairs = video_pairs(frames.shape[0], mode, anchor)
    work_size = _scaled_size(*frames.shape[-2:], max_side)
    to_estimate = [i for i, (a, b) in enumerate(pairs) if a != b]
    forward = torch.zeros(len(pairs), 2, *frames.shape[-2:])
    backward = torch.zeros_like(forward) if bidirectional else None
    step = estimator.pairs_per_batch
    for start in range(0, len(to_estimate), step):
        batch = to_estimate[start:start + step]
        index_a = [pairs[i][0] for i in batch]
        index_b = [pairs[i][1] for i in batch]
        forward[batch] = _estimate(estimator, frames, index_a, index_b, work_size)
        if bidirectional:
            backward[batch] = _estimate(estimator, frames, index_b, index_a, work_size)
        if progress is not None:
            progress(min(start + step, len(to_estimate)), len(to_estimate))
    return FlowSet(forward, backward, pairs, frames.shape[0])
