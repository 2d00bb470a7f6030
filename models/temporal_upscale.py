"""Temporal wrapper for any per-frame image upscaler (specs/vsr.md, section D).

A per-frame upscaler invents high-frequency detail independently in every frame, so the detail
flickers. The wrapper keeps each frame's low band (what the low-resolution frame determines) and
replaces its high band by a flow-guided, occlusion-aware recurrent average over the clip:

1. anti-alias prefilter of the LR frames (mild binomial blur, `prefilter` strength);
2. per-frame upscaling with `upscale_fn`, in chunks of frames;
3. split of every upscaled frame into LF + HF with the binomial low-pass, `hf_passes` chosen so the
   split sits near the LR Nyquist frequency;
4. flow on the LR frames (both directions, consecutive pairs), resized to the output size;
5. backward pass `t = T-1..0` and forward pass `t = 0..T-1`: the previous propagated HF is warped onto
   frame t and blended with frame t's HF with weight `temporal_weight * visibility`, where visibility
   is the forward-backward soft visibility (0 where occluded or out of frame: those pixels keep the
   current frame's HF);
6. output = LF_t + mean of the two directional HF states.

Memory: two buffers of the output size (upscaled frames, backward states) on the storage device of
`frames`, plus one chunk of frames on the compute device.
"""
import hashlib
import math

import torch
import torch.nn.functional as F

from ..kernels.consistency import soft_visibility
from ..kernels.frequency import lanczos_upsample, lowpass, split_frequencies
from ..kernels.warp import backward_warp, resize_flow, validate_images
from .flow.estimate import estimate_video_flow

RESIZE_UPSCALE_MODES = ("bicubic", "lanczos", "bilinear")


def hf_passes_for_scale(scale):
    """Binomial passes whose half-power frequency sits nearest the LR Nyquist frequency.

    The response of p passes is `cos(omega/2)^(4p)`; the LR Nyquist frequency at the output resolution is
    `omega = pi / scale`. Returns p >= 1 (1 for 2x and 3x, 2 for 4x, 9 for 8x).
    """
    if scale <= 1:
        raise ValueError(f"scale must be > 1 to have a band above the input's Nyquist frequency, got {scale}.")
    exact = math.log(0.5) / (4.0 * math.log(math.cos(math.pi / (2.0 * scale))))
    return max(1, round(exact))


def prefilter_frames(frames, strength):
    """Mild anti-alias blur: `frames + strength * (lowpass(frames) - frames)`, strength in [0,1]."""
    if not 0.0 <= strength <= 1.0:
        raise ValueError(f"prefilter strength must be in [0, 1] (0 = off, 1 = full binomial blur), got {strength}.")
    if strength == 0:
        return frames
    return torch.lerp(frames, lowpass(frames), strength)


# ------------------------------------------------------------------ upscalers
def output_size(height, width, scale):
    """Output frame size `(round(h * scale), round(w * scale))`."""
    return round(height * scale), round(width * scale)


def resize_upscaler(mode="bicubic", scale=2):
    """A plain-resize `upscale_fn`: `[n,3,h,w]` in [0,1] -> `[n,3,round(h*scale),round(w*scale)]` in [0,1].

    mode: "bicubic" / "bilinear" (`F.interpolate`, align_corners=False) or "lanczos" (separable
    Lanczos-3). Results are clamped to [0,1] (cubic and Lanczos kernels overshoot at edges).
    """
    if mode not in RESIZE_UPSCALE_MODES:
        raise ValueError(f"resize mode must be one of {RESIZE_UPSCALE_MODES}, got {mode!r}.")
    if scale < 1:
        raise ValueError(f"an upscaler needs scale >= 1, got {scale}.")

    def upscale(images):
        size = output_size(*images.shape[-2:], scale)
        if mode == "lanczos":
            enlarged = lanczos_upsample(images, size)
        else:
            enlarged = F.interpolate(images, size=size, mode=mode, align_corners=False)
        return enlarged.clamp(0.0, 1.0)

    return upscale


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


