"""Temporal wrapper for any per-frame image upscaler (specs/vsr.md, section D).

A per-frame upscaler invents high-frequency detail independently in every frame, so the detail
flickers. The wrapper keeps each frame's low band (what the low-resolution frame determines) and
replaces its high band by a flow-guided, occlusion-aware recurrent average over the clip:

1. anti-alias prefilter of the LR frames (mild binomial blur, `prefilter` strength);
2. per-frame upscaling with `upscale_fn`, in chunks of frames;
3. split of every upscaled frame into LF + HF with the binomial low-pass, `hf_passes` chosen so the
   split sits near the LR Nyquist frequency;
4. flow on the LR frames (both directions, consecutive pairs), resized to the output size. Frames whose
   shorter side is below `flow_min_side` (256) are enlarged (bicubic) for the estimation and the flow is
   scaled back: estimators work at a fixed pixel scale, and on 64-180 px frames their sub-pixel error
   (bench: EPE 0.15-0.2 LR px with the built-in medium) misaligns the detail enough to halve the flicker
   reduction;
5. backward pass `t = T-1..0` and forward pass `t = 0..T-1`: the previous propagated state is warped
   (bicubic: repeated bilinear resampling at fractional offsets would low-pass the detail a little more
   at every frame) onto frame t and blended with frame t's state with weight
   `temporal_weight * visibility`, where visibility is the forward-backward soft visibility (0 where
   occluded or out of frame: those pixels keep the current frame's state). A state is the HF plus the
   local energies (box mean of the square) of its two sub-bands (the HF split once more with the same
   low-pass), all propagated with the same weights;
6. fused HF = mean of the two directional HF states. Averaging removes what differs between frames
   (the flicker) but also lowers the amount of detail; the energy step rescales each sub-band of the
   fused HF so its local energy matches the propagated one, i.e. the temporal average of the per-frame
   detail energy, which is itself stable over time: gain `sqrt(E_propagated / E_fused)` clamped to
   `[1, max_gain]`, applied with strength `keep_detail`. Matching per sub-band keeps the spectrum of
   the detail: flicker such as grain sits mostly in the finest frequencies, so matching the total
   energy only would move the restored energy to coarser frequencies than the upscaler put it;
7. output = LF_t + rescaled fused HF.

Memory: two buffers of the output size (upscaled frames; backward states, 5 channels) on the storage
device of `frames`, plus one chunk of frames on the compute device.
"""
import math
from typing import NamedTuple

import torch
import torch.nn.functional as F

from ...kernels.checks import validate_images
from ...kernels.consistency import soft_visibility
from ...kernels.frequency import lanczos_upsample, lowpass, split_frequencies
from ...kernels.warp import backward_warp, resize_flow
from ..flow.estimate import estimate_video_flow
from ..flow.field import FlowSet

RESIZE_UPSCALE_MODES = ("bicubic", "lanczos", "bilinear")
TEMPORAL_WEIGHT_DEFAULT = 0.9
KEEP_DETAIL_DEFAULT = 1.0
VISIBILITY_ALPHA_DEFAULT = 1.0
MAX_GAIN_DEFAULT = 6.0
# Half-width of the box over which the detail energy is measured, in LR pixels (output pixels: x scale).
ENERGY_RADIUS_LR_PX = 2.0
# Fused energies below this (squared intensity) count as no detail: the gain there is 1.
_ENERGY_FLOOR = 1e-10
# Flow is estimated on LR frames enlarged (bicubic) until their shorter side has at least this many pixels.
# Patch- and pyramid-based estimators work at a fixed pixel scale (the built-in one: 8 px patches, on half
# resolution for "medium"; RAFT: 1/8 resolution), so 64-180 px frames leave them too few pixels for the
# sub-pixel accuracy the detail propagation needs.
FLOW_MIN_SIDE_DEFAULT = 256


def hf_passes_for_scale(scale):
    """Binomial passes whose half-power frequency sits nearest the LR Nyquist frequency.

    The response of p passes is `cos(omega/2)^(4p)`; the LR Nyquist frequency at the output resolution is
    `omega = pi / scale`. Returns p >= 1 (1 for 2x and 3x, 2 for 4x, 9 for 8x).
    """
    if scale <= 1:
        raise ValueError(f"scale must be > 1 to have a band above the input's Nyquist frequency, got {scale}.")
    exact = math.log(0.5) / (4.0 * math.log(math.cos(math.pi / (2.0 * scale))))
    return max(1, round(exact))


