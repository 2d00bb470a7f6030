"""Camera records for the tri-plane nodes and their conversions to the layouts neighbouring packs use.

`Cameras` holds OpenCV cam2world matrices `[N,4,4]` (camera x right, y down, z forward; world y up, as
kernels/rays.py), normalised intrinsics `[N,3,3]` (focal and principal point divided by the image size)
and the point each camera looks at `[N,3]`.

Field of view: `orbit`/`look_at` take EG3D's FOV (`fov_to_focal`, with its 1.414 factor: 18.837 deg is
FFHQ's camera, a true vertical FOV of about 13.4 deg). ComfyUI's Load3D camera (three.js) is converted
with the true vertical FOV of its perspective camera, narrowed by its zoom.

Conversions:
- LOAD3D_CAMERA, ComfyUI core's Load3D output: `{"position": {"x","y","z"}, "target": {"x","y","z"},
  "zoom": z, "cameraType": "perspective"}`; the camera sits at position, looks at target, world y up
  (no roll); effective FOV = 2 atan(tan(fov/2) / zoom).
- EXTRINSICS `[N,3,4]` (or `[N,4,4]`; VGGT/DUSt3R-style): OpenCV world-to-camera matrices.
- INTRINSICS `[N,3,3]` in pixels of a W x H image: `diag(W, H, 1) @ K_normalised` (principal point at
  W/2, H/2 for a centred camera, pixel centres at half-integers).
"""
import math
from dataclasses import dataclass

import torch

from ...kernels.rays import fov_to_focal, look_at as look_at_matrices, normalized_intrinsics, orbit_cam2world

LOAD3D_PERSPECTIVE, LOAD3D_ORTHOGRAPHIC = "perspective", "orthographic"
LOAD3D_DEFAULT_FOV = 35.0  # ComfyUI's Load3D perspective camera (three.js vertical FOV, degrees)
_ROTATION_TOLERANCE = 1e-3
_FOCAL_TOLERANCE = 1e-3
_MIN_TARGET_DISTANCE = 1e-3


def _tensor(value, name, shape_text):
    if not isinstance(value, torch.Tensor):
        try:
            value = torch.as_tensor(value, dtype=torch.float32)
        except (TypeError, ValueError, RuntimeError) as err:
            raise ValueError(f"{name} must be a tensor {shape_text}, got {type(value).__name__}.") from err
    if not value.is_floating_point():
        value = value.float()
    if not bool(torch.isfinite(value).all()):
        raise ValueError(f"{name} contains NaN or Inf values; check the node that produced the cameras.")
    return value.detach().float().cpu()


def _check_rotations(cam2world):
    rotations = cam2world[:, :3, :3].double()
    identity = torch.eye(3, dtype=torch.float64)
    orthogonal_error = (rotations.transpose(1, 2) @ rotations - identity).abs().amax(dim=(1, 2))
    determinants = torch.linalg.det(rotations)
    bad = ((orthogonal_error > _ROTATION_TOLERANCE) | ((determinants - 1).abs() > _ROTATION_TOLERANCE)).nonzero()
    if len(bad):
        index = int(bad[0])
        raise ValueError(f"camera {index}: the rotation part is not a proper rotation (orthogonality error "
                         f"{float(orthogonal_error[index]):.2e}, determinant {float(determinants[index]):.4f}); "
                         f"cameras must be rigid OpenCV poses without scale or mirroring.")
    bottom = cam2world[:, 3].double() - torch.tensor([0.0, 0.0, 0.0, 1.0], dtype=torch.float64)
    if bool((bottom.abs() > _ROTATION_TOLERANCE).any()):
        raise ValueError("cam2world matrices must end with the row [0, 0, 0, 1].")


def _check_intrinsics(intrinsics):
    focal_x, focal_y = intrinsics[:, 0, 0], intrinsics[:, 1, 1]
    if bool(((focal_x <= 0) | (focal_y <= 0)).any()):
        raise ValueError("intrinsics need positive focal lengths (K[0,0] and K[1,1] > 0).")
    bottom = intrinsics[:, 2] - torch.tensor([0.0, 0.0, 1.0])
    lower = intrinsics[:, 1, 0]
    if bool((bottom.abs() > 1e-6).any()) or bool((lower.abs() > 1e-6).any()):
        raise ValueError("intrinsics must be upper-triangular with the last row [0, 0, 1].")


