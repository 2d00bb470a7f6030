"""Flow colour coding with the Middlebury (Baker et al. 2011) colour wheel.

Direction -> hue (right = red, down = yellow, left = cyan/blue, up = violet), magnitude -> saturation:
zero flow is white, magnitude 1 (after normalisation) is the full wheel colour, beyond 1 the colour is
dimmed to 75 %.
"""
import math

import torch

from .checks import validate_flow
from .warp import flow_magnitude

# Colour-wheel anchors (0..255) and the number of steps from each anchor to the next:
# red->yellow 15, yellow->green 6, green->cyan 4, cyan->blue 11, blue->magenta 13, magenta->red 6.
_WHEEL_ANCHORS = ((255, 0, 0), (255, 255, 0), (0, 255, 0), (0, 255, 255), (0, 0, 255), (255, 0, 255))
_WHEEL_SEGMENTS = (15, 6, 4, 11, 13, 6)
_OVERFLOW_DIMMING = 0.75
_ROBUST_QUANTILE = 0.99


def color_wheel(device=None, dtype=torch.float32):
    """The 55 colours of the Middlebury wheel -> `[55,3]` RGB in [0,1], starting at red."""
    rows = []
    for index, steps in enumerate(_WHEEL_SEGMENTS):
        start = torch.tensor(_WHEEL_ANCHORS[index], dtype=torch.float64)
        end = torch.tensor(_WHEEL_ANCHORS[(index + 1) % len(_WHEEL_ANCHORS)], dtype=torch.float64)
        ramp = torch.floor(255.0 * torch.arange(steps, dtype=torch.float64) / steps)
        rows.append(start + torch.sign(end - start) * ramp[:, None])
    return (torch.cat(rows) / 255.0).to(device=device, dtype=dtype)


def robust_max_magnitude(flow, quantile=_ROBUST_QUANTILE):
    """The `quantile` of flow magnitudes over the whole batch `[N,2,H,W]` -> float (pixels).

    Takes the order statistic at rank `ceil(quantile * count)`; non-finite vectors are ignored.
    Returns 0.0 for an all-zero (or all non-finite) flow.
    """
    validate_flow(flow)
    if not 0 < quantile <= 1:
        raise ValueError(f"quantile must be in (0, 1], got {quantile}.")
    magnitudes = flow_magnitude(flow.detach().float()).flatten()
    magnitudes = magnitudes[torch.isfinite(magnitudes)]
    if magnitudes.numel() == 0:
        return 0.0
    rank = max(1, math.ceil(quantile * magnitudes.numel()))
    return float(torch.kthvalue(magnitudes, rank).values)


def flow_to_color(flow, max_magnitude=None):
    """Colour-code a flow field `[N,2,H,W]` (pixels) -> RGB `[N,3,H,W]` in [0,1].

    Args:
        flow: `[N,2,H,W]`; non-finite vectors are drawn black.
        max_magnitude: magnitude in pixels drawn at full saturation; None = the 99th percentile of
            magnitudes over the whole batch, so every frame of one call shares one scale.
    """
    validate_flow(flow)
    if max_magnitude is None:
        max_magnitude = robust_max_magnitude(flow)
    elif not max_magnitude > 0:
        raise ValueError(f"max_magnitude must be > 0 pixels (or None for automatic), got {max_magnitude}.")
    dtype = flow.dtype if flow.dtype in (torch.float32, torch.float64) else torch.float32
    finite = torch.isfinite(flow).all(dim=1, keepdim=True)
    scaled = torch.where(finite, flow.to(dtype), 0.0) / max(float(max_magnitude), 1e-12)
    radius = flow_magnitude(scaled)
    hue = _wheel_color(torch.atan2(-scaled[:, 1], -scaled[:, 0]) / torch.pi)
    color = torch.where(radius <= 1.0, 1.0 - radius * (1.0 - hue), hue * _OVERFLOW_DIMMING)
    return color * finite


def _wheel_color(angle):
    """Angle in [-1,1] (units of pi, from atan2(-v,-u)) `[N,H,W]` -> interpolated wheel colour `[N,3,H,W]`."""
    wheel = color_wheel(angle.device, angle.dtype)
    # one gather per pixel: each row holds a wheel colour and the step to the next colour (wrapping)
    table = torch.cat((wheel, wheel.roll(-1, 0) - wheel), dim=1).T.contiguous()          # [6,55]
    position = (angle + 1.0) * (0.5 * (wheel.shape[0] - 1))
    lower = position.long().clamp_(0, wheel.shape[0] - 1)                                # position >= 0
    rows = table[:, lower].transpose(0, 1)                                               # [N,6,H,W]
    return torch.addcmul(rows[:, :3], (position - lower).unsqueeze(1), rows[:, 3:])


def color_wheel_image(size=128, device=None):
    """Legend of the colour coding -> `[3,size,size]`: flow `(x, y) - centre` scaled so the inscribed
    circle has magnitude 1; outside the circle is white."""
    if int(size) != size or size < 2:
        raise ValueError(f"size must be an integer >= 2, got {size!r}.")
    half = (size - 1) / 2.0
    coords = (torch.arange(size, device=device, dtype=torch.float32) - half) / half
    grid_y, grid_x = torch.meshgrid(coords, coords, indexing="ij")
    flow = torch.stack((grid_x, grid_y)).unsqueeze(0)
    image = flow_to_color(flow, max_magnitude=1.0)[0]
    outside = (grid_x.square() + grid_y.square()) > 1.0
    return torch.where(outside, 1.0, image)
