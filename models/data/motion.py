"""Affine motion for synthetic scenes: `[3,3]` float64 homogeneous maps acting on column vectors (x, y, 1),
in the pixel convention of kernels/warp.py (pixel (row i, column j) has its centre at x = j, y = i).
"""
import math

import torch


def affine_matrix(linear=((1.0, 0.0), (0.0, 1.0)), shift=(0.0, 0.0)):
    (a, b), (c, d) = linear
    return torch.tensor([[a, b, shift[0]], [c, d, shift[1]], [0.0, 0.0, 1.0]], dtype=torch.float64)


def translation_matrix(dx, dy):
    return affine_matrix(shift=(dx, dy))


def rotation_scale_matrix(angle, scale=1.0):
    cos, sin = scale * math.cos(angle), scale * math.sin(angle)
    return affine_matrix(((cos, -sin), (sin, cos)))


def about_point(point, linear_map):
    """`linear_map` applied around `point` (x, y) instead of the origin."""
    return translation_matrix(*point) @ linear_map @ translation_matrix(-point[0], -point[1])


def apply_affine(matrix, points):
    """Affine `[3,3]` applied to `[...,2]` points (in the points' dtype)."""
    (a, b, c), (d, e, f) = matrix[:2].tolist()
    x, y = points[..., 0], points[..., 1]
    return torch.stack((a * x + b * y + c, d * x + e * y + f), dim=-1)


def similarity_motion(height, width, translation=(0.0, 0.0), rotation=0.0, zoom=1.0):
    """Content motion of one frame step in view coordinates -> `[3,3]` float64.

    p -> c + zoom * R(rotation) (p - c) + translation, with c = ((W-1)/2, (H-1)/2) the view centre,
    rotation in radians (positive turns +x towards +y, i.e. clockwise on screen), translation in
    pixels. A background following it has flow exactly `motion(p) - p`.
    """
    centre = ((width - 1) / 2.0, (height - 1) / 2.0)
    return translation_matrix(*translation) @ about_point(centre, rotation_scale_matrix(rotation, zoom))


def maps_from_motion(first_map, motions):
    """Per-frame view->texture maps of a layer whose content follows `motions`.

    first_map: `[3,3]` A_0; motions: `[T-1,3,3]` content motion M_t of step t -> t+1 (e.g. from
    `similarity_motion`). Returns `[T,3,3]` float64 with A_{t+1} = A_t M_t^{-1}.
    """
    steps = [m.to(torch.float64) for m in motions]
    identity = torch.eye(3, dtype=torch.float64)
    poses = chain_poses(torch.linalg.inv(first_map.to(torch.float64)), 0, steps, [identity] * len(steps))
    return torch.linalg.inv(poses)


def chain_poses(anchor_pose, anchor, view_steps, texture_steps):
    """Texture->view poses `[T,3,3]` with P_{t+1} = view_steps[t] @ P_t @ texture_steps[t]."""
    poses = [None] * (len(view_steps) + 1)
    poses[anchor] = anchor_pose
    for t in range(anchor, len(view_steps)):
        poses[t + 1] = view_steps[t] @ poses[t] @ texture_steps[t]
    for t in range(anchor - 1, -1, -1):
        poses[t] = torch.linalg.inv(view_steps[t]) @ poses[t + 1] @ torch.linalg.inv(texture_steps[t])
    return torch.stack(poses)
