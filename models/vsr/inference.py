"""Chunked, tiled and streamed inference of TameVSRNet on videos of any length >= 2 and any size.

Pipeline: optical flow between consecutive LR frames (both directions) -> per-frame features ->
backward propagation -> forward propagation (state carried from chunk to chunk) -> U-Net trunk on
NON-overlapping chunks of `chunk_frames` frames (whole frames; temporal modules see the chunk) ->
U-Net head on overlapping spatial tiles, blended -> + bicubic -> clamp to [0,1].

What holds (tests/test_vsr_net.py checks it):
- Tiling is exact: the head sees at most `model.head_radius` LR pixels around each pixel, the blend
  gives zero weight to the `model.tile_margin` (> head_radius) pixels at every inner tile edge, and the seeded noise is cut from whole-frame maps,
  so any `tile` gives the whole-frame result (up to float rounding).
- Propagation runs over the whole clip (`upscale_video`), so the U-Net input does not depend on the
  chunking. Only the temporal conv/attention see chunk borders: a network whose temporal modules are
  off or still zero (as initialised) gives the same result for any `chunk_frames`; a trained one
  differs at chunk borders only by what its temporal modules add (propagation carries the rest).
- Streaming (`upscale_video_stream`) holds `chunk_frames + lookahead_frames + 1` LR frames (plus the
  rest of the last chunk read) and one chunk of output. The forward branch is causal and carried
  exactly; the backward branch of a chunk starts `lookahead_frames` after the chunk's last frame with
  an empty state, so it equals the whole-clip result wherever that window reaches the end of the
  video, and otherwise misses only the influence of frames further ahead.
"""
from collections import OrderedDict

import torch

from ..flow.estimate import estimate_video_flow
from .arch import bicubic_upscale, pad_frames, padded_size

DEFAULT_CHUNK_FRAMES = 10
DEFAULT_LOOKAHEAD_FRAMES = 16
DEFAULT_TILE_OVERLAP = 16


def check_video(frames, name="frames"):
    """ValueError unless `frames` is a float tensor `[T,3,h,w]` of finite values with T >= 2."""
    if not isinstance(frames, torch.Tensor) or frames.dim() != 4:
        raise ValueError(f"{name} must be a tensor [T,3,h,w], got {tuple(getattr(frames, 'shape', ()))}.")
    if frames.shape[1] != 3:
        raise ValueError(f"{name} must be RGB (3 channels), got {frames.shape[1]} channels; convert "
                         f"grey or RGBA frames to RGB first.")
    if frames.shape[0] < 2:
        raise ValueError(f"Video super-resolution needs at least 2 frames (it aligns neighbouring frames "
                         f"with optical flow), got {frames.shape[0]}. Use an image upscaler for single images.")
    if not frames.is_floating_point() or not torch.isfinite(frames).all():
        raise ValueError(f"{name} must hold finite floating-point values in [0,1].")


def _check_settings(model, chunk_frames, tile, tile_overlap):
    if not isinstance(chunk_frames, int) or chunk_frames < 1:
        raise ValueError(f"chunk_frames must be a whole number >= 1, got {chunk_frames!r}.")
    if not isinstance(tile, int) or tile < 0:
        raise ValueError(f"tile must be 0 (whole frames) or a side in LR pixels, got {tile!r}.")
    needed = 2 * model.tile_margin + 1
    if tile_overlap < needed:
        raise ValueError(f"tile_overlap must be at least {needed} LR pixels for this network (its "
                         f"high-resolution layers see {model.tile_margin} px around each pixel), "
                         f"got {tile_overlap}.")
    if tile and tile < 2 * tile_overlap:
        raise ValueError(f"tile ({tile} px) must be at least twice tile_overlap ({tile_overlap} px); "
                         f"use a larger tile or 0 for whole frames.")


def _model_device(model):
    return next(model.parameters()).device


def _pair_flows(estimator, frames):
    """Consecutive flows of `frames` `[n,3,h,w]` (n >= 2) -> (F_{t->t+1}, F_{t+1->t}), each `[n-1,2,h,w]` CPU."""
    flows = estimate_video_flow(estimator, frames, "consecutive", bidirectional=True)
    return flows.forward.float(), flows.backward.float()


# ---------------------------------------------------------------- spatial tiles of the head
def _tile_starts(length, tile, overlap):
    """Start offsets of tiles of `tile` px covering `length` px with at least `overlap` px shared."""
    if not tile or tile >= length:
        return [0]
    stride = tile - overlap
    starts = list(range(0, length - tile, stride))
    return starts + [length - tile]