# ------------------------------------------------------------------ the wrapper
def _check_arguments(frames, scale, temporal_weight, chunk, estimator, flows):
    validate_images(frames, "frames")
    if frames.shape[1] != 3:
        raise ValueError(f"frames must be RGB [T,3,h,w], got {frames.shape[1]} channels.")
    if scale <= 1:
        raise ValueError(f"scale must be > 1, got {scale}.")
    if not 0.0 <= temporal_weight <= 1.0:
        raise ValueError(f"temporal_weight must be in [0, 1] (0 = per-frame result), got {temporal_weight}.")
    if int(chunk) != chunk or chunk < 1:
        raise ValueError(f"chunk must be an integer >= 1 (frames per upscaler call), got {chunk!r}.")
    if frames.shape[0] > 1 and estimator is None and flows is None:
        raise ValueError("temporal_upscale needs a flow estimator (or precomputed flows) for more than one frame.")
    if flows is not None:
        expected = (frames.shape[0] - 1, 2, *frames.shape[-2:])
        if flows.backward is None or not flows.consecutive or tuple(flows.forward.shape) != expected:
            raise ValueError(f"flows must be bidirectional flow between consecutive frames with fields "
                             f"{expected} (estimated on these LR frames).")


def _stage_reporter(progress, offset, total):
    """`report(done)` for one stage, mapped onto the overall `progress(done, total)`."""
    if progress is None:
        return lambda done, _stage_total=None: None
    return lambda done, _stage_total=None: progress(offset + done, total)


def _upscale_all(frames, upscale_fn, scale, chunk, device, report):
    """Per-frame upscaling in chunks -> `[T,3,H,W]` on the device of `frames`."""
    t, _, h, w = frames.shape
    size = output_size(h, w, scale)
    upscaled = torch.empty(t, 3, *size, dtype=frames.dtype, device=frames.device)
    for start in range(0, t, chunk):
        batch = frames[start:start + chunk].to(device)
        result = upscale_fn(batch)
        if tuple(result.shape) != (batch.shape[0], 3, *size):
            raise ValueError(f"the upscaler returned {tuple(result.shape)} for input {tuple(batch.shape)}; "
                             f"expected {(batch.shape[0], 3, *size)} (scale {scale}).")
        upscaled[start:start + batch.shape[0]] = result.to(upscaled)
        report(start + batch.shape[0])
    return upscaled


def _propagate(state, current_high, flow_lr, visibility_lr, temporal_weight):
    """One recurrent step: warp the neighbour's HF state onto the current frame and blend.

    state, current_high: `[1,3,H,W]`; flow_lr: `[1,2,h,w]` current -> neighbour (LR pixels);
    visibility_lr: `[1,1,h,w]` in [0,1]. Returns `current + temporal_weight * vis * (warped - current)`.
    """
    size = current_high.shape[-2:]
    warped, valid = backward_warp(state, resize_flow(flow_lr, size), padding="border")
    visibility = F.interpolate(visibility_lr, size=size, mode="bilinear", align_corners=False) * valid
    return torch.lerp(current_high, warped, temporal_weight * visibility)


def _chunks(num_frames, chunk, reverse):
    starts = list(range(0, num_frames, chunk))
    return [(s, min(s + chunk, num_frames)) for s in (reversed(starts) if reverse else starts)]


def _backward_pass(upscaled, flow_to_next, visibility, temporal_weight, passes, chunk, device, report):
    """HF states propagated from the end of the clip: `b_t = lerp(hf_t, warp(b_{t+1}), w * vis)`.

    upscaled: `[T,3,H,W]`; flow_to_next: `[T-1,2,h,w]` LR flow `F_{t->t+1}`; visibility: `[T-1,1,h,w]`
    of frame t in frame t+1. Returns the states `[T,3,H,W]` on the device of `upscaled`.
    """
    num_frames = upscaled.shape[0]
    states = torch.empty_like(upscaled)
    state = None
    for start, stop in _chunks(num_frames, chunk, reverse=True):
        _, highs = split_frequencies(upscaled[start:stop].to(device), passes=passes)
        for t in range(stop - 1, start - 1, -1):
            high = highs[t - start:t - start + 1]
            if state is not None:
                high = _propagate(state, high, flow_to_next[t:t + 1].to(device),
                                  visibility[t:t + 1].to(device), temporal_weight)
            state = high
            states[t] = state[0].to(states)
        report(num_frames - start)
    return states


