"""Cameras, pixel rays and depth samples with EG3D's conventions (specs/triplane.md, reference 1.5-1.6).

Cameras are OpenCV-style cam2world matrices `[N,4,4]`: camera x right, y down, z forward; world y
up; a frontal camera sits on +z looking at the origin. Intrinsics are normalised by the image size:
`K = [[f,0,0.5],[0,f,0.5],[0,0,1]]`, so pixel coordinates (u, v) run over [0,1].
"""
import math

import torch
import torch.nn.functional as F

from .checks import validate_cameras

# EG3D's FOV -> focal conversion uses 1.414 (a rounded sqrt 2), not 1; kept for compatibility.
_EG3D_FOCAL_SCALE = 1.414
_DEGENERATE_LENGTH = 1e-8


def fov_to_focal(fov_degrees):
    """Normalised focal length of a field of view in degrees (EG3D): f = 1 / (tan(fov/2) * 1.414).

    Accepts a float or a tensor; FFHQ's 18.837 degrees gives f of about 4.2647.
    """
    tan = torch.tan if isinstance(fov_degrees, torch.Tensor) else math.tan
    return 1.0 / (tan(fov_degrees * math.pi / 360.0) * _EG3D_FOCAL_SCALE)


def focal_to_fov(focal):
    """Field of view in degrees of a normalised focal length: inverse of `fov_to_focal`."""
    atan = torch.atan if isinstance(focal, torch.Tensor) else math.atan
    return atan(1.0 / (focal * _EG3D_FOCAL_SCALE)) * 360.0 / math.pi


def normalized_intrinsics(focal, batch, dtype=torch.float32, device=None):
    """`[N,3,3]` intrinsics `[[f,0,0.5],[0,f,0.5],[0,0,1]]` for a focal length normalised by image size."""
    if not focal > 0:
        raise ValueError(f"focal must be > 0 (normalised by the image size, e.g. 4.2647), got {focal!r}.")
    matrix = torch.tensor([[focal, 0.0, 0.5], [0.0, focal, 0.5], [0.0, 0.0, 1.0]], dtype=dtype, device=device)
    return matrix.expand(batch, 3, 3).clone()


def _as_vectors(value, batch, like):
    return torch.as_tensor(value, dtype=like.dtype, device=like.device).expand(batch, 3)


def look_at(origins, targets, up=(0.0, 1.0, 0.0)):
    """cam2world `[N,4,4]` of cameras at `origins` `[N,3]` looking at `targets` `[N,3]` (EG3D convention).

    forward = normalize(target - origin), right = -normalize(up x forward),
    up' = normalize(forward x right); rotation columns [right | up' | forward]; translation = origin.
    `targets` and `up` may be a 3-sequence or `[3]`, shared by all cameras.
    """
    if not isinstance(origins, torch.Tensor) or origins.dim() != 2 or origins.shape[1] != 3:
        raise ValueError(f"origins must be a tensor [N,3], got "
                         f"{tuple(origins.shape) if isinstance(origins, torch.Tensor) else type(origins).__name__}.")
    n = origins.shape[0]
    offsets = _as_vectors(targets, n, origins) - origins
    if bool((offsets.norm(dim=-1) < _DEGENERATE_LENGTH).any()):
        raise ValueError("a camera origin coincides with its target; move the camera away from the point it looks at.")
    forward = F.normalize(offsets, dim=-1)
    side = torch.cross(_as_vectors(up, n, origins), forward, dim=-1)
    if bool((side.norm(dim=-1) < _DEGENERATE_LENGTH).any()):
        raise ValueError("a camera looks straight along the up vector; tilt it (e.g. pitch away from 0 or pi) "
                         "or choose another up vector.")
    right = -F.normalize(side, dim=-1)
    camera_up = F.normalize(torch.cross(forward, right, dim=-1), dim=-1)
    cam2world = torch.eye(4, dtype=origins.dtype, device=origins.device).repeat(n, 1, 1)
    cam2world[:, :3, :3] = torch.stack((right, camera_up, forward), dim=-1)
    cam2world[:, :3, 3] = origins
    return cam2world


