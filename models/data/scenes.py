"""Random scenes under known motion: a camera path over a background plus occluding textured shapes,
rendered by layers.py with exact flow and occlusion.
"""
import math
from pathlib import Path

import torch
import torch.nn.functional as F

from .layers import Blob, ConvexPolygon, SceneLayer, render_layers
from .motion import about_point, apply_affine, chain_poses, rotation_scale_matrix, similarity_motion, translation_matrix
from .textures import check_size, integer, procedural_texture, uniform

# Texture margin (pixels) around a shape or a camera footprint, so bilinear samples stay inside.
_MARGIN_PX = 3


# Share of `motion` for each part of the per-frame displacement (see render_clip).
_CAMERA_SPEED = 0.6


_LAYER_SPEED = 0.4


_CAMERA_TURN_SHARE = 0.1


_LAYER_TURN_SHARE = 0.05


# Caps on per-frame rotation (radians) and log-zoom, so long clips at small sizes stay sane.
_MAX_SPIN = 0.03


_MAX_LOG_ZOOM = 0.02


def render_clip(num_frames=8, height=128, width=128, image=None, motion=4.0, num_layers=2,
                rotation=True, zoom=True, seed=0, device="cpu"):
    """Render a random layered scene under known motion -> SyntheticClip (deterministic for a seed).

    The background (a procedural texture, or `image` `[3,h,w]` / `[h,w,3]` / `[1,h,w,3]` resampled
    to cover the camera path and mirrored beyond it) follows a smooth camera path: translation of
    0.6 * motion px per frame along a slowly turning heading, plus (when enabled) a steady rotation
    and an oscillating zoom about the view centre, each moving the view corners by up to
    0.1 * motion px per frame. `num_layers` hard-edged shapes (blobs and convex polygons, textured
    with procedural textures or crops of `image`) ride on the camera motion with their own
    translation of 0.4 * motion px per frame and (when enabled) rotation / scaling moving their rim
    by up to 0.05 * motion px per frame; they occlude the background and each other in a fixed order.
    Rotation and zoom rates are capped at 0.03 rad and 2 % per frame.
    """
    num_frames = _check_count(num_frames, "num_frames", 2)
    num_layers = _check_count(num_layers, "num_layers", 0)
    height, width = check_size(height, width, minimum=8)
    motion = _check_motion(motion)
    texture_image = None if image is None else _image_chw(image).to(device)
    gen = torch.Generator().manual_seed(int(seed))
    camera = _camera_motions(gen, num_frames, height, width, motion, rotation, zoom)
    anchor = (num_frames - 1) // 2
    layers = [_background_layer(gen, camera, anchor, height, width, texture_image, device)]
    for number in range(num_layers):
        source = texture_image if number % 2 == 0 else None
        layers.append(_foreground_layer(gen, camera, anchor, height, width, motion, (rotation, zoom),
                                        source, device))
    return render_layers(layers, height, width)


def make_demo_video(path, num_frames=24, height=240, width=320):
    """Render a clip with three moving layers, write it to `path` (.mp4, .webm, or a folder for PNG
    frames) at 12 fps and return the SyntheticClip."""
    from ..io.video import write_video
    clip = render_clip(num_frames, height, width, motion=4.0, num_layers=3, seed=0)
    suffix = Path(path).suffix.lower()
    video_format = {".webm": "webm", "": "png"}.get(suffix, "mp4")
    write_video(path, clip.frames.permute(0, 2, 3, 1), fps=12, format=video_format)
    return clip


def _check_count(value, name, minimum):
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}.")
    return value


def _check_motion(motion):
    if isinstance(motion, bool) or not isinstance(motion, (int, float)) or not 0 <= motion <= 1000:
        raise ValueError(f"motion must be a number of pixels per frame in [0, 1000], got {motion!r}.")
    return float(motion)


