"""Two-pass importance renderer of tri-plane fields (EG3D), with In-N-Out's InD/OOD composite.

Pass 1 marches `coarse` stratified samples through the in-distribution (InD) field; pass 2 draws `fine`
importance samples from its weights; both sets are merged and sorted. The InD field is marched alone, or,
with an OOD field, both fields are queried at exactly the same sorted samples and composited. Everything
is differentiable w.r.t. planes, decoders and codes (importance depths carry no gradient).
"""
from dataclasses import dataclass
from typing import Optional

import torch

from ...kernels.rays import importance_depths, pixel_rays, stratified_depths
from ...kernels.checks import validate_planes
from ...kernels.triplane import sample_triplane
from ...kernels.volume import composite_march, march
from .decoders import OODDecoder, OSGDecoder

__all__ = ["RenderSettings", "TriplaneField", "OODField", "RayOutputs", "RenderOutputs",
           "render_rays", "render", "validate_planes"]


@dataclass
class RenderSettings:
    """Sampling of the renderer (EG3D FFHQ defaults). Depths in world units along unit directions.

    ray_chunk bounds memory: at most this many rays (over the whole batch) are rendered at once.
    Jitter is controlled by the generator passed to `render`/`render_rays` (none -> deterministic).
    """
    near: float = 2.25
    far: float = 3.3
    coarse: int = 48
    fine: int = 48
    box_warp: float = 1.0
    ray_chunk: int = 8192

    def __post_init__(self):
        if not 0 <= self.near < self.far:
            raise ValueError(f"need 0 <= near < far, got near={self.near}, far={self.far}.")
        if self.coarse < (4 if self.fine > 0 else 2) or self.fine < 0:
            raise ValueError(f"need coarse >= 4 (>= 2 without fine samples) and fine >= 0, "
                             f"got coarse={self.coarse}, fine={self.fine}.")
        if not self.box_warp > 0:
            raise ValueError(f"box_warp must be > 0 (side of the tri-plane box in world units), got {self.box_warp}.")
        if self.ray_chunk < 1:
            raise ValueError(f"ray_chunk must be >= 1 ray, got {self.ray_chunk}.")


@dataclass
class TriplaneField:
    """In-distribution field: planes `[N,3,C,H,W]` (or `[1,...]`, shared) decoded by an OSGDecoder."""
    planes: torch.Tensor
    decoder: OSGDecoder

    def query(self, points, box_warp=1.0):
        """points `[N,M,3]` -> raw density `[N,M,1]`, features `[N,M,C']`."""
        return self.decoder(sample_triplane(self.planes, points, box_warp))


@dataclass
class OODField:
    """Out-of-distribution field: planes `[N or 1,3,C,H,W]`, an OODDecoder and per-frame codes `[N,code]`."""
    planes: torch.Tensor
    decoder: OODDecoder
    codes: torch.Tensor

    def query(self, points, box_warp=1.0):
        """points `[N,M,3]` -> raw density `[N,M,1]`, features `[N,M,C']`, blend `[N,M,1]`."""
        return self.decoder(sample_triplane(self.planes, points, box_warp), self.codes)


@dataclass
class RayOutputs:
    """Per-ray results `[N,M,...]`; features in [-1,1] (EG3D's 2C - 1). The ind_features, ood_* and blend
    entries are None without an OOD field: ind_features is the InD field marched alone on the same
    samples (b := 0, the OOD removal), ood_* the OOD field marched alone, blend `[N,M,K,1]` the b of every
    sorted sample, blend_max `[N,M,1]` its maximum along the ray."""
    features: torch.Tensor
    depth: torch.Tensor
    opacity: torch.Tensor
    ind_features: Optional[torch.Tensor] = None
    ood_features: Optional[torch.Tensor] = None
    ood_depth: Optional[torch.Tensor] = None
    ood_opacity: Optional[torch.Tensor] = None
    blend: Optional[torch.Tensor] = None
    blend_max: Optional[torch.Tensor] = None


@dataclass
class RenderOutputs:
    """Images: image `[N,C,R,R]` in [-1,1], depth and opacity `[N,1,R,R]`; with an OOD field also
    ind_image (InD alone: the OOD removal), ood_image/ood_depth/ood_opacity (OOD alone), blend
    `[N,R*R,K,1]` and blend_max `[N,1,R,R]`."""
    image: torch.Tensor
    depth: torch.Tensor
    opacity: torch.Tensor
    ind_image: Optional[torch.Tensor] = None
    ood_image: Optional[torch.Tensor] = None
    ood_depth: Optional[torch.Tensor] = None
    ood_opacity: Optional[torch.Tensor] = None
    blend: Optional[torch.Tensor] = None
    blend_max: Optional[torch.Tensor] = None


def _query_along(field, origins, directions, depths, box_warp):
    """Query `field` at origins + depths * directions: rays `[N,M,3]`, depths `[N,M,K,1]` -> outputs `[N,M,K,*]`."""
    n, m, k = depths.shape[:3]
    points = (origins.unsqueeze(2) + depths * directions.unsqueeze(2)).reshape(n, m * k, 3)
    return tuple(out.reshape(n, m, k, -1) for out in field.query(points, box_warp))


