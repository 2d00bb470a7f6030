"""Sliding-window temporal context for TameVSRNet (seed 003 §2.3.2: the SR network sees 9 LR frames,
4 before and 4 after).

`upscale_video` propagates features through the whole clip (every frame sees every other frame through
the recurrent state). Here each output chunk `[s, e)` sees only `radius` frames on each side: the
backward branch runs over `[s, e + radius)` from an empty state, the forward branch over
`[s - radius, e)` from an empty state, then the U-Net runs on the chunk as usual. With `chunk_frames`
1 every frame sees exactly its `2 radius + 1`-frame window (radius 4: the seed's 9 frames); larger chunks
share the context computation (frames inside a chunk see at least `radius` frames on each side).
Cost: `(chunk + 2 radius) / chunk` times the propagation of the whole-clip path.
bench/longvideo/RESULTS.md measures it against the whole-clip propagation.
"""
import torch

from .inference import (
    DEFAULT_TILE_OVERLAP,
    _backward_hidden,
    _check_settings,
    _model_device,
    _pair_flows,
    _upscale_chunk,
    check_video,
)

SEED_RADIUS = 4  # 4 before + 4 after = the seed's 9-frame window


def forward_context(model, lr, flows_backward, link):
    """Forward-branch state after `lr` `[n,3,h,w]` (n >= 1), started empty, linked to the next frame.

    flows_backward: `[n-1,2,h,w]` F_{t+1->t} inside `lr`; link: `[1,2,h,w]` F_{next->last of lr}.
    Returns a PropagationState for `_upscale_chunk`.
    """
    device = _model_device(model)
    features = model.extract_features(lr.to(device)[None])
    _, state = model.propagation.forward_pass(features, flows_backward.to(device)[None], None)
    return state.linked(link.to(device))


def upscale_video_windowed(model, frames, estimator, radius=SEED_RADIUS, chunk_frames=1, tile=0,
                           tile_overlap=DEFAULT_TILE_OVERLAP, progress=None, seed=0):
    """Super-resolve a clip with a sliding temporal window instead of whole-clip propagation.

    frames: `[T,3,h,w]` in [0,1], T >= 2; radius: context frames on each side (>= 0); chunk_frames:
    frames upscaled together. progress: `progress(done, total)` after the flow and after every chunk;
    may raise to cancel. Other arguments as in `upscale_video`. Returns `[T,3,s*h,s*w]` float32 CPU.
    """
    check_video(frames)
    _check_settings(model, chunk_frames, tile, tile_overlap)
    if isinstance(radius, bool) or not isinstance(radius, int) or radius < 0:
        raise ValueError(f"radius must be a whole number of frames >= 0, got {radius!r}.")
    count = frames.shape[0]
    starts = list(range(0, count, chunk_frames))
    output = torch.empty(count, 3, model.scale * frames.shape[-2], model.scale * frames.shape[-1])
    with torch.no_grad():
        flows_forward, flows_backward = _pair_flows(estimator, frames)
        if progress is not None:
            progress(1, len(starts) + 1)
        for index, start in enumerate(starts):
            end = min(start + chunk_frames, count)
            ahead, behind = min(end + radius, count), max(start - radius, 0)
            hidden, state = None, None
            if model.propagation is not None:
                hidden = _backward_hidden(model, frames[start:ahead], flows_forward[start:ahead - 1])[0][:end - start]
                if behind < start:
                    state = forward_context(model, frames[behind:start], flows_backward[behind:start - 1],
                                            flows_backward[start - 1:start])
            output[start:end], _ = _upscale_chunk(model, frames[start:end], hidden, flows_backward[start:end - 1],
                                                  state, start, seed, tile, tile_overlap)
            if progress is not None:
                progress(index + 2, len(starts) + 1)
    return output
