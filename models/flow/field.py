"""`FlowSet`: the payload of the `TAME_FLOW` type, and what can be done with it without a node.

A set of dense fields between frames, in pixels, with the frame pairs they relate. The forward field of
pair (a, b) lives on the grid of frame a and points into frame b; frames b may have another size than
frames a (`source_size`), which makes the same record carry a retargeting warp (output pixel -> source
position) as well as the optical flow of one video. A retargeting warp may also be layered
(`WarpLayers`): `warp` then renders both layers and composites them, as the retarget node did.
"""
from dataclasses import dataclass, field

import torch

import torch.nn.functional as F

from ...kernels.fill import push_pull_fill
from ...kernels.warp import inside_frame, pixel_grid, remap, scaled_coordinates

FORWARD, BACKWARD = "forward", "backward"


@dataclass
class WarpLayers:
    """The two layers of a layered forward warp (a retarget), beside the blended field in `FlowSet.forward`.

    salient, background: `[N,2,H,W]` offsets on the target grid (like `forward`) of the two fields;
    alpha: `[N,1,H,W]` weight of the salient layer in the composite, on the target grid;
    known: `[N,1,Hb,Wb]` on the source grid, 0 where the background layer is filled (the salient
    layer removed), 1 where it is the source itself.
    """
    salient: torch.Tensor
    background: torch.Tensor
    alpha: torch.Tensor
    known: torch.Tensor


@dataclass
class FlowSet:
    """Flow fields between frame pairs.

    forward:  `[N,2,H,W]` float32 pixels, `forward[i]` = F_{a_i -> b_i} on frame a's grid (channel 0 = x).
    backward: `[N,2,Hb,Wb]` or None, `backward[i]` = F_{b_i -> a_i} on frame b's grid.
    pairs:    N tuples `(a_i, b_i)` of frame indices.
    num_frames: number of frames the indices refer to.
    source_size: (Hb, Wb) of frames b; None = the size of frames a (the flow of one video).
    """
    forward: torch.Tensor
    backward: torch.Tensor = None
    pairs: list = field(default_factory=list)
    num_frames: int = 0
    source_size: tuple = None
    layers: WarpLayers = None

    def __post_init__(self):
        if self.forward.ndim != 4 or self.forward.shape[1] != 2:
            raise ValueError(f"forward flow must be [N,2,H,W], got {tuple(self.forward.shape)}")
        self.source_size = tuple(self.forward.shape[-2:]) if self.source_size is None else \
            (int(self.source_size[0]), int(self.source_size[1]))
        expected = (*self.forward.shape[:2], *self.source_size)
        if self.backward is not None and tuple(self.backward.shape) != expected:
            raise ValueError(f"backward flow {tuple(self.backward.shape)} must be {expected}: one field per pair "
                             f"on the grid of frames b (forward is {tuple(self.forward.shape)}).")
        if not self.pairs:
            self.pairs = [(i, i + 1) for i in range(self.forward.shape[0])]
        if len(self.pairs) != self.forward.shape[0]:
            raise ValueError(f"{len(self.pairs)} pairs for {self.forward.shape[0]} flow fields")
        if not self.num_frames:
            self.num_frames = 1 + max(max(a, b) for a, b in self.pairs)

    @property
    def size(self):
        """(H, W) of frames a, the grid of the forward flow."""
        return tuple(self.forward.shape[-2:])

    @property
    def consecutive(self):
        """True when pair i relates frames (i, i+1) for every frame of one video."""
        return self.size == self.source_size and self.pairs == [(i, i + 1) for i in range(self.num_frames - 1)]

    def field(self, direction=FORWARD):
        """(field `[N,2,h,w]`, its grid size, size of the frames it samples, index per pair of those frames).

        forward: pulls frame b onto frame a's grid; backward: pulls frame a onto frame b's grid.
        """
        if direction == FORWARD:
            return self.forward, self.size, self.source_size, [b for _, b in self.pairs]
        if direction != BACKWARD:
            raise ValueError(f"direction must be {FORWARD!r} or {BACKWARD!r}, got {direction!r}.")
        if self.backward is None:
            raise ValueError("Warping a onto b needs the backward flow: enable 'bidirectional' in Estimate Flow.")
        return self.backward, self.source_size, self.size, [a for a, _ in self.pairs]

    def warp(self, batch, direction=FORWARD, padding="border", mode="bilinear"):
        """Warp frames, masks or latents `[T,C,h,w]` (or one `[1,C,h,w]`) along every pair -> `[N,C,h',w']`.

        The batch may be a resampled version of the frames (latents are 1/8 of the frames): the field is
        evaluated on the grid it points from, resampled by the same factors. Also returns valid
        `[N,1,h',w']`, 1 where the sample fell inside the frame. A layered forward warp composites its
        two layers (the background layer filled where the salient layer was removed).
        """
        flow, grid_size, sampled_size, sources = self.field(direction)
        batch = batch.expand(len(sources), *batch.shape[1:]) if batch.shape[0] == 1 else batch[sources]
        if self.layers is None or direction != FORWARD:
            return remap(batch, self._coordinates(flow, batch, grid_size, sampled_size), padding, mode)
        layers = self.layers
        salient = remap(batch, self._coordinates(layers.salient, batch, grid_size, sampled_size), padding, mode)[0]
        known = F.interpolate(layers.known.to(batch.dtype), size=batch.shape[-2:], mode="bilinear", align_corners=False)
        coords = self._coordinates(layers.background, batch, grid_size, sampled_size)
        background = remap(push_pull_fill(batch, known), coords, padding, mode)[0]
        alpha = F.interpolate(layers.alpha.to(batch.dtype), size=salient.shape[-2:], mode="bilinear",
                              align_corners=False)
        return alpha * salient + (1 - alpha) * background, torch.ones_like(alpha)

    @staticmethod
    def _coordinates(flow, batch, grid_size, sampled_size):
        scale = (batch.shape[-1] / sampled_size[1], batch.shape[-2] / sampled_size[0])
        out_size = (max(1, round(grid_size[0] * scale[1])), max(1, round(grid_size[1] * scale[0])))
        return scaled_coordinates(flow.to(batch.dtype), out_size, scale)

    def valid(self, direction=FORWARD):
        """`[N,1,h,w]` 0/1 on the field's grid: 1 where the field points inside the frame it samples."""
        flow, grid_size, sampled_size, _ = self.field(direction)
        coords = pixel_grid(*grid_size, flow.device, flow.dtype) + flow
        return inside_frame(coords, *sampled_size).to(flow.dtype)


def to_optical_flow(flows):
    """A FlowSet of consecutive pairs -> OPTICAL_FLOW `[N,H,W,2]` (forward fields, pixels)."""
    if not flows.consecutive:
        raise ValueError("OPTICAL_FLOW holds consecutive pairs of one video only; estimate with pairs = consecutive.")
    return flows.forward.permute(0, 2, 3, 1).contiguous()


def from_optical_flow(optical_flow):
    """OPTICAL_FLOW `[N,H,W,2]` (forward flows of consecutive pairs, pixels) -> FlowSet on the CPU."""
    if not isinstance(optical_flow, torch.Tensor) or optical_flow.ndim != 4 or optical_flow.shape[-1] != 2:
        raise ValueError(f"OPTICAL_FLOW must be a tensor [N,H,W,2], got "
                         f"{getattr(optical_flow, 'shape', type(optical_flow).__name__)}.")
    forward = optical_flow.float().permute(0, 3, 1, 2).contiguous()
    if not torch.isfinite(forward).all():
        raise ValueError("OPTICAL_FLOW contains NaN or Inf values.")
    return FlowSet(forward.cpu())