def _axis_targets(cam2world):
    """The point of every camera's optical axis nearest the world origin (at least a small distance ahead)."""
    origins, forward = cam2world[:, :3, 3], cam2world[:, :3, 2]
    along = (-origins * forward).sum(-1, keepdim=True)
    along = torch.where(along > _MIN_TARGET_DISTANCE, along, origins.norm(dim=-1, keepdim=True).clamp(min=1.0))
    return origins + along * forward


def _vector(value, name):
    """A 3-vector as a dict {"x","y","z"} (Load3D) or a sequence -> float tensor `[3]`."""
    if isinstance(value, dict):
        missing = [key for key in "xyz" if key not in value]
        if missing:
            raise ValueError(f"LOAD3D_CAMERA {name} lacks {missing}; it must be a dict with x, y and z.")
        value = [value[key] for key in "xyz"]
    try:
        vector = torch.tensor([float(v) for v in value], dtype=torch.float32)
    except (TypeError, ValueError) as err:
        raise ValueError(f"LOAD3D_CAMERA {name} must hold three numbers, got {value!r}.") from err
    if vector.shape != (3,) or not bool(torch.isfinite(vector).all()):
        raise ValueError(f"LOAD3D_CAMERA {name} must be three finite numbers, got {value!r}.")
    return vector


def _check_fov(fov_deg, name):
    if not 0 < float(fov_deg) < 180:
        raise ValueError(f"{name} must be between 0 and 180 degrees, got {fov_deg!r}.")
    return float(fov_deg)


