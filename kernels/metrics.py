"""Frame-quality and temporal-consistency metrics: PSNR, SSIM, E_warp, RWE, colour similarity S(t).

Frames are `[T,C,H,W]` floats (RGB in [0,1] unless stated); flows follow specs/flow.md
(`flow_fw[t] = F_{t->t+1}`, `flow_bw[t] = F_{t+1->t}`, both `[T-1,2,H,W]` in pixels).
"""
import torch

from .checks import validate_flow, validate_image_pair, validate_images
from .consistency import occlusion_mask
from .filters import gaussian_taps, separable_blur
from .warp import backward_warp

SSIM_SIGMA = 1.5
SSIM_RADIUS = 5  # 11 taps: int(3.5 * sigma + 0.5), as in Wang et al. 2004 and skimage
SSIM_K1, SSIM_K2 = 0.01, 0.03
_PAIR_CHUNK = 8
_SSIM_CHUNK = 4
_HISTOGRAM_CHUNK_PIXELS = 1 << 24


def psnr(a, b, max_val=1.0):
    """Peak signal-to-noise ratio per frame -> `[N]` in dB (inf for identical frames).

    Args:
        a, b: `[N,C,H,W]`; max_val: the value range (1.0 for images in [0,1]).
    """
    validate_image_pair(a, b)
    mse = (a - b).square().flatten(1).mean(1)
    return 10.0 * torch.log10(max_val ** 2 / mse)


def ssim(a, b, max_val=1.0):
    """Structural similarity per frame, averaged over channels -> `[N]`.

    Gaussian-weighted (11x11, sigma 1.5), K1 = 0.01, K2 = 0.03, population covariances, averaged over
    the pixels at least 5 px from the border: the numbers of
    `skimage.metrics.structural_similarity(gaussian_weights=True, sigma=1.5,
    use_sample_covariance=False, data_range=max_val, channel_axis=...)`.
    Args:
        a, b: `[N,C,H,W]` with H, W >= 11; max_val: the value range.
    """
    validate_image_pair(a, b)
    h, w = a.shape[-2:]
    if min(h, w) < 2 * SSIM_RADIUS + 1:
        raise ValueError(f"SSIM needs frames of at least {2 * SSIM_RADIUS + 1}x{2 * SSIM_RADIUS + 1} px, "
                         f"got {h}x{w}.")
    # chunks bound the memory of the moment maps
    return torch.cat([ssim_map(a[start:start + _SSIM_CHUNK], b[start:start + _SSIM_CHUNK], max_val).flatten(1).mean(1)
                      for start in range(0, a.shape[0], _SSIM_CHUNK)])


def ssim_map(a, b, max_val=1.0, padding="valid"):
    """Per-pixel, per-channel SSIM of `[N,C,H,W]` pairs -> `[N,C,H',W']`.

    Gaussian window 11x11, sigma 1.5; population (co)variances; K1 = 0.01, K2 = 0.03.
    padding: "valid" (only windows inside the frame: H' = H - 10, as skimage's mean) or "reflect"
    (same size, mirrored borders, for per-pixel losses).
    """
    work = torch.promote_types(a.dtype, torch.float32)
    taps = gaussian_taps(SSIM_SIGMA, SSIM_RADIUS, work, a.device)
    x, y = a.to(work), b.to(work)
    moments = separable_blur(torch.cat((x, y, x * x, y * y, x * y)), taps, padding)
    mu_x, mu_y, xx, yy, xy = moments.chunk(5)
    var_x, var_y, cov = xx - mu_x * mu_x, yy - mu_y * mu_y, xy - mu_x * mu_y
    c1, c2 = (SSIM_K1 * max_val) ** 2, (SSIM_K2 * max_val) ** 2
    return ((2 * mu_x * mu_y + c1) * (2 * cov + c2)) / ((mu_x ** 2 + mu_y ** 2 + c1) * (var_x + var_y + c2))


def _check_video_flows(frames, flow_fw, flow_bw):
    validate_images(frames, "frames")
    validate_flow(flow_fw, "flow_fw")
    validate_flow(flow_bw, "flow_bw")
    t, _, h, w = frames.shape
    if t < 2:
        raise ValueError(f"warping error needs at least 2 frames, got {t}.")
    expected = (t - 1, 2, h, w)
    for name, flow in (("flow_fw", flow_fw), ("flow_bw", flow_bw)):
        if tuple(flow.shape) != expected:
            raise ValueError(f"{name} must have shape {expected} (one flow per consecutive pair of the "
                             f"{t} frames, at frame size), got {tuple(flow.shape)}.")