def orbit_cam2world(yaw, pitch, radius, target=(0.0, 0.0, 0.0)):
    """EG3D LookAtPoseSampler cameras -> cam2world `[N,4,4]`.

    yaw (h), pitch (v): radians, floats or `[N]` (a float tensor yaw keeps its dtype and device);
    frontal is h = v = pi/2, which puts the camera at (0,0,radius). The camera sits on the sphere of
    `radius` about the world ORIGIN (as in EG3D, even when `target` is elsewhere, e.g. the FFHQ pivot
    (0,0,0.2)) and looks at `target`.
    theta = h, phi = arccos(1 - 2v/pi) (clamped off the poles); origin =
    (r sin(phi) cos(pi-theta), r cos(phi), r sin(phi) sin(pi-theta)).
    """
    floating = isinstance(yaw, torch.Tensor) and yaw.is_floating_point()
    yaw = torch.as_tensor(yaw, dtype=yaw.dtype if floating else torch.get_default_dtype()).reshape(-1)
    pitch = torch.as_tensor(pitch, dtype=yaw.dtype, device=yaw.device).reshape(-1)
    radius = torch.as_tensor(radius, dtype=yaw.dtype, device=yaw.device).reshape(-1)
    yaw, pitch, radius = torch.broadcast_tensors(yaw, pitch, radius)
    if bool((radius <= 0).any()):
        raise ValueError(f"radius must be > 0 (EG3D FFHQ uses 2.7), got {radius.tolist()}.")
    theta = yaw
    phi = torch.arccos((1 - 2 * pitch / math.pi).clamp(-1, 1)).clamp(1e-5, math.pi - 1e-5)
    origins = torch.stack((radius * phi.sin() * (math.pi - theta).cos(),
                           radius * phi.cos(),
                           radius * phi.sin() * (math.pi - theta).sin()), dim=-1)
    return look_at(origins, target)


def pixel_rays(cam2world, intrinsics, resolution):
    """World rays through the pixel centres of an R x R image.

    cam2world `[N,4,4]`, intrinsics `[N,3,3]` (normalised). Pixel (row i, column j) has
    (u, v) = ((j+0.5)/R, (i+0.5)/R) and ray index i*R + j.
    Returns origins `[N,R*R,3]` and unit directions `[N,R*R,3]`, in the dtype of cam2world.
    """
    validate_cameras(cam2world, intrinsics)
    if int(resolution) != resolution or resolution < 1:
        raise ValueError(f"resolution must be a positive integer (pixels per side), got {resolution!r}.")
    n, r = cam2world.shape[0], int(resolution)
    intrinsics = intrinsics.to(cam2world.dtype)
    centres = (torch.arange(r, dtype=cam2world.dtype, device=cam2world.device) + 0.5) / r
    v, u = torch.meshgrid(centres, centres, indexing="ij")
    u, v = u.reshape(1, -1), v.reshape(1, -1)
    fx, fy = intrinsics[:, 0, 0:1], intrinsics[:, 1, 1:2]
    cx, cy, skew = intrinsics[:, 0, 2:3], intrinsics[:, 1, 2:3], intrinsics[:, 0, 1:2]
    x = (u - cx + cy * skew / fy - skew * v / fy) / fx
    y = (v - cy) / fy
    camera_dirs = torch.stack((x, y, torch.ones_like(x)), dim=-1)
    directions = F.normalize(camera_dirs @ cam2world[:, :3, :3].transpose(1, 2), dim=-1)
    origins = cam2world[:, None, :3, 3].expand(n, r * r, 3)
    return origins, directions


