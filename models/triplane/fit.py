"""Fitting tri-plane fields to posed frames: the in-distribution (InD) prior, In-N-Out's
out-of-distribution (OOD) field with its removal, and the PTI-style single-field baseline.

Frames are `[T,3,R,R]` in [0,1] (square), cameras cam2world `[T,4,4]` (OpenCV) with normalised
intrinsics `[T,3,3]` (kernels/rays.py). Fields render EG3D-style features in [-1,1]; the first three
channels are RGB, compared with the frames mapped to [-1,1] (so L2 weights are the reference's).
Every loop draws its rays, jitter and initial values from one seed, calls `progress(done, total)`
once per step (it may raise to cancel) and keeps memory bounded by the rays of one step.
"""
import copy
from dataclasses import dataclass
from typing import Optional

import torch

from ...kernels.checks import describe_shape, validate_cameras
from ...kernels.rays import pixel_rays
from ..edit.losses import perceptual_distance
from .decoders import OODDecoder, OSGDecoder
from .renderer import OODField, RenderSettings, TriplaneField, render, render_rays

# Fewer samples than EG3D's 48 + 48 while fitting: the scene's depth range is narrow, and the
# importance pass puts the fine samples on the surface. Renders for evaluation use RenderSettings().
FIT_SETTINGS = RenderSettings(coarse=24, fine=24)
CODE_SIZE = 32
_ENTROPY_EPS = 1e-6
# The OOD field starts nearly empty: planes N(0, 0.1^2) and a raw-density bias of -5 (sigma ~ 0.002).
_OOD_PLANE_STD = 0.1
_OOD_EMPTY_DENSITY_BIAS = -5.0


@dataclass
class OODFit:
    """In-N-Out result: the InD field (the prior, or its copy refined at a small learning rate) and
    the OOD field whose `codes` `[T,32]` hold one phi_t per observed frame."""
    ind: TriplaneField
    ood: OODField


@dataclass
class FieldImages:
    """Renders `[N,*,R,R]`: images RGB in [0,1], depth (ray distance), opacity in [0,1]; for a
    composite also ind_images (the InD field alone: the OOD removal, from the same samples), ood_images
    (the OOD field alone, RGB in [0,1]) and blend_max (per-ray max b)."""
    images: torch.Tensor
    depth: torch.Tensor
    opacity: torch.Tensor
    ind_images: Optional[torch.Tensor] = None
    ood_images: Optional[torch.Tensor] = None
    blend_max: Optional[torch.Tensor] = None


@dataclass
class _Rays:
    """Every pixel ray of T posed frames: origins, directions `[T,R*R,3]`, colours `[T,R*R,3]` in
    [-1,1], optional OOD masks `[T,R*R,1]`."""
    origins: torch.Tensor
    directions: torch.Tensor
    colours: torch.Tensor
    resolution: int
    masks: Optional[torch.Tensor] = None


# ------------------------------------------------------------------------------------ fitting
def fit_triplane(images, cam2world, intrinsics, steps=1000, plane_resolution=64, channels=32, lr=0.02,
                 decoder_lr=0.005, rays_per_step=1024, settings=FIT_SETTINGS, tv_weight=0.0, seed=0,
                 progress=None):
    """Fit a tri-plane and an OSGDecoder to posed images (the InD prior) -> TriplaneField.

    Adam on random batches of `rays_per_step` pixel rays from all views, L2 on RGB in [-1,1], plus
    `tv_weight` x the squared total variation of the planes. Planes `[1,3,channels,P,P]` start at
    N(0, 0.1^2). images `[N,3,R,R]` in [0,1]; cam2world `[N,4,4]`; intrinsics `[N,3,3]`.
    """
    rays = _posed_rays(images, cam2world, intrinsics)
    steps, rays_per_step = _positive(steps, "steps"), _positive(rays_per_step, "rays_per_step")
    gen = _generator(seed, images.device)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        field = TriplaneField(_random_planes(channels, plane_resolution, 0.1, images.device),
                              OSGDecoder(features=channels).to(images.device))
    optimiser = torch.optim.Adam([{"params": [field.planes], "lr": lr},
                                  {"params": field.decoder.parameters(), "lr": decoder_lr}])

    def loss(_):
        origins, directions, colours = _random_rays(rays, rays_per_step, gen)
        out = render_rays(field, origins, directions, settings, generator=gen)
        return (out.features[..., :3] - colours).square().mean() + tv_weight * plane_total_variation(field.planes)

    _optimise(optimiser, loss, steps, progress)
    return _frozen(field)


