"""A procedural 3-D head inside the tri-plane box, rendered exactly by analytic ray intersection.

World units and cameras follow EG3D (specs/reference/innout-and-eg3d.md §1.3-1.6): world y up, the
frontal camera sits on +z at radius 2.7 looking at the origin, the tri-plane box is [-0.5, 0.5]^3.
The head is a union of ellipsoids (skull, hair cap, nose, ears) with a view-independent colour:
a procedural albedo (skin noise at three scales, eyes, brows, mouth, cheeks, striped hair) times a
baked Lambert term. An optional occluder (a flat, strongly coloured disc in front of the face:
a "hand" or "mask") exists only in observed frames and may move per frame. Background is black.
Depth is the distance along the unit ray direction, as the volume renderer reports it.
"""
import math
from dataclasses import dataclass

import torch

from ...kernels.checks import validate_cameras
from ...kernels.rays import fov_to_focal, normalized_intrinsics, orbit_cam2world, pixel_rays

EG3D_FOV_DEGREES = 18.837
CAMERA_RADIUS = 2.7
FRONTAL = math.pi / 2

# Ellipsoids (centre, semi-axes) and what they are painted as.
_SKULL, _HAIR, _NOSE, _LEFT_EAR, _RIGHT_EAR = range(5)
_CENTRES = ((0.0, 0.0, 0.0), (0.0, 0.075, -0.035), (0.0, -0.03, 0.245), (-0.235, 0.0, -0.01),
            (0.235, 0.0, -0.01))
_SEMI_AXES = ((0.235, 0.30, 0.255), (0.25, 0.265, 0.265), (0.045, 0.07, 0.065), (0.035, 0.075, 0.05),
              (0.035, 0.075, 0.05))
# The parts above are in head units; the head is scaled by this into world units so the chin and
# the hair stay inside the EG3D field of view (about +-0.32 at the origin).
_HEAD_SCALE = 0.82
_LIGHT = (0.45, 0.55, 0.70)
_AMBIENT = 0.3
_SKIN = (0.88, 0.66, 0.52)
_HAIR_COLOUR = (0.34, 0.20, 0.10)
# Skin noise: (wave vector, phase, amplitude); frequencies of about 1, 3 and 6 cycles per head.
_SKIN_WAVES = (((7.0, 3.0, -2.0), 0.3, 0.07), ((-4.0, 16.0, 9.0), 1.7, 0.05), ((25.0, -18.0, 30.0), 4.1, 0.04))

_OCCLUDER_CENTRE = (0.03, -0.085, 0.31)
_OCCLUDER_RADIUS = 0.10
_OCCLUDER_RIM = 0.025
_OCCLUDER_COLOURS = ((0.10, 0.85, 0.20), (0.95, 0.10, 0.75))


@dataclass
class Occluder:
    """A flat disc facing +z: `centres` `[N,3]` (one per frame, or `[1,3]` for all), `radius` in
    world units. Painted green with a magenta rim, unshaded."""
    centres: torch.Tensor
    radius: float = _OCCLUDER_RADIUS


@dataclass
class SceneRender:
    """images `[N,3,R,R]` in [0,1]; depth `[N,1,R,R]` (ray distance of the first surface, 0 where the
    ray hits nothing); head_mask `[N,1,R,R]` (the ray meets the head, occluded or not);
    occluder_mask `[N,1,R,R]` (the occluder is the first surface)."""
    images: torch.Tensor
    depth: torch.Tensor
    head_mask: torch.Tensor
    occluder_mask: torch.Tensor


@dataclass
class ObservedSequence:
    """A head-turning clip: frames `[T,3,R,R]` with the occluder, clean `[T,3,R,R]` the same views
    without it, cam2world `[T,4,4]`, intrinsics `[T,3,3]`, occluder_masks `[T,1,R,R]`, occluder."""
    frames: torch.Tensor
    clean: torch.Tensor
    cam2world: torch.Tensor
    intrinsics: torch.Tensor
    occluder_masks: torch.Tensor
    occluder: Occluder