def _edge_ramp(size, scale, margin, overlap, ramp_start, ramp_end, device):
    """1-D blend weight `[size*scale]` of one tile: 0 for `margin` LR px at each inner edge, then a
    linear ramp over `overlap - 2*margin` LR px to 1. ramp_start/ramp_end: whether the tile's first/
    last edge is an inner edge (an image border needs no ramp)."""
    position = torch.arange(size * scale, device=device, dtype=torch.float32) + 0.5
    band = scale * (overlap - 2 * margin)
    weight = torch.ones_like(position)
    if ramp_start:
        weight = torch.minimum(weight, ((position - scale * margin) / band).clamp(0, 1))
    if ramp_end:
        weight = torch.minimum(weight, ((size * scale - scale * margin - position) / band).clamp(0, 1))
    return weight


def _crop_noise(noise, model, y0, y1, x0, x1):
    """Cut the region of LR rows y0:y1, columns x0:x1 out of every per-block noise map."""
    if noise is None:
        return None
    cropped = []
    for index, maps in enumerate(noise):
        factor = model.block_factor(index)
        if factor < 1:
            cropped.append(None)  # trunk blocks; the head never reads them
            continue
        f = int(factor)
        cropped.append(maps[..., y0 * f:y1 * f, x0 * f:x1 * f])
    return cropped


def run_head_tiled(model, trunk, noise, tile, overlap):
    """The head on overlapping tiles: trunk output `[n,C,H,W]` -> residual `[n,3,sH,sW]` (blended)."""
    height, width = trunk.shape[-2:]
    rows, cols = _tile_starts(height, tile, overlap), _tile_starts(width, tile, overlap)
    if len(rows) == 1 and len(cols) == 1:
        return model.unet_head(trunk, noise)
    s, margin = model.scale, model.tile_margin
    out = trunk.new_zeros(trunk.shape[0], 3, s * height, s * width)
    total = trunk.new_zeros(1, 1, s * height, s * width)
    for y0 in rows:
        y1 = min(y0 + tile, height)
        wy = _edge_ramp(y1 - y0, s, margin, overlap, y0 > 0, y1 < height, trunk.device)
        for x0 in cols:
            x1 = min(x0 + tile, width)
            wx = _edge_ramp(x1 - x0, s, margin, overlap, x0 > 0, x1 < width, trunk.device)
            weight = (wy[:, None] * wx[None, :])[None, None]
            residual = model.unet_head(trunk[..., y0:y1, x0:x1], _crop_noise(noise, model, y0, y1, x0, x1))
            out[..., s * y0:s * y1, s * x0:s * x1] += residual * weight
            total[..., s * y0:s * y1, s * x0:s * x1] += weight
    return out / total


# ---------------------------------------------------------------- one chunk
def _upscale_chunk(model, lr, backward_hidden, flows_backward, state, first_frame, seed, tile, overlap):
    """Forward propagation, U-Net and bicubic skip for one chunk.

    lr `[t,3,h,w]`, backward_hidden `[t,C,h,w]`, flows_backward `[t-1,2,h,w]` (F_{i+1->i} inside the
    chunk), state: forward-branch PropagationState linked to the chunk's first frame, or None.
    Returns (sr `[t,3,s*h,s*w]` CPU float32 in [0,1], forward state at the chunk's last frame).
    """
    device = _model_device(model)
    lr = lr.to(device)[None]
    t, h, w = lr.shape[1], lr.shape[-2], lr.shape[-1]
    features = model.extract_features(lr)
    if model.propagation is not None:
        forward_hidden, state = model.propagation.forward_pass(features, flows_backward.to(device)[None], state)
        features = model.propagation.combine(features, backward_hidden.to(device)[None], forward_hidden)
    size = padded_size(h, w)
    padded = pad_frames(features[0], size)[None]
    noise = model.noise_maps(1, range(first_frame, first_frame + t), size, seed, device)
    trunk = model.unet_trunk(padded, noise)[0]
    residual = run_head_tiled(model, trunk, noise, tile, overlap)[..., :model.scale * h, :model.scale * w]
    sr = (bicubic_upscale(lr[0], model.scale) + residual).clamp_(0, 1)
    return sr.float().cpu(), state