def fit_ood(frames, cam2world, intrinsics, ind_field, steps=600, ind_lr_scale=0.0, masks=None, lr=0.1,
            decoder_lr=0.01, plane_resolution=64, patch_size=16, patches_per_step=4, perceptual_weight=1.0,
            entropy_weight=1.0, area_weight=1.0, ood_mask_weight=1.0, regulariser_warmup=0.5, settings=FIT_SETTINGS,
            perceptual=None, seed=0, progress=None):
    """In-N-Out stage B without a generator: fit an OOD field composited with the InD field -> OODFit.

    Trainable: OOD planes `[1,3,C,P,P]` at Adam `lr`; the OODDecoder and per-frame codes phi `[T,32]`
    (init N(0,1)) at `decoder_lr`; the InD planes and decoder at `ind_lr_scale` times those rates
    (0 keeps the prior fixed; otherwise a refined copy is returned and the prior is untouched).
    Each step renders `patches_per_step` square patches of `patch_size` pixels (random frame and
    place) and minimises
      L2(composite, frame) + perceptual_weight * D(composite, frame)
      + ramp * (entropy_weight * mean_samples H(b^2) + area_weight * area_term(max_k b, masks))
      + ood_mask_weight * masked L2(OOD alone, frame)   (only when masks are given),
    with H(x) = -(x log x + (1-x) log(1-x)) (D2NeRF's skewed entropy), `ramp` rising linearly from 0
    to 1 over the first `regulariser_warmup` of the steps, and D a perceptual distance (default: the
    pack's weight-free Charbonnier + SSIM; pass `perceptual_distance(lpips weights)` for LPIPS).
    masks `[T,1,R,R]`: 1 where the frame shows OOD content (the reference code's 1 - m).

    Deviations from the reference code (specs/reference/innout-and-eg3d.md §2.7), and why:
    - no super-resolution (the fields are the images), so no SR-level L2;
    - patches instead of whole 128x128 frames: a step costs a few thousand rays on a CPU while the
      perceptual term still sees image structure;
    - the InD field is a tri-plane, not a W+ latent: "InD at a small learning rate" refines its
      planes and decoder, and there are no latent regularisers (L_w, L_Delta);
    - the OOD field starts nearly empty (planes N(0, 0.1^2), raw-density bias -5) instead of the
      N(0,1) fog, higher learning rates, and the blend regularisers ramp in: with a budget of a few
      hundred steps (the reference runs 10,000) the fog makes the composite push b to 0 everywhere
      before the OOD field has learned anything, and b never recovers;
    - the area term uses the maximum of b over all samples of a ray (the composite shares one sorted
      sample set); with masks, masked rays pay (1 - max b)^2 instead of (max b)^2 (the reference's
      masks only weight the OOD-alone L2), which keeps b from collapsing on the OOD pixels.
    """
    rays, steps, patch_size, patches_per_step, distance, gen = _patch_fit_inputs(
        frames, cam2world, intrinsics, masks, ind_field, steps, patch_size, patches_per_step, perceptual, seed)
    channels = ind_field.planes.shape[2]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        ood = OODField(_random_planes(channels, plane_resolution, _OOD_PLANE_STD, frames.device),
                       _empty_ood_decoder(channels, frames.device),
                       torch.randn(frames.shape[0], CODE_SIZE).to(frames.device).requires_grad_())
    if not float(ind_lr_scale) >= 0:
        raise ValueError(f"ind_lr_scale must be >= 0 (0 keeps the InD field fixed), got {ind_lr_scale!r}.")
    ind = ind_field if ind_lr_scale == 0 else _trainable_copy(ind_field)
    groups = [{"params": [ood.planes], "lr": lr},
              {"params": [ood.codes, *ood.decoder.parameters()], "lr": decoder_lr}]
    if ind_lr_scale != 0:
        scale = float(ind_lr_scale)
        groups += [{"params": [ind.planes], "lr": lr * scale},
                   {"params": ind.decoder.parameters(), "lr": decoder_lr * scale}]
    optimiser = torch.optim.Adam(groups)

    def loss(step):
        frame_ids, origins, directions, colours, patch_masks = _random_patches(rays, patch_size, patches_per_step, gen)
        field = OODField(ood.planes, ood.decoder, ood.codes[frame_ids])
        out = render_rays(ind, origins, directions, settings, ood=field, generator=gen)
        total = _reconstruction(out.features[..., :3], colours, patch_size, distance, perceptual_weight)
        ramp = min(1.0, step / max(1.0, regulariser_warmup * steps))
        total = total + ramp * (entropy_weight * skewed_entropy(out.blend) +
                                area_weight * area_term(out.blend_max, patch_masks))
        if patch_masks is not None:
            total = total + ood_mask_weight * masked_l2(out.ood_features[..., :3], colours, patch_masks)
        return total

    _optimise(optimiser, loss, steps, progress)
    return OODFit(_frozen(ind), OODField(ood.planes.detach(), ood.decoder.requires_grad_(False), ood.codes.detach()))


