"""Training clips for TameVSRNet: high-resolution (HR) clip sources, random crops / flips / time reversal,
and the low-resolution (LR) flow the network consumes.

Sources give HR clips `[T,3,H,W]` in [0,1], with exact flow when the motion is synthetic:
- `ProceduralSource`: `render_clip` over the procedural textures (the default when no folder is given;
  needs nothing but torch);
- `FolderSource`: a folder of videos (read with models/io/video.py), of image-sequence subfolders
  (frames sorted by file name), and/or of still images, which are moved by `render_clip` under known
  motion (exact flow).
A `ClipPool` keeps a few rendered/decoded clips and replaces one per training step, so rendering and
decoding cost a fraction of a step; batches are random crops of pooled clips. The degradations are in
degradations.py.
"""
from dataclasses import dataclass, replace
from pathlib import Path

import torch
import torch.nn.functional as F

from ..flow.estimate import estimate_video_flow
from ..io.images import IMAGE_SUFFIXES, images_in, read_image
from ..io.video import probe, read_frames
from .degradations import degrade, lr_flow
from .scenes import render_clip

VIDEO_SUFFIXES = (".mp4", ".webm", ".mkv", ".mov", ".avi", ".m4v")


MOTION_RANGE = (0.5, 8.0)  # HR pixels per frame of synthetic camera motion


MAX_RENDER_ENLARGEMENT = 2.0  # synthetic clips are rendered at 1..2x the requested side (scale variety)


@dataclass
class HRClip:
    """frames `[T,3,H,W]` in [0,1]; flow_forward / flow_backward `[T-1,2,H,W]` (F_{t->t+1}, F_{t+1->t})
    in HR pixels when the motion is known exactly, else None."""
    frames: torch.Tensor
    flow_forward: torch.Tensor = None
    flow_backward: torch.Tensor = None

    @property
    def has_flow(self):
        return self.flow_forward is not None


@dataclass
class TrainingBatch:
    """hr `[B,T,3,sH,sW]`, lr `[B,T,3,H,W]`, flows_forward / flows_backward `[B,T-1,2,H,W]` on the LR frames;
    hr_flows_forward / hr_flows_backward `[B,T-1,2,sH,sW]`: the exact HR flows when every clip of the batch
    has them, else None."""
    hr: torch.Tensor
    lr: torch.Tensor
    flows_forward: torch.Tensor
    flows_backward: torch.Tensor
    hr_flows_forward: torch.Tensor = None
    hr_flows_backward: torch.Tensor = None


# ---------------------------------------------------------------- augmentation
def random_crop(clip, height, width, generator):
    """A random `height` x `width` window of every frame (and flow) of `clip`."""
    full_h, full_w = clip.frames.shape[-2:]
    if full_h < height or full_w < width:
        raise ValueError(f"Training clips must be at least {width}x{height} px (the HR crop), got "
                         f"{full_w}x{full_h}. Use a smaller crop or larger videos/images.")
    top = int(torch.randint(0, full_h - height + 1, (), generator=generator))
    left = int(torch.randint(0, full_w - width + 1, (), generator=generator))
    return _crop(clip, top, left, height, width)


def _crop(clip, top, left, height, width):
    window = (..., slice(top, top + height), slice(left, left + width))
    return replace(_map_flows(clip, lambda f: f[window]), frames=clip.frames[window])


def _map_flows(clip, function):
    return replace(clip, flow_forward=None if clip.flow_forward is None else function(clip.flow_forward),
                   flow_backward=None if clip.flow_backward is None else function(clip.flow_backward))


def flip_horizontal(clip):
    flipped = _map_flows(clip, lambda f: f.flip(-1) * f.new_tensor([-1.0, 1.0]).view(2, 1, 1))
    return replace(flipped, frames=clip.frames.flip(-1))


def flip_vertical(clip):
    flipped = _map_flows(clip, lambda f: f.flip(-2) * f.new_tensor([1.0, -1.0]).view(2, 1, 1))
    return replace(flipped, frames=clip.frames.flip(-2))


def transpose(clip):
    """Swap rows and columns (and the flow's x and y)."""
    swapped = _map_flows(clip, lambda f: f.flip(-3).transpose(-1, -2))
    return replace(swapped, frames=clip.frames.transpose(-1, -2))


