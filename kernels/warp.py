"""Backward warping, sampling at arbitrary coordinates (`remap`), flow resizing and flow composition.

Conventions (specs/flow.md): a flow `F_{a->b}` is `[N,2,H,W]` in pixels, channel 0 = x (columns),
channel 1 = y (rows); pixel `p` of frame `a` corresponds to `p + F_{a->b}(p)` in frame `b`.
Pixel centres sit at integer coordinates, so the frame spans `[0, W-1] x [0, H-1]`.
"""
import torch
import torch.nn.functional as F

from .checks import validate_flow, validate_images

PADDING_MODES = ("zeros", "border", "reflection")
SAMPLING_MODES = ("bilinear", "bicubic", "nearest")
RESIZE_MODES = ("bilinear", "bicubic", "nearest", "area")

# Samples this close outside the frame (in pixels) still count as valid: absorbs float rounding of
# coordinates that land exactly on the border (e.g. after composing or resizing flows).
_EDGE_TOLERANCE_PX = 1e-3


def pixel_grid(h, w, device=None, dtype=torch.float32):
    """Coordinates of every pixel centre -> `[1,2,H,W]`: channel 0 = x (0..W-1), 1 = y (0..H-1)."""
    ys = torch.arange(h, device=device, dtype=dtype)
    xs = torch.arange(w, device=device, dtype=dtype)
    grid_y, grid_x = torch.meshgrid(ys, xs, indexing="ij")
    return torch.stack((grid_x, grid_y)).unsqueeze(0)


def flow_magnitude(flow):
    """Length of every vector of `flow` `[N,2,H,W]` -> `[N,1,H,W]` (pixels); gradient 0 at zero length."""
    squared = flow[:, 0:1].square() + flow[:, 1:2].square()
    positive = squared > 0
    return torch.where(positive, torch.where(positive, squared, 1.0).sqrt(), 0.0)


def inside_frame(coords, h, w):
    """`[N,1,H',W']` bool: absolute pixel coordinates `coords` `[N,2,H',W']` lie in `[0,w-1]x[0,h-1]`."""
    x, y = coords[:, 0:1], coords[:, 1:2]
    tol = _EDGE_TOLERANCE_PX
    return (x >= -tol) & (x <= w - 1 + tol) & (y >= -tol) & (y <= h - 1 + tol)


def _batch_size(image, flow):
    n_image, n_flow = image.shape[0], flow.shape[0]
    if n_image != n_flow and 1 not in (n_image, n_flow):
        raise ValueError(f"image batch ({n_image}) and flow batch ({n_flow}) differ; they must be "
                         f"equal or one of them must be 1 (broadcast).")
    return max(n_image, n_flow)


def _check_sampling_args(image, coords, padding, mode):
    validate_images(image, "image")
    validate_flow(coords, "coords")
    if image.device != coords.device:
        raise ValueError(f"image is on {image.device} but the flow/coordinates are on {coords.device}; move both "
                         f"to one device.")
    if padding not in PADDING_MODES:
        raise ValueError(f"padding must be one of {PADDING_MODES}, got {padding!r}.")
    if mode not in SAMPLING_MODES:
        raise ValueError(f"mode must be one of {SAMPLING_MODES}, got {mode!r}.")


def remap(image, coords, padding="zeros", mode="bilinear"):
    """Sample `image` at absolute pixel coordinates: `out[p] = image[coords[p]]`.

    The target grid (the size of `coords`) may differ from the source size: this is the warp of a
    retargeting field (target pixel -> source position) as well as of optical flow.
    Args:
        image: source `[N,C,H,W]` or `[1,C,H,W]`, any C, any float dtype.
        coords: `[N,2,h,w]` or `[1,2,h,w]`, channel 0 = x (column), 1 = y (row), in source pixels
            (centres at integers; the source spans `[0,W-1] x [0,H-1]`). Either batch may be 1.
        padding, mode: as `backward_warp`.
    Returns:
        sampled `[N,C,h,w]` in the dtype of `image`; valid `[N,1,h,w]` (same dtype), 1 where the
        coordinate lies inside the source. Differentiable in image and coords (bilinear, bicubic).
    """
    _check_sampling_args(image, coords, padding, mode)
    n = _batch_size(image, coords)
    h, w = image.shape[-2:]
    work_dtype = torch.promote_types(torch.promote_types(image.dtype, coords.dtype), torch.float32)
    coords = coords.to(work_dtype)
    sampled = F.grid_sample(image.to(work_dtype).expand(n, -1, -1, -1),
                            _normalised_grid(coords, h, w).expand(n, -1, -1, -1),
                            mode=mode, padding_mode=padding, align_corners=True)
    valid = inside_frame(coords, h, w).expand(n, -1, -1, -1)
    return sampled.to(image.dtype), valid.to(image.dtype)


