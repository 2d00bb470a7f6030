"""Weight-free saliency: spectral residual, gradient energy and a centre prior, combined into one map.

All maps are `[N,1,H,W]` in [0,1]. Spectral residual (Hou & Zhang 2007) marks what the image's
smooth log-amplitude spectrum does not predict (objects, blobs); it is computed on a small copy
(the method's own working size), so it responds to object-scale structure, not texture.
Gradient energy marks edges and texture. Neither knows about objects, so the combination is
blurred and normalised, and user masks override it (`apply_user_masks`).
"""
import torch
import torch.nn.functional as F

from .filters import gaussian_blur

SPECTRAL_SIDE = 64  # working size of the spectral residual (Hou & Zhang use 64 px)


def luminance(images):
    """`[N,3,H,W]` RGB in [0,1] -> `[N,1,H,W]` Rec. 601 luma."""
    weights = images.new_tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)
    return (images * weights).sum(1, keepdim=True)


def normalise_maps(maps, eps=1e-8):
    """Scale every map `[N,1,H,W]` to [0,1] by its own min and max (a constant map becomes 0)."""
    low = maps.amin(dim=(-2, -1), keepdim=True)
    high = maps.amax(dim=(-2, -1), keepdim=True)
    return (maps - low) / (high - low).clamp_min(eps)


def _working_size(h, w, side):
    scale = side / max(h, w)
    return max(8, round(h * scale)), max(8, round(w * scale))


def spectral_residual(images, side=SPECTRAL_SIDE):
    """Spectral-residual saliency of RGB `[N,3,H,W]` -> `[N,1,H,W]` in [0,1].

    log|FFT| minus its 3x3 box average, recombined with the phase, squared, blurred, at `side` px on the
    longer side, then resized back.
    """
    h, w = images.shape[-2:]
    small = F.interpolate(luminance(images), size=_working_size(h, w, side), mode="area").double()
    spectrum = torch.fft.fft2(small)
    amplitude = spectrum.abs()
    # the floor keeps near-zero amplitudes of flat images from dominating the residual
    log_amplitude = torch.log(amplitude + 1e-3 * amplitude.mean(dim=(-2, -1), keepdim=True))
    smooth = F.avg_pool2d(F.pad(log_amplitude, (1, 1, 1, 1), mode="circular"), 3, stride=1)  # the spectrum is periodic
    residual = torch.exp(log_amplitude - smooth) * torch.exp(1j * torch.angle(spectrum))
    energy = torch.fft.ifft2(residual).abs().square().float()
    energy = gaussian_blur(energy, sigma=max(1.0, side / 24))
    return normalise_maps(F.interpolate(energy, size=(h, w), mode="bilinear", align_corners=False))


def gradient_energy(images, sigma=None):
    """Blurred Sobel gradient magnitude of the luma of `[N,3,H,W]` -> `[N,1,H,W]` in [0,1].

    sigma (pixels) defaults to 1 % of the longer side: the map marks edge regions, not single pixels.
    """
    grey = luminance(images)
    padded = F.pad(grey, (1, 1, 1, 1), mode="replicate")
    sobel_x = grey.new_tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]]).view(1, 1, 3, 3) / 8
    gx = F.conv2d(padded, sobel_x)
    gy = F.conv2d(padded, sobel_x.transpose(-1, -2))
    magnitude = (gx.square() + gy.square()).sqrt()
    sigma = max(1.0, 0.01 * max(images.shape[-2:])) if sigma is None else sigma
    return normalise_maps(gaussian_blur(magnitude, sigma))


def centre_prior(n, h, w, spread=0.35, device=None, dtype=torch.float32):
    """Anisotropic Gaussian centred on the frame, sigma = spread x (H, W) -> `[N,1,H,W]` peaking at 1."""
    ys = (torch.arange(h, device=device, dtype=dtype) - (h - 1) / 2) / (spread * h)
    xs = (torch.arange(w, device=device, dtype=dtype) - (w - 1) / 2) / (spread * w)
    prior = torch.exp(-0.5 * (ys[:, None].square() + xs[None, :].square()))
    return prior.expand(n, 1, h, w).clone()


def saliency(images, spectral_weight=0.6, gradient_weight=0.4, centre_weight=0.3):
    """Weight-free saliency of RGB `[N,3,H,W]` -> `[N,1,H,W]` in [0,1].

    A weighted sum of spectral residual and gradient energy, blurred to object scale, multiplied by
    `(1 - centre_weight) + centre_weight * centre prior` (0 = no centre bias), normalised per image.
    """
    if images.ndim != 4 or images.shape[1] != 3:
        raise ValueError(f"saliency needs RGB images [N,3,H,W], got {tuple(images.shape)}.")
    if min(spectral_weight, gradient_weight, centre_weight) < 0 or spectral_weight + gradient_weight <= 0:
        raise ValueError("saliency weights must be >= 0, with spectral + gradient > 0.")
    if centre_weight > 1:
        raise ValueError(f"centre_weight must be in [0,1], got {centre_weight}.")
    n, _, h, w = images.shape
    combined = spectral_weight * spectral_residual(images) + gradient_weight * gradient_energy(images)
    combined = gaussian_blur(combined, sigma=max(1.0, 0.02 * max(h, w)))
    prior = centre_prior(n, h, w, device=images.device, dtype=images.dtype)
    return normalise_maps(combined * ((1 - centre_weight) + centre_weight * prior))


def apply_user_masks(saliency_maps, keep=None, drop=None):
    """Keep mask (1 = must stay undistorted) raises saliency to 1; drop mask (1 = may go) lowers it to 0.

    All `[N,1,H,W]` (masks may have batch 1); the drop mask wins where both are set.
    """
    result = saliency_maps
    if keep is not None:
        result = torch.maximum(result, keep.clamp(0, 1))
    if drop is not None:
        result = result * (1 - drop.clamp(0, 1))
    return result
