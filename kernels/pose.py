"""Pose keypoint heatmaps (seed 003 §3.4.1, eq. 3.1): Gaussian bumps at the 18 OpenPose keypoints.

`H_k(q) = exp(-||q - p_k||^2 / (2 sigma^2))` for a visible keypoint k, 0 otherwise, with
`sigma^2 = max(0.5, 0.005 R^2)` at resolution R. Pixel (row i, column j) is the point q = (x=j, y=i),
so a keypoint at integer pixel coordinates peaks at exactly 1 on that pixel.
"""
import colorsys

import torch

KEYPOINTS = 18  # OpenPose COCO-18: nose, neck, r/l shoulder-elbow-wrist, r/l hip-knee-ankle, eyes, ears
BODY25_TO_COCO18 = (0, 1, 2, 3, 4, 5, 6, 7, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18)  # drops MidHip and feet


def heatmap_sigma2(resolution):
    """sigma^2 = max(0.5, 0.005 R^2) in pixels^2 for heatmaps of resolution R pixels (R > 0)."""
    if resolution <= 0:
        raise ValueError(f"heatmap resolution must be positive, got {resolution!r}.")
    return max(0.5, 0.005 * float(resolution) ** 2)


def keypoint_heatmaps(points, visible, height, width, sigma2):
    """Heatmaps of several people, max over people.

    Args:
        points: `[P,K,2]` keypoint (x, y) in output pixels (x = column, y = row); P may be 0.
        visible: `[P,K]` bool; invisible keypoints contribute 0.
        height, width: output size in pixels.
        sigma2: Gaussian variance in pixels^2 (see `heatmap_sigma2`).
    Returns:
        `[K,height,width]` float32 in [0,1].
    """
    if points.ndim != 3 or points.shape[-1] != 2 or visible.shape != points.shape[:2]:
        raise ValueError(f"points must be [P,K,2] with visible [P,K], got {tuple(points.shape)} and "
                         f"{tuple(visible.shape)}.")
    count = points.shape[1]
    maps = torch.zeros(count, height, width, dtype=torch.float32)
    columns = torch.arange(width, dtype=torch.float64)
    rows = torch.arange(height, dtype=torch.float64)
    for person, mask in zip(points.to(torch.float64), visible.bool()):
        gx = torch.exp(-(columns - person[:, :1]) ** 2 / (2.0 * sigma2))  # [K,W]
        gy = torch.exp(-(rows - person[:, 1:]) ** 2 / (2.0 * sigma2))  # [K,H]
        bumps = (gy[:, :, None] * gx[:, None, :]) * mask[:, None, None]
        maps = torch.maximum(maps, bumps.to(torch.float32))
    return maps


def keypoint_colors(count=KEYPOINTS):
    """One saturated colour per keypoint around the hue wheel -> `[count,3]` in [0,1]."""
    return torch.tensor([colorsys.hsv_to_rgb(k / count, 1.0, 1.0) for k in range(count)], dtype=torch.float32)


def colorize_heatmaps(heatmaps):
    """`[...,K,H,W]` heatmaps -> `[...,3,H,W]` picture: per channel the max over k of H_k * colour_k."""
    colors = keypoint_colors(heatmaps.shape[-3]).to(heatmaps)
    return (heatmaps.unsqueeze(-4) * colors.T[:, :, None, None]).amax(-3)