def _backward_hidden(model, lr, flows_forward, state=None):
    """Backward branch over `lr` `[n,3,h,w]` with flows_forward `[n-1,2,h,w]` -> (`[n,C,h,w]` CPU, state)."""
    device = _model_device(model)
    features = model.extract_features(lr.to(device)[None])
    hidden, state = model.propagation.backward_pass(features, flows_forward.to(device)[None], state)
    return hidden[0].cpu(), state


# ---------------------------------------------------------------- whole clip in memory
def upscale_video(model, frames, estimator, chunk_frames=DEFAULT_CHUNK_FRAMES, tile=0,
                  tile_overlap=DEFAULT_TILE_OVERLAP, progress=None, seed=0):
    """Super-resolve a whole clip held in memory.

    model: TameVSRNet (runs on the device of its parameters). frames: `[T,3,h,w]` in [0,1], T >= 2,
    any h, w (padded internally). estimator: a FlowEstimator (models/flow/estimate.py).
    chunk_frames: frames per U-Net chunk (non-overlapping); tile: side of the head's spatial tiles in
    LR pixels (0 = whole frames); tile_overlap: LR pixels shared by neighbouring tiles.
    progress: `progress(done, total)` after every chunk of each stage (flow, backward propagation,
    upscaling: total = 3 * chunks); it may raise to cancel. seed: noise seed (networks with noise).
    Returns `[T,3,scale*h,scale*w]` float32 CPU in [0,1].
    """
    check_video(frames)
    _check_settings(model, chunk_frames, tile, tile_overlap)
    num_frames = frames.shape[0]
    chunks = [(start, min(start + chunk_frames, num_frames)) for start in range(0, num_frames, chunk_frames)]
    total, done = 3 * len(chunks), 0

    def report():
        nonlocal done
        done += 1
        if progress is not None:
            progress(done, total)

    with torch.no_grad():
        flows_forward, flows_backward = [], []
        for start, end in chunks:
            if end - start + (end < num_frames) >= 2:  # pairs start..end-1 (incl. the one to the next chunk)
                forward, backward = _pair_flows(estimator, frames[start:end + 1])
                flows_forward.append(forward)
                flows_backward.append(backward)
            report()
        flows_forward, flows_backward = torch.cat(flows_forward), torch.cat(flows_backward)

        backward_hidden = [None] * len(chunks)
        state = None
        for index in reversed(range(len(chunks))):
            start, end = chunks[index]
            if model.propagation is not None:
                if state is not None:
                    state = state.linked(flows_forward[end - 1:end].to(_model_device(model)))
                backward_hidden[index], state = _backward_hidden(
                    model, frames[start:end], flows_forward[start:end - 1], state)
            report()

        output = torch.empty(num_frames, 3, model.scale * frames.shape[-2], model.scale * frames.shape[-1])
        state = None
        for index, (start, end) in enumerate(chunks):
            if state is not None:
                state = state.linked(flows_backward[start - 1:start].to(_model_device(model)))
            output[start:end], state = _upscale_chunk(
                model, frames[start:end], backward_hidden[index], flows_backward[start:end - 1], state,
                start, seed, tile, tile_overlap)
            backward_hidden[index] = None
            report()
    return output


# ---------------------------------------------------------------- streams
class _FrameWindow:
    """The frames of a stream from index `first` on, pulled from an iterator of `[t,3,h,w]` chunks."""

    def __init__(self, chunks):
        self._chunks = iter(chunks)
        self.first = 0
        self.frames = []
        self.exhausted = False

    @property
    def end(self):
        return self.first + len(self.frames)

    def fill_to(self, end):
        """Pull chunks until frame `end - 1` is held or the stream ends."""
        while not self.exhausted and self.end < end:
            chunk = next(self._chunks, None)
            if chunk is None:
                self.exhausted = True
                break
            self._check(chunk)
            self.frames.extend(chunk.float().cpu().unbind(0))

    def _check(self, chunk):
        if not isinstance(chunk, torch.Tensor) or chunk.dim() != 4 or chunk.shape[1] != 3:
            raise ValueError(f"Each chunk of the stream must be a tensor [t,3,h,w] (RGB), got "
                             f"{tuple(getattr(chunk, 'shape', ()))} at frame {self.end}.")
        if self.frames and chunk.shape[-2:] != self.frames[0].shape[-2:]:
            raise ValueError(f"Frame size changed from {tuple(self.frames[0].shape[-2:])} to "
                             f"{tuple(chunk.shape[-2:])} at frame {self.end}; every frame of a video "
                             f"must have the same size.")
        if not chunk.is_floating_point() or not torch.isfinite(chunk).all():
            raise ValueError(f"The stream holds non-finite or non-float values at frame {self.end}.")

    def get(self, start, end):
        return torch.stack(self.frames[start - self.first:end - self.first])

    def drop_before(self, index):
        del self.frames[:max(0, index - self.first)]
        self.first = max(self.first, index)


