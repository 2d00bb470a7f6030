"""Windowed blind consistency: blind mode (blind.py) over overlapping windows, for long clips and moving cameras.

Single-anchor blind mode pairs every frame with one anchor; over a long clip the camera moves far from
the anchor's view, the flow between them fails or leaves the frame, and the photometric term vanishes.
Here the clip is cut into windows of `window` frames that share `overlap` frames with the previous one:

- each window has its own anchor (its middle frame), so every pair is at most `window / 2` frames apart;
  the anchor is in every pair, so its fidelity term is weighted 1 / (frames - 1): over an epoch every
  frame counts once and the window's look is the mean of its frames', not the anchor's (with full
  weight each window took its anchor's look, and the look jumped from window to window: on the
  120-frame pan of bench/longvideo this cost 4 dB of PSNR to the clean edit);
- one BlindGenerator is carried from window to window (warm start: later windows need fewer epochs);
- the overlap frames of a window were already output by the previous window: their fidelity target is
  that output (not the flickering processed frame), so the new window continues the old one instead of
  re-deciding their look, and the output of the overlap is a cross-fade (linear ramp) from the previous
  window's frames to the new ones, so no chunk border shows a step. The two networks still differ a
  little on the overlap; the cross-fade spreads that difference over its frames, so a longer overlap
  leaves a smaller step per frame (bench/longvideo: on a 120-frame pan, windows of 24, the border pairs'
  E_warp is 1.4x the other pairs' with an overlap of 8 and 1.0x with 12, the default).

Frames are written as soon as no later window touches them: memory holds one window (plus the rest of
the last chunk read) whatever the clip's length. `windowed_blind_stream` works on chunk iterators (video
files); `windowed_blind_consistency` on tensors, through the same code.
"""
from dataclasses import dataclass, field

import torch

from ..vsr.inference import _FrameWindow
from .blind import BlindSettings, anchor_flows, check_videos, pair_step
from .generator import BlindGenerator, decode_frames
from .losses import CharbonnierSSIMDistance
from .optimize import epoch_schedule, report_progress

DEFAULT_WINDOW = 24
DEFAULT_OVERLAP = 12