def render_scene(cam2world, intrinsics, resolution, occluder=None):
    """Exact render of the head (plus the occluder when given) -> SceneRender.

    cam2world `[N,4,4]` (OpenCV), intrinsics `[N,3,3]` normalised by the image size, resolution R
    (square images, one ray through each pixel centre, as the tri-plane renderer casts them).
    """
    cam2world, intrinsics = _check_cameras(cam2world, intrinsics)
    resolution = _check_resolution(resolution)
    origins, directions = pixel_rays(cam2world, intrinsics, resolution)
    count = cam2world.shape[0]
    head_t, colours = _trace_head(origins, directions)
    hit_head = torch.isfinite(head_t)
    depth = torch.where(hit_head, head_t, torch.zeros_like(head_t))
    colours = colours * hit_head[..., None]
    on_occluder = torch.zeros_like(hit_head)
    if occluder is not None:
        disc_t, disc_colours = _trace_occluder(origins, directions, _occluder_centres(occluder, count),
                                               occluder.radius)
        on_occluder = torch.isfinite(disc_t) & (disc_t < head_t)
        depth = torch.where(on_occluder, disc_t, depth)
        colours = torch.where(on_occluder[..., None], disc_colours, colours)

    def image(values):
        return values.transpose(1, 2).reshape(count, -1, resolution, resolution)

    return SceneRender(image(colours), image(depth[..., None]), image(hit_head[..., None].float()),
                       image(on_occluder[..., None].float()))


def eg3d_intrinsics(count):
    """`[count,3,3]` normalised intrinsics of EG3D's FFHQ cameras (FOV 18.837 deg)."""
    return normalized_intrinsics(fov_to_focal(EG3D_FOV_DEGREES), count)


def orbit_cameras(count, yaw_range=0.5, pitch_range=0.25, radius=CAMERA_RADIUS, seed=0):
    """`count` cameras at uniformly random yaw/pitch within +-range radians of frontal, looking at
    the origin -> (cam2world `[count,4,4]`, intrinsics `[count,3,3]`). Deterministic per seed."""
    count = _check_count(count)
    gen = torch.Generator().manual_seed(int(seed))
    yaw = FRONTAL + (2 * torch.rand(count, generator=gen) - 1) * float(yaw_range)
    pitch = FRONTAL + (2 * torch.rand(count, generator=gen) - 1) * float(pitch_range)
    return _cameras(yaw, pitch, radius)


def observed_sequence(frames, resolution=64, yaw_range=0.45, pitch_range=0.12, occluder_motion=0.02,
                      radius=CAMERA_RADIUS, seed=0):
    """A head-turning clip with the occluder in every frame -> ObservedSequence.

    The camera sweeps yaw smoothly from -yaw_range to +yaw_range about frontal while pitch nods by
    +-pitch_range (half a sine period, random phase); the disc drifts by up to `occluder_motion`
    world units per axis along smooth random sinusoids. Deterministic per seed.
    """
    frames = _check_count(frames)
    gen = torch.Generator().manual_seed(int(seed))
    progress = torch.linspace(0.0, 1.0, frames)
    phase = 2 * math.pi * torch.rand((), generator=gen)
    yaw = FRONTAL + float(yaw_range) * (2 * progress - 1)
    pitch = FRONTAL + float(pitch_range) * torch.sin(math.pi * progress + phase)
    cam2world, intrinsics = _cameras(yaw, pitch, radius)
    wave_phase = 2 * math.pi * torch.rand(3, generator=gen)
    drift = float(occluder_motion) * torch.sin(math.pi * progress[:, None] + wave_phase)
    occluder = Occluder(torch.tensor(_OCCLUDER_CENTRE) + drift)
    observed = render_scene(cam2world, intrinsics, resolution, occluder)
    clean = render_scene(cam2world, intrinsics, resolution)
    return ObservedSequence(observed.images, clean.images, cam2world, intrinsics, observed.occluder_mask,
                            occluder)


def _cameras(yaw, pitch, radius):
    cam2world = orbit_cam2world(yaw, pitch, float(radius), torch.zeros(3))
    return cam2world, eg3d_intrinsics(cam2world.shape[0])


def _trace_head(origins, directions):
    """Nearest ellipsoid hit -> (distance `[N,M]`, inf on a miss; shaded colour `[N,M,3]`)."""
    origins = origins / _HEAD_SCALE
    centres = torch.tensor(_CENTRES, dtype=origins.dtype, device=origins.device)
    semi_axes = torch.tensor(_SEMI_AXES, dtype=origins.dtype, device=origins.device)
    local_origins = (origins[..., None, :] - centres) / semi_axes
    local_directions = directions[..., None, :] / semi_axes
    a = local_directions.square().sum(-1)
    b = (local_origins * local_directions).sum(-1)
    c = local_origins.square().sum(-1) - 1.0
    discriminant = b * b - a * c
    entry = (-b - discriminant.clamp(min=0).sqrt()) / a
    entry = torch.where((discriminant >= 0) & (entry > 0), entry, torch.full_like(entry, math.inf))
    distance, part = entry.min(-1)
    points = origins + distance.nan_to_num(posinf=0.0)[..., None] * directions
    normals = (points - centres[part]) / semi_axes[part].square()
    normals = normals / normals.norm(dim=-1, keepdim=True).clamp(min=1e-12)
    return distance * _HEAD_SCALE, _albedo(points, part) * _lambert(normals)[..., None]