def energy_radius(scale):
    """Half-width in output pixels of the energy box: `ENERGY_RADIUS_LR_PX` LR pixels (>= 1)."""
    return max(1, round(ENERGY_RADIUS_LR_PX * scale))


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


# ------------------------------------------------------------------ the wrapper
def estimate_lr_flow(estimator, frames, min_side=FLOW_MIN_SIDE_DEFAULT, progress=None):
    """Bidirectional flow between consecutive LR frames, estimated on enlarged frames when they are small.

    frames: `[T,3,h,w]` in [0,1], T >= 2. If `min(h, w) < min_side`, the flow is estimated on the frames
    enlarged (bicubic) by `min_side / min(h, w)` and resized back, vectors in LR pixels; `min_side` 0 =
    always at the LR size. progress: as in `estimate_video_flow`.
    Returns a consecutive, bidirectional `FlowSet` with `[T-1,2,h,w]` fields.
    """
    if int(min_side) != min_side or min_side < 0:
        raise ValueError(f"flow_min_side must be an integer >= 0 (0 = estimate at the LR size), got {min_side!r}.")
    size = frames.shape[-2:]
    if min(size) >= min_side:
        return estimate_video_flow(estimator, frames, bidirectional=True, progress=progress)
    enlarged_size = output_size(*size, min_side / min(size))
    enlarged = F.interpolate(frames, size=enlarged_size, mode="bicubic", align_corners=False).clamp(0.0, 1.0)
    flows = estimate_video_flow(estimator, enlarged, bidirectional=True, progress=progress)
    return FlowSet(resize_flow(flows.forward, size), resize_flow(flows.backward, size), flows.pairs,
                   flows.num_frames)


def _check_arguments(frames, scale, temporal_weight, keep_detail, max_gain, chunk, estimator, flows):
    validate_images(frames, "frames")
    if frames.shape[1] != 3:
        raise ValueError(f"frames must be RGB [T,3,h,w], got {frames.shape[1]} channels.")
    if scale <= 1:
        raise ValueError(f"scale must be > 1, got {scale}.")
    if not 0.0 <= temporal_weight <= 1.0:
        raise ValueError(f"temporal_weight must be in [0, 1] (0 = per-frame result), got {temporal_weight}.")
    if not 0.0 <= keep_detail <= 1.0:
        raise ValueError(f"keep_detail must be in [0, 1] (0 = plain temporal average, 1 = full energy "
                         f"restoration), got {keep_detail}.")
    if not max_gain >= 1.0:
        raise ValueError(f"max_gain must be >= 1 (1 = never amplify the fused detail), got {max_gain}.")
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


def local_energy(high, radius):
    """Local detail energy: mean over channels of `high^2`, box-averaged over `(2*radius+1)^2` pixels.

    high: `[N,C,H,W]`; radius: int >= 0 (edge pixels replicated). Returns `[N,1,H,W]` >= 0.
    """
    energy = high.square().mean(1, keepdim=True)
    size = 2 * radius + 1
    padded = F.pad(energy, (radius, radius, radius, radius), mode="replicate") if radius else energy
    return F.avg_pool2d(F.avg_pool2d(padded, (1, size), stride=1), (size, 1), stride=1)


def detail_sub_bands(high, passes):
    """Split a high band `[N,C,H,W]` once more with the same low-pass -> (coarser, finer), summing to it."""
    return split_frequencies(high, passes=passes)


def match_energy(high, target_energies, radius, passes, keep_detail=1.0, max_gain=MAX_GAIN_DEFAULT):
    """Rescale each sub-band of `high` so its local energy approaches its target, never attenuating it.

    high: `[N,C,H,W]`; target_energies: `[N,2,H,W]`, local energies (radius `radius`) of the coarser and
    finer `detail_sub_bands(., passes)`. Per sub-band, gain = `sqrt(target / local_energy(band))`
    clamped to `[1, max_gain]`. Returns `sum(band * (1 + keep_detail * (gain - 1)))`, `[N,C,H,W]`.
    """
    matched = torch.zeros_like(high)
    for index, band in enumerate(detail_sub_bands(high, passes)):
        target = target_energies[:, index:index + 1].clamp_min(0.0)
        gain = (target / local_energy(band, radius).clamp_min(_ENERGY_FLOOR)).sqrt().clamp(1.0, max_gain)
        matched += band * (1.0 + keep_detail * (gain - 1.0))
    return matched