@dataclass
class Cameras:
    """N pinhole cameras: cam2world `[N,4,4]` (OpenCV), intrinsics `[N,3,3]` normalised by the image
    size, targets `[N,3]` (the look-at points). Float32 on the CPU, validated on construction."""
    cam2world: torch.Tensor
    intrinsics: torch.Tensor
    targets: torch.Tensor

    def __post_init__(self):
        self.cam2world = _tensor(self.cam2world, "cam2world", "[N,4,4]")
        self.intrinsics = _tensor(self.intrinsics, "intrinsics", "[N,3,3]")
        self.targets = _tensor(self.targets, "targets", "[N,3]")
        n = self.cam2world.shape[0] if self.cam2world.dim() == 3 else -1
        if n < 1 or self.cam2world.shape[1:] != (4, 4):
            raise ValueError(f"cam2world must be [N,4,4] with N >= 1, got {tuple(self.cam2world.shape)}.")
        if self.intrinsics.shape != (n, 3, 3):
            raise ValueError(f"intrinsics must be [{n},3,3] (one per camera), got {tuple(self.intrinsics.shape)}.")
        if self.targets.shape != (n, 3):
            raise ValueError(f"targets must be [{n},3] (one per camera), got {tuple(self.targets.shape)}.")
        _check_rotations(self.cam2world)
        _check_intrinsics(self.intrinsics)

    def __len__(self):
        return self.cam2world.shape[0]

    # ------------------------------------------------------------------ constructors
    @classmethod
    def orbit(cls, yaw_deg, pitch_deg, radius, fov_deg, count=1, yaw_end_deg=None, pitch_end_deg=None,
              target=(0.0, 0.0, 0.0)):
        """EG3D LookAtPoseSampler cameras (kernels/rays.orbit_cam2world) in degrees: yaw = pitch = 90 is
        frontal (camera on +z); yaw < 90 moves the camera to -x, pitch < 90 raises it above the target.
        With count > 1 a path from (yaw, pitch) to (yaw_end, pitch_end) (each end defaulting to its
        start), evenly spaced, ends included. The camera sits on the sphere of `radius` about the origin
        and looks at `target`; fov_deg is EG3D's FOV."""
        count = int(count)
        if count < 1:
            raise ValueError(f"count must be at least 1 camera, got {count}.")
        yaw_end = yaw_deg if yaw_end_deg is None else yaw_end_deg
        pitch_end = pitch_deg if pitch_end_deg is None else pitch_end_deg
        if not 0 < float(pitch_deg) < 180 or not 0 < float(pitch_end) < 180:
            raise ValueError(f"pitch must be strictly between 0 and 180 degrees (90 = level), got {pitch_deg} "
                             f"to {pitch_end}.")
        yaw = torch.linspace(float(yaw_deg), float(yaw_end), count, dtype=torch.float64)
        pitch = torch.linspace(float(pitch_deg), float(pitch_end), count, dtype=torch.float64)
        target = torch.as_tensor(target, dtype=torch.float64).reshape(3)
        cam2world = orbit_cam2world(torch.deg2rad(yaw), torch.deg2rad(pitch), float(radius), target)
        focal = fov_to_focal(_check_fov(fov_deg, "fov"))
        return cls(cam2world.float(), normalized_intrinsics(focal, count), target.float().expand(count, 3))

    @classmethod
    def look_at(cls, position, target, fov_deg):
        """Cameras at `position` `[N,3]` (or one 3-vector) looking at `target` (same), world y up,
        EG3D's FOV `fov_deg`."""
        position = torch.as_tensor(position, dtype=torch.float64).reshape(-1, 3)
        target = torch.as_tensor(target, dtype=torch.float64).reshape(-1, 3)
        position, target = torch.broadcast_tensors(position, target)
        cam2world = look_at_matrices(position.contiguous(), target.contiguous())
        focal = fov_to_focal(_check_fov(fov_deg, "fov"))
        return cls(cam2world.float(), normalized_intrinsics(focal, position.shape[0]), target.float())

    def select(self, indices):
        """The cameras at `indices` (an int, a sequence or a slice) as a new Cameras."""
        if isinstance(indices, int):
            indices = [indices]
        count = len(self)
        if not isinstance(indices, slice):
            indices = [int(i) for i in indices]
            wrong = [i for i in indices if not -count <= i < count]
            if wrong or not indices:
                raise ValueError(f"camera indices {wrong or indices} are out of range for {count} cameras.")
        return Cameras(self.cam2world[indices], self.intrinsics[indices], self.targets[indices])

    # ------------------------------------------------------------------ ComfyUI Load3D
    @classmethod
    def from_load3d(cls, camera, fov_deg=LOAD3D_DEFAULT_FOV):
        """ComfyUI's LOAD3D_CAMERA dict -> one camera. fov_deg: the vertical FOV of Load3D's perspective
        camera (its camera menu; 35 by default), narrowed by the dict's zoom."""
        if not isinstance(camera, dict):
            raise ValueError(f"load3d_camera must be a LOAD3D_CAMERA dict (position, target, zoom, cameraType) "
                             f"from ComfyUI's Load 3D node, got {type(camera).__name__}.")
        kind = camera.get("cameraType", LOAD3D_PERSPECTIVE)
        if kind == LOAD3D_ORTHOGRAPHIC:
            raise ValueError("the Load 3D camera is orthographic; tri-plane rendering needs a perspective camera. "
                             "Switch Load 3D's camera type to perspective.")
        if kind != LOAD3D_PERSPECTIVE:
            raise ValueError(f"unknown Load 3D cameraType {kind!r}; expected 'perspective'.")
        position, target = _vector(camera.get("position"), "position"), _vector(camera.get("target"), "target")
        zoom = camera.get("zoom", 1.0)
        if isinstance(zoom, bool) or not isinstance(zoom, (int, float)) or not math.isfinite(zoom) or zoom <= 0:
            raise ValueError(f"LOAD3D_CAMERA zoom must be a positive number, got {zoom!r}.")
        half_tan = math.tan(math.radians(_check_fov(fov_deg, "load3d_fov")) / 2) / float(zoom)
        cam2world = look_at_matrices(position[None].double(), target.double())
        return cls(cam2world.float(), normalized_intrinsics(0.5 / half_tan, 1), target[None])

    def to_load3d(self, index=0, fov_deg=LOAD3D_DEFAULT_FOV):
        """Camera `index` -> LOAD3D_CAMERA dict for a Load3D perspective camera of vertical FOV fov_deg;
        zoom = tan(fov/2) / tan(fov_camera/2). three.js keeps world y up, so a camera's roll is dropped."""
        cam2world, intrinsics, target = self.cam2world[index], self.intrinsics[index], self.targets[index]
        half_tan = 0.5 / float(intrinsics[1, 1])
        zoom = math.tan(math.radians(_check_fov(fov_deg, "load3d_fov")) / 2) / half_tan
        position = cam2world[:3, 3]
        return {"position": dict(zip("xyz", map(float, position))), "target": dict(zip("xyz", map(float, target))),
                "zoom": zoom, "cameraType": LOAD3D_PERSPECTIVE}

    # ------------------------------------------------------------------ EXTRINSICS / INTRINSICS
    @classmethod
    def from_matrices(cls, extrinsics, intrinsics, width, height):
        """EXTRINSICS `[N,3,4]`/`[N,4,4]` (OpenCV world-to-camera; a leading batch of 1 is dropped) and
        INTRINSICS `[N,3,3]` (or one, shared) in pixels of a width x height image -> Cameras. Targets: the
        point of each optical axis nearest the world origin. The normalised focal must be the same in x
        and y (fx/width = fy/height) and there must be no skew."""
        extrinsics = _tensor(extrinsics, "extrinsics", "[N,3,4] or [N,4,4]")
        intrinsics = _tensor(intrinsics, "intrinsics", "[N,3,3]")
        if extrinsics.dim() == 4 and extrinsics.shape[0] == 1:
            extrinsics = extrinsics[0]
        if intrinsics.dim() == 4 and intrinsics.shape[0] == 1:
            intrinsics = intrinsics[0]
        if extrinsics.dim() == 2:
            extrinsics = extrinsics[None]
        if intrinsics.dim() == 2:
            intrinsics = intrinsics[None]
        if extrinsics.dim() != 3 or extrinsics.shape[1:] not in ((3, 4), (4, 4)):
            raise ValueError(f"extrinsics must be world-to-camera matrices [N,3,4] or [N,4,4], got "
                             f"{tuple(extrinsics.shape)}.")
        n = extrinsics.shape[0]
        if intrinsics.shape[1:] != (3, 3) or intrinsics.shape[0] not in (1, n):
            raise ValueError(f"intrinsics must be [N,3,3] in pixels with N = {n} (one per extrinsics matrix) or "
                             f"one matrix, got {tuple(intrinsics.shape)}.")
        width, height = int(width), int(height)
        if width < 1 or height < 1:
            raise ValueError(f"the image size for the intrinsics must be positive, got {width}x{height}.")
        world2cam = torch.eye(4).repeat(n, 1, 1)
        world2cam[:, :3, :4] = extrinsics[:, :3, :4]
        if extrinsics.shape[1] == 4:
            world2cam[:, 3] = extrinsics[:, 3]
        _check_rotations(world2cam)
        normalised = torch.diag(torch.tensor([1.0 / width, 1.0 / height, 1.0])) @ intrinsics.expand(n, 3, 3)
        _check_intrinsics(normalised)
        focal_x, focal_y = normalised[:, 0, 0], normalised[:, 1, 1]
        if bool(((focal_x - focal_y).abs() > _FOCAL_TOLERANCE * focal_y).any()):
            raise ValueError(f"the intrinsics have different normalised focal lengths in x and y (fx/width "
                             f"{float(focal_x[0]):.4f}, fy/height {float(focal_y[0]):.4f} for {width}x{height}); "
                             f"the renderer needs square pixels over a square view: crop the images to a square "
                             f"and give the matching intrinsics, or check image_size.")
        if bool((normalised[:, 0, 1].abs() > 1e-6).any()):
            raise ValueError("the intrinsics have skew (K[0,1] != 0); only skew-free cameras are supported.")
        cam2world = torch.linalg.inv(world2cam.double()).float()
        return cls(cam2world, normalised, _axis_targets(cam2world))

    def to_extrinsics(self):
        """OpenCV world-to-camera `[N,3,4]` (VGGT's layout)."""
        return torch.linalg.inv(self.cam2world.double())[:, :3, :4].float()

    def to_intrinsics(self, width, height):
        """Intrinsics `[N,3,3]` in pixels of a width x height image."""
        width, height = int(width), int(height)
        if width < 1 or height < 1:
            raise ValueError(f"the image size for the intrinsics must be positive, got {width}x{height}.")
        return torch.diag(torch.tensor([float(width), float(height), 1.0])) @ self.intrinsics
