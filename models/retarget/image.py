"""Retargeting one image with two layered backward warps (HALO's idea, found by optimisation, no weights).

1. Saliency S (weight-free, or the user's keep / drop masks on top of it).
2. Background field: a mesh warp that covers the whole source (border pinned), keeps salient and
   structured (edge) regions close to a similarity, keeps straight lines straight and lets the rest
   absorb the change of size (the weights are re-sampled at the warp's own positions a few times).
3. Salient field: the same solver with a much stronger similarity weight on S and, elsewhere, a
   pull towards the background field: salient content keeps its aspect ratio exactly enough while
   the two fields agree away from it, so the composite has no seam there.
4. Composite: `O = A' I(phi_s) + (1 - A') B(phi_b)`, A' the salient layer's alpha warped by phi_s and
   B the source with the salient layer removed by push-pull filling (what shows where the salient
   layer moved away from where the background field would have put it).
The result's warp record is a layered `FlowSet`: applied to masks, depth maps, latents or other frames
it composites them the same way; tools that read one field get the alpha-blend of the two.
"""
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ...kernels.consistency import dilate_mask
from ...kernels.filters import gaussian_blur
from ...kernels.mesh_warp import MeshTerms, dense_field, mesh_grid, mesh_jacobian, sample_on_edges, solve_mesh
from ...kernels.saliency import apply_user_masks, gradient_energy, saliency
from ...kernels.warp import pixel_grid, remap
from ..flow.field import FlowSet, WarpLayers

MAX_UPSCALE = 4
WORK_SIDE = 160  # the solves read saliency and structure at most this size (longer side)


@dataclass(frozen=True)
class RetargetSettings:
    """Weights of the two solves (relative to the uniform-scaling and bending terms)."""
    cells: int = 20                  # mesh cells along the longer target side
    saliency_weight: float = 6.0     # similarity weight of fully salient edges, background field
    structure_weight: float = 1.0    # similarity weight from gradient energy (edges, texture)
    uniform_weight: float = 0.05     # pull of every edge towards uniform scaling
    shear_weight: float = 1.0        # straight horizontal / vertical lines
    drop_weight: float = 4.0         # squeeze strength in the drop mask
    bending: float = 0.5
    rigidity: float = 60.0           # similarity weight of salient edges, salient field
    area_prior: float = 1.0          # pull of the salient scale to the background field's area scale
    follow_background: float = 0.1   # pull of the salient field to the background field away from the layer
    iterations: int = 2              # weight re-sampling passes of each field
    alpha_low: float = 0.6          # saliency below this is background only
    alpha_high: float = 0.85         # saliency above this is salient layer only


@dataclass
class RetargetMaps:
    """What the solves read `[1,1,h,w]`, on a copy of the source grid at most WORK_SIDE px.

    saliency: weights of the background field; layer: what the salient layer holds (the keep mask
    when one is given: it then defines the layer alone, else the saliency); layer_full: the layer at
    the source size (for the alpha of the composite).
    """
    saliency: torch.Tensor
    layer: torch.Tensor
    structure: torch.Tensor
    drop: torch.Tensor
    layer_full: torch.Tensor


@dataclass
class RetargetFields:
    """Mesh vertices `[2,R+1,C+1]` (source px) of both fields and the mesh geometry."""
    grid: object
    background: torch.Tensor
    salient: torch.Tensor


@dataclass
class RetargetResult:
    image: torch.Tensor            # [1,3,H',W']
    warp: FlowSet                  # one layered pair (target <- source), source_size = the source's
    warped_saliency: torch.Tensor  # [1,1,H',W'] saliency carried by the warp
    fields: RetargetFields


def offsets(coordinates):
    """Source coordinates `[N,2,H',W']` -> offsets from each target pixel (the FlowSet convention)."""
    return coordinates - pixel_grid(*coordinates.shape[-2:], coordinates.device, coordinates.dtype)


def check_target_size(source_size, target_size):
    """Error unless the target is at least 2x2 and at most MAX_UPSCALE x the source on each side."""
    (h, w), (th, tw) = source_size, target_size
    if min(th, tw) < 2:
        raise ValueError(f"target size {tw}x{th} is too small: width and height must be at least 2 pixels.")
    if th > MAX_UPSCALE * h or tw > MAX_UPSCALE * w:
        raise ValueError(f"target size {tw}x{th} is more than {MAX_UPSCALE}x the source {w}x{h}; retargeting "
                         f"changes aspect ratio, enlarge with an upscaler first and retarget after.")


def preferred_scale(source_size, target_size):
    """Backward scale salient content should keep: 1 (its size) when 1 lies between the two axis scales
    of uniform scaling, else the axis scale nearest to 1 (the object shrinks or grows with the frame)."""
    forward = sorted(((target_size[0] - 1) / (source_size[0] - 1), (target_size[1] - 1) / (source_size[1] - 1)))
    return 1.0 / min(max(1.0, forward[0]), forward[1])


