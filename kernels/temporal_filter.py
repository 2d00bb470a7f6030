"""Motion-compensated, occlusion-aware temporal averaging (the pieces of a flow-guided deflicker filter).

A neighbour frame `t+d` is warped onto the centre frame `t` with the flow `F_{t->t+d}`; each warped pixel
is weighted by how much it can be trusted: the temporal distance `d`, the forward-backward visibility of
the pixel (occluded or out-of-frame pixels get 0) and the colour difference to the centre pixel (a wrong
flow vector lands on another surface, whose colour differs: ghosts are refused). The output is the
weighted mean of the centre and the warped neighbours.
"""
import math

import torch

from .consistency import soft_visibility
from .filters import gaussian_blur
from .warp import backward_warp, compose_flow

COLOUR_BLUR_SIGMA = 1.0  # px; the colour difference is smoothed so single noisy pixels do not decide


def chain_flows(flows):
    """Compose consecutive flows `[F_{0->1}, F_{1->2}, ..., F_{k-1->k}]` (each `[N,2,H,W]`) into
    `F_{0->k}` `[N,2,H,W]` (pixels, on frame 0's grid). Positions leaving an intermediate frame read its
    border vector (the fw-bw check of the chained pair then rejects them)."""
    if not flows:
        raise ValueError("chain_flows needs at least one flow.")
    chained = flows[0]
    for flow in flows[1:]:
        chained, _ = compose_flow(chained, flow)
    return chained


def temporal_weight(offset, sigma):
    """Gaussian weight `exp(-offset^2 / (2 sigma^2))` of a neighbour `offset` frames away (sigma > 0)."""
    if sigma <= 0:
        raise ValueError(f"temporal sigma must be > 0 frames, got {sigma}.")
    return math.exp(-0.5 * (offset / sigma) ** 2)


def colour_weight(centre, warped, tolerance):
    """`exp(-0.5 (d / tolerance)^2)`, d = channel-mean |warped - centre| blurred (sigma 1 px).

    centre, warped: `[N,C,H,W]` in [0,1]; tolerance > 0 in intensity units. Returns `[N,1,H,W]` in [0,1].
    """
    if tolerance <= 0:
        raise ValueError(f"colour tolerance must be > 0, got {tolerance}.")
    difference = (warped - centre).abs().mean(1, keepdim=True)
    difference = gaussian_blur(difference, COLOUR_BLUR_SIGMA)
    return torch.exp(-0.5 * (difference / tolerance).square())


def neighbour_contribution(centre, neighbour, flow_to_neighbour, flow_from_neighbour, offset, temporal_sigma,
                           tolerance, alpha):
    """One neighbour warped onto the centre and its weight.

    centre, neighbour: `[N,C,H,W]`; flow_to_neighbour `F_{t->t+d}`, flow_from_neighbour `F_{t+d->t}`:
    `[N,2,H,W]` pixels. alpha: sharpness of the visibility `exp(-alpha eps)` (eps in px).
    Returns (warped `[N,C,H,W]`, weight `[N,1,H,W]` in [0,1]).
    """
    warped, _ = backward_warp(neighbour, flow_to_neighbour, padding="border")
    visibility = soft_visibility(flow_to_neighbour, flow_from_neighbour, alpha)
    weight = temporal_weight(offset, temporal_sigma) * visibility * colour_weight(centre, warped, tolerance)
    return warped, weight


def weighted_temporal_mean(centre, warped, weights, strength=1.0):
    """`lerp(centre, (centre + sum_k w_k warped_k) / (1 + sum_k w_k), strength)`.

    centre `[N,C,H,W]`; warped: list of `[N,C,H,W]`; weights: list of `[N,1,H,W]`; strength in [0,1].
    """
    if not 0.0 <= strength <= 1.0:
        raise ValueError(f"strength must be in [0, 1] (0 = unfiltered), got {strength}.")
    total = centre.clone()
    norm = torch.ones_like(centre[:, :1])
    for image, weight in zip(warped, weights):
        total = total + weight * image
        norm = norm + weight
    return torch.lerp(centre, total / norm, strength)
