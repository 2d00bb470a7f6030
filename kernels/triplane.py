"""Tri-plane feature lookup with EG3D's exact conventions (specs/triplane.md, reference 1.3).

A tri-plane is `[N,3,C,H,W]`: three axis-aligned feature planes spanning the box
`[-box_warp/2, box_warp/2]^3`. A point is projected onto every plane, the plane is sampled bilinearly
(zeros outside the box) and the three features are averaged.

EG3D's plane matrices map a point to (x,y), (x,z) and (z,x) — not the intended XY/YZ/XZ, so y is seen
by plane 0 only. Checkpoints were trained that way, so the quirk is reproduced here.
"""
import torch
import torch.nn.functional as F

# Rows of each matrix are the plane's basis; plane coordinates are the first two entries of p @ inv(M).
PLANE_AXES = torch.tensor([
    [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]],
    [[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, 1.0, 0.0]],
    [[0.0, 0.0, 1.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]],
])


def _validate_points(points):
    if not isinstance(points, torch.Tensor) or points.dim() != 3 or points.shape[-1] != 3:
        shape = tuple(points.shape) if isinstance(points, torch.Tensor) else type(points).__name__
        raise ValueError(f"points must be a tensor [N,M,3] (x, y, z world coordinates), got {shape}.")


def project_onto_planes(points, box_warp=1.0):
    """World points `[N,M,3]` -> grid_sample coordinates on the three planes `[N,3,M,2]`.

    p' = 2/box_warp * p, so the box `[-box_warp/2, box_warp/2]^3` maps to `[-1,1]`.
    Plane 0 -> (x, y), plane 1 -> (x, z), plane 2 -> (z, x); entry 0 indexes W, entry 1 indexes H.
    """
    _validate_points(points)
    scaled = points * (2.0 / box_warp)
    inverse_axes = torch.linalg.inv(PLANE_AXES.to(device=points.device, dtype=points.dtype))
    return torch.einsum("nmk,pkj->npmj", scaled, inverse_axes)[..., :2]


def sample_triplane(planes, points, box_warp=1.0):
    """Mean of the bilinear samples of the three planes at `points` -> `[N,M,C]`.

    planes: `[N,3,C,H,W]`, or `[1,3,C,H,W]` shared by all N point sets. points: `[N,M,3]` world units.
    Sampling: bilinear, zeros outside the box, align_corners=False (EG3D). Differentiable in both.
    """
    if planes.dim() != 5 or planes.shape[1] != 3:
        raise ValueError(f"planes must have shape [N,3,C,H,W], got {tuple(planes.shape)}.")
    _validate_points(points)
    n, m = points.shape[:2]
    if planes.shape[0] == 1 and n > 1:
        return sample_triplane(planes, points.reshape(1, n * m, 3), box_warp).reshape(n, m, -1)
    if planes.shape[0] != n:
        raise ValueError(f"planes batch ({planes.shape[0]}) and points batch ({n}) differ; they must be "
                         f"equal or the planes batch must be 1.")
    channels, height, width = planes.shape[2:]
    grid = project_onto_planes(points, box_warp).reshape(n * 3, 1, m, 2).to(planes.dtype)
    sampled = F.grid_sample(planes.reshape(n * 3, channels, height, width), grid, mode="bilinear",
                            padding_mode="zeros", align_corners=False)
    return sampled.reshape(n, 3, channels, m).mean(dim=1).transpose(1, 2)