def fit_single_field_baseline(frames, cam2world, intrinsics, ind_field, steps=600, lr=0.1, decoder_lr=None,
                              patch_size=16, patches_per_step=4, perceptual_weight=1.0, settings=FIT_SETTINGS,
                              perceptual=None, seed=0, progress=None):
    """PTI-style baseline: fine-tune a copy of the InD planes (lr) and decoder (decoder_lr, default
    lr) alone on the observed frames -> TriplaneField. Same patches and reconstruction loss as
    `fit_ood` (L2 + perceptual_weight * D), so both methods get the same budget and signal."""
    rays, steps, patch_size, patches_per_step, distance, gen = _patch_fit_inputs(
        frames, cam2world, intrinsics, None, ind_field, steps, patch_size, patches_per_step, perceptual, seed)
    field = _trainable_copy(ind_field)
    decoder_lr = lr if decoder_lr is None else decoder_lr
    optimiser = torch.optim.Adam([{"params": [field.planes], "lr": lr},
                                  {"params": field.decoder.parameters(), "lr": decoder_lr}])

    def loss(_):
        _, origins, directions, colours, _ = _random_patches(rays, patch_size, patches_per_step, gen)
        out = render_rays(field, origins, directions, settings, generator=gen)
        return _reconstruction(out.features[..., :3], colours, patch_size, distance, perceptual_weight)

    _optimise(optimiser, loss, steps, progress)
    return _frozen(field)


def _patch_fit_inputs(frames, cam2world, intrinsics, masks, ind_field, steps, patch_size, patches_per_step,
                      perceptual, seed):
    """Checked inputs of a patch-based fit -> (_Rays, steps, patch size, patches per step, distance D,
    seeded torch.Generator)."""
    rays = _posed_rays(frames, cam2world, intrinsics, masks)
    _check_field(ind_field, "ind_field")
    return (rays, _positive(steps, "steps"), _patch_size(patch_size, rays.resolution),
            _positive(patches_per_step, "patches_per_step"), perceptual or perceptual_distance(),
            _generator(seed, frames.device))


# ------------------------------------------------------------------------------------ losses
def skewed_entropy(blend):
    """D2NeRF's skewed blending entropy: mean of H(b^2) over all samples; blend `[N,M,K,1]` in [0,1].
    Squaring skews the minimum towards b = 0, so an undecided sample prefers the InD field."""
    x = blend.square().clamp(_ENTROPY_EPS, 1 - _ENTROPY_EPS)
    return -(x * x.log() + (1 - x) * (1 - x).log()).mean()


def area_term(blend_max, masks=None):
    """Mean over rays of (max_k b)^2, blend_max `[N,M,1]`. With OOD masks `[N,M,1]`, masked rays
    pay (1 - max_k b)^2 instead: the mask says which rays the OOD field must own."""
    if masks is None:
        return blend_max.square().mean()
    return ((1 - masks) * blend_max.square() + masks * (1 - blend_max).square()).mean()


def masked_l2(predicted, target, masks):
    """sum(mask * (predicted - target)^2) / (3 sum(mask)) over rays: predicted, target `[N,M,3]`,
    masks `[N,M,1]`; 0 when the mask is empty."""
    return (masks * (predicted - target).square()).sum() / (3 * masks.sum()).clamp(min=1.0)


def plane_total_variation(planes):
    """Mean squared difference of neighbouring texels of planes `[N,3,C,H,W]` (both axes)."""
    return (planes.diff(dim=-1).square().mean() + planes.diff(dim=-2).square().mean())


def _reconstruction(rgb, colours, patch_size, distance, perceptual_weight):
    """L2 + perceptual_weight * D on square patches: rgb, colours `[P,S*S,3]` in [-1,1]."""
    total = (rgb - colours).square().mean()
    if perceptual_weight:
        total = total + perceptual_weight * distance(_patch_images(rgb, patch_size),
                                                     _patch_images(colours, patch_size)).mean()
    return total