def reverse_time(clip):
    """Play the clip backwards: the new forward flows are the old backward ones in reverse order."""
    reverse = lambda f: None if f is None else f.flip(0)
    return HRClip(clip.frames.flip(0), reverse(clip.flow_backward), reverse(clip.flow_forward))


def augment(clip, generator):
    """Random horizontal/vertical flips, transposition (square frames only) and time reversal."""
    coins = torch.rand(4, generator=generator) < 0.5
    if coins[0]:
        clip = flip_horizontal(clip)
    if coins[1]:
        clip = flip_vertical(clip)
    if coins[2] and clip.frames.shape[-1] == clip.frames.shape[-2]:
        clip = transpose(clip)
    if coins[3]:
        clip = reverse_time(clip)
    return clip


# ---------------------------------------------------------------- sources
def _uniform(generator, low, high):
    return low + (high - low) * float(torch.rand((), generator=generator))


def _render_size(generator, min_side):
    top = int(MAX_RENDER_ENLARGEMENT * min_side)
    return tuple(int(torch.randint(min_side, top + 1, (), generator=generator)) for _ in range(2))


def _synthetic_clip(generator, num_frames, min_side, image=None):
    """`render_clip` at a random size in [min_side, 2*min_side] with random motion -> HRClip with exact flow."""
    height, width = _render_size(generator, min_side)
    seed = int(torch.randint(0, 2 ** 31 - 1, (), generator=generator))
    num_layers = int(torch.randint(0, 4, (), generator=generator))
    clip = render_clip(num_frames, height, width, image=image, motion=_uniform(generator, *MOTION_RANGE),
                       num_layers=num_layers, seed=seed)
    return HRClip(clip.frames, clip.flow_forward, clip.flow_backward)


class ProceduralSource:
    """Procedural textures under synthetic motion (models/data/textures.py), with exact flow."""
    description = "procedural textures of models/data/textures.py under synthetic motion (exact flow)"

    def clip(self, generator, num_frames, min_side):
        """HRClip of `num_frames` frames, both sides in [min_side, 2*min_side]."""
        return _synthetic_clip(generator, num_frames, min_side)


class FolderSource:
    """Clips from a folder: its videos and image-sequence subfolders (real motion, no flow) and its still
    images (moved by `render_clip`, exact flow). Each clip comes from one item chosen uniformly.

    max_side: videos and sequences larger than this are downscaled (antialiased) so the longer side
    equals it (0 = native size).
    """

    def __init__(self, folder, num_frames, max_side=0):
        folder = Path(folder).expanduser()
        if not folder.is_dir():
            raise FileNotFoundError(f"Training data folder '{folder}' does not exist or is not a folder.")
        self.folder, self.max_side = folder, max_side
        self.videos = [p for p in sorted(folder.iterdir())
                       if p.is_file() and p.suffix.lower() in VIDEO_SUFFIXES and probe(p).frame_count >= num_frames]
        self.sequences = [(d, images_in(d)) for d in sorted(folder.iterdir()) if d.is_dir()]
        self.sequences = [(d, files) for d, files in self.sequences if len(files) >= num_frames]
        self.still_paths = images_in(folder)
        self.stills = [read_image(p) for p in self.still_paths]
        if not (self.videos or self.sequences or self.stills):
            raise ValueError(
                f"'{folder}' holds no usable training data: put videos ({', '.join(VIDEO_SUFFIXES)}) with at "
                f"least {num_frames} frames, subfolders of at least {num_frames} numbered images, or still "
                f"images ({', '.join(IMAGE_SUFFIXES)}) into it.")

    @property
    def description(self):
        parts = []
        if self.videos:
            parts.append(f"{len(self.videos)} videos")
        if self.sequences:
            parts.append(f"{len(self.sequences)} image sequences")
        if self.stills:
            names = ", ".join(p.name for p in self.still_paths)
            parts.append(f"{len(self.stills)} still images under synthetic motion (exact flow): {names}")
        return f"folder {self.folder}: " + "; ".join(parts)

    def clip(self, generator, num_frames, min_side):
        """HRClip of `num_frames` frames with both sides >= min_side (flow only for stills)."""
        count = len(self.videos) + len(self.sequences) + len(self.stills)
        index = int(torch.randint(0, count, (), generator=generator))
        if index < len(self.videos):
            return self._video_clip(self.videos[index], generator, num_frames)
        index -= len(self.videos)
        if index < len(self.sequences):
            return self._sequence_clip(self.sequences[index][1], generator, num_frames)
        return _synthetic_clip(generator, num_frames, min_side, self.stills[index - len(self.sequences)])

    def _video_clip(self, path, generator, num_frames):
        start = int(torch.randint(0, probe(path).frame_count - num_frames + 1, (), generator=generator))
        frames, _ = read_frames(path, start=start, count=num_frames, max_side=self.max_side)
        return HRClip(frames.permute(0, 3, 1, 2).contiguous())

    def _sequence_clip(self, files, generator, num_frames):
        start = int(torch.randint(0, len(files) - num_frames + 1, (), generator=generator))
        frames = [read_image(p) for p in files[start:start + num_frames]]
        if len({tuple(f.shape) for f in frames}) != 1:
            raise ValueError(f"The images of sequence '{files[0].parent}' differ in size; every frame of a "
                             f"sequence must have the same size.")
        frames = torch.stack(frames)
        if self.max_side and max(frames.shape[-2:]) > self.max_side:
            factor = self.max_side / max(frames.shape[-2:])
            size = tuple(max(1, round(side * factor)) for side in frames.shape[-2:])
            frames = F.interpolate(frames, size=size, mode="bilinear", align_corners=False, antialias=True)
        return HRClip(frames.clamp(0.0, 1.0))