def _sorted_samples(depths, *values):
    """Sort samples by depth along dim 2 (stable); depths `[N,M,K,1]`, values `[N,M,K,*]`."""
    order = depths.argsort(dim=2, stable=True)
    return [x.gather(2, order.expand(*order.shape[:3], x.shape[-1])) for x in (depths, *values)]


def _ind_samples(field, origins, directions, settings, generator):
    """Coarse + importance samples of the InD field, sorted -> depths `[N,M,K,1]`, density, features."""
    n, m = origins.shape[:2]
    depths = stratified_depths(n, m, settings.near, settings.far, settings.coarse, generator,
                               device=origins.device, dtype=origins.dtype)
    density, features = _query_along(field, origins, directions, depths, settings.box_warp)
    if settings.fine == 0:
        return depths, density, features
    weights = march(depths, density, features).weights
    fine = importance_depths(depths, weights, settings.fine, generator)
    fine_density, fine_features = _query_along(field, origins, directions, fine, settings.box_warp)
    return _sorted_samples(torch.cat((depths, fine), dim=2), torch.cat((density, fine_density), dim=2),
                           torch.cat((features, fine_features), dim=2))


def _check_rays(origins, directions):
    if not isinstance(origins, torch.Tensor) or origins.dim() != 3 or origins.shape[-1] != 3 \
            or not isinstance(directions, torch.Tensor) or directions.shape != origins.shape:
        raise ValueError("origins and directions must be tensors of one shape [N,M,3] (unit directions).")


def render_rays(field, origins, directions, settings=None, ood=None, generator=None):
    """Render rays through `field` (TriplaneField), optionally composited with `ood` (OODField).

    origins, directions: `[N,M,3]` (unit directions). Returns RayOutputs `[N,M,...]`. Differentiable;
    callers validate planes once (`validate_planes`) — this per-batch path skips the finiteness check.
    """
    settings = settings or RenderSettings()
    _check_rays(origins, directions)
    depths, density, features = _ind_samples(field, origins, directions, settings, generator)
    if ood is None:
        result = march(depths, density, features)
        return RayOutputs(2 * result.features - 1, result.depth, result.opacity)
    ood_density, ood_features, blend = _query_along(ood, origins, directions, depths, settings.box_warp)
    result = composite_march(depths, density, features, ood_density, ood_features, blend)
    ind_only, ood_only = march(depths, density, features), march(depths, ood_density, ood_features)
    return RayOutputs(2 * result.features - 1, result.depth, result.opacity,
                      ind_features=2 * ind_only.features - 1,
                      ood_features=2 * ood_only.features - 1, ood_depth=ood_only.depth,
                      ood_opacity=ood_only.opacity, blend=blend, blend_max=blend.amax(dim=2))


def _ray_images(chunks, name, n, r):
    """Concatenate per-chunk `[N,m,C]` along rays and reshape to images `[N,C,R,R]` (rows = i)."""
    values = torch.cat([getattr(chunk, name) for chunk in chunks], dim=1)
    return values.transpose(1, 2).reshape(n, -1, r, r)


def _check_field_batches(field, ood, n):
    validate_planes(field.planes, "planes")
    if field.planes.shape[0] not in (1, n):
        raise ValueError(f"planes batch ({field.planes.shape[0]}) must be 1 or the camera batch ({n}).")
    if ood is not None:
        validate_planes(ood.planes, "OOD planes")
        if ood.planes.shape[0] not in (1, n) or ood.codes.shape[0] != n:
            raise ValueError(f"OOD planes batch ({ood.planes.shape[0]}) must be 1 or {n}, and there must be one "
                             f"OOD code per camera (got {ood.codes.shape[0]} codes for {n} cameras).")


def render(field, cam2world, intrinsics, resolution, settings=None, ood=None, generator=None, progress=None):
    """Render R x R images of `field` (and the composite with `ood`) seen by cameras `[N,4,4]`, `[N,3,3]`.

    Rays are rendered in chunks of at most settings.ray_chunk rays; `progress(done_chunks, total_chunks)`
    is called after each chunk and may raise to cancel. Returns RenderOutputs. Differentiable.
    """
    settings = settings or RenderSettings()
    origins, directions = pixel_rays(cam2world, intrinsics, resolution)
    n, rays = origins.shape[:2]
    _check_field_batches(field, ood, n)
    step = max(1, settings.ray_chunk // n)
    starts = range(0, rays, step)
    chunks = []
    for done, start in enumerate(starts, 1):
        chunks.append(render_rays(field, origins[:, start:start + step], directions[:, start:start + step],
                                  settings, ood, generator))
        if progress is not None:
            progress(done, len(starts))
    r = int(resolution)
    images = {name: _ray_images(chunks, key, n, r) for name, key in
              (("image", "features"), ("depth", "depth"), ("opacity", "opacity"))}
    if ood is None:
        return RenderOutputs(**images)
    return RenderOutputs(**images, ind_image=_ray_images(chunks, "ind_features", n, r),
                         ood_image=_ray_images(chunks, "ood_features", n, r),
                         ood_depth=_ray_images(chunks, "ood_depth", n, r),
                         ood_opacity=_ray_images(chunks, "ood_opacity", n, r),
                         blend=torch.cat([chunk.blend for chunk in chunks], dim=1),
                         blend_max=_ray_images(chunks, "blend_max", n, r))
