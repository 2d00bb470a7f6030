"""Weight-free hole filling: push-pull (pyramid of masked averages), smooth and exact on known pixels."""
import torch
import torch.nn.functional as F


def push_pull_fill(image, known, min_side=2):
    """Fill pixels of `image` `[N,C,H,W]` where `known` `[N,1,H,W]` (1 = keep, 0 = hole, soft allowed) is 0.

    Push: halve the masked image and the mask until the smaller side reaches `min_side`, averaging only
    known pixels. Pull: from the coarsest level up, each level keeps its known part and takes the
    upsampled coarser level elsewhere. Known pixels are returned unchanged; a hole gets a smooth blend
    of the surrounding colours. A map with no known pixel at all is returned as zeros.
    """
    if known.shape[0] not in (1, image.shape[0]) or known.shape[1] != 1 or known.shape[-2:] != image.shape[-2:]:
        raise ValueError(f"known mask {tuple(known.shape)} must be [N,1,H,W] matching the image {tuple(image.shape)}.")
    known = known.clamp(0, 1).expand(image.shape[0], 1, *image.shape[-2:])
    levels = [(image * known, known)]
    while min(levels[-1][0].shape[-2:]) >= 2 * min_side:
        weighted, weight = levels[-1]
        levels.append((F.avg_pool2d(weighted, 2, ceil_mode=True), F.avg_pool2d(weight, 2, ceil_mode=True)))
    weighted, weight = levels[-1]
    filled = weighted / weight.clamp_min(1e-6)
    for weighted, weight in reversed(levels[:-1]):
        coarse = F.interpolate(filled, size=weighted.shape[-2:], mode="bilinear", align_corners=False)
        confidence = weight.clamp(max=1.0)
        filled = weighted / weight.clamp_min(1e-6) * (weight > 0) * confidence + coarse * (1 - confidence)
    return torch.where(known >= 1, image, filled)