@dataclass
class WindowedSettings:
    """blind: network and loss settings (BlindSettings; `epochs` = epochs of the first window, `anchor`
    and `mean_look` are ignored: each window uses its middle frame and the mean look); window: frames
    per window (>= 2); overlap: frames shared with the previous window (0 <= overlap < window);
    later_epochs: epochs of every later (warm-started) window, None = blind.epochs."""
    blind: BlindSettings = field(default_factory=BlindSettings)
    window: int = DEFAULT_WINDOW
    overlap: int = DEFAULT_OVERLAP
    later_epochs: int | None = None

    def check(self):
        for name in ("window", "overlap"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise ValueError(f"{name} must be a whole number, got {value!r}.")
        if self.window < 2:
            raise ValueError(f"window must be at least 2 frames (a pair), got {self.window}.")
        if not 0 <= self.overlap < self.window:
            raise ValueError(f"overlap must be between 0 and window - 1 = {self.window - 1} frames, got "
                             f"{self.overlap}; about half the window is a good choice.")
        for name, value in (("epochs", self.blind.epochs), ("later_epochs", self.later_epochs)):
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
                raise ValueError(f"{name} must be a whole number >= 1, got {value!r}.")
        if self.blind.lr <= 0:
            raise ValueError(f"lr must be > 0, got {self.blind.lr}.")


@dataclass
class WindowedResult:
    """frames `[T,3,H,W]` CPU float32 (in-memory call only; streams write instead); windows: (start,
    end, anchor) of every window; losses: per iteration; distance: name of D."""
    frames: torch.Tensor | None
    windows: list = field(default_factory=list)
    losses: list = field(default_factory=list)
    distance: str = ""


def crossfade(previous, current):
    """Blend the overlap: frame i of n gets `(1 - r_i) previous + r_i current`, `r_i = (i + 1) / (n + 1)`.

    previous, current: `[n,3,H,W]`. Returns `[n,3,H,W]`.
    """
    count = previous.shape[0]
    ramp = torch.arange(1, count + 1, dtype=current.dtype, device=current.device) / (count + 1)
    return torch.lerp(previous.to(current), current, ramp.view(-1, 1, 1, 1))


class _PairedStreams:
    """Original and processed frames from two chunk iterators, pulled in step; checks size and length."""

    def __init__(self, read_original, read_processed):
        self.original, self.processed = _FrameWindow(read_original), _FrameWindow(read_processed)

    @property
    def end(self):
        return min(self.original.end, self.processed.end)

    def fill_to(self, end):
        """Hold frames up to `end - 1` (or the end of the streams); error if the streams disagree."""
        self.original.fill_to(end)
        self.processed.fill_to(end)
        first_o, first_p = self.original.frames[:1], self.processed.frames[:1]
        if first_o and first_p and first_o[0].shape != first_p[0].shape:
            raise ValueError(f"original frames are {tuple(first_o[0].shape[-2:])} (H, W) and processed frames "
                             f"{tuple(first_p[0].shape[-2:])}; resize the processed video to the original size.")
        if self.original.end != self.processed.end and min(self.original.end, self.processed.end) < end:
            short, long_ = ("original", "processed") if self.original.end < self.processed.end else \
                ("processed", "original")
            raise ValueError(f"the {short} video ends after {min(self.original.end, self.processed.end)} frames "
                             f"but the {long_} video has more; both must have the same frame count (trim the "
                             f"longer one, e.g. with max_frames).")

    def exhausted_at(self, end):
        return self.end == end and self.original.exhausted and self.processed.exhausted

    def get(self, start, end):
        return self.original.get(start, end), self.processed.get(start, end)

    def drop_before(self, index):
        self.original.drop_before(index)
        self.processed.drop_before(index)


def _fit_window(generator, source, target, estimator, distance, settings, epochs, seed, step):
    """Fit `generator` on one window: pairs (middle frame, i), `epochs` passes.

    source, target: `[n,3,H,W]` on the generator's device (target: fixed outputs on the overlap, processed
    frames after it). step(loss): called after every iteration (progress/cancel). Returns the anchor.
    """
    anchor = (source.shape[0] - 1) // 2
    flow_to_other, flow_to_anchor = anchor_flows(estimator, source, anchor)
    optimiser = torch.optim.Adam(generator.trainable_parameters(), lr=settings.blind.lr)
    rng = torch.Generator().manual_seed(int(seed))
    for other in epoch_schedule(source.shape[0], anchor, epochs, rng):
        step(pair_step(generator, optimiser, distance, source, target, anchor, other,
                       (flow_to_other[other:other + 1], flow_to_anchor[other:other + 1]),
                       settings.blind.lambda_photo, 1.0 / (source.shape[0] - 1)))
    return anchor


def _window_outputs(generator, source, tail, final, overlap):
    """Decode a window `[n,3,H,W]` -> (frames to write, new tail).

    tail: the previous window's outputs of this window's first frames (`[m,3,H,W]`, m <= overlap) or None;
    they are cross-faded into the new outputs. Unless `final`, the last `overlap` outputs are held back as
    the next tail.
    """
    outputs = decode_frames(generator, source)
    next_tail = None if final or overlap == 0 else outputs[-overlap:].clone()
    if tail is not None:
        outputs[:tail.shape[0]] = crossfade(tail, outputs[:tail.shape[0]])
    return (outputs if next_tail is None else outputs[:-overlap]), next_tail


def windowed_blind_stream(read_original, read_processed, write, estimator, settings=None, distance=None,
                          progress=None, device="cpu", total_frames=None):
    """Windowed blind consistency on two streams of frames, writing the result as it goes.

    Args:
        read_original, read_processed: iterables of `[t,3,H,W]` float chunks in [0,1] (any t), the same
            frames in the same order (at least 2 frames).
        write: called with each finished chunk of output `[t,3,H,W]` CPU float32 in [0,1], in order.
        estimator: flow estimator for the original frames; settings: WindowedSettings; distance: D
            (default weight-free); device: where the network is fitted.
        progress: `progress(frames_written, total)` after every iteration (total = `total_frames`, else
            the frames read so far); may raise to cancel.
    Returns:
        WindowedResult with frames None (everything went to `write`).
    """
    settings = settings or WindowedSettings()
    settings.check()
    distance = distance or CharbonnierSSIMDistance()
    streams, result = _PairedStreams(read_original, read_processed), WindowedResult(None, distance=distance.name)
    window, overlap = settings.window, settings.overlap
    generator, tail, start, written = None, None, 0, [0]

    def step(loss):
        result.losses.append(loss)
        report_progress(progress, written[0], total_frames or streams.end)

    with torch.inference_mode(False), torch.enable_grad():
        while True:
            streams.fill_to(start + window + 1)
            end = min(start + window, streams.end)
            if end - start < 2:
                raise ValueError(f"temporal consistency needs at least 2 frames, the video has {streams.end}.")
            source, target = (frames.to(device, torch.float32) for frames in streams.get(start, end))
            if tail is not None:
                target[:tail.shape[0]] = tail.to(target)
            if generator is None:
                generator = BlindGenerator(settings.blind.width, settings.blind.levels, settings.blind.seed, device)
            epochs = settings.blind.epochs if not result.windows else (settings.later_epochs or settings.blind.epochs)
            anchor = _fit_window(generator, source, target, estimator, distance, settings, epochs,
                                 settings.blind.seed + len(result.windows), step)
            result.windows.append((start, end, start + anchor))
            final = streams.exhausted_at(end)
            finished, tail = _window_outputs(generator, source, tail, final, overlap)
            write(finished)
            written[0] += finished.shape[0]
            report_progress(progress, written[0], total_frames or streams.end)
            if final:
                return result
            start = end - overlap
            streams.drop_before(start)


def _tensor_chunks(frames, size):
    return (frames[first:first + size] for first in range(0, frames.shape[0], size))


def windowed_blind_consistency(original, processed, estimator, settings=None, distance=None, progress=None,
                               device=None):
    """Windowed blind consistency of videos held in memory (see the module doc).

    original, processed: `[T,3,H,W]` in [0,1], same shape, T >= 2. Other arguments as in
    `windowed_blind_stream` (device default: the frames' device). Returns WindowedResult with frames
    `[T,3,H,W]` CPU float32 (deterministic for a seed on CPU; equal to the streamed result).
    """
    check_videos(original, processed)
    settings = settings or WindowedSettings()
    settings.check()
    outputs = []
    chunk = settings.window
    result = windowed_blind_stream(_tensor_chunks(original, chunk), _tensor_chunks(processed, chunk),
                                   outputs.append, estimator, settings, distance, progress,
                                   device if device is not None else original.device, original.shape[0])
    result.frames = torch.cat(outputs)
    return result