def _forward_pass_and_fuse(upscaled, backward_states, flow_to_previous, visibility, temporal_weight, passes,
                           chunk, device, report):
    """Forward states `f_t = lerp(hf_t, warp(f_{t-1}), w * vis)`, fused as `LF_t + (b_t + f_t) / 2`.

    flow_to_previous: `[T-1,2,h,w]`, entry t-1 = LR flow `F_{t->t-1}`; visibility: `[T-1,1,h,w]` of
    frame t in frame t-1. Writes the fused frames, clamped to [0,1], over `upscaled` and returns it.
    """
    state = None
    for start, stop in _chunks(upscaled.shape[0], chunk, reverse=False):
        lows, highs = split_frequencies(upscaled[start:stop].to(device), passes=passes)
        for t in range(start, stop):
            high = highs[t - start:t - start + 1]
            if state is not None:
                high = _propagate(state, high, flow_to_previous[t - 1:t].to(device),
                                  visibility[t - 1:t].to(device), temporal_weight)
            state = high
            fused_high = 0.5 * (state + backward_states[t:t + 1].to(device))
            upscaled[t] = (lows[t - start] + fused_high[0]).clamp(0.0, 1.0).to(upscaled)
        report(stop)
    return upscaled


def temporal_upscale(frames, upscale_fn, scale, estimator=None, *, flows=None, prefilter=0.0,
                     hf_passes=None, temporal_weight=0.8, visibility_alpha=2.0, chunk=8, device=None,
                     progress=None):
    """Upscale a clip with a per-frame upscaler and make its high-frequency detail temporally stable.

    Args:
        frames: `[T,3,h,w]` LR frames in [0,1] (T >= 1); buffers of the output size stay on this device.
        upscale_fn: callable `[n,3,h,w]` in [0,1] -> `[n,3,round(h*scale),round(w*scale)]`.
        scale: the upscaler's factor (> 1).
        estimator: `FlowEstimator` used on the LR frames (not needed when `flows` is given or T == 1).
        flows: optional precomputed `FlowSet` of the LR frames (consecutive pairs, bidirectional).
        prefilter: anti-alias blur strength of the LR frames in [0,1] (0 = off).
        hf_passes: binomial passes of the LF/HF split (None = `hf_passes_for_scale(scale)`).
        temporal_weight: blend weight of the propagated HF in [0,1] (0 = per-frame result).
        visibility_alpha: sharpness of the soft visibility `exp(-alpha * eps)`, eps = forward-backward
            round-trip error in LR pixels. 2 tolerates the ~0.1-0.3 px round-trip error of estimated flow
            (the seeds' 10 suits exact flow: with estimated flow it switches most blending off) while
            real occlusions (eps of pixels) still get weight ~0.
        chunk: frames per upscaler call and per transfer to `device`.
        device: where upscaling, splitting and warping run (None = the device of `frames`).
        progress: `progress(done, total)` after every chunk of every stage; may raise to cancel.
    Returns:
        `[T,3,H,W]` in [0,1] on the device of `frames`: `LF_t + (b_t + f_t) / 2`, see the module doc.
    """
    _check_arguments(frames, scale, temporal_weight, chunk, estimator, flows)
    num_frames = frames.shape[0]
    device = torch.device(device) if device is not None else frames.device
    passes = hf_passes or hf_passes_for_scale(scale)
    flow_steps = num_frames - 1 if flows is None else 0
    total = flow_steps + 3 * num_frames
    if num_frames > 1 and flows is None:
        flows = estimate_video_flow(estimator, frames, bidirectional=True,
                                    progress=_stage_reporter(progress, 0, total))
    upscaled = _upscale_all(prefilter_frames(frames, prefilter), upscale_fn, scale, int(chunk), device,
                            _stage_reporter(progress, flow_steps, total))
    if num_frames == 1 or temporal_weight == 0:
        _stage_reporter(progress, 0, total)(total)
        return upscaled.clamp(0.0, 1.0)
    forward, backward = flows.forward.to(frames), flows.backward.to(frames)
    visibility_next = soft_visibility(forward, backward, visibility_alpha)
    visibility_previous = soft_visibility(backward, forward, visibility_alpha)
    backward_states = _backward_pass(upscaled, forward, visibility_next, temporal_weight, passes,
                                     int(chunk), device,
                                     _stage_reporter(progress, flow_steps + num_frames, total))
    return _forward_pass_and_fuse(upscaled, backward_states, backward, visibility_previous, temporal_weight,
                                  passes, int(chunk), device,
                                  _stage_reporter(progress, flow_steps + 2 * num_frames, total))
