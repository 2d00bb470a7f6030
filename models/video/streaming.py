"""Streaming temporal upscale wrapper: `models/vsr/wrapper.temporal_upscale` on a video of any length.

The wrapper's forward pass is causal, so its state is carried exactly from chunk to chunk. Its backward
pass needs the future: for the chunk `[s, e)` it starts `lookahead` frames after `e` with an empty state
(as `upscale_video_stream` does for the VSR network), so the result equals the whole-clip wrapper where
that window reaches the end of the video, and otherwise misses only the influence of frames further
ahead (weight `(temporal_weight * visibility)^lookahead`, 0.9^16 = 0.19 at most).

Memory: `chunk + lookahead + 1` LR frames, the upscaled frames and backward states of one window
(`chunk + lookahead` frames at the output size), whatever the video's length.
"""
import torch

from ...kernels.consistency import soft_visibility
from ..vsr.inference import _FlowCache, _FrameWindow
from ..vsr.wrapper import (
    FLOW_MIN_SIDE_DEFAULT,
    KEEP_DETAIL_DEFAULT,
    MAX_GAIN_DEFAULT,
    TEMPORAL_WEIGHT_DEFAULT,
    VISIBILITY_ALPHA_DEFAULT,
    _backward_pass,
    _check_arguments,
    _forward_pass_and_fuse,
    _FusionSettings,
    _upscale_all,
    energy_radius,
    estimate_lr_flow,
    hf_passes_for_scale,
    prefilter_frames,
)

DEFAULT_LOOKAHEAD = 16


def _no_report(_done, _total=None):
    return None


class _UpscaledCache:
    """Upscaled frames of the stream by index, computed `chunk` at a time, dropped once written."""

    def __init__(self, upscale_fn, scale, prefilter, chunk, device):
        self.upscale_fn, self.scale, self.prefilter, self.chunk, self.device = upscale_fn, scale, prefilter, chunk, device
        self.frames = {}

    def get(self, window, start, end):
        """Upscaled frames `[end-start,3,H,W]` (storage: CPU float32) of stream frames start..end-1."""
        missing = [t for t in range(start, end) if t not in self.frames]
        if missing:
            lr = prefilter_frames(window.get(missing[0], missing[-1] + 1), self.prefilter)
            upscaled = _upscale_all(lr, self.upscale_fn, self.scale, self.chunk, self.device, _no_report)
            for offset, t in enumerate(range(missing[0], missing[-1] + 1)):
                self.frames.setdefault(t, upscaled[offset])
        return torch.stack([self.frames[t] for t in range(start, end)])

    def drop_before(self, index):
        for t in [t for t in self.frames if t < index]:
            del self.frames[t]


def _lr_pair_flows(min_side):
    def pair_flows(estimator, frames):
        flows = estimate_lr_flow(estimator, frames, min_side)
        return flows.forward.float(), flows.backward.float()
    return pair_flows


def _chunk_output(upscaled, flows, start, end, settings, alpha, chunk, device, state):
    """Fuse one chunk `[s, e)` of a window of upscaled frames `[n,3,H,W]` (frames s..s+n-1).

    flows: (forward, backward) consecutive LR flows for pairs max(s-1,0)..s+n-2. state: forward state of
    frame s-1 or None (s = 0). Returns (fused `[e-s,3,H,W]`, forward state of frame e-1).
    """
    forward, backward = flows
    link = 0 if state is None else 1
    window_fw, window_bw = forward[link:], backward[link:]
    backward_states = _backward_pass(upscaled, window_fw, soft_visibility(window_fw, window_bw, alpha), settings,
                                     chunk, device, _no_report)[:end - start]
    count = end - start - 1 + link  # flows into the chunk's frames from their previous frame
    to_previous, to_next = backward[:count], forward[:count]
    return _forward_pass_and_fuse(upscaled[:end - start].clone(), backward_states, to_previous,
                                  soft_visibility(to_previous, to_next, alpha), settings, chunk, device,
                                  _no_report, state=state)


def temporal_upscale_stream(read_chunks, write, upscale_fn, scale, estimator=None, *, prefilter=0.0,
                            hf_passes=None, temporal_weight=TEMPORAL_WEIGHT_DEFAULT, keep_detail=KEEP_DETAIL_DEFAULT,
                            max_gain=MAX_GAIN_DEFAULT, visibility_alpha=VISIBILITY_ALPHA_DEFAULT,
                            flow_min_side=FLOW_MIN_SIDE_DEFAULT, chunk=8, lookahead=DEFAULT_LOOKAHEAD,
                            device=None, progress=None, total_frames=None):
    """The temporal upscale wrapper on a stream of LR frames, written chunk by chunk.

    read_chunks: iterable of `[t,3,h,w]` float frames in [0,1] (any t). write: called with every fused
    chunk `[c,3,H,W]` CPU float32 in [0,1], in order. lookahead: frames past each chunk that the backward
    pass reads first (>= 0; >= the video length gives exactly `temporal_upscale`). progress:
    `progress(frames_written, total)` after every chunk (total = `total_frames`, else the frames written);
    may raise to cancel. Other arguments as in `temporal_upscale`. Returns the number of frames written.
    """
    if isinstance(lookahead, bool) or not isinstance(lookahead, int) or lookahead < 0:
        raise ValueError(f"lookahead must be a whole number of frames >= 0, got {lookahead!r}.")
    chunk = int(chunk)
    window = _FrameWindow(read_chunks)
    window.fill_to(chunk + lookahead + 1)
    if window.end == 0:
        raise ValueError("The video has no frames.")
    _check_arguments(window.get(0, window.end), scale, temporal_weight, keep_detail, max_gain, chunk, estimator,
                     None)
    device = torch.device(device) if device is not None else torch.device("cpu")
    settings = _FusionSettings(hf_passes or hf_passes_for_scale(scale), energy_radius(scale), temporal_weight,
                               keep_detail, max_gain)
    cache = _UpscaledCache(upscale_fn, scale, prefilter, chunk, device)
    flows = _FlowCache(estimator, _lr_pair_flows(flow_min_side))
    start, state = 0, None
    with torch.no_grad():
        while True:
            window.fill_to(start + chunk + lookahead)
            if start >= window.end:
                return start
            end, horizon = min(start + chunk, window.end), min(start + chunk + lookahead, window.end)
            upscaled = cache.get(window, start, horizon)
            if window.end == 1 or temporal_weight == 0:
                fused = upscaled[:end - start].clamp(0.0, 1.0)
            else:
                fused, state = _chunk_output(upscaled, flows.get(window, max(start - 1, 0), horizon - 1), start, end,
                                             settings, visibility_alpha, chunk, device, state)
            write(fused.float().cpu())
            if progress is not None:
                progress(end, total_frames or end)
            window.drop_before(end - 1)
            flows.drop_before(end - 1)
            cache.drop_before(end)
            start = end

