"""Forward-backward flow consistency: round-trip error, soft visibility, binary occlusion masks.

A pixel `p` of frame a goes to `q = p + F_ab(p)` in frame b and should come back with `F_ba(q)`,
so `F_ab(p) + F_ba(q)` is ~0 where `p` is visible in both frames (specs/flow.md, seed 001 §3.2).
"""
import torch
import torch.nn.functional as F

from .checks import validate_flow
from .warp import backward_warp, flow_magnitude


def _round_trip(flow_ab, flow_ba):
    """`F_ba` read at `p + F_ab(p)` -> (`[N,2,H,W]`, valid `[N,1,H,W]` 0/1 target inside frame b)."""
    validate_flow(flow_ab, "flow_ab")
    validate_flow(flow_ba, "flow_ba")
    return backward_warp(flow_ba, flow_ab, padding="border")


def forward_backward_error(flow_ab, flow_ba):
    """Round-trip error `eps(p) = ||F_ab(p) + F_ba(p + F_ab(p))||_2` -> `[N,1,H,W]` in pixels.

    Args:
        flow_ab: `F_{a->b}` `[N,2,H,W]`; flow_ba: `F_{b->a}` `[N,2,H,W]` (pixels).
    Where `p + F_ab(p)` leaves frame b, F_ba is read at the nearest border pixel; use `soft_visibility`
    or `occlusion_mask` to treat those pixels as not visible. Differentiable in both flows
    (the gradient of the norm is taken as 0 where eps = 0).
    """
    flow_ba_at_b, _ = _round_trip(flow_ab, flow_ba)
    return flow_magnitude(flow_ab + flow_ba_at_b)


def soft_visibility(flow_ab, flow_ba, alpha=10.0):
    """Soft visibility `exp(-alpha * eps)` of frame-a pixels in frame b -> `[N,1,H,W]` in [0,1].

    `eps` is `forward_backward_error` in pixels; alpha = 10 is the seeds' choice (seed 001 §3.2).
    Pixels whose target `p + F_ab(p)` falls outside frame b get 0.
    """
    if alpha < 0:
        raise ValueError(f"alpha must be >= 0, got {alpha}.")
    flow_ba_at_b, valid = _round_trip(flow_ab, flow_ba)
    eps = flow_magnitude(flow_ab + flow_ba_at_b)
    return torch.exp(-alpha * eps) * valid


def occlusion_mask(flow_ab, flow_ba, a1=0.01, a2=0.5):
    """Binary occlusion mask of frame a w.r.t. frame b -> `[N,1,H,W]` float, 1 = occluded.

    A pixel is non-occluded when its target lies inside frame b and
    `|F_ab + F_ba~|^2 < a1 (|F_ab|^2 + |F_ba~|^2) + a2`, with `F_ba~ = warp(F_ba, F_ab)`
    (the usual forward-backward threshold test, specs/flow.md; a1 unitless, a2 in pixels^2).
    """
    if a1 < 0 or a2 < 0:
        raise ValueError(f"a1 and a2 must be >= 0, got a1={a1}, a2={a2}.")
    flow_ba_at_b, valid = _round_trip(flow_ab, flow_ba)
    mismatch = (flow_ab + flow_ba_at_b).square().sum(1, keepdim=True)
    tolerance = a1 * (flow_ab.square().sum(1, keepdim=True) + flow_ba_at_b.square().sum(1, keepdim=True)) + a2
    visible = (mismatch < tolerance) & (valid > 0)
    return (~visible).to(flow_ab.dtype)


def dilate_mask(mask, radius):
    """Grow the non-zero regions of `mask` `[N,C,H,W]` by `radius` pixels (square max filter).

    Returns a tensor of the same shape and dtype; radius 0 returns the mask unchanged.
    """
    if mask.dim() != 4:
        raise ValueError(f"mask must have shape [N,C,H,W], got {tuple(mask.shape)}.")
    if int(radius) != radius or radius < 0:
        raise ValueError(f"radius must be an integer >= 0, got {radius!r}.")
    if radius == 0:
        return mask
    values = mask if mask.is_floating_point() else mask.float()
    r = int(radius)  # the square max filter is separable: rows, then columns
    dilated = F.max_pool2d(values, (1, 2 * r + 1), stride=1, padding=(0, r))
    dilated = F.max_pool2d(dilated, (2 * r + 1, 1), stride=1, padding=(r, 0))
    return dilated.to(mask.dtype)
