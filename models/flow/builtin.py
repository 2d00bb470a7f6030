"""The built-in, weight-free optical-flow estimator (batched torch, CPU or GPU).

A coarse-to-fine method in the spirit of DIS (Kroeger et al., "Fast Optical Flow using Dense Inverse
Search", 2016), written as a few large tensor operations per pyramid level:

1. Patch inverse search: every overlapping `patch_size`² patch of image 1 (stride `patch_stride`) finds
   the translation that best matches image 2 with inverse-compositional Lucas-Kanade on mean-normalised
   intensities (robust to additive brightness changes). All patches of all pairs are solved together:
   the template side (patches, gradients, inverse Hessians) is built once per level with `unfold`; each
   iteration is one `grid_sample` of every patch at its current translation and one weighted sum.
   Each patch keeps the best translation it has visited (no farther than a patch width from its
   start). `propagations` times per level, every patch also tries the best translations of its
   neighbours on the patch grid (left and above, then right and below, alternating) and keeps the
   best: a parallel form of DIS's spatial propagation, which carries good matches into patches that
   lost track (large displacements, low texture, illumination changes). On the levels coarser than
   the finest, the search and refinement see images partly replaced by their local contrast
   normalisation (`contrast_normalisation`), so exposure, gamma and shading changes between the
   frames do not mislead the coarse matching.
2. Densification: each pixel's flow is the average of the translations of the patches covering it,
   weighted by 1 / |photometric residual| of that pixel under each patch (`fold`), so a pixel takes the
   motion of the patches that actually explain it (sharp motion boundaries, occlusions down-weighted).
3. Variational refinement: a few robust re-weighting iterations of a linearised energy with a
   normalised brightness-constancy term, a gradient-constancy term (robust to illumination changes),
   both Charbonnier-penalised, and a Charbonnier (TV-like) smoothness term, weakened across image
   edges (`edge_awareness`) so motion boundaries do not bleed into the background; pixels whose
   target leaves the frame have no data term and take their neighbours' flow. Each iteration solves
   the linear system with a few red-black SOR sweeps vectorised over the whole image.

The flow of a level initialises the next finer level; the finest processed level (`finest_level`,
e.g. half resolution for "medium") is bilinearly upsampled to the input size. With
`grad_iterations > 0` the last refinement iterations of the finest level are differentiable with
respect to both images (everything before them runs without a graph).
"""
import functools
import math
from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F

from ...kernels.filters import blur_matrix, gaussian_taps
from ...kernels.warp import backward_warp, resize_flow

# Luma weights (ITU-R BT.601) for RGB -> gray.
_LUMA = (0.299, 0.587, 0.114)
# Tikhonov term added to each patch Hessian (per patch pixel, intensities in [0,1]): keeps the
# Lucas-Kanade step finite on flat patches without biasing textured ones.
_HESSIAN_REGULARISER = 1e-6
# Charbonnier epsilons of the refinement's data terms and of its smoothness term (flow change in
# px/px), and the zeta of the normalised data terms. A smoothness epsilon well below 1e-2 makes
# smooth regions so stiff that the SOR sweeps barely move their overall (sub-pixel) offset.
_CHARBONNIER_EPS = 1e-3
_SMOOTHNESS_EPS = 1e-2
_DATA_NORMALISER_ZETA = 4e-4
# Over-relaxation factor of the red-black SOR sweeps.
_SOR_OMEGA = 1.6
# Added to the mean gradient magnitude that normalises the edge-aware smoothness (flat images).
_EDGE_MEAN_FLOOR = 1e-4
# Local contrast normalisation: the std of the normalised image (typical of natural images, so the
# intensity constants above keep their meaning) and the std below which contrast is not stretched
# further (sensor noise level).
_NORMALISED_CONTRAST = 0.1
_CONTRAST_FLOOR = 0.02
# Levels whose shorter side is under this many window sigmas are not normalised: there the "local"
# window spans the whole image and its border padding decides the result.
_CONTRAST_MIN_WINDOWS = 6
# The pyramid's coarsest level has its longer side near this many pixels (more levels for bigger
# inputs), but it is at least level 4 (1/16 scale) so motions of ~60 px at any size are reachable.
_COARSEST_SIDE_PX = 64
_MIN_COARSEST_LEVEL = 3
# Levels are only added while their shorter side keeps at least this many pixels.
_MIN_LEVEL_SIDE_PX = 4
# The finest level processed keeps at least this shorter side (6 patches): on tiny frames (e.g. the
# LR input of a 4x upscaler) half resolution leaves too few patches, so such frames go finer.
_MIN_FINEST_SIDE_PX = 48


