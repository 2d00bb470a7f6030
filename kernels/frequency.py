"""Binomial low-pass filtering, anti-aliased (BlurPool) downsampling, LF/HF frequency splits, and
separable Lanczos upsampling.

The filter is the separable binomial `[1,4,6,4,1]/16` (specs/vsr.md components 3-4). Its 1-D frequency
response is `cos^4(omega/2)`: 1 at DC, exactly 0 at Nyquist (a +1/-1 pattern vanishes), so
low-passing before keeping every 2nd pixel removes what would alias. One pass has variance 1 px^2;
`passes` applications have variance `passes` px^2.

Grids: `blur_downsample` keeps pixels 0, 2, 4, ... (BlurPool / the BD degradation), so low-resolution
pixel i sits on high-resolution pixel `factor * i`; `lanczos_upsample` uses the pixel-area convention of
`F.interpolate(align_corners=False)` (input pixel i centred on output `(i + 0.5) * scale - 0.5`).
"""
import torch

from .checks import validate_images
from .filters import binomial_taps, separable_blur

DOWNSAMPLE_FACTORS = (2, 4, 8)


def _check_frequency_args(x, taps, passes):
    validate_images(x, "x")
    if int(passes) != passes or passes < 0:
        raise ValueError(f"passes must be an integer >= 0, got {passes!r}.")
    radius = (int(taps) - 1) // 2
    if passes and min(x.shape[-2:]) <= radius:
        raise ValueError(f"images of {x.shape[-1]}x{x.shape[-2]} px are too small for a {taps}-tap filter "
                         f"with reflect padding: both sides must be larger than {radius} px.")


def lowpass(x, taps=5, passes=1):
    """Separable binomial blur of every channel, same size (reflect padding, no subsampling).

    Args:
        x: `[N,C,H,W]` float, any range; H and W larger than `taps // 2`.
        taps: binomial filter length (5 = `[1,4,6,4,1]/16`; odd lengths keep the image centred).
        passes: how many times the filter is applied (0 returns `x`).
    Returns:
        `[N,C,H,W]`, same dtype. Differentiable; constants are kept exactly.
    """
    _check_frequency_args(x, taps, passes)
    if int(taps) % 2 == 0:
        raise ValueError(f"taps must be odd so the filter does not shift the image, got {taps}.")
    kernel = binomial_taps(taps, x.dtype, x.device)
    for _ in range(int(passes)):
        x = separable_blur(x, kernel)
    return x


def blur_downsample(x, factor=2, taps=5):
    """Anti-aliased downsampling (BlurPool): low-pass, keep every 2nd pixel, repeated per factor of 2.

    Args:
        x: `[N,C,H,W]` float; factor: 2, 4 or 8.
    Returns:
        `[N,C,H',W']`; each halving keeps rows/columns 0, 2, 4, ... so a side of n px becomes
        ceil(n / 2). A +1/-1 checkerboard becomes a constant instead of aliasing.
    """
    if factor not in DOWNSAMPLE_FACTORS:
        raise ValueError(f"factor must be one of {DOWNSAMPLE_FACTORS}, got {factor!r}.")
    for _ in range(int(factor).bit_length() - 1):
        x = lowpass(x, taps)[..., ::2, ::2]
    return x


def split_frequencies(x, taps=5, passes=1):
    """Split into a low band (binomial blur, `passes` times) and the residual high band.

    Args:
        x: `[N,C,H,W]` float. Returns (low, high), both `[N,C,H,W]`, with `high = x - low`, so
        `merge_frequencies(low, high)` gives back `x` (up to float rounding). A constant image has
        high == 0.
    """
    low = lowpass(x, taps, passes)
    return low, x - low


def merge_frequencies(low, high):
    """Inverse of `split_frequencies`: `low + high` -> `[N,C,H,W]` (shapes must match)."""
    validate_images(low, "low")
    validate_images(high, "high")
    if low.shape != high.shape:
        raise ValueError(f"low {tuple(low.shape)} and high {tuple(high.shape)} bands must have the same shape.")
    return low + high


def lanczos_matrix(in_size, out_size, lobes=3, dtype=torch.float32, device=None):
    """Lanczos interpolation weights `[out_size, in_size]` for enlarging one axis (rows sum to 1).

    Output pixel i samples the input at `(i + 0.5) * in_size / out_size - 0.5` (pixel-area convention,
    as `F.interpolate(align_corners=False)`), with the `2 * lobes` nearest input pixels weighted by
    `sinc(d) * sinc(d / lobes)`; taps beyond the border reuse the edge pixel. Enlarging only: shrinking
    would need a wider kernel to avoid aliasing (use `blur_downsample` or `F.interpolate(antialias=True)`).
    """
    if out_size < in_size:
        raise ValueError(f"lanczos_matrix enlarges only (in_size {in_size} > out_size {out_size}); "
                         f"downscale with blur_downsample or an antialiased resize instead.")
    centres = (torch.arange(out_size, dtype=torch.float64) + 0.5) * in_size / out_size - 0.5
    taps = torch.floor(centres).unsqueeze(1) - lobes + 1 + torch.arange(2 * lobes, dtype=torch.float64)
    distance = centres.unsqueeze(1) - taps
    weights = torch.sinc(distance) * torch.sinc(distance / lobes)
    weights = weights / weights.sum(1, keepdim=True)
    matrix = torch.zeros(out_size, in_size, dtype=torch.float64)
    matrix.scatter_add_(1, taps.clamp(0, in_size - 1).long(), weights)
    return matrix.to(dtype=dtype, device=device)


def lanczos_upsample(x, size, lobes=3):
    """Separable Lanczos resize of `[N,C,h,w]` to `size = (H, W)` with `H >= h`, `W >= w`.

    Two matrix products with `lanczos_matrix` (Lanczos-3 by default). Returns `[N,C,H,W]` in the dtype
    of `x`; values may overshoot the input range slightly near edges (ringing), as with any Lanczos.
    """
    validate_images(x, "x")
    height, width = int(size[0]), int(size[1])
    rows = lanczos_matrix(x.shape[-2], height, lobes, x.dtype, x.device)
    columns = lanczos_matrix(x.shape[-1], width, lobes, x.dtype, x.device)
    return torch.matmul(torch.matmul(rows, x), columns.transpose(0, 1))