def _patch_images(values, patch_size):
    """`[P,S*S,3]` in [-1,1] -> `[P,3,S,S]` in [0,1]."""
    return (values.transpose(1, 2).reshape(values.shape[0], 3, patch_size, patch_size) + 1) / 2


# ------------------------------------------------------------------------------------ rendering
@torch.no_grad()
def render_field(field, cam2world, intrinsics, resolution, settings=None, progress=None):
    """Render a TriplaneField (no jitter) -> FieldImages with images `[N,3,R,R]` in [0,1]. For an
    OODFit this is the OOD removal: the InD field alone, i.e. the composite with b := 0."""
    _check_field(field, "field")
    out = render(field, cam2world, intrinsics, resolution, settings, progress=progress)
    return FieldImages(_unit_rgb(out.image), out.depth, out.opacity)


@torch.no_grad()
def render_composite(fit, cam2world, intrinsics, resolution, frames=None, settings=None, progress=None):
    """Render the In-N-Out composite -> FieldImages with ood_images and blend_max.

    frames: which observed frame's code phi_t each camera uses: None (camera i uses frame i, so the
    camera count must equal the frame count), an int (one code for every camera: novel views of that
    frame) or a sequence of N frame indices.
    """
    if not isinstance(fit, OODFit):
        raise ValueError(f"fit must be the OODFit returned by fit_ood, got {type(fit).__name__}.")
    if not isinstance(cam2world, torch.Tensor) or cam2world.dim() != 3:
        raise ValueError(f"cam2world must be a tensor [N,4,4], got {describe_shape(cam2world)}.")
    codes = fit.ood.codes[_code_indices(frames, cam2world.shape[0], fit.ood.codes.shape[0])]
    ood = OODField(fit.ood.planes, fit.ood.decoder, codes)
    out = render(fit.ind, cam2world, intrinsics, resolution, settings, ood=ood, progress=progress)
    return FieldImages(_unit_rgb(out.image), out.depth, out.opacity, _unit_rgb(out.ind_image),
                       _unit_rgb(out.ood_image), out.blend_max)


def ood_removal(fit, cam2world, intrinsics, resolution, settings=None, progress=None):
    """Images with the OOD content removed (b := 0: the InD field alone) -> FieldImages."""
    if not isinstance(fit, OODFit):
        raise ValueError(f"fit must be the OODFit returned by fit_ood, got {type(fit).__name__}.")
    return render_field(fit.ind, cam2world, intrinsics, resolution, settings, progress)


def _unit_rgb(image):
    return ((image[:, :3] + 1) / 2).clamp(0, 1)


def _code_indices(frames, cameras, codes):
    if frames is None:
        if cameras != codes:
            raise ValueError(f"{cameras} cameras but {codes} frame codes; pass frames= (an index or one index "
                             f"per camera) to choose which frame's OOD code each camera uses.")
        return torch.arange(cameras)
    indices = torch.as_tensor(frames, dtype=torch.long).reshape(-1).expand(cameras) if isinstance(frames, int) \
        else torch.as_tensor(frames, dtype=torch.long).reshape(-1)
    if indices.shape[0] != cameras or bool(((indices < 0) | (indices >= codes)).any()):
        raise ValueError(f"frames must be an index in [0, {codes}) or {cameras} such indices, got {frames!r}.")
    return indices


# ------------------------------------------------------------------------------------ plumbing
def _optimise(optimiser, loss, steps, progress):
    for step in range(1, steps + 1):
        optimiser.zero_grad(set_to_none=True)
        value = loss(step)
        if not torch.isfinite(value):
            raise ValueError(f"the fitting loss became {value.item()} at step {step}; lower the learning rate.")
        value.backward()
        optimiser.step()
        if progress is not None:
            progress(step, steps)


def _random_rays(rays, count, gen):
    """`count` random pixel rays of all frames -> origins, directions, colours `[1,count,3]`."""
    frames, pixels = rays.colours.shape[:2]
    picks = torch.randint(0, frames * pixels, (count,), generator=gen, device=gen.device)
    frame_ids, pixel_ids = picks // pixels, picks % pixels
    return (rays.origins[frame_ids, pixel_ids][None], rays.directions[frame_ids, pixel_ids][None],
            rays.colours[frame_ids, pixel_ids][None])