class _FlowCache:
    """Flows of consecutive pairs (t, t+1) of a stream, estimated once, dropped when no longer needed."""

    def __init__(self, estimator, pair_flows=None):
        """pair_flows(estimator, frames `[n,3,h,w]`) -> (F_{t->t+1}, F_{t+1->t}) `[n-1,2,h,w]`; default: at
        the frames' size (`_pair_flows`)."""
        self.estimator = estimator
        self.pair_flows = pair_flows or _pair_flows
        self.pairs = OrderedDict()  # t -> (F_{t->t+1}, F_{t+1->t})

    def get(self, window, first_pair, end_pair):
        """(forward, backward) `[end_pair-first_pair,2,h,w]` for pairs first_pair..end_pair-1."""
        missing = [t for t in range(first_pair, end_pair) if t not in self.pairs]
        if missing:
            forward, backward = self.pair_flows(self.estimator, window.get(missing[0], missing[-1] + 2))
            for offset, t in enumerate(range(missing[0], missing[-1] + 1)):
                self.pairs.setdefault(t, (forward[offset], backward[offset]))
        forward, backward = zip(*(self.pairs[t] for t in range(first_pair, end_pair)))
        return torch.stack(forward), torch.stack(backward)

    def drop_before(self, pair):
        for t in [t for t in self.pairs if t < pair]:
            del self.pairs[t]


def upscale_video_stream(model, read_chunks, write, estimator, chunk_frames=DEFAULT_CHUNK_FRAMES,
                         lookahead_frames=DEFAULT_LOOKAHEAD_FRAMES, tile=0,
                         tile_overlap=DEFAULT_TILE_OVERLAP, progress=None, seed=0, total_frames=None):
    """Super-resolve a video that arrives in chunks, holding at most `chunk_frames + lookahead_frames + 1`
    LR frames (plus the rest of the last chunk read) and one chunk of output.

    read_chunks: iterable of `[t,3,h,w]` float frames in [0,1] (any t; the network's chunking is
    `chunk_frames`). write: called with each upscaled chunk `[t,3,scale*h,scale*w]` float32 CPU in
    [0,1], in order. lookahead_frames: how far past a chunk the backward propagation starts (see the
    module docstring). progress: `progress(frames_done, total)` after every chunk (total =
    `total_frames` when given, else the frames done so far); it may raise to cancel.
    Returns the number of frames written. Other arguments as in `upscale_video`.
    """
    _check_settings(model, chunk_frames, tile, tile_overlap)
    if not isinstance(lookahead_frames, int) or lookahead_frames < 0:
        raise ValueError(f"lookahead_frames must be a whole number >= 0, got {lookahead_frames!r}.")
    window, flows = _FrameWindow(read_chunks), _FlowCache(estimator)
    device = _model_device(model)
    start, state = 0, None
    with torch.no_grad():
        window.fill_to(chunk_frames + lookahead_frames)
        if window.end < 2:
            raise ValueError(f"Video super-resolution needs at least 2 frames (it aligns neighbouring "
                             f"frames with optical flow), the stream has {window.end}. Use an image "
                             f"upscaler for single images.")
        while True:
            window.fill_to(start + chunk_frames + lookahead_frames)
            if start >= window.end:
                break
            end = min(start + chunk_frames, window.end)
            horizon = min(end + lookahead_frames, window.end)
            flows_forward, flows_backward = flows.get(window, max(start - 1, 0), horizon - 1)
            offset = 1 if start > 0 else 0  # pair (start-1, start) links this chunk to the previous one
            backward_hidden = None
            if model.propagation is not None:
                backward_hidden = _backward_hidden(model, window.get(start, horizon),
                                                   flows_forward[offset:])[0][:end - start]
            if state is not None:
                state = state.linked(flows_backward[:1].to(device))
            sr, state = _upscale_chunk(model, window.get(start, end), backward_hidden,
                                       flows_backward[offset:offset + end - start - 1], state, start, seed,
                                       tile, tile_overlap)
            write(sr)
            if progress is not None:
                progress(end, total_frames or end)
            window.drop_before(end - 1)
            flows.drop_before(end - 1)
            start = end
    return start
