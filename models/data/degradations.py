"""The degradations of video super-resolution (specs/vsr.md) and the flow on their LR grids.

`[N,3,H,W]` -> `[N,3,H/s,W/s]`:
- BI: bicubic downscaling with antialiasing (pixel-area grid: LR pixel i is centred on HR coordinate
  `s*i + (s-1)/2`), the grid `F.interpolate(mode="bicubic", align_corners=False)` upscales back onto;
- BD: Gaussian blur sigma 1.6 (13 taps, replicated borders), then every s-th pixel from 0 (LR pixel i
  sits on HR pixel `s*i`);
- RealBI: what real footage adds to BI, drawn per clip: half of the clips are plain BI, the other half
  get a lens/focus blur before the downscaling (Gaussian, sigma up to 1.2 HR px), sensor noise after it
  (Gaussian, sigma up to 0.02, fresh in every frame) and block-DCT compression with 4:2:0 chroma
  (the JPEG quantisation at quality 40-95, also what intra-coded video frames go through).
The LR flow follows from the HR flow and that grid: `F_lr(i) = F_hr(s*i + c) / s` (RealBI: BI's grid;
its blur is centred and its noise and compression do not move anything).
"""
import torch
import torch.nn.functional as F
from kornia.color import rgb_to_ycbcr, ycbcr_to_rgb

from ...kernels.filters import gaussian_blur

DEGRADATIONS = ("BI", "BD", "RealBI")


BD_SIGMA = 1.6


BD_RADIUS = 6  # 13 taps, the usual BD kernel size


REAL_BLUR_SIGMA = 1.2  # HR px, upper end of RealBI's blur


REAL_NOISE_SIGMA = 0.02  # upper end of RealBI's noise (0.02 = 5 grey levels of 255)


REAL_QUALITY = (40, 95)  # RealBI's compression quality range (JPEG scale)


# JPEG's example quantisation tables (ITU-T T.81 Annex K), row-major 8x8: luminance, chrominance
LUMA_TABLE = (16, 11, 10, 16, 24, 40, 51, 61, 12, 12, 14, 19, 26, 58, 60, 55, 14, 13, 16, 24, 40, 57, 69, 56,
              14, 17, 22, 29, 51, 87, 80, 62, 18, 22, 37, 56, 68, 109, 103, 77, 24, 35, 55, 64, 81, 104, 113, 92,
              49, 64, 78, 87, 103, 121, 120, 101, 72, 92, 95, 98, 112, 100, 103, 99)
CHROMA_TABLE = (17, 18, 24, 47, 99, 99, 99, 99, 18, 21, 26, 66, 99, 99, 99, 99, 24, 26, 56, 99, 99, 99, 99, 99,
                47, 66, 99, 99, 99, 99, 99, 99) + (99,) * 32


# ---------------------------------------------------------------- degradations
def check_degradation(degradation, scale):
    if degradation not in DEGRADATIONS:
        raise ValueError(f"degradation must be one of {DEGRADATIONS} (BI: bicubic; BD: Gaussian blur sigma "
                         f"{BD_SIGMA} then subsampling; RealBI: BI with random blur, noise and compression), "
                         f"got {degradation!r}.")
    if scale not in (2, 4, 8):
        raise ValueError(f"scale must be 2, 4 or 8, got {scale!r}.")


def degrade(frames, scale, degradation, generator=None):
    """HR frames `[N,3,H,W]` in [0,1] (H, W multiples of `scale`; the N frames of one clip) -> LR
    `[N,3,H/scale,W/scale]` in [0,1] by the BI, BD or RealBI protocol (module docstring).

    generator: draws RealBI's settings and noise (None: torch's global generator)."""
    check_degradation(degradation, scale)
    height, width = frames.shape[-2:]
    if height % scale or width % scale:
        raise ValueError(f"HR frames must have sides divisible by the scale {scale}, got {height}x{width}.")
    if degradation == "BD":
        blurred = gaussian_blur(frames, BD_SIGMA, BD_RADIUS, padding="replicate")
        return blurred[..., ::scale, ::scale]
    if degradation == "RealBI":
        return _real_degradation(frames, scale, generator)
    return _bicubic_down(frames, scale)


def _bicubic_down(frames, scale):
    lr = F.interpolate(frames, scale_factor=1 / scale, mode="bicubic", align_corners=False, antialias=True)
    return lr.clamp(0.0, 1.0)