def _masked_pair_errors(frames, flow_fw, flow_bw):
    """Masked MSE of frame t vs warp(frame t+1, F_{t->t+1}) over non-occluded pixels -> `[T-1]`."""
    errors = []
    for start in range(0, frames.shape[0] - 1, _PAIR_CHUNK):
        stop = min(start + _PAIR_CHUNK, frames.shape[0] - 1)
        fw, bw = flow_fw[start:stop], flow_bw[start:stop]
        warped, _ = backward_warp(frames[start + 1:stop + 1], fw)
        visible = 1.0 - occlusion_mask(fw, bw).to(frames.dtype)
        squared = (frames[start:stop] - warped).square() * visible
        pixel_count = visible.flatten(1).sum(1) * frames.shape[1]
        errors.append(squared.flatten(1).sum(1) / pixel_count.clamp(min=1.0))
    return torch.cat(errors)


def warping_error(frames, flow_fw, flow_bw):
    """Warping error E_warp of a video (seed 001 eq. 9, seed 000 eq. 2.3).

    For each pair: `sum_p M(p) |I_t(p) - warp(I_{t+1}, F_{t->t+1})(p)|^2 / (C * sum_p M(p))`, i.e. the
    squared error averaged over non-occluded pixels and channels (the seeds' per-pixel squared norm
    divided by C); `M` = 1 - `occlusion_mask(F_{t->t+1}, F_{t+1->t})`. A pair with no visible pixel
    scores 0.
    Args:
        frames: `[T,C,H,W]` (T >= 2); flow_fw, flow_bw: `[T-1,2,H,W]` estimated on `frames`.
    Returns:
        per_pair `[T-1]`, mean over pairs (0-d tensor); in squared image units.
    """
    _check_video_flows(frames, flow_fw, flow_bw)
    per_pair = _masked_pair_errors(frames, flow_fw, flow_bw)
    return per_pair, per_pair.mean()


def referenced_warping_error(output, reference, flow_fw, flow_bw):
    """Referenced warping error RWE (seed 000 eq. 2.4): E_warp of the reference (ground-truth) frames,
    warped with the flows estimated on the output frames.

    Unlike E_warp it does not reward blurry outputs (a black video has E_warp 0).
    Args:
        output: `[T,C,H,W]`, the evaluated video the flows were estimated on (checked against
            `reference`); reference: `[T,C,H,W]` ground truth;
        flow_fw, flow_bw: `[T-1,2,H,W]` = `F_{t->t+1}`, `F_{t+1->t}` estimated on `output`.
    Returns:
        per_pair `[T-1]`, mean over pairs (0-d tensor).
    """
    validate_images(output, "output")
    validate_images(reference, "reference")
    if output.shape != reference.shape:
        raise ValueError(f"output {tuple(output.shape)} and reference {tuple(reference.shape)} must have "
                         f"the same frame count and size.")
    return warping_error(reference, flow_fw, flow_bw)


def color_histogram(frames, bins=20):
    """Normalised 3-D RGB histogram per frame -> `[T, bins**3]`, each row sums to 1.

    Args:
        frames: `[T,3,H,W]` in [0,1] (values outside are clamped into the end bins);
        bins: bins per channel; bin index of channel value v is `floor(v * bins)` (1.0 -> last bin).
    """
    validate_images(frames, "frames")
    if frames.shape[1] != 3:
        raise ValueError(f"frames must be RGB [T,3,H,W], got {frames.shape[1]} channels.")
    if int(bins) != bins or bins < 1:
        raise ValueError(f"bins must be an integer >= 1, got {bins!r}.")
    pixels = frames.shape[2] * frames.shape[3]
    chunk = max(1, _HISTOGRAM_CHUNK_PIXELS // pixels)
    counts = [_histogram_counts(frames[start:start + chunk], int(bins))
              for start in range(0, frames.shape[0], chunk)]
    counts = torch.cat(counts).to(torch.float64)
    return (counts / pixels).to(torch.promote_types(frames.dtype, torch.float32))


def _histogram_counts(frames, bins):
    """`[T,3,H,W]` -> bin counts `[T, bins**3]` (int64), one bincount for the whole chunk."""
    t = frames.shape[0]
    channel_bins = (frames.detach() * bins).floor().clamp(0, bins - 1).long()
    joint = (channel_bins[:, 0] * bins + channel_bins[:, 1]) * bins + channel_bins[:, 2]
    joint = joint.flatten(1) + torch.arange(t, device=frames.device).unsqueeze(1) * bins ** 3
    return torch.bincount(joint.flatten(), minlength=t * bins ** 3).view(t, bins ** 3)


def color_similarity_curve(frames, bins=20):
    """Colour similarity to the first frame (seed 003 eq. 2.1) -> `[T]` in [0,1], `S(0) = 1`.

    `S(t) = sum_i min(H(x_0, i), H(x_t, i))`, the intersection of normalised 3-D RGB histograms with
    `bins` bins per channel (N = 20 in the seed).
    Args:
        frames: `[T,3,H,W]` in [0,1].
    """
    histograms = color_histogram(frames, bins)
    return torch.minimum(histograms[:1], histograms).sum(1)
