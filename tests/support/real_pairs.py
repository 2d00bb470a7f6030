"""Real photographs as flow test pairs: the Middlebury 2014 Motorcycle stereo pair that scikit-image
ships (real ground truth), and realistic degradations of a frame (illumination change, sensor noise
with JPEG, defocus blur) for pairs rendered with exact flow from real photos.

All frames are `[3,H,W]` float32 in [0,1]; flows `[2,H,W]` in pixels; masks `[H,W]` bool.
"""
import numpy as np
import torch
import torch.nn.functional as F

# The degradations `degrade` knows, in the order the bench reports them.
DEGRADATIONS = ("illumination", "noise+jpeg", "blur", "all")


def stereo_motorcycle(scale=1):
    """Middlebury 2014 Motorcycle (scikit-image's 741x500 copy), left -> right.

    scale: 1 (500x741) or 1/2^k (2x2 block averages; disparity averaged where the whole block has
    ground truth, scaled by `scale`). Returns (left, right, flow, valid): flow = (-disparity, 0),
    valid = pixels with finite, positive ground-truth disparity.
    """
    import skimage.data
    left, right, disparity = skimage.data.stereo_motorcycle()
    left, right = (torch.from_numpy(image).permute(2, 0, 1).float() / 255 for image in (left, right))
    disparity = torch.from_numpy(np.asarray(disparity, dtype=np.float32))[None]
    valid = (torch.isfinite(disparity) & (disparity > 0)).float()
    disparity = torch.where(valid > 0, disparity, torch.zeros_like(disparity))
    factor = round(1 / scale)
    if factor > 1:
        height, width = (side // factor * factor for side in left.shape[-2:])
        crop = (..., slice(0, height), slice(0, width))
        left, right = (F.avg_pool2d(image[crop], factor) for image in (left, right))
        disparity = F.avg_pool2d(disparity[crop], factor)
        valid = F.avg_pool2d(valid[crop], factor)
        disparity = torch.where(valid > 0, disparity / valid.clamp_min(1e-6), disparity) / factor
        valid = valid > 1 - 1e-6
    valid = valid[0] > 0
    flow = torch.cat((-disparity, torch.zeros_like(disparity)))
    return left, right, flow, valid


def change_illumination(frame, gain=1.3, gamma=0.75, offset=-0.04, shading=0.35):
    """A different exposure and light: gain, gamma, offset and a smooth diagonal light falloff
    (multiplicative, from 1 at the top left to 1 - `shading` at the bottom right)."""
    height, width = frame.shape[-2:]
    ramp = (torch.linspace(0, 1, height)[:, None] + torch.linspace(0, 1, width)[None]) / 2
    lit = frame * gain * (1 - shading * ramp)
    return (lit.clamp(0, 1) ** gamma + offset).clamp(0, 1)


def add_noise_and_jpeg(frame, sigma=0.02, quality=60, seed=0):
    """Gaussian sensor noise of std `sigma`, then JPEG compression at `quality` (OpenCV)."""
    import cv2
    generator = torch.Generator().manual_seed(seed)
    noisy = (frame + sigma * torch.randn(frame.shape, generator=generator)).clamp(0, 1)
    pixels = (noisy.permute(1, 2, 0).numpy()[..., ::-1] * 255).round().astype(np.uint8)
    ok, encoded = cv2.imencode(".jpg", pixels, [cv2.IMWRITE_JPEG_QUALITY, quality])
    decoded = cv2.imdecode(encoded, cv2.IMREAD_COLOR)[..., ::-1].copy()
    return torch.from_numpy(decoded).permute(2, 0, 1).float() / 255


def blur(frame, sigma=1.5):
    """Gaussian (defocus-like) blur of std `sigma` pixels, reflected border."""
    radius = int(3 * sigma + 0.5)
    taps = torch.exp(-0.5 * (torch.arange(-radius, radius + 1, dtype=torch.float32) / sigma) ** 2)
    taps = (taps / taps.sum()).view(1, 1, 1, -1).expand(3, 1, 1, -1)
    padded = F.pad(frame[None], (radius, radius, 0, 0), mode="reflect")
    rows = F.conv2d(padded, taps, groups=3)
    padded = F.pad(rows, (0, 0, radius, radius), mode="reflect")
    return F.conv2d(padded, taps.transpose(2, 3), groups=3)[0]


def degrade(frame1, frame2, kind, seed=0):
    """Apply degradation `kind` (one of DEGRADATIONS) -> (frame1, frame2).

    illumination: frame2 only. noise+jpeg: both frames (independent noise). blur: frame2 only.
    all: illumination and blur on frame2, then noise+jpeg on both.
    """
    if kind not in DEGRADATIONS:
        raise ValueError(f"unknown degradation {kind!r}: choose one of {DEGRADATIONS}.")
    if kind in ("illumination", "all"):
        frame2 = change_illumination(frame2)
    if kind in ("blur", "all"):
        frame2 = blur(frame2)
    if kind in ("noise+jpeg", "all"):
        frame1, frame2 = add_noise_and_jpeg(frame1, seed=seed), add_noise_and_jpeg(frame2, seed=seed + 1)
    return frame1, frame2