def _real_degradation(frames, scale, generator):
    """RealBI (module docstring): `[N,3,H,W]` -> `[N,3,H/s,W/s]`, one draw of settings for the N frames."""
    draws = torch.rand(4, generator=generator)
    if draws[0] < 0.5:
        return _bicubic_down(frames, scale)
    quality = REAL_QUALITY[0] + (REAL_QUALITY[1] - REAL_QUALITY[0]) * float(draws[3])
    return realistic_degrade(frames, scale, REAL_BLUR_SIGMA * float(draws[1]), REAL_NOISE_SIGMA * float(draws[2]),
                             quality, generator)


def realistic_degrade(frames, scale, blur_sigma, noise_sigma, quality, generator=None):
    """Blur (Gaussian, `blur_sigma` HR px; below 0.1 none), BI downscaling, Gaussian noise (`noise_sigma`,
    fresh per frame) and block-DCT compression at `quality`: `[N,3,H,W]` -> `[N,3,H/s,W/s]` in [0,1]."""
    if blur_sigma > 0.1:
        frames = gaussian_blur(frames, blur_sigma, max(1, round(3 * blur_sigma)), padding="replicate")
    lr = _bicubic_down(frames, scale)
    noise = torch.randn(lr.shape, generator=generator).to(lr) * noise_sigma
    return block_dct_compress((lr + noise).clamp(0.0, 1.0), quality)


# ---------------------------------------------------------------- compression
def quantisation_table(base, quality):
    """JPEG's quality scaling (the IJG rule) of an 8x8 `base` table -> `[8,8]` steps in 0..255 units."""
    factor = 5000 / quality if quality < 50 else 200 - 2 * quality
    table = torch.tensor(base, dtype=torch.float32).view(8, 8)
    return ((table * factor + 50) // 100).clamp(1, 255)


def dct_matrix(size=8):
    """Orthonormal DCT-II matrix `[size,size]`: `D @ x` transforms a column."""
    k = torch.arange(size, dtype=torch.float32)
    matrix = torch.cos(torch.pi * (2 * k[None] + 1) * k[:, None] / (2 * size)) * (2 / size) ** 0.5
    matrix[0] /= 2 ** 0.5
    return matrix


def block_dct_compress(frames, quality):
    """JPEG-style lossy compression without the entropy coding: `[N,3,H,W]` in [0,1] -> same shape.

    RGB -> YCbCr (BT.601, full range), chroma averaged over 2x2 (4:2:0), 8x8 block DCT, rounding to
    the quality-scaled Annex K steps, and back. Sides are padded by replication to whole blocks.
    """
    height, width = frames.shape[-2:]
    y, cb, cr = rgb_to_ycbcr(frames).unbind(1)
    y = _quantise_blocks(y, quantisation_table(LUMA_TABLE, quality))
    chroma = F.avg_pool2d(F.pad(torch.stack((cb, cr), 1), (0, width % 2, 0, height % 2), mode="replicate"), 2)
    chroma = _quantise_blocks(chroma.flatten(0, 1), quantisation_table(CHROMA_TABLE, quality))
    chroma = F.interpolate(chroma.view(-1, 2, *chroma.shape[-2:]), scale_factor=2, mode="bilinear",
                           align_corners=False)[..., :height, :width]
    return ycbcr_to_rgb(torch.cat((y[:, None], chroma), 1)).clamp(0.0, 1.0)


def _quantise_blocks(plane, steps):
    """`[N,H,W]` (0..1) -> the same plane after 8x8 DCT quantisation with `steps` `[8,8]` (0..255 units)."""
    height, width = plane.shape[-2:]
    padded = F.pad(plane[:, None], (0, -width % 8, 0, -height % 8), mode="replicate")[:, 0]
    blocks = padded.unflatten(-2, (-1, 8)).unflatten(-1, (-1, 8)).transpose(-3, -2)  # [N,Hb,Wb,8,8]
    basis = dct_matrix().to(plane)
    coefficients = basis @ (255 * blocks - 128) @ basis.T
    steps = steps.to(plane)
    restored = (basis.T @ (torch.round(coefficients / steps) * steps) @ basis + 128) / 255
    return restored.transpose(-3, -2).flatten(-2, -1).flatten(-3, -2)[..., :height, :width]


def lr_flow(flow, scale, degradation):
    """Exact HR flow `[N,2,H,W]` -> flow on the LR grid of the degradation `[N,2,H/s,W/s]` in LR pixels.

    BI and RealBI sample the HR flow at the LR pixel centres (the mean over each s x s block, exact for
    flow that is affine inside the block); BD at HR pixels s*i.
    """
    check_degradation(degradation, scale)
    if degradation != "BD":
        return F.avg_pool2d(flow, scale) / scale
    return flow[..., ::scale, ::scale] / scale