# ---------------------------------------------------------------- LR pairs
def lr_clip_flows(hr_clip, lr_frames, scale, degradation, estimator=None):
    """LR flows (F_{t->t+1}, F_{t+1->t}) `[T-1,2,h,w]` of a clip: from its exact HR flow when known,
    else estimated on `lr_frames` `[T,3,h,w]` with `estimator` (a FlowEstimator)."""
    if hr_clip.has_flow:
        return (lr_flow(hr_clip.flow_forward, scale, degradation),
                lr_flow(hr_clip.flow_backward, scale, degradation))
    if estimator is None:
        raise ValueError("These training clips have no known motion (videos or image sequences): an optical "
                         "flow estimator is needed to align their frames.")
    flows = estimate_video_flow(estimator, lr_frames, "consecutive", bidirectional=True)
    return flows.forward.float(), flows.backward.float()


class ClipPool:
    """`size` HR clips from `source`, one replaced by a fresh one at each `refresh`.

    Clips have `num_frames` frames and sides >= `min_side` (the HR crop side).
    """

    def __init__(self, source, size, num_frames, min_side, generator, progress=None):
        if size < 1:
            raise ValueError(f"The clip pool needs at least 1 clip, got {size}.")
        self.source, self.num_frames, self.min_side = source, num_frames, min_side
        self.clips = []
        for number in range(size):
            self.clips.append(source.clip(generator, num_frames, min_side))
            if progress is not None:
                progress(number + 1, size)

    def refresh(self, generator):
        index = int(torch.randint(0, len(self.clips), (), generator=generator))
        self.clips[index] = self.source.clip(generator, self.num_frames, self.min_side)

    def batch(self, generator, batch_size, crop, scale, degradation, estimator=None):
        """`batch_size` random clips, each cropped to `crop` x `crop` LR px (HR `scale*crop`), augmented
        and degraded -> TrainingBatch."""
        samples, clips = [], []
        for _ in range(batch_size):
            clip = self.clips[int(torch.randint(0, len(self.clips), (), generator=generator))]
            clip = augment(random_crop(clip, scale * crop, scale * crop, generator), generator)
            lr = degrade(clip.frames, scale, degradation, generator)
            samples.append((clip.frames, lr, *lr_clip_flows(clip, lr, scale, degradation, estimator)))
            clips.append(clip)
        hr, lr, forward, backward = (torch.stack(parts) for parts in zip(*samples))
        if not all(clip.has_flow for clip in clips):
            return TrainingBatch(hr, lr, forward, backward)
        return TrainingBatch(hr, lr, forward, backward, torch.stack([c.flow_forward for c in clips]),
                             torch.stack([c.flow_backward for c in clips]))


def center_crop(clip, side, scale):
    """The central `side` x `side` window (side rounded down to a multiple of `scale`)."""
    side = side - side % scale
    height, width = clip.frames.shape[-2:]
    if min(height, width) < side:
        raise ValueError(f"Validation clips must be at least {side}x{side} px, got {width}x{height}.")
    return _crop(clip, (height - side) // 2, (width - side) // 2, side, side)
