"""Separable low-pass filters: Gaussian and binomial taps, one blur, and the Charbonnier penalty.

Every blur in the pack (SSIM windows, the edit losses, the BD degradation, texture prefiltering,
the binomial low-pass of BlurPool and the frequency split) is `separable_blur` with taps from
`gaussian_taps` or `binomial_taps`: one depthwise convolution per axis over all planes at once
(faster on CPU than per-image convolutions), differentiable. Where one small size is blurred again
and again (the flow estimator's local contrast), `blur_matrix` gives the same blur as cached
matrices.
"""
import math

import torch
import torch.nn.functional as F

BLUR_PADDINGS = ("reflect", "replicate", "valid")
CHARBONNIER_EPS = 1e-3


def gaussian_taps(sigma, radius=None, dtype=torch.float32, device=None):
    """1-D Gaussian `exp(-d^2 / (2 sigma^2))` for d in [-radius, radius], summing to 1 -> `[2*radius+1]`.

    radius defaults to ceil(3 sigma). Computed in float64, returned in `dtype`.
    """
    if not sigma > 0:
        raise ValueError(f"sigma must be > 0 pixels, got {sigma!r}.")
    radius = max(1, math.ceil(3 * sigma)) if radius is None else int(radius)
    offsets = torch.arange(-radius, radius + 1, dtype=torch.float64)
    taps = torch.exp(-0.5 * (offsets / sigma) ** 2)
    return (taps / taps.sum()).to(dtype=dtype, device=device)


def binomial_taps(length=5, dtype=torch.float32, device=None):
    """1-D binomial filter (row `length-1` of Pascal's triangle) summing to 1 -> `[length]`.

    length 5 gives `[1,4,6,4,1]/16`, whose frequency response `cos^4(omega/2)` is exactly 0 at Nyquist.
    """
    if int(length) != length or length < 2:
        raise ValueError(f"taps must be an integer >= 2, got {length!r}.")
    coefficients = torch.ones(1, dtype=torch.float64)
    for _ in range(int(length) - 1):
        coefficients = torch.cat((coefficients, coefficients.new_zeros(1))) + \
            torch.cat((coefficients.new_zeros(1), coefficients))
    return (coefficients / coefficients.sum()).to(dtype=dtype, device=device)


def _filter_axis(x, taps, dim, padding):
    """Correlate `x` `[N,C,H,W]` along `dim` (-1 or -2) with odd `taps` `[K]`; "valid" shrinks that side by K-1."""
    radius = (taps.numel() - 1) // 2
    if padding != "valid":
        mode = padding if padding == "replicate" or radius < x.shape[dim] else "replicate"
        x = F.pad(x, (radius, radius, 0, 0) if dim == -1 else (0, 0, radius, radius), mode=mode)
    planes = x.reshape(1, -1, *x.shape[-2:])  # one depthwise conv over all planes: faster than a batch of convs
    kernel = taps.to(x.dtype).view(1, 1, 1, -1) if dim == -1 else taps.to(x.dtype).view(1, 1, -1, 1)
    out = F.conv2d(planes, kernel.expand(planes.shape[1], 1, *kernel.shape[-2:]), groups=planes.shape[1])
    return out.reshape(*x.shape[:-2], *out.shape[-2:])


def separable_blur(x, taps, padding="reflect"):
    """Blur `[N,C,H,W]` with the outer product of 1-D `taps` `[K]` (K odd, centred).

    padding: "reflect" (same size; mirrored borders, replicated where a side is not longer than K//2),
    "replicate" (same size), or "valid" (no padding -> `[N,C,H-K+1,W-K+1]`). Same dtype as `x`.
    """
    if padding not in BLUR_PADDINGS:
        raise ValueError(f"padding must be one of {BLUR_PADDINGS}, got {padding!r}.")
    if taps.dim() != 1 or taps.numel() % 2 == 0:
        raise ValueError(f"taps must be a 1-D tensor of odd length so the blur does not shift the image, "
                         f"got shape {tuple(taps.shape)}.")
    if padding == "valid" and min(x.shape[-2:]) < taps.numel():
        raise ValueError(f"a {taps.numel()}-tap valid blur needs sides of at least {taps.numel()} px, "
                         f"got {x.shape[-1]}x{x.shape[-2]}.")
    return _filter_axis(_filter_axis(x, taps, -1, padding), taps, -2, padding)


def blur_matrix(length, taps, padding="replicate"):
    """The 1-D blur of `separable_blur` along an axis of `length` samples as a matrix `[length,length]`:
    `blur_matrix(H, taps) @ x` blurs `x` `[...,H,W]` along H, `x @ blur_matrix(W, taps).T` along W.

    padding: "replicate" or "reflect" (as in `separable_blur`; the border taps are folded into the
    matrix). On CPU two matrix products per axis pair beat the depthwise convolution by several
    times for sides up to a few hundred pixels; their cost grows with the side, the convolution's
    with the taps.
    """
    if padding not in ("replicate", "reflect"):
        raise ValueError(f"padding must be 'replicate' or 'reflect', got {padding!r}.")
    radius = (taps.numel() - 1) // 2
    source = torch.arange(length, device=taps.device)[:, None] + torch.arange(-radius, radius + 1, device=taps.device)
    if padding == "reflect" and radius < length:
        source = torch.where(source < 0, -source, source)
        source = torch.where(source >= length, 2 * (length - 1) - source, source)
    matrix = taps.new_zeros(length, length)
    return matrix.scatter_add_(1, source.clamp(0, length - 1), taps.expand(length, -1).contiguous())


def gaussian_blur(x, sigma, radius=None, padding="reflect"):
    """`separable_blur` of `[N,C,H,W]` with `gaussian_taps(sigma, radius)`."""
    return separable_blur(x, gaussian_taps(sigma, radius, x.dtype, x.device), padding)


def charbonnier(difference, eps=CHARBONNIER_EPS):
    """Element-wise smooth L1 `sqrt(difference^2 + eps^2)` (>= eps; reduce it as the loss needs)."""
    return torch.sqrt(difference.square() + eps * eps)