def _image_chw(image):
    """User image `[3,h,w]`, `[h,w,3]` or `[1,h,w,3]` (float 0..1 or uint8) -> `[3,h,w]` float32."""
    if not isinstance(image, torch.Tensor):
        raise ValueError(f"image must be a torch.Tensor [3,h,w] or [h,w,3], got {type(image).__name__}.")
    if image.ndim == 4 and image.shape[0] == 1:
        image = image[0]
    if image.ndim != 3 or 3 not in (image.shape[0], image.shape[-1]):
        raise ValueError(f"image must be RGB [3,h,w] or [h,w,3], got shape {tuple(image.shape)}; "
                         f"drop an alpha channel or repeat a grey channel first.")
    chw = image if image.shape[0] == 3 else image.permute(2, 0, 1)
    chw = chw.float() / 255.0 if chw.dtype == torch.uint8 else chw.float()
    if min(chw.shape[1:]) < 8:
        raise ValueError(f"image must be at least 8x8 pixels, got {tuple(chw.shape[1:])}.")
    if not torch.isfinite(chw).all():
        raise ValueError("image contains NaN or infinite values.")
    return chw.clamp(0.0, 1.0)


def _camera_motions(gen, num_frames, height, width, motion, rotation, zoom):
    """Per-step content motions `[3,3]` of the background (list of T-1)."""
    corner = math.hypot((width - 1) / 2.0, (height - 1) / 2.0)
    heading, turn = uniform(gen, 0.0, 2 * math.pi), uniform(gen, -0.15, 0.15)
    spin = math.copysign(min(_CAMERA_TURN_SHARE * motion / corner, _MAX_SPIN), uniform(gen, -1, 1))
    zoom_rate = min(_CAMERA_TURN_SHARE * motion / corner, _MAX_LOG_ZOOM)
    phase, period = uniform(gen, 0.0, 2 * math.pi), uniform(gen, 12.0, 24.0)
    steps = []
    for t in range(num_frames - 1):
        direction = heading + turn * t
        shift = (_CAMERA_SPEED * motion * math.cos(direction), _CAMERA_SPEED * motion * math.sin(direction))
        log_zoom = zoom_rate * math.cos(phase + 2 * math.pi * t / period) if zoom else 0.0
        steps.append(similarity_motion(height, width, shift, spin if rotation else 0.0, math.exp(log_zoom)))
    return steps


def _background_layer(gen, camera, anchor, height, width, image, device):
    """Background SceneLayer whose texture covers the camera footprint (mirrored beyond an image)."""
    identity = torch.eye(3, dtype=torch.float64)
    centre = ((width - 1) / 2.0, (height - 1) / 2.0)
    world_to_view = chain_poses(translation_matrix(*centre), anchor, camera, [identity] * len(camera))
    view_to_world = torch.linalg.inv(world_to_view)
    corners = torch.tensor([[-1.0, -1.0], [width, -1.0], [-1.0, height], [width, height]],
                           dtype=torch.float64)
    reach = torch.stack([apply_affine(m, corners) for m in view_to_world]).reshape(-1, 2)
    low, high = reach.min(dim=0).values, reach.max(dim=0).values
    footprint = (high - low).tolist()
    if image is None:
        size = (math.ceil(footprint[1]) + 2 * _MARGIN_PX + 1, math.ceil(footprint[0]) + 2 * _MARGIN_PX + 1)
        texture = procedural_texture(size[0], size[1], seed=integer(gen, 0, 2 ** 31 - 1), device=device)
        offset = (_MARGIN_PX - low[0].item(), _MARGIN_PX - low[1].item())
    else:
        texture = _fit_image(image, footprint, height, width)
        middle = ((low + high) / 2).tolist()
        offset = ((texture.shape[-1] - 1) / 2.0 - middle[0], (texture.shape[-2] - 1) / 2.0 - middle[1])
    return SceneLayer(texture, translation_matrix(*offset) @ view_to_world)