def _lambert(normals):
    light = torch.tensor(_LIGHT, dtype=normals.dtype, device=normals.device)
    return _AMBIENT + (1 - _AMBIENT) * (normals @ (light / light.norm())).clamp(min=0)


def _albedo(points, part):
    """View-independent colour of head points `[N,M,3]` on parts `[N,M]` -> `[N,M,3]`."""
    skin = _skin(points)
    hair = _hair(points)
    colour = torch.where((part == _HAIR)[..., None], hair, skin)
    ears = (part == _LEFT_EAR) | (part == _RIGHT_EAR)
    return torch.where(ears[..., None], colour * colour.new_tensor((1.0, 0.85, 0.85)), colour)


def _skin(points):
    colour = points.new_tensor(_SKIN).expand_as(points)
    shade = 1.0 + sum(amplitude * torch.sin(points @ points.new_tensor(wave) + phase)
                      for wave, phase, amplitude in _SKIN_WAVES)
    colour = colour * shade[..., None]
    x, y, z = points.unbind(-1)
    front = (z > 0.05)[..., None]
    cheek = torch.exp(-(((x.abs() - 0.12) / 0.05).square() + ((y + 0.07) / 0.04).square()))
    colour = colour + cheek[..., None] * points.new_tensor((0.08, -0.08, -0.04))
    colour = _paint(colour, front & _ellipse(x, y + 0.15, 0.075, 0.024), (0.72, 0.12, 0.16))
    brow = (x.abs() > 0.035) & (x.abs() < 0.14) & ((y - 0.125 - 0.8 * (x.abs() - 0.09).square()).abs() < 0.011)
    colour = _paint(colour, front & brow[..., None], (0.25, 0.14, 0.07))
    eye_x, eye_y = x.abs() - 0.085, y - 0.06
    colour = _paint(colour, front & _ellipse(eye_x, eye_y, 0.042, 0.026), (0.96, 0.95, 0.93))
    colour = _paint(colour, front & _ellipse(eye_x, eye_y, 0.022, 0.022), (0.15, 0.35, 0.65))
    return _paint(colour, front & _ellipse(eye_x, eye_y, 0.01, 0.01), (0.03, 0.03, 0.05))


def _hair(points):
    x, y, z = points.unbind(-1)
    strands = 0.8 + 0.2 * torch.sin(48.0 * torch.atan2(x, z) + 6.0 * y)
    return points.new_tensor(_HAIR_COLOUR) * strands[..., None]


def _ellipse(x, y, half_width, half_height):
    return ((x / half_width).square() + (y / half_height).square() < 1.0)[..., None]


def _paint(colour, where, paint):
    return torch.where(where, colour.new_tensor(paint), colour)


def _trace_occluder(origins, directions, centres, radius):
    """Disc facing +z: (distance `[N,M]`, inf on a miss; colour `[N,M,3]`). centres `[N,3]`."""
    along_z = directions[..., 2]
    parallel = along_z.abs() < 1e-9
    distance = (centres[:, None, 2] - origins[..., 2]) / torch.where(parallel, torch.ones_like(along_z), along_z)
    points = origins + distance[..., None] * directions
    offset = (points[..., :2] - centres[:, None, :2]).norm(dim=-1)
    hit = ~parallel & (distance > 0) & (offset <= radius)
    inside = (offset < radius - _OCCLUDER_RIM)[..., None]
    centre, rim = (origins.new_tensor(colour) for colour in _OCCLUDER_COLOURS)
    return torch.where(hit, distance, torch.full_like(distance, math.inf)), torch.where(inside, centre, rim)


def _occluder_centres(occluder, count):
    centres = torch.as_tensor(occluder.centres, dtype=torch.float32)
    if centres.dim() != 2 or centres.shape[1] != 3 or centres.shape[0] not in (1, count):
        raise ValueError(f"occluder.centres must be [{count},3] (one per camera) or [1,3], got "
                         f"{tuple(centres.shape)}.")
    if not torch.isfinite(centres).all() or not float(occluder.radius) > 0:
        raise ValueError("occluder centres must be finite and its radius positive.")
    return centres.expand(count, 3)


def _check_cameras(cam2world, intrinsics):
    validate_cameras(cam2world, intrinsics)
    return cam2world.float(), intrinsics.float()


def _check_resolution(resolution):
    if isinstance(resolution, bool) or not isinstance(resolution, int) or resolution < 1:
        raise ValueError(f"resolution must be a positive integer (pixels per side), got {resolution!r}.")
    return resolution


def _check_count(count):
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise ValueError(f"the camera/frame count must be a positive integer, got {count!r}.")
    return count