def work_copy(batch):
    """`[N,C,H,W]` area-resampled so the longer side is at most WORK_SIDE (unchanged when smaller)."""
    h, w = batch.shape[-2:]
    scale = min(1.0, WORK_SIDE / max(h, w))
    return batch if scale == 1.0 else F.interpolate(batch, size=(max(2, round(h * scale)), max(2, round(w * scale))),
                                                    mode="area")


def source_maps(image, keep=None, drop=None, saliency_map=None):
    """RetargetMaps for image `[1,3,H,W]`, optional masks `[1,1,H,W]` and a precomputed saliency `[1,1,H,W]`."""
    work = work_copy(image)
    base = saliency(work) if saliency_map is None else work_copy(saliency_map)
    keep_work, drop_work = (None if m is None else work_copy(m.clamp(0, 1)) for m in (keep, drop))
    weights = apply_user_masks(base, keep_work, drop_work)
    if keep is None:
        layer = weights
        layer_full = F.interpolate(layer, size=image.shape[-2:], mode="bilinear", align_corners=False)
    else:
        layer = apply_user_masks(torch.zeros_like(base), keep_work, drop_work)
        layer_full = apply_user_masks(torch.zeros_like(keep), keep, drop)
    drop_map = torch.zeros_like(base) if drop is None else drop_work
    return RetargetMaps(weights, layer, gradient_energy(work), drop_map, layer_full)


def _background_terms(maps, grid, vertices, settings, reference=None, reference_weight=None):
    samples = sample_on_edges(torch.cat((maps.saliency, maps.structure, maps.drop), 1), grid, vertices)
    similarity, uniform, squeeze, shear = [], [], [], []
    for edge in samples:
        salient, structure, drop = edge[0], edge[1], edge[2]
        keep = 1 - drop
        similarity.append((settings.saliency_weight * salient + settings.structure_weight * structure) * keep)
        uniform.append(torch.full_like(salient, settings.uniform_weight))
        squeeze.append(settings.drop_weight * drop)
        shear.append(torch.full_like(salient, settings.shear_weight))
    return MeshTerms(tuple(similarity), tuple(uniform), tuple(squeeze), tuple(shear), settings.bending,
                     preferred_scale(grid.source_size, grid.target_size), reference=reference,
                     reference_weight=reference_weight)


def solve_background(maps, grid, settings, reference=None, reference_weight=None):
    """Background field vertices `[2,R+1,C+1]`; with a reference (previous frame), pulled towards it."""
    vertices = grid.uniform_vertices()
    for _ in range(settings.iterations):
        terms = _background_terms(maps, grid, vertices, settings, reference, reference_weight)
        vertices, _ = solve_mesh(grid, terms)
    return vertices


def _at_vertices(work_map, grid, vertices):
    """`[1,1,h,w]` work-size map at the vertices' source positions -> `[R+1,C+1]` float64."""
    scale = vertices.new_tensor([work_map.shape[-1] / grid.source_size[1], work_map.shape[-2] / grid.source_size[0]])
    coords = (vertices + 0.5) * scale.view(2, 1, 1) - 0.5
    return remap(work_map, coords[None].float(), padding="border")[0][0, 0].double()


def _salient_terms(rigid, grid, vertices, settings):
    """Rigid (similarity, no shear) where `rigid` `[1,1,h,w]` is set; weak bending and uniform pull
    elsewhere, no coupling to the background's shear and structure terms: the layer may slide against
    its surroundings."""
    similarity, uniform, squeeze, shear = [], [], [], []
    for edge in sample_on_edges(rigid, grid, vertices):
        layer = edge[0]
        similarity.append(settings.rigidity * layer)
        uniform.append(torch.full_like(layer, 0.01 * settings.uniform_weight))
        squeeze.append(torch.zeros_like(layer))
        shear.append(torch.zeros_like(layer))
    return MeshTerms(tuple(similarity), tuple(uniform), tuple(squeeze), tuple(shear), 0.1 * settings.bending,
                     preferred_scale(grid.source_size, grid.target_size), pin_border=False)