def _fit_image(image, footprint, height, width):
    """Resample `[3,h,w]` so it covers the camera footprint (w, h) in view pixels, upscaling at most
    to 1.5x what covering the view needs (or to 1:1); the sampler mirrors it beyond that."""
    h, w = image.shape[-2:]
    cover_view = max(width / w, height / h)
    scale = min(max(footprint[0] / w, footprint[1] / h), max(1.5 * cover_view, 1.0))
    scale = max(scale, cover_view)
    size = (max(2, round(h * scale)), max(2, round(w * scale)))
    return F.interpolate(image[None], size=size, mode="bilinear", align_corners=False, antialias=True)[0]


def _foreground_layer(gen, camera, anchor, height, width, motion, turns, image, device):
    """A textured hard-edged shape riding on the camera motion with its own affine motion."""
    rotation, zoom = turns
    radius = uniform(gen, 0.12, 0.28) * min(height, width)
    reach = radius * 1.35
    side = 2 * math.ceil(reach) + 2 * _MARGIN_PX + 1
    middle = ((side - 1) / 2.0, (side - 1) / 2.0)
    shape = _random_shape(gen, middle, radius)
    texture_seed = integer(gen, 0, 2 ** 31 - 1)
    texture = procedural_texture(side, side, seed=texture_seed, device=device) if image is None \
        else _image_crop(gen, image, side)
    position = (uniform(gen, 0.2, 0.8) * (width - 1), uniform(gen, 0.2, 0.8) * (height - 1))
    anchor_pose = translation_matrix(*position) @ rotation_scale_matrix(uniform(gen, 0, 2 * math.pi)) \
        @ translation_matrix(-middle[0], -middle[1])
    heading, turn = uniform(gen, 0.0, 2 * math.pi), uniform(gen, -0.2, 0.2)
    spin = math.copysign(min(_LAYER_TURN_SHARE * motion / radius, _MAX_SPIN), uniform(gen, -1, 1))
    growth = min(_LAYER_TURN_SHARE * motion / radius, _MAX_LOG_ZOOM)
    phase, period = uniform(gen, 0.0, 2 * math.pi), uniform(gen, 12.0, 24.0)
    view_steps, texture_steps = [], []
    for t, camera_step in enumerate(camera):
        direction = heading + turn * t
        speed = _LAYER_SPEED * motion
        own_shift = translation_matrix(speed * math.cos(direction), speed * math.sin(direction))
        view_steps.append(camera_step @ own_shift)
        log_scale = growth * math.cos(phase + 2 * math.pi * t / period) if zoom else 0.0
        texture_steps.append(about_point(middle, rotation_scale_matrix(spin if rotation else 0.0, math.exp(log_scale))))
    poses = chain_poses(anchor_pose, anchor, view_steps, texture_steps)
    return SceneLayer(texture, torch.linalg.inv(poses), shape)


def _random_shape(gen, centre, radius):
    """A Blob or a ConvexPolygon around `centre` reaching at most 1.35 * radius."""
    if uniform(gen, 0.0, 1.0) < 0.5:
        harmonics = tuple((k, uniform(gen, 0.0, 0.35 / 3), uniform(gen, 0.0, 2 * math.pi))
                          for k in (2, 3, 4))
        return Blob(centre, radius, harmonics)
    sides = integer(gen, 3, 9)
    start = uniform(gen, 0.0, 2 * math.pi)
    angles = sorted(start + 2 * math.pi * (k + uniform(gen, -0.3, 0.3)) / sides for k in range(sides))
    vertices = tuple((centre[0] + radius * math.cos(a), centre[1] + radius * math.sin(a)) for a in angles)
    return ConvexPolygon(vertices)


def _image_crop(gen, image, side):
    """A random square crop of `[3,h,w]` (30-70 % of its short side, maybe mirrored) -> `[3,side,side]`."""
    h, w = image.shape[-2:]
    crop = max(2, round(uniform(gen, 0.3, 0.7) * min(h, w)))
    top, left = integer(gen, 0, h - crop + 1), integer(gen, 0, w - crop + 1)
    patch = image[:, top:top + crop, left:left + crop]
    if uniform(gen, 0.0, 1.0) < 0.5:
        patch = patch.flip(-1)
    return F.interpolate(patch[None], size=(side, side), mode="bilinear", align_corners=False,
                         antialias=True)[0]