@dataclass(frozen=True)
class FlowSettings:
    """Parameters of the built-in estimator (see the module docstring for the steps).

    finest_level: last pyramid level processed (0 = input resolution, 1 = half, 2 = quarter); the
        flow is bilinearly upsampled from there. The main speed/accuracy knob. Small inputs go finer
        so that the last level keeps a shorter side of at least 48 px.
    patch_size: side of the search patches in pixels of each level.
    patch_stride / finest_patch_stride: distance between patch origins on the coarser levels / on the
        finest level (smaller = more overlap, more accurate densification, slower).
    first_patch_iterations / patch_iterations / finest_patch_iterations: Lucas-Kanade iterations on
        the first level processed (which starts from zero flow or the given initial flow), on the
        levels between it and the finest, and on the finest level.
    propagations: spatial-propagation rounds per level (patches try their neighbours' translations).
    refine_iterations, refine_sweeps: robust re-weighting iterations of the variational refinement
        on the coarser levels, and SOR sweeps per re-weighting.
    finest_refine_iterations, finest_refine_sweeps: the same on the finest level.
    smoothness: weight of the (TV-like) flow smoothness term.
    edge_awareness: how much image edges weaken the smoothness term (0 = not at all).
    gradient_constancy: weight of the gradient-constancy data term (illumination robustness).
    brightness_constancy: weight of the brightness-constancy data term.
    min_residual: residual (intensity in [0,1]) below which densification weights stop growing.
    contrast_normalisation: on the levels coarser than the finest (and at least 6 windows high), how
        much of each image is replaced by its locally contrast-normalised version (`local_contrast`,
        window `contrast_sigma` px of the level): 0 = none, 1 = all. Makes the coarse matching robust
        to exposure, gamma and shading changes; the finest level keeps the raw images, whose fine
        detail is less noisy.
    coarse_search_damping: Levenberg-Marquardt damping of the patch search on the levels coarser than
        the finest (per pixel, squared intensity, added to each patch's Hessian diagonal): weakly
        textured patches stay near the coarser level's flow instead of following noise or compression
        blocks that the contrast normalisation stretches; textured patches move as before.
    """
    finest_level: int = 1
    patch_size: int = 8
    patch_stride: int = 3
    finest_patch_stride: int = 4
    first_patch_iterations: int = 8
    patch_iterations: int = 5
    finest_patch_iterations: int = 2
    propagations: int = 2
    refine_iterations: int = 3
    refine_sweeps: int = 3
    finest_refine_iterations: int = 3
    finest_refine_sweeps: int = 3
    smoothness: float = 20.0
    edge_awareness: float = 0.3
    gradient_constancy: float = 10.0
    brightness_constancy: float = 5.0
    min_residual: float = 3e-4
    contrast_normalisation: float = 0.5
    contrast_sigma: float = 4.0
    coarse_search_damping: float = 3e-4


PRESETS = {
    # search and refine down to quarter resolution, upsample x4
    "fast": FlowSettings(finest_level=2),
    # down to half resolution, upsample x2 (the default)
    "medium": FlowSettings(),
    # down to full resolution
    "high": FlowSettings(finest_level=0),
}


def luminance(images):
    """`[N,3,H,W]` RGB or `[N,1,H,W]` gray in [0,1] -> `[N,1,H,W]` float32 gray."""
    images = images.float()
    if images.shape[1] == 1:
        return images
    r, g, b = _LUMA
    return r * images[:, 0:1] + g * images[:, 1:2] + b * images[:, 2:3]


def level_sizes(height, width, finest_level, coarsest_level=None):
    """Sizes `(h, w)` of pyramid levels 0..coarsest (each level halves the previous one, rounding up).

    The coarsest level is chosen automatically (see `_COARSEST_SIDE_PX`) unless given, and is never
    below `finest_level`; levels whose shorter side would drop under `_MIN_LEVEL_SIDE_PX` are left
    out, so tiny images are processed at the smallest level that remains.
    """
    if coarsest_level is None:
        coarsest_level = max(_MIN_COARSEST_LEVEL, round(math.log2(max(height, width) / _COARSEST_SIDE_PX)))
    sizes = [(height, width)]
    while len(sizes) <= max(coarsest_level, finest_level):
        h, w = (sizes[-1][0] + 1) // 2, (sizes[-1][1] + 1) // 2
        if min(h, w) < _MIN_LEVEL_SIDE_PX:
            break
        sizes.append((h, w))
    return sizes


def _downsample(image, size):
    """Area-average `[N,C,H,W]` to `size` (pixel-area convention, like `resize_flow`)."""
    return F.interpolate(image, size=size, mode="area")


def _gradients(image):
    """Central differences of `[N,C,H,W]` (replicated border) -> (d/dx, d/dy), each `[N,C,H,W]`."""
    padded = F.pad(image, (1, 1, 1, 1), mode="replicate")
    grad_x = (padded[:, :, 1:-1, 2:] - padded[:, :, 1:-1, :-2]) * 0.5
    grad_y = (padded[:, :, 2:, 1:-1] - padded[:, :, :-2, 1:-1]) * 0.5
    return grad_x, grad_y