def _random_patches(rays, size, count, gen):
    """`count` random S x S patches -> frame ids `[P]`, origins, directions, colours `[P,S*S,3]`,
    masks `[P,S*S,1]` (or None); ray order within a patch is row-major."""
    frames, resolution = rays.colours.shape[0], rays.resolution
    frame_ids = torch.randint(0, frames, (count,), generator=gen, device=gen.device)
    corners = torch.randint(0, resolution - size + 1, (count, 2), generator=gen, device=gen.device)
    offsets = torch.arange(size, device=gen.device)
    rows = corners[:, :1, None] + offsets[None, :, None]
    cols = corners[:, 1:, None] + offsets[None, None, :]
    pixel_ids = (rows * resolution + cols).reshape(count, -1)
    frame_rows = frame_ids[:, None]
    masks = None if rays.masks is None else rays.masks[frame_rows, pixel_ids]
    return (frame_ids, rays.origins[frame_rows, pixel_ids], rays.directions[frame_rows, pixel_ids],
            rays.colours[frame_rows, pixel_ids], masks)


def _posed_rays(images, cam2world, intrinsics, masks=None):
    """Validate posed frames and cast every pixel ray -> _Rays."""
    _check_frames(images, cam2world, intrinsics)
    count, _, resolution = images.shape[:3]
    origins, directions = pixel_rays(cam2world.to(images), intrinsics.to(images), resolution)
    colours = (2 * images - 1).flatten(2).transpose(1, 2)
    if masks is not None:
        masks = _check_masks(masks, count, resolution).to(images).flatten(1)[..., None]
    return _Rays(origins, directions, colours, resolution, masks)


def _check_frames(images, cam2world, intrinsics):
    if not isinstance(images, torch.Tensor) or images.dim() != 4 or images.shape[1] != 3:
        raise ValueError(f"frames must be a tensor [N,3,R,R] (RGB in [0,1]), got {describe_shape(images)}.")
    if images.shape[2] != images.shape[3]:
        raise ValueError(f"frames must be square (R x R), got {images.shape[2]}x{images.shape[3]}; crop or "
                         f"resize them first.")
    if not images.is_floating_point() or not bool(torch.isfinite(images).all()):
        raise ValueError("frames must be finite floating-point values in [0,1] (found NaN/Inf or integers).")
    validate_cameras(cam2world, intrinsics)
    if cam2world.shape[0] != images.shape[0]:
        raise ValueError(f"{images.shape[0]} frames but {cam2world.shape[0]} cameras; give one camera per frame.")


def _check_masks(masks, count, resolution):
    if isinstance(masks, torch.Tensor) and masks.dim() == 3:
        masks = masks[:, None]
    if not isinstance(masks, torch.Tensor) or masks.shape != (count, 1, resolution, resolution):
        raise ValueError(f"masks must be a tensor [{count},1,{resolution},{resolution}] (1 on OOD pixels), "
                         f"got {describe_shape(masks)}.")
    if not bool(torch.isfinite(masks).all()):
        raise ValueError("masks contain NaN/Inf; they must be values in [0,1].")
    return masks


def _check_field(field, name):
    if not isinstance(field, TriplaneField):
        raise ValueError(f"{name} must be a TriplaneField (e.g. from fit_triplane), got {type(field).__name__}.")


def _positive(value, name):
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}.")
    return value


def _patch_size(size, resolution):
    if isinstance(size, bool) or not isinstance(size, int) or not 1 <= size <= resolution:
        raise ValueError(f"patch_size must be an integer in [1, {resolution}] (the frame size), got {size!r}.")
    return size


def _generator(seed, device):
    return torch.Generator(device=device).manual_seed(int(seed))


def _random_planes(channels, resolution, scale, device):
    # drawn on the CPU (the seeded generator) whatever the device, so a seed means the same start
    planes = torch.randn(1, 3, _positive(channels, "channels"), _positive(resolution, "plane_resolution"),
                         resolution) * scale
    return planes.to(device).requires_grad_()


def _empty_ood_decoder(channels, device):
    decoder = OODDecoder(features=channels, code=CODE_SIZE).to(device)
    with torch.no_grad():
        decoder.net[2].bias[0] = _OOD_EMPTY_DENSITY_BIAS
    return decoder


def _trainable_copy(field):
    return TriplaneField(field.planes.detach().clone().requires_grad_(),
                         copy.deepcopy(field.decoder).requires_grad_(True))


def _frozen(field):
    return TriplaneField(field.planes.detach(), field.decoder.requires_grad_(False))