def solve_salient(maps, grid, background, settings, reference=None, reference_weight=None):
    """Salient field vertices: rigid on the salient layer, following `background` (and `reference`) elsewhere.

    Rigid edges and free vertices are found at the field's own source positions, re-sampled each pass
    (the salient layer takes more target pixels than the background field gave it). Its scale is pulled
    to the area scale the background field gave the layer (sqrt of the Jacobian's determinant, averaged
    over the layer): the layer changes shape back to its own aspect ratio but covers about as much of
    the background as before, so little background content disappears under it. The rigid part is
    the layer grown by one mesh cell, so cells cut by the layer's outline are rigid too; vertices within
    two cells are only weakly pulled, so the layer's size and place come from its own rigidity, the
    scale prior and the background field on average.
    """
    cell = max(1, round(max(maps.layer.shape[-2] / grid.rows, maps.layer.shape[-1] / grid.cols)))
    rigid = dilate_mask(maps.layer, cell)
    surroundings = dilate_mask(maps.layer, 2 * cell)
    vertices = background
    jacobian = mesh_jacobian(background, grid)
    inside = _at_vertices(maps.layer, grid, background)
    area_scale = 0.5 * (jacobian[0, 0].clamp_min(1e-3) * jacobian[1, 1].clamp_min(1e-3)).log()
    preferred = ((inside * area_scale).sum() / inside.sum().clamp_min(1e-6)).exp().item()
    for _ in range(settings.iterations):
        terms = _salient_terms(rigid, grid, vertices, settings)
        terms.preferred_scale, terms.scale_prior = preferred, settings.area_prior * inside.sum().item()
        near = _at_vertices(surroundings, grid, vertices)
        pull = settings.follow_background * (1 - near) + 0.02
        target = background
        if reference is not None:
            target = (pull * background + reference_weight * reference) / (pull + reference_weight)
            pull = pull + reference_weight
        terms.reference, terms.reference_weight = target, pull
        vertices, _ = solve_mesh(grid, terms)
    return vertices


def salient_alpha(saliency_map, settings):
    """Soft salient-layer alpha `[N,1,H,W]`: smoothstep of saliency between alpha_low and alpha_high."""
    t = ((saliency_map - settings.alpha_low) / (settings.alpha_high - settings.alpha_low)).clamp(0, 1)
    return t * t * (3 - 2 * t)


def background_known(alpha):
    """`[N,1,H,W]` 1 where the background layer is the source, falling to 0 over the salient layer `alpha`
    grown by 1 % of the longer side (its soft edge goes into the hole, not into the background)."""
    small = work_copy(alpha)
    radius = max(1, round(0.01 * max(small.shape[-2:])))
    hole = dilate_mask((small > 0.5).float(), radius)
    hole = gaussian_blur(hole, sigma=radius).clamp(0, 1) * hole
    return 1 - F.interpolate(hole, size=alpha.shape[-2:], mode="bilinear", align_corners=False)


def layered_warp(maps, fields, settings):
    """The two fields at full target size, with the layer's alpha, as one layered FlowSet pair."""
    size = fields.grid.target_size
    salient, background = dense_field(fields.salient, size), dense_field(fields.background, size)
    source_alpha = salient_alpha(maps.layer_full, settings)
    alpha = remap(source_alpha, salient, padding="border")[0]
    blended = alpha * salient + (1 - alpha) * background
    layers = WarpLayers(offsets(salient), offsets(background), alpha, background_known(source_alpha))
    return FlowSet(offsets(blended), pairs=[(0, 0)], num_frames=1, source_size=fields.grid.source_size, layers=layers)


def warp_map(work_map, warp):
    """A work-size source map `[1,1,h,w]` carried by the blended field of a one-pair warp -> `[1,1,H',W']`."""
    return FlowSet(warp.forward, pairs=[(0, 0)], num_frames=1, source_size=warp.source_size).warp(work_map)[0]


def render(image, maps, fields, settings):
    """Composite both layers at the target size -> RetargetResult."""
    warp = layered_warp(maps, fields, settings)
    output = warp.warp(image)[0].clamp(0, 1)
    warped_saliency = warp_map(maps.saliency, warp)
    return RetargetResult(output, warp, warped_saliency, fields)


def retarget_image(image, target_size, keep=None, drop=None, settings=None, saliency_map=None):
    """Retarget RGB `[1,3,H,W]` in [0,1] to `target_size` (H', W') -> RetargetResult.

    keep / drop: optional `[1,1,H,W]` masks in [0,1] (keep: stays undistorted; drop: squeezed first).
    """
    settings = settings or RetargetSettings()
    check_target_size(image.shape[-2:], target_size)
    maps = source_maps(image, keep, drop, saliency_map)
    grid = mesh_grid(image.shape[-2:], target_size, settings.cells)
    background = solve_background(maps, grid, settings)
    fields = RetargetFields(grid, background, solve_salient(maps, grid, background, settings))
    return render(image, maps, fields, settings)



def stack_warps(warps):
    """Layered one-pair FlowSets (one per frame, same sizes) -> one FlowSet of pairs (t, t)."""
    layers = WarpLayers(*(torch.cat([getattr(w.layers, name) for w in warps]) for name in
                          ("salient", "background", "alpha", "known")))
    n = len(warps)
    return FlowSet(torch.cat([w.forward for w in warps]), pairs=[(t, t) for t in range(n)], num_frames=n,
                   source_size=warps[0].source_size, layers=layers)