# ------------------------------------------------------------------------------ patch inverse search
@functools.lru_cache(maxsize=64)
def _patch_layout(height, width, patch_size, stride, device):
    """Patch grid covering a `(height, width)` level.

    Returns (padded_height, padded_width, base) where the image must be padded (bottom/right) to the
    padded size so the grid of `patch_size` patches with `stride` tiles it exactly, and `base`
    `[K,P,2]` holds the grid_sample coordinates (align_corners=True, normalised to the padded image)
    of the K = patch_size² pixels of each of the P patches (row-major over the grid).
    """
    rows = max(1, math.ceil((height - patch_size) / stride) + 1)
    cols = max(1, math.ceil((width - patch_size) / stride) + 1)
    padded_h, padded_w = (rows - 1) * stride + patch_size, (cols - 1) * stride + patch_size
    offsets = torch.arange(patch_size, device=device, dtype=torch.float32)
    xs = (torch.arange(cols, device=device) * stride).float()
    ys = (torch.arange(rows, device=device) * stride).float()
    x = offsets.view(1, -1, 1, 1) + xs.view(1, 1, 1, -1)                  # [1,kx,1,cols]
    y = offsets.view(-1, 1, 1, 1) + ys.view(1, 1, -1, 1)                  # [ky,1,rows,1]
    x = (x * (2.0 / (padded_w - 1)) - 1).expand(patch_size, patch_size, rows, cols)
    y = (y * (2.0 / (padded_h - 1)) - 1).expand(patch_size, patch_size, rows, cols)
    base = torch.stack((x, y), -1).reshape(patch_size * patch_size, rows * cols, 2)
    return padded_h, padded_w, base