def backward_warp(image, flow, padding="zeros", mode="bilinear"):
    """Sample `image` (frame b) at `p + flow(p)`: the result is aligned with frame a.

    Args:
        image: `[N,C,H,W]` or `[1,C,H,W]`, any C (RGB, masks, latents, features), any float dtype.
        flow: `F_{a->b}` `[N,2,H,W]` or `[1,2,H,W]` in pixels (either batch may be 1 and broadcasts).
        padding: value outside the frame: "zeros", "border" (edge pixel) or "reflection".
        mode: "bilinear" (differentiable in image and flow), "bicubic" (Keys cubic convolution,
            a = -0.75 as in grid_sample; keeps more fine detail at fractional offsets, which matters when
            a result is warped again and again; may overshoot the input's range at edges; differentiable)
            or "nearest".
    Returns:
        warped `[N,C,H,W]` in the dtype of `image`;
        valid `[N,1,H,W]` (same dtype), 1 where `p + flow(p)` lies inside `[0,W-1] x [0,H-1]`, else 0.
    Half-precision images are sampled in float32 (normalised coordinates need the precision) and the
    result is cast back.
    """
    _check_sampling_args(image, flow, padding, mode)
    if image.shape[-2:] != flow.shape[-2:]:
        raise ValueError(f"image size {tuple(image.shape[-2:])} and flow size {tuple(flow.shape[-2:])} "
                         f"differ; resize the flow with resize_flow(flow, image.shape[-2:]) first, or sample "
                         f"with remap for a target size that differs from the source.")
    work_dtype = torch.promote_types(torch.promote_types(image.dtype, flow.dtype), torch.float32)
    coords = pixel_grid(*image.shape[-2:], flow.device, work_dtype) + flow.to(work_dtype)
    return remap(image, coords, padding, mode)


def scaled_coordinates(flow, size, source_scale):
    """Where a flow samples, on a resampled target grid, in the pixels of a resampled source.

    flow `[N,2,H,W]` maps target pixel p to source position `p + flow(p)` (source pixels). Evaluated on a
    target grid of `size` (h, w) (the flow is interpolated as `resize_flow` does) and expressed in the
    pixels of the source resampled by `source_scale` (sx, sy) (pixel-area convention: source pixel x
    sits at `(x + 0.5) * sx - 0.5`). When target and source are resampled alike (w = W * sx, h = H * sy)
    this equals `grid + resize_flow(flow, size)`; with size = (H, W) and scale 1 it is `grid + flow`. Returns `[N,2,h,w]` for `remap`.
    """
    validate_flow(flow)
    height, width = int(size[0]), int(size[1])
    target_scale = flow.new_tensor([width / flow.shape[-1], height / flow.shape[-2]]).view(1, 2, 1, 1)
    field = resize_flow(flow, (height, width)) / target_scale
    centres = pixel_grid(height, width, flow.device, flow.dtype) + 0.5
    scale = flow.new_tensor([float(source_scale[0]), float(source_scale[1])]).view(1, 2, 1, 1)
    return (centres / target_scale + field) * scale - 0.5


def _normalised_grid(coords, h, w):
    """Pixel coordinates `[N,2,H,W]` -> grid_sample grid `[N,H,W,2]` in [-1,1] (align_corners=True)."""
    scale = coords.new_tensor([2.0 / max(w - 1, 1), 2.0 / max(h - 1, 1)]).view(1, 2, 1, 1)
    return (coords * scale - 1.0).permute(0, 2, 3, 1)


def resize_flow(flow, size, mode="bilinear"):
    """Resample a flow field to `size = (h, w)` and rescale its vectors to the new pixel units.

    Args:
        flow: `[N,2,H,W]` in pixels of the original size.
        size: target `(h, w)`.
        mode: "bilinear" (antialiased when shrinking), "bicubic" (likewise), "nearest" or "area".
    Returns:
        `[N,2,h,w]`; x components scaled by `w/W`, y components by `h/H` (pixel-area convention,
        the same factors as the image grid).
    """
    validate_flow(flow)
    if len(size) != 2 or min(int(size[0]), int(size[1])) < 1:
        raise ValueError(f"size must be (height, width) with both >= 1, got {size!r}.")
    if mode not in RESIZE_MODES:
        raise ValueError(f"mode must be one of {RESIZE_MODES}, got {mode!r}.")
    h, w = int(size[0]), int(size[1])
    old_h, old_w = flow.shape[-2:]
    smooth = mode in ("bilinear", "bicubic")
    resized = F.interpolate(
        flow, size=(h, w), mode="nearest-exact" if mode == "nearest" else mode,
        align_corners=False if smooth else None,
        antialias=smooth and (h < old_h or w < old_w))
    return resized * resized.new_tensor([w / old_w, h / old_h]).view(1, 2, 1, 1)


def compose_flow(flow_ab, flow_bc):
    """Chain `F_{a->b}` then `F_{b->c}` into `F_{a->c}(p) = F_ab(p) + F_bc(p + F_ab(p))`.

    Args:
        flow_ab, flow_bc: `[N,2,H,W]` in pixels (either batch may be 1).
    Returns:
        flow_ac `[N,2,H,W]`; valid `[N,1,H,W]` 0/1, 0 where `p + F_ab(p)` leaves frame b (there F_bc is
        read from the nearest border pixel, so flow_ac is an extrapolation).
    """
    validate_flow(flow_ab, "flow_ab")
    validate_flow(flow_bc, "flow_bc")
    flow_bc_at_b, valid = backward_warp(flow_bc, flow_ab, padding="border")
    return flow_ab + flow_bc_at_b, valid