def _detail_states(highs, radius, passes):
    """`[n,3,H,W]` HF -> `[n,5,H,W]` states: the HF, then the local energies of its two sub-bands."""
    energies = [local_energy(band, radius) for band in detail_sub_bands(highs, passes)]
    return torch.cat((highs, *energies), dim=1)


def _propagate(state, current, flow_lr, visibility_lr, temporal_weight):
    """One recurrent step: warp the neighbour's state onto the current frame and blend.

    state, current: `[1,5,H,W]` (HF + sub-band energies); flow_lr: `[1,2,h,w]` current -> neighbour
    (LR pixels); visibility_lr: `[1,1,h,w]` in [0,1]. Returns `current + temporal_weight * vis * (warped - current)`.
    """
    size = current.shape[-2:]
    warped, valid = backward_warp(state, resize_flow(flow_lr, size), padding="border", mode="bicubic")
    visibility = F.interpolate(visibility_lr, size=size, mode="bilinear", align_corners=False) * valid
    return torch.lerp(current, warped, temporal_weight * visibility)


class _FusionSettings(NamedTuple):
    """The per-call constants of the two passes (see `temporal_upscale`; radius from `energy_radius`)."""
    passes: int
    radius: int
    temporal_weight: float
    keep_detail: float
    max_gain: float


def _chunks(num_frames, chunk, reverse):
    starts = list(range(0, num_frames, chunk))
    return [(s, min(s + chunk, num_frames)) for s in (reversed(starts) if reverse else starts)]


def _backward_pass(upscaled, flow_to_next, visibility, settings, chunk, device, report):
    """States propagated from the end of the clip: `b_t = lerp(s_t, warp(b_{t+1}), w * vis)`.

    upscaled: `[T,3,H,W]`; flow_to_next: `[T-1,2,h,w]` LR flow `F_{t->t+1}`; visibility: `[T-1,1,h,w]`
    of frame t in frame t+1. Returns the states `[T,5,H,W]` (HF + sub-band energies) on the device of
    `upscaled`.
    """
    num_frames = upscaled.shape[0]
    states = upscaled.new_empty(num_frames, 5, *upscaled.shape[-2:])
    state = None
    for start, stop in _chunks(num_frames, chunk, reverse=True):
        _, highs = split_frequencies(upscaled[start:stop].to(device), passes=settings.passes)
        currents = _detail_states(highs, settings.radius, settings.passes)
        for t in range(stop - 1, start - 1, -1):
            current = currents[t - start:t - start + 1]
            if state is not None:
                current = _propagate(state, current, flow_to_next[t:t + 1].to(device),
                                     visibility[t:t + 1].to(device), settings.temporal_weight)
            state = current
            states[t] = state[0].to(states)
        report(num_frames - start)
    return states


def _forward_pass_and_fuse(upscaled, backward_states, flow_to_previous, visibility, settings, chunk, device,
                           report, state=None):
    """Forward states `f_t = lerp(s_t, warp(f_{t-1}), w * vis)`; output `LF_t + match_energy((b_t + f_t) / 2)`.

    flow_to_previous: `[T-1,2,h,w]`, entry t-1 = LR flow `F_{t->t-1}`; visibility: `[T-1,1,h,w]` of
    frame t in frame t-1. state: the forward state `[1,5,H,W]` of the frame before `upscaled[0]` (a
    stream's previous chunk), or None; when given, flow_to_previous and visibility have T entries, entry
    0 linking frame 0 to that frame. Writes the fused frames, clamped to [0,1], over `upscaled`; returns
    (upscaled, forward state of its last frame).
    """
    link = 0 if state is None else 1
    for start, stop in _chunks(upscaled.shape[0], chunk, reverse=False):
        lows, highs = split_frequencies(upscaled[start:stop].to(device), passes=settings.passes)
        currents = _detail_states(highs, settings.radius, settings.passes)
        for t in range(start, stop):
            current = currents[t - start:t - start + 1]
            if state is not None:
                current = _propagate(state, current, flow_to_previous[t - 1 + link:t + link].to(device),
                                     visibility[t - 1 + link:t + link].to(device), settings.temporal_weight)
            state = current
            fused = 0.5 * (state + backward_states[t:t + 1].to(device))
            fused_high = match_energy(fused[:, :3], fused[:, 3:], settings.radius, settings.passes,
                                      settings.keep_detail, settings.max_gain)
            upscaled[t] = (lows[t - start] + fused_high[0]).clamp(0.0, 1.0).to(upscaled)
        report(stop)
    return upscaled, state


