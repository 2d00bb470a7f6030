"""The BI and BD degradations of video super-resolution (specs/vsr.md) and the flow on their LR grids.

`[N,3,H,W]` -> `[N,3,H/s,W/s]`:
- BI: bicubic downscaling with antialiasing (pixel-area grid: LR pixel i is centred on HR coordinate
  `s*i + (s-1)/2`), the grid `F.interpolate(mode="bicubic", align_corners=False)` upscales back onto;
- BD: Gaussian blur sigma 1.6 (13 taps, replicated borders), then every s-th pixel from 0 (LR pixel i
  sits on HR pixel `s*i`).
The LR flow follows from the HR flow and that grid: `F_lr(i) = F_hr(s*i + c) / s`.
"""

import torch.nn.functional as F

from ...kernels.filters import gaussian_blur

DEGRADATIONS = ("BI", "BD")


BD_SIGMA = 1.6


BD_RADIUS = 6  # 13 taps, the usual BD kernel size


# ---------------------------------------------------------------- degradations
def check_degradation(degradation, scale):
    if degradation not in DEGRADATIONS:
        raise ValueError(f"degradation must be one of {DEGRADATIONS} (BI: bicubic; BD: Gaussian blur sigma "
                         f"{BD_SIGMA} then subsampling), got {degradation!r}.")
    if scale not in (2, 4, 8):
        raise ValueError(f"scale must be 2, 4 or 8, got {scale!r}.")


def degrade(frames, scale, degradation):
    """HR frames `[N,3,H,W]` in [0,1] (H, W multiples of `scale`) -> LR `[N,3,H/scale,W/scale]` in [0,1]
    by the BI or BD protocol (module docstring)."""
    check_degradation(degradation, scale)
    height, width = frames.shape[-2:]
    if height % scale or width % scale:
        raise ValueError(f"HR frames must have sides divisible by the scale {scale}, got {height}x{width}.")
    if degradation == "BI":
        lr = F.interpolate(frames, size=(height // scale, width // scale), mode="bicubic",
                           align_corners=False, antialias=True)
        return lr.clamp(0.0, 1.0)
    blurred = gaussian_blur(frames, BD_SIGMA, BD_RADIUS, padding="replicate")
    return blurred[..., ::scale, ::scale]


def lr_flow(flow, scale, degradation):
    """Exact HR flow `[N,2,H,W]` -> flow on the LR grid of the degradation `[N,2,H/s,W/s]` in LR pixels.

    BI samples the HR flow at the LR pixel centres (the mean over each s x s block, exact for flow that
    is affine inside the block); BD at HR pixels s*i.
    """
    check_degradation(degradation, scale)
    if degradation == "BI":
        return F.avg_pool2d(flow, scale) / scale
    return flow[..., ::scale, ::scale] / scale
