"""`FlowSet`: the payload of the `TAME_FLOW` type.

A set of dense flow fields between frames of one video, in pixels, with the frame pairs they relate.
"""
from dataclasses import dataclass, field

import torch


@dataclass
class FlowSet:
    """Flow fields between frame pairs of one video.

    forward:  `[N,2,H,W]` float32 pixels, `forward[i]` = F_{a_i -> b_i} (channel 0 = x, 1 = y).
    backward: `[N,2,H,W]` or None, `backward[i]` = F_{b_i -> a_i}.
    pairs:    N tuples `(a_i, b_i)` of frame indices into the source video.
    num_frames: number of frames of the source video.
    """
    forward: torch.Tensor
    backward: torch.Tensor = None
    pairs: list = field(default_factory=list)
    num_frames: int = 0

    def __post_init__(self):
        if self.forward.ndim != 4 or self.forward.shape[1] != 2:
            raise ValueError(f"forward flow must be [N,2,H,W], got {tuple(self.forward.shape)}")
        if self.backward is not None and self.backward.shape != self.forward.shape:
            raise ValueError(
                f"backward flow {tuple(self.backward.shape)} differs from forward {tuple(self.forward.shape)}")
        if not self.pairs:
            self.pairs = [(i, i + 1) for i in range(self.forward.shape[0])]
        if len(self.pairs) != self.forward.shape[0]:
            raise ValueError(f"{len(self.pairs)} pairs for {self.forward.shape[0]} flow fields")
        if not self.num_frames:
            self.num_frames = 1 + max(max(a, b) for a, b in self.pairs)

    @property
    def size(self):
        """(H, W) of the frames the flow was computed for."""
        return tuple(self.forward.shape[-2:])

    @property
    def consecutive(self):
        """True when pair i relates frames (i, i+1) for every frame of the video."""
        return self.pairs == [(i, i + 1) for i in range(self.num_frames - 1)]