def temporal_upscale(frames, upscale_fn, scale, estimator=None, *, flows=None, prefilter=0.0,
                     hf_passes=None, temporal_weight=TEMPORAL_WEIGHT_DEFAULT, keep_detail=KEEP_DETAIL_DEFAULT,
                     max_gain=MAX_GAIN_DEFAULT, visibility_alpha=VISIBILITY_ALPHA_DEFAULT,
                     flow_min_side=FLOW_MIN_SIDE_DEFAULT, chunk=8, device=None, progress=None):
    """Upscale a clip with a per-frame upscaler and make its high-frequency detail temporally stable.

    Args:
        frames: `[T,3,h,w]` LR frames in [0,1] (T >= 1); buffers of the output size stay on this device.
        upscale_fn: callable `[n,3,h,w]` in [0,1] -> `[n,3,round(h*scale),round(w*scale)]`.
        scale: the upscaler's factor (> 1).
        estimator: `FlowEstimator` used on the LR frames (not needed when `flows` is given or T == 1).
        flows: optional precomputed `FlowSet` of the LR frames (consecutive pairs, bidirectional).
        prefilter: anti-alias blur strength of the LR frames in [0,1] (0 = off).
        hf_passes: binomial passes of the LF/HF split (None = `hf_passes_for_scale(scale)`).
        temporal_weight: blend weight of the propagated HF in [0,1] (0 = per-frame result). 0.9: the
            memory of about 10 frames that the bench needs to cut the warping error by half with estimated
            flow; misaligned detail is held back by the visibility and the PSNR stays above the per-frame one.
        keep_detail: strength in [0,1] of the energy step (0 = plain average of the propagated HF,
            1 = fused HF rescaled to the temporally averaged local detail energy).
        max_gain: largest amplitude gain of the energy step (>= 1; 1 = never amplify). A two-sided
            recursive average with weight 0.9 shrinks detail that is uncorrelated between frames (grain,
            random sharpening) to roughly 1/6 of its amplitude, so 6 lets the energy step restore it
            (bench: with 3, strong flicker kept only 75-79 % of its HF energy; with 6, 86-89 %).
        visibility_alpha: sharpness of the soft visibility `exp(-alpha * eps)`, eps = forward-backward
            round-trip error in LR pixels. 1 tolerates the ~0.1-0.5 px round-trip error of estimated flow
            (the seeds' 10 suits exact flow: with estimated flow it switches most blending off) while
            real occlusions (eps of several pixels) still get weight near 0.
        flow_min_side: flow is estimated on the LR frames enlarged (bicubic) so their shorter side has at
            least this many pixels, then scaled back (0 = at the LR size); see `estimate_lr_flow`.
        chunk: frames per upscaler call and per transfer to `device`.
        device: where upscaling, splitting and warping run (None = the device of `frames`).
        progress: `progress(done, total)` after every chunk of every stage; may raise to cancel.
    Returns:
        `[T,3,H,W]` in [0,1] on the device of `frames`: LF_t + the energy-matched mean of the two
        directional HF states, see the module doc.
    """
    _check_arguments(frames, scale, temporal_weight, keep_detail, max_gain, chunk, estimator, flows)
    num_frames = frames.shape[0]
    device = torch.device(device) if device is not None else frames.device
    passes = hf_passes or hf_passes_for_scale(scale)
    flow_steps = num_frames - 1 if flows is None else 0
    total = flow_steps + 3 * num_frames
    if num_frames > 1 and flows is None:
        flows = estimate_lr_flow(estimator, frames, flow_min_side, progress=_stage_reporter(progress, 0, total))
    upscaled = _upscale_all(prefilter_frames(frames, prefilter), upscale_fn, scale, int(chunk), device,
                            _stage_reporter(progress, flow_steps, total))
    if num_frames == 1 or temporal_weight == 0:
        _stage_reporter(progress, 0, total)(total)
        return upscaled.clamp(0.0, 1.0)
    forward, backward = flows.forward.to(frames), flows.backward.to(frames)
    visibility_next = soft_visibility(forward, backward, visibility_alpha)
    visibility_previous = soft_visibility(backward, forward, visibility_alpha)
    settings = _FusionSettings(passes, energy_radius(scale), temporal_weight, keep_detail, max_gain)
    backward_states = _backward_pass(upscaled, forward, visibility_next, settings, int(chunk), device,
                                     _stage_reporter(progress, flow_steps + num_frames, total))
    return _forward_pass_and_fuse(upscaled, backward_states, backward, visibility_previous, settings, int(chunk),
                                  device, _stage_reporter(progress, flow_steps + 2 * num_frames, total))[0]