def stratified_depths(batch, rays, near, far, count, generator=None, device=None, dtype=torch.float32):
    """Coarse depths `[N,M,count,1]`: linspace(near, far, count), jittered when a generator is given.

    With `generator` (a torch.Generator on `device`) every sample gets an independent uniform offset in
    [0, (far-near)/(count-1)) as in EG3D (the last one may pass `far`); without it the depths are exact
    (previews, tests).
    """
    if not 0 <= near < far:
        raise ValueError(f"need 0 <= near < far, got near={near!r}, far={far!r}.")
    if int(count) != count or count < 2:
        raise ValueError(f"count must be an integer >= 2 samples per ray, got {count!r}.")
    depths = torch.linspace(near, far, int(count), dtype=dtype, device=device)
    depths = depths.view(1, 1, -1, 1).expand(batch, rays, -1, 1)
    if generator is None:
        return depths.clone()
    jitter = torch.rand(depths.shape, generator=generator, dtype=dtype, device=device)
    return depths + jitter * ((far - near) / (count - 1))


def _smoothed_weights(weights):
    """EG3D's max-then-average filter of coarse weights `[R,K-1]` plus a 0.01 floor -> `[R,K-1]`."""
    widened = F.max_pool1d(weights.unsqueeze(1), kernel_size=2, stride=1, padding=1)
    return F.avg_pool1d(widened, kernel_size=2, stride=1).squeeze(1) + 0.01


def _inverse_cdf(bins, weights, count, generator, eps=1e-5):
    """Sample `count` depths per row from the piecewise-constant pdf `weights` `[R,B]` -> `[R,count]`.

    The cdf has B+1 knots placed at bins[:, :B+1] (EG3D/NeRF pass one bin more than needed; the last is
    unused). u is linspace(0,1) without a generator, uniform otherwise.
    """
    pdf = (weights + eps) / (weights + eps).sum(dim=-1, keepdim=True)
    cdf = torch.cat((torch.zeros_like(pdf[:, :1]), pdf.cumsum(dim=-1)), dim=-1)
    rows, knots = cdf.shape
    if generator is None:
        u = torch.linspace(0, 1, count, dtype=cdf.dtype, device=cdf.device).expand(rows, count).contiguous()
    else:
        u = torch.rand(rows, count, generator=generator, dtype=cdf.dtype, device=cdf.device)
    above = torch.searchsorted(cdf, u, right=True)
    below = (above - 1).clamp(min=0)
    above = above.clamp(max=knots - 1)
    cdf_below, cdf_above = cdf.gather(1, below), cdf.gather(1, above)
    bin_below, bin_above = bins.gather(1, below), bins.gather(1, above)
    span = cdf_above - cdf_below
    span = torch.where(span < eps, torch.ones_like(span), span)
    return bin_below + (u - cdf_below) / span * (bin_above - bin_below)


def importance_depths(depths, weights, count, generator=None):
    """Fine depths `[N,M,count,1]` drawn where the coarse pass found density (EG3D, no gradient).

    depths: coarse `[N,M,K,1]` (K >= 4); weights: their ray-marching weights `[N,M,K-1,1]`.
    Weights are smoothed (max_pool k2 pad1, avg_pool k2, +0.01), bins are the coarse midpoints and
    depths are drawn by inverse-CDF sampling of weights[1:-1]. Deterministic (u = linspace(0,1))
    without a generator. Unsorted when random.
    """
    if depths.dim() != 4 or depths.shape[-1] != 1 or depths.shape[2] < 4:
        raise ValueError(f"depths must have shape [N,M,K,1] with K >= 4, got {tuple(depths.shape)}.")
    n, m, k = depths.shape[:3]
    if weights.shape != (n, m, k - 1, 1):
        raise ValueError(f"weights must have shape [N,M,K-1,1] = {(n, m, k - 1, 1)}, got {tuple(weights.shape)}.")
    with torch.no_grad():
        flat_depths = depths.detach().reshape(n * m, k)
        smoothed = _smoothed_weights(weights.detach().reshape(n * m, k - 1))
        bins = 0.5 * (flat_depths[:, :-1] + flat_depths[:, 1:])
        samples = _inverse_cdf(bins, smoothed[:, 1:-1], int(count), generator)
    return samples.reshape(n, m, int(count), 1)