def patch_inverse_search(image1, image2, flow, patch_size, stride, iterations, min_residual,
                         propagations=0, damping=_HESSIAN_REGULARISER):
    """One pyramid level of dense inverse search.

    image1, image2: `[N,1,h,w]` gray of this level; flow: `[N,2,h,w]` initial flow (pixels).
    Every patch keeps the best translation it has visited (lowest mean-normalised SSD, no farther
    than a patch width from where it started); `propagations` times, spread evenly over the
    iterations, each patch also tries the best translations of two neighbours on the patch grid
    (left and above, then right and below, alternating) and keeps the best (a parallel form of
    DIS's spatial propagation); the Lucas-Kanade iterations go on from there. `damping` (per pixel,
    squared intensity) is added to the diagonal of every patch's Hessian (Levenberg-Marquardt).
    Returns the densified flow `[N,2,h,w]` in pixels of this level. Not differentiable (it writes
    into preallocated tensors): call it under `torch.no_grad()`.
    """
    n, _, height, width = image1.shape
    padded_h, padded_w, base = _patch_layout(height, width, patch_size, stride, image1.device)
    grid = ((padded_h - patch_size) // stride + 1, (padded_w - patch_size) // stride + 1)
    pad = (0, padded_w - width, 0, padded_h - height)
    columns = _unfold_patches(F.pad(torch.cat((image1, *_gradients(image1)), 1), pad, mode="replicate"),
                              patch_size, stride)                            # [N,3,K,P]
    template = columns[:, 0]                                                  # [N,K,P]
    scale = image1.new_tensor([2.0 / (padded_w - 1), 2.0 / (padded_h - 1)])
    gain = _inverse_compositional_gain(columns[:, 1], columns[:, 2], scale, damping)  # [N,2,K,P]
    target = F.pad(image2, pad, mode="replicate")
    start = (_patch_centre_values(F.pad(flow, pad, mode="replicate"), patch_size, stride)
             * scale.view(1, 2, 1)).transpose(1, 2).contiguous()              # [N,P,2] normalised
    reach = (patch_size * scale) ** 2

    def evaluate(uv):
        """Translations uv `[N,C*P,2]` (C candidates per patch, candidate-major) -> (differences
        warped - template `[N,K,C*P]`, cost `[N,C*P]`: the SSD of the mean-normalised patches)."""
        candidates = uv.shape[1] // base.shape[1]
        coords = (base[:, None] + uv.view(n, 1, candidates, -1, 2)).view(n, num_pixels, -1, 2)
        difference = F.grid_sample(target, coords, mode="bilinear", padding_mode="border", align_corners=True)
        difference = difference.view(n, num_pixels, candidates, -1).sub_(template[:, :, None]).view(n, num_pixels, -1)
        # the difference's mean is only the brightness change, so this difference of sums is exact
        # enough in float32 (the centred form costs two more passes over [N,K,P])
        return difference, (difference * difference).sum(1) - difference.sum(1).square() / num_pixels

    num_pixels = patch_size * patch_size
    difference, cost = evaluate(start)
    best = _PatchState(start, cost)
    translation = origin = start
    checkpoints = [round((i + 1) * iterations / (propagations + 1)) for i in range(propagations)]
    for iteration in range(1, iterations + 1):
        # a patch's gain sums to 0 over its pixels: the update needs no mean-normalised difference
        translation = translation - (gain * difference[:, None]).sum(2).transpose(1, 2)
        difference, cost = evaluate(translation)
        far = ((translation - origin).square() / reach).sum(-1) > 1
        best.keep_better(translation, cost.masked_fill_(far, float("inf")))
        if iteration in checkpoints:
            candidates = _neighbour_translations(best.translation, grid, checkpoints.index(iteration) % 2)
            best.keep_best_of(candidates, evaluate(candidates)[1])
            translation = origin = best.translation
            difference = evaluate(translation)[0]
    if iterations not in checkpoints:
        difference = evaluate(best.translation)[0]
    error = difference - difference.mean(1, keepdim=True)
    translation = (best.translation / scale).transpose(1, 2)                    # [N,2,P] pixels
    return _densify(translation, error, (padded_h, padded_w), patch_size, stride,
                    min_residual)[..., :height, :width]


def _unfold_patches(image, patch_size, stride):
    """The `patch_size`² patches of `[N,C,H,W]` (tiled exactly with `stride`) -> `[N,C,K,P]` (K pixels
    row-major, P patches row-major); `F.unfold` as one strided copy, which is faster on CPU."""
    n, channels = image.shape[:2]
    patches = image.unfold(2, patch_size, stride).unfold(3, patch_size, stride)  # [N,C,rows,cols,k,k]
    return patches.permute(0, 1, 4, 5, 2, 3).reshape(n, channels, patch_size * patch_size, -1)


@dataclass
class _PatchState:
    """The best translation `[N,P,2]` each patch has visited and its cost `[N,P]`."""
    translation: torch.Tensor
    cost: torch.Tensor

    def keep_better(self, translation, cost):
        """Take the translations `[N,P,2]` whose cost `[N,P]` is lower."""
        better = cost < self.cost
        self.translation = torch.where(better[..., None], translation, self.translation)
        self.cost = torch.minimum(cost, self.cost)

    def keep_best_of(self, translation, cost):
        """The same for C candidates per patch: translations `[N,C*P,2]`, cost `[N,C*P]`
        (candidate-major)."""
        n, num_patches = self.cost.shape
        choice = cost.view(n, -1, num_patches).argmin(1)                          # [N,P]
        index = choice * num_patches + torch.arange(num_patches, device=choice.device)
        self.keep_better(translation.gather(1, index[..., None].expand(-1, -1, 2)), cost.gather(1, index))


def _neighbour_translations(translation, grid, backward):
    """The translations `[N,P,2]` of the patches left of and above each patch on the `grid`
    (rows, cols) of patches, or right of and below it if `backward` (a patch's own at the grid
    border) -> `[N,2*P,2]`."""
    n = translation.shape[0]
    rows, cols = grid
    field = F.pad(translation.view(n, rows, cols, 2).permute(0, 3, 1, 2), (1, 1, 1, 1), mode="replicate")
    shifted = ((field[..., 1:-1, 2:], field[..., 2:, 1:-1]) if backward
               else (field[..., 1:-1, :-2], field[..., :-2, 1:-1]))
    return torch.cat([s.reshape(n, 2, rows * cols) for s in shifted], 2).transpose(1, 2)


def _inverse_compositional_gain(grad_x, grad_y, scale, damping):
    """Per-patch Lucas-Kanade gain `[N,2,K,P]`: the update (normalised coordinates) of a patch is
    `gain . (warped - template)`, i.e. the inverse of the mean-normalised patch's Hessian (plus
    `damping` per pixel on its diagonal) applied to its centred template gradients `grad_x, grad_y`
    `[N,K,P]`. Each gain sums to 0 over the K pixels."""
    num_pixels = grad_x.shape[1]
    grad_x = grad_x - grad_x.mean(1, keepdim=True)
    grad_y = grad_y - grad_y.mean(1, keepdim=True)
    regulariser = num_pixels * damping
    hxx = (grad_x * grad_x).sum(1, keepdim=True) + regulariser
    hxy = (grad_x * grad_y).sum(1, keepdim=True)
    hyy = (grad_y * grad_y).sum(1, keepdim=True) + regulariser
    inverse_det = 1.0 / (hxx * hyy - hxy * hxy)
    gain = grad_x.new_empty(grad_x.shape[0], 2, *grad_x.shape[1:])
    torch.mul(grad_x, hyy * inverse_det * scale[0], out=gain[:, 0])
    gain[:, 0].addcmul_(grad_y, -hxy * inverse_det * scale[0])
    torch.mul(grad_y, hxx * inverse_det * scale[1], out=gain[:, 1])
    gain[:, 1].addcmul_(grad_x, -hxy * inverse_det * scale[1])
    return gain


def _patch_centre_values(field, patch_size, stride):
    """Values of `field` `[N,C,H',W']` (padded grid) at the centre of every patch -> `[N,C,P]`."""
    rows, cols = ((side - patch_size) // stride + 1 for side in field.shape[-2:])
    first = (patch_size - 1) // 2
    centres = F.avg_pool2d(field[:, :, first:, first:], 2 - patch_size % 2, stride)
    return centres[:, :, :rows, :cols].flatten(2)


def _densify(translation, error, padded_size, patch_size, stride, min_residual):
    """Per-pixel average of patch translations `[N,2,P]` (pixels) weighted by 1/|error| `[N,K,P]`
    -> dense flow `[N,2,H',W']` on the padded grid."""
    n, num_pixels, num_patches = error.shape
    weighted = error.new_empty(n, 3, num_pixels, num_patches)
    torch.reciprocal(error.abs().clamp_min_(min_residual), out=weighted[:, 2])
    torch.mul(weighted[:, 2:], translation[:, :, None], out=weighted[:, :2])
    sums = F.fold(weighted.view(n, 3 * num_pixels, num_patches), padded_size, patch_size, stride=stride)
    return sums[:, :2] / sums[:, 2:]


# ------------------------------------------------------------------------------ variational refinement
@dataclass
class _LinearisedData:
    """Data terms linearised around a flow F0 (all `[N,*,h,w]`).

    residual, jac_x, jac_y: the brightness and the two gradient constraints `r + jac_x du + jac_y dv`
    (3 channels), each scaled by the square root of its normaliser, so the constraint's square is its
    normalised squared error. jj_*, rhs_*: per-pixel normal equations of the brightness term (`_b`)
    and of the sum of the gradient terms (`_g`), times their weights: `jj = (Jx², JxJy, Jy²)` and
    `rhs = jj F0 - (r Jx, r Jy)`, so that with robust factors w_b, w_g the data part of the system in
    the flow F is `(w_b jj_b + w_g jj_g) F = w_b rhs_b + w_g rhs_g`.
    """
    residual: torch.Tensor
    jac_x: torch.Tensor
    jac_y: torch.Tensor
    jj_b: torch.Tensor
    rhs_b: torch.Tensor
    jj_g: torch.Tensor
    rhs_g: torch.Tensor


def _linearise(image1, image2, flow, brightness_weight, gradient_weight):
    """Brightness and gradient constancy around `flow` `[N,2,h,w]` for gray `[N,1,h,w]` images."""
    grad_x, grad_y = _gradients(torch.cat((image1, image2), 1))
    grad1 = torch.cat((grad_x[:, 0:1], grad_y[:, 0:1]), 1)
    warped, inside = backward_warp(torch.cat((image2, grad_x[:, 1:2], grad_y[:, 1:2]), 1), flow, padding="border")
    mean_grad = 0.5 * (grad1 + warped[:, 1:3])
    second_x, second_y = _gradients(mean_grad)                     # (d/dx, d/dy) of (Ix, Iy)
    residual = torch.cat((warped[:, 0:1] - image1, warped[:, 1:3] - grad1), 1)
    jac_x = torch.cat((mean_grad[:, 0:1], second_x), 1)
    jac_y = torch.cat((mean_grad[:, 1:2], second_y), 1)
    normaliser = 1.0 / (jac_x * jac_x + jac_y * jac_y + _DATA_NORMALISER_ZETA ** 2)
    # no data term where p + flow leaves the frame
    term_weights = inside * normaliser * normaliser.new_tensor(
        [brightness_weight, gradient_weight, gradient_weight]).view(1, 3, 1, 1)
    pieces = torch.stack((jac_x * jac_x, jac_x * jac_y, jac_y * jac_y, residual * jac_x, residual * jac_y),
                         1) * term_weights[:, None]                               # [N,5,3,h,w]
    pieces = torch.cat((pieces[:, :, 0:1], pieces[:, :, 1:3].sum(2, keepdim=True)), 2)  # [N,5,2,h,w]
    jj, rj = pieces[:, :3], pieces[:, 3:]
    rhs = torch.stack((jj[:, 0] * flow[:, 0:1] + jj[:, 1] * flow[:, 1:2] - rj[:, 0],
                       jj[:, 1] * flow[:, 0:1] + jj[:, 2] * flow[:, 1:2] - rj[:, 1]), 1)  # [N,2,2,h,w]
    root = normaliser.sqrt()
    return _LinearisedData(residual * root, jac_x * root, jac_y * root,
                           jj[:, :, 0], rhs[:, :, 0], jj[:, :, 1], rhs[:, :, 1])


@functools.lru_cache(maxsize=64)
def _sor_masks(height, width, device, dtype):
    """Over-relaxation factors `[h,w]` of the red and of the black pixels of a checkerboard
    (ordinary tensors, usable with autograd, even when first made in inference mode)."""
    with torch.inference_mode(False):
        red = (torch.arange(height, device=device)[:, None] + torch.arange(width, device=device)) % 2 == 0
        red = red.to(dtype)
        return _SOR_OMEGA * red, _SOR_OMEGA * (1 - red)


def _edge_weights(image, strength):
    """Smoothness factors `[N,1,h,w]` of gray `[N,1,h,w]`: `exp(-strength * |grad I| / mean |grad I|)`,
    so flow may change more easily across image edges; relative to the image's mean gradient, hence
    unaffected by a global contrast change."""
    # the tiny offset keeps the gradient of sqrt finite in perfectly flat regions
    magnitude = (torch.cat(_gradients(image), 1).square().sum(1, keepdim=True) + 1e-12).sqrt()
    mean = magnitude.mean((2, 3), keepdim=True) + _EDGE_MEAN_FLOOR
    return torch.exp(-strength * magnitude / mean)


def _smoothness_weights(flow, smoothness):
    """Smoothness weights of the edges of every pixel: (left, right, up, down) `[N,1,h,w]` and their sum.

    A pixel's weight is `smoothness / sqrt(|dF/dx|^2 + |dF/dy|^2 + eps^2)` (forward differences,
    Charbonnier, TV-like); it weighs the edges to its right and lower neighbours, so every edge has one
    weight seen from both ends. Edges across the border weigh zero.
    """
    dx = flow[:, :, :, 1:] - flow[:, :, :, :-1]
    dy = flow[:, :, 1:] - flow[:, :, :-1]
    variation = F.pad(dx * dx, (0, 1)).sum(1, keepdim=True) + F.pad(dy * dy, (0, 0, 0, 1)).sum(1, keepdim=True)
    weight = smoothness * torch.rsqrt(variation + _SMOOTHNESS_EPS ** 2)
    horizontal = F.pad(weight[:, :, :, :-1], (1, 1))
    vertical = F.pad(weight[:, :, :-1], (0, 0, 1, 1))
    left, right = horizontal[..., :-1], horizontal[..., 1:]
    up, down = vertical[:, :, :-1], vertical[:, :, 1:]
    return left, right, up, down, left + right + up + down


def _refinement_iteration(data, base_flow, flow, smoothness, sweeps):
    """One robust re-weighting of the linearised energy, then `sweeps` red-black SOR sweeps.
    `smoothness`: per-pixel smoothness weight `[N,1,h,w]`.

    Solves `(A + D) U = rhs + sum_neighbours(w U)` for U, where A, rhs are the re-weighted data
    normal equations and D the sum of smoothness weights.
    """
    update = flow - base_flow
    error = torch.addcmul(torch.addcmul(data.residual, data.jac_x, update[:, 0:1]), data.jac_y, update[:, 1:2])
    squared = error * error
    robust = torch.rsqrt(torch.cat((squared[:, 0:1], squared[:, 1:2] + squared[:, 2:3]), 1)
                         + _CHARBONNIER_EPS ** 2)                                # brightness, gradient
    brightness, gradient = robust[:, 0:1], robust[:, 1:2]
    a = torch.addcmul(brightness * data.jj_b, gradient, data.jj_g)               # a11, a12, a22
    rhs = torch.addcmul(brightness * data.rhs_b, gradient, data.rhs_g)
    left, right, up, down, total = _smoothness_weights(flow, smoothness)
    a11, a12, a22 = a[:, 0:1], a[:, 1:2], a[:, 2:3]
    diagonal = torch.cat((a22, a11), 1) + total
    inverse_det = 1.0 / (diagonal[:, 0:1] * diagonal[:, 1:2] - a12 * a12)
    inverse_diagonal = diagonal * inverse_det                                    # of the 2x2 inverse
    inverse_off = -a12 * inverse_det
    neighbour_weights = (left[..., 1:], right[..., :-1], up[..., 1:, :], down[..., :-1, :])
    for _ in range(sweeps):
        for relaxation in _sor_masks(*flow.shape[-2:], flow.device, flow.dtype):
            flow = _sor_half_sweep(flow, rhs, neighbour_weights, inverse_diagonal, inverse_off, relaxation)
    return flow


def _sor_half_sweep(flow, rhs, neighbour_weights, inverse_diagonal, inverse_off, relaxation):
    """Over-relaxed Gauss-Seidel update of the pixels where `relaxation` `[h,w]` is non-zero.

    Every pixel solves its 2x2 system `M U = rhs + sum_neighbours(w U)` with the inverse of M given
    as diagonal `[N,2,h,w]` and off-diagonal `[N,1,h,w]`. `neighbour_weights`: the weights of the
    left, right, upper and lower neighbours, `[N,1,h,w]` each without the image column or row that
    has no such neighbour.
    """
    left, right, up, down = neighbour_weights
    total = rhs.clone()
    total[..., 1:].addcmul_(left, flow[..., :-1])
    total[..., :-1].addcmul_(right, flow[..., 1:])
    total[..., 1:, :].addcmul_(up, flow[..., :-1, :])
    total[..., :-1, :].addcmul_(down, flow[..., 1:, :])
    solution = torch.addcmul(inverse_diagonal * total, inverse_off, total.flip(1))
    return torch.lerp(flow, solution, relaxation)


def variational_refinement(image1, image2, flow, iterations, sweeps, settings):
    """Refine `flow` `[N,2,h,w]` between gray `[N,1,h,w]` images (linearised once around `flow`).

    Differentiable w.r.t. both images when run with gradient enabled. Returns `[N,2,h,w]`.
    """
    if iterations <= 0:
        return flow
    data = _linearise(image1, image2, flow, settings.brightness_constancy, settings.gradient_constancy)
    smoothness = settings.smoothness * _edge_weights(image1, settings.edge_awareness)
    refined = flow
    for _ in range(iterations):
        refined = _refinement_iteration(data, flow, refined, smoothness, sweeps)
    return refined


@functools.lru_cache(maxsize=64)
def _window_matrices(height, width, sigma, device, dtype):
    """The Gaussian window of `local_contrast` (replicated border) as matrices: (rows `[h,h]`,
    transposed columns `[w,w]`), so that `rows @ x @ columns` blurs `x` `[...,h,w]` (ordinary
    tensors, usable with autograd, even when first made in inference mode)."""
    with torch.inference_mode(False):
        taps = gaussian_taps(sigma, dtype=dtype, device=device)
        return blur_matrix(height, taps, "replicate"), blur_matrix(width, taps, "replicate").T.contiguous()


def local_contrast(image, sigma):
    """Gray `[N,C,h,w]` -> `(I - mean) / (std + floor)` over a Gaussian window of `sigma` px, scaled to a
    local std of `_NORMALISED_CONTRAST`: a local gain and offset (exposure, gamma, shading) cancel.
    The window is applied as two matrix products (several times faster on CPU than its convolution)."""
    rows, columns = _window_matrices(*image.shape[-2:], sigma, image.device, image.dtype)
    centred = image - rows @ image @ columns
    std = (rows @ (centred * centred) @ columns).sqrt()
    return centred * (_NORMALISED_CONTRAST / (std + _CONTRAST_FLOOR))


# ------------------------------------------------------------------------------ the estimator
class BuiltinFlow(torch.nn.Module):
    """Weight-free optical flow (no parameters). `quality`: a preset name of PRESETS.

    - "fast": search and refine down to quarter resolution (on CPU about OpenCV DIS-medium's time,
      more accurate than DIS-fast; bench/flow/RESULTS.md has the numbers).
    - "medium": down to half resolution (the default; more accurate than DIS-medium on real pairs
      at 1.7-2.9x its time on the bench's CPU; the ratio depends on the CPU).
    - "high": down to full resolution (about 4x medium's time, the most accurate).
    Small inputs go finer (the last level keeps a shorter side of at least 48 px).
    `settings` (a FlowSettings) overrides the preset completely; keyword arguments override single
    fields of it, e.g. `BuiltinFlow("medium", finest_refine_iterations=6)`.
    """

    def __init__(self, quality="medium", settings=None, **overrides):
        super().__init__()
        if settings is None:
            if quality not in PRESETS:
                raise ValueError(f"unknown quality {quality!r}: choose one of {', '.join(PRESETS)}.")
            settings = PRESETS[quality]
        try:
            settings = replace(settings, **overrides)
        except TypeError as error:
            raise ValueError(f"unknown FlowSettings field in {sorted(overrides)}: {error}") from None
        if settings.finest_level < 0 or settings.patch_size < 2 or min(settings.patch_stride,
                                                                           settings.finest_patch_stride) < 1:
            raise ValueError(f"invalid settings {settings}: finest_level >= 0, patch_size >= 2 and "
                             f"strides >= 1 are required.")
        self.quality = quality
        self.settings = settings

    def extra_repr(self):
        return f"quality={self.quality!r}"

    def forward(self, image1, image2, init_flow=None, grad_iterations=0):
        """Flow from image1 to image2.

        image1, image2: `[N,3,H,W]` RGB or `[N,1,H,W]` gray in [0,1], same shape and device; any
            H, W >= 2 (padded internally).
        init_flow: optional `[N,2,H,W]` guess (pixels). The search then starts two levels above
            the finest instead of at the top of the pyramid, so it corrects the guess by up to about
            `patch_size` pixels of the finest level plus what the refinement reaches.
        grad_iterations: if > 0, that many finest-level refinement iterations at the end run with
            autograd enabled, linearised afresh around the flow reached without gradient, and are
            differentiable w.r.t. image1 and image2 (the rest runs without a graph). More than the
            preset's `finest_refine_iterations` simply runs more iterations. Needs autograd (not
            inside torch.inference_mode).
        Returns `[N,2,H,W]` float32 pixels on the images' device; channel 0 = x, 1 = y, pixel p of
        image1 corresponds to p + flow(p) in image2.
        """
        size = self._check_inputs(image1, image2, init_flow, grad_iterations)
        s = self.settings
        sizes = level_sizes(*size, s.finest_level)
        finest = min(s.finest_level, len(sizes) - 1)
        while finest > 0 and min(sizes[finest]) < _MIN_FINEST_SIDE_PX:
            finest -= 1
        coarsest = len(sizes) - 1 if init_flow is None else min(len(sizes) - 1, finest + 2)
        # inference mode: the many small tensor operations of the coarse levels cost less there
        with torch.inference_mode():
            gray1, gray2 = luminance(image1), luminance(image2)
            pyramid1, pyramid2 = [gray1], [gray2]
            for level_size in sizes[1:coarsest + 1]:
                pyramid1.append(_downsample(pyramid1[-1], level_size))
                pyramid2.append(_downsample(pyramid2[-1], level_size))
            if init_flow is None:
                flow = gray1.new_zeros(gray1.shape[0], 2, *sizes[coarsest])
            else:
                flow = resize_flow(init_flow.float(), sizes[coarsest])
            for level in range(coarsest, finest - 1, -1):
                if tuple(flow.shape[-2:]) != sizes[level]:
                    flow = resize_flow(flow, sizes[level])
                flow = self._level(pyramid1[level], pyramid2[level], flow, level == coarsest, level == finest,
                                   grad_iterations)
        flow = flow.clone()  # outside inference mode: an ordinary tensor, usable with autograd and in place
        if grad_iterations:
            flow = self._differentiable_tail(image1, image2, sizes[:finest + 1], flow, grad_iterations)
        return resize_flow(flow, size) if finest else flow

    def _level(self, image1, image2, flow, is_first, is_finest, grad_iterations):
        """Patch search + refinement on one level (no gradient) -> flow `[N,2,h,w]`."""
        s = self.settings
        if s.contrast_normalisation > 0 and not is_finest and \
                min(image1.shape[-2:]) >= _CONTRAST_MIN_WINDOWS * s.contrast_sigma:
            both = torch.cat((image1, image2), 1)
            both = torch.lerp(both, local_contrast(both, s.contrast_sigma), s.contrast_normalisation)
            image1, image2 = both[:, :1], both[:, 1:]
        stride = s.finest_patch_stride if is_finest else s.patch_stride
        iterations = (s.finest_patch_iterations if is_finest else s.first_patch_iterations if is_first
                      else s.patch_iterations)
        damping = _HESSIAN_REGULARISER if is_finest else s.coarse_search_damping
        flow = patch_inverse_search(image1, image2, flow, s.patch_size, stride, iterations, s.min_residual,
                                    s.propagations, damping)
        refine, sweeps = ((s.finest_refine_iterations - grad_iterations, s.finest_refine_sweeps) if is_finest
                          else (s.refine_iterations, s.refine_sweeps))
        return variational_refinement(image1, image2, flow, refine, sweeps, s)

    def _differentiable_tail(self, image1, image2, sizes, flow, grad_iterations):
        """The last `grad_iterations` finest-level refinement iterations, with autograd."""
        with torch.enable_grad():
            gray1, gray2 = luminance(image1), luminance(image2)
            for level_size in sizes[1:]:
                gray1, gray2 = _downsample(gray1, level_size), _downsample(gray2, level_size)
            return variational_refinement(gray1, gray2, flow.detach(), grad_iterations,
                                          self.settings.finest_refine_sweeps, self.settings)

    @staticmethod
    def _check_inputs(image1, image2, init_flow, grad_iterations):
        for name, image in (("image1", image1), ("image2", image2)):
            if not isinstance(image, torch.Tensor) or image.ndim != 4 or image.shape[1] not in (1, 3):
                raise ValueError(f"{name} must be a tensor [N,3,H,W] (RGB) or [N,1,H,W] (gray), got "
                                 f"{getattr(image, 'shape', type(image).__name__)}.")
        if image1.shape != image2.shape or image1.device != image2.device:
            raise ValueError(f"image1 and image2 must have equal shapes and devices, got "
                             f"{tuple(image1.shape)} on {image1.device} and {tuple(image2.shape)} on "
                             f"{image2.device}.")
        size = tuple(image1.shape[-2:])
        if min(size) < 2:
            raise ValueError(f"images must be at least 2x2 pixels, got {size}.")
        if init_flow is not None and (not isinstance(init_flow, torch.Tensor)
                                      or tuple(init_flow.shape) != (image1.shape[0], 2, *size)
                                      or init_flow.device != image1.device):
            raise ValueError(f"init_flow must be [N,2,H,W] = {(image1.shape[0], 2, *size)} on "
                             f"{image1.device}, got {getattr(init_flow, 'shape', type(init_flow).__name__)} "
                             f"on {getattr(init_flow, 'device', '-')}.")
        if isinstance(grad_iterations, bool) or not isinstance(grad_iterations, int) or grad_iterations < 0:
            raise ValueError(f"grad_iterations must be an integer >= 0, got {grad_iterations!r}.")
        if grad_iterations and torch.is_inference_mode_enabled():
            raise ValueError("grad_iterations > 0 needs autograd: call the estimator outside "
                             "torch.inference_mode (e.g. inside torch.inference_mode(False)).")
        return size
