"""Tri-plane nodes (In-N-Out, specs/triplane.md): cameras, the procedural head scene, EG3D generators,
fitting an in-distribution tri-plane and an out-of-distribution field, composite rendering, OOD removal
and orbit videos.

Records passed between the nodes:
- TAME_CAMERA: `models.triplane.camera.Cameras` (OpenCV cam2world, normalised intrinsics, targets).
- TAME_TRIPLANE: `TriplaneRecord` — a TriplaneField (planes + OSGDecoder), its RenderSettings and,
  when it came from a generator, the W+ latents `[N,num_ws,w_dim]` it was synthesised from.
- TAME_OOD_FIELD: `OODRecord` — the OODFit of fit_ood (OOD planes, OODDecoder, one code per fitted
  frame, and the InD field it was composited with, refined when ind_lr_scale > 0) plus the
  TAME_TRIPLANE it was fitted with.
- TAME_TRIPLANE_GENERATOR: `models.triplane.eg3d.TriplaneGenerator` (eval mode, on the compute device).
"""
import copy
from dataclasses import dataclass
from typing import Optional

import torch

from ..models.data.scene3d import observed_sequence, orbit_cameras, render_scene
from ..models.edit.wplus_generator import OUTPUTS, StyleGANWPlusGenerator, codes_to_wplus, frontal_camera
from ..models.io.weights import SAFE_SUFFIXES
from ..models.triplane.camera import LOAD3D_DEFAULT_FOV, Cameras
from ..models.triplane.eg3d import TriplaneGenerator, camera_label
from ..models.triplane.fit import (
    FIT_SETTINGS,
    OODFit,
    fit_ood,
    fit_triplane,
    render_composite,
    render_field,
)
from ..models.triplane.renderer import RenderSettings, TriplaneField, validate_planes
from . import host
from .edit_nodes import SEED_OPTIONS
from .tensors import batch_to_mask, frames_to_image, image_to_frames, mask_to_batch

CATEGORY = "Tame/3D"
MODEL_KIND = "triplane"
GENERATOR_SUFFIXES = (".pkl",) + SAFE_SUFFIXES
NO_GENERATOR = "(no file in models/tame/triplane)"
CAMERA_MODES = ["orbit", "look-at"]
SCENE_MODES = ["views", "observed video"]
FRONTAL_DEGREES = 90.0
EG3D_RADIUS = 2.7
EG3D_FOV = 18.84
MAX_RESOLUTION = 1024


@dataclass
class TriplaneRecord:
    """TAME_TRIPLANE: the field (planes `[N,3,C,P,P]`, decoder), how to render it, and the W+ latents
    `[N,num_ws,w_dim]` of the generator it came from (None for a fitted tri-plane)."""
    field: TriplaneField
    settings: RenderSettings
    ws: Optional[torch.Tensor] = None


@dataclass
class OODRecord:
    """TAME_OOD_FIELD: the In-N-Out fit (its `ind` is the InD field composited with the OOD field) and
    the TAME_TRIPLANE it started from."""
    fit: OODFit
    triplane: TriplaneRecord

    @property
    def frames(self):
        return self.fit.ood.codes.shape[0]


# ------------------------------------------------------------------------------------- helpers
def _check_record(value, kind, name):
    expected = {TriplaneRecord: "TAME_TRIPLANE (Triplane From Latent or Fit Triplane)",
                OODRecord: "TAME_OOD_FIELD (Fit OOD)", Cameras: "TAME_CAMERA (Camera)"}[kind]
    if not isinstance(value, kind):
        raise ValueError(f"{name} must be a {expected}, got {type(value).__name__}.")
    return value


def _triplane(record, name="triplane"):
    record = _check_record(record, TriplaneRecord, name)
    validate_planes(record.field.planes, f"{name} planes")
    return record


def _square_frames(images, name):
    frames = image_to_frames(images, name)
    if frames.shape[-1] != frames.shape[-2]:
        raise ValueError(f"{name} are {frames.shape[-1]}x{frames.shape[-2]}; tri-plane fitting needs square "
                         f"frames (crop or resize them to a square, with intrinsics to match).")
    return frames


def _posed(images, camera, name="frames"):
    """IMAGE + TAME_CAMERA -> frames `[T,3,R,R]`, cam2world, intrinsics on the compute device (cloned)."""
    frames = _square_frames(images, name)
    camera = _check_record(camera, Cameras, "camera")
    if len(camera) != frames.shape[0]:
        raise ValueError(f"{name} has {frames.shape[0]} frames but the camera has {len(camera)} cameras; give "
                         f"one camera per frame (set Camera's frames to {frames.shape[0]}, or connect the cameras "
                         f"that came with these frames).")
    device = host.compute_device()
    return (frames.to(device).clone(), camera.cam2world.to(device).clone(), camera.intrinsics.to(device).clone())


def _trainable(field):
    """A copy of `field` usable by autograd; call outside inference mode (ComfyUI makes node outputs inside
    it, and inference tensors cannot be saved for backward)."""
    return TriplaneField(field.planes.detach().clone(), copy.deepcopy(field.decoder))


def _on(field, camera):
    device = field.planes.device
    return camera.cam2world.to(device), camera.intrinsics.to(device)


def _code_choice(frame_code, ood, cameras):
    """Which fitted frame's OOD code each camera uses: None (camera i <- frame i) or one index for all."""
    if frame_code < 0:
        if cameras != ood.frames:
            raise ValueError(f"{cameras} cameras but the OOD field was fitted on {ood.frames} frames; set "
                             f"frame_code to the fitted frame (0..{ood.frames - 1}) whose OOD state every camera "
                             f"should show, or render the fitted cameras.")
        return None
    if frame_code >= ood.frames:
        raise ValueError(f"frame_code {frame_code} is out of range: the OOD field has codes for frames "
                         f"0..{ood.frames - 1}.")
    return int(frame_code)


def _depth_image(depth, settings):
    """Ray depth `[N,1,R,R]` -> IMAGE, near..far mapped to 1..0 (empty rays at far = 0)."""
    scaled = ((settings.far - depth) / (settings.far - settings.near)).clamp(0, 1)
    return frames_to_image(scaled.expand(-1, 3, -1, -1))


def _render(triplane, camera, resolution, ood=None, frame_code=-1, label="render"):
    """FieldImages of the InD field alone, or of the composite with `ood`."""
    report = host.progress(1, label)
    if ood is None:
        cam2world, intrinsics = _on(triplane.field, camera)
        return render_field(triplane.field, cam2world, intrinsics, resolution, triplane.settings, report)
    cam2world, intrinsics = _on(ood.fit.ind, camera)
    return render_composite(ood.fit, cam2world, intrinsics, resolution, _code_choice(frame_code, ood, len(camera)),
                            ood.triplane.settings, report)


def _resolution_input(default, tooltip):
    return ("INT", {"default": default, "min": 8, "max": MAX_RESOLUTION, "step": 8, "tooltip": tooltip})


def _frame_code_input(default):
    return ("INT", {"default": default, "min": -1, "max": 100000,
                    "tooltip": "Which fitted frame's OOD code phi_t the cameras use: -1 = camera i uses frame i's "
                               "code (as many cameras as fitted frames); 0, 1, ... = that frame's code for every "
                               "camera (novel views of one moment)."})


# ------------------------------------------------------------------------------------- camera
def _widget_cameras(mode, yaw, pitch, radius, fov, frames, yaw_end, pitch_end, target, position):
    if mode == CAMERA_MODES[0]:
        return Cameras.orbit(yaw, pitch, radius, fov, frames, yaw_end, pitch_end, target)
    if mode == CAMERA_MODES[1]:
        return Cameras.look_at([position] * frames, [target] * frames, fov)
    raise ValueError(f"mode must be one of {CAMERA_MODES}, got {mode!r}.")


class TameCamera:
    DESCRIPTION = ("Cameras for the tri-plane nodes (EG3D conventions: world y up, the frontal camera on +z at "
                   "radius 2.7 looking at the origin, FOV 18.84 in EG3D's convention). Orbit: yaw/pitch in "
                   "degrees on a sphere about the origin (90/90 = frontal), a path to yaw_end/pitch_end when "
                   "frames > 1. Look-at: a camera at position looking at target. A Load 3D camera, or "
                   "EXTRINSICS + INTRINSICS from a pose estimator (VGGT, DUSt3R style), override the widgets.")
    CATEGORY = CATEGORY
    FUNCTION = "make"
    RETURN_TYPES = ("TAME_CAMERA", "LOAD3D_CAMERA", "EXTRINSICS", "INTRINSICS")
    RETURN_NAMES = ("camera", "load3d_camera", "extrinsics", "intrinsics")
    OUTPUT_TOOLTIPS = (
        "The cameras (one per frame), for Fit Triplane, Fit OOD and the render nodes.",
        "The first camera as ComfyUI's Load 3D camera (position, target, zoom for load3d_fov; roll is dropped).",
        "World-to-camera matrices [N,3,4] (OpenCV: x right, y down, z forward).",
        "Intrinsics [N,3,3] in pixels of an image_size x image_size image.",
    )

    @classmethod
    def INPUT_TYPES(cls):
        angle = {"min": -360.0, "max": 360.0, "step": 1.0}
        pitch = {"min": 1.0, "max": 179.0, "step": 1.0}
        coordinate = {"default": 0.0, "min": -100.0, "max": 100.0, "step": 0.01}
        return {"required": {
            "mode": (CAMERA_MODES, {"default": CAMERA_MODES[0],
                                    "tooltip": "orbit: yaw/pitch/radius about the origin; look-at: position and "
                                               "target."}),
            "yaw": ("FLOAT", {"default": FRONTAL_DEGREES, **angle,
                              "tooltip": "Orbit yaw in degrees (90 = frontal; less moves the camera to -x)."}),
            "pitch": ("FLOAT", {"default": FRONTAL_DEGREES, **pitch,
                                "tooltip": "Orbit pitch in degrees (90 = level; less raises the camera)."}),
            "radius": ("FLOAT", {"default": EG3D_RADIUS, "min": 0.01, "max": 100.0, "step": 0.01,
                                 "tooltip": "Orbit radius in world units (EG3D: 2.7)."}),
            "fov": ("FLOAT", {"default": EG3D_FOV, "min": 0.1, "max": 179.0, "step": 0.01,
                              "tooltip": "Field of view in degrees, EG3D's convention (focal = 1 / (1.414 tan(fov/2)); "
                                         "18.84 is EG3D's FFHQ camera)."}),
            "frames": ("INT", {"default": 1, "min": 1, "max": 100000,
                               "tooltip": "Number of cameras: an orbit path from yaw/pitch to yaw_end/pitch_end, or "
                                          "copies of the look-at camera."}),
            "yaw_end": ("FLOAT", {"default": FRONTAL_DEGREES, **angle,
                                  "tooltip": "Yaw of the last camera of the path."}),
            "pitch_end": ("FLOAT", {"default": FRONTAL_DEGREES, **pitch,
                                    "tooltip": "Pitch of the last camera of the path."}),
            "target_x": ("FLOAT", {**coordinate, "tooltip": "Point the cameras look at, x."}),
            "target_y": ("FLOAT", {**coordinate, "tooltip": "Point the cameras look at, y (up)."}),
            "target_z": ("FLOAT", {**coordinate, "tooltip": "Point the cameras look at, z (towards the frontal "
                                                            "camera; EG3D's FFHQ pivot is 0.2)."}),
            "position_x": ("FLOAT", {**coordinate, "tooltip": "Look-at mode: camera position, x."}),
            "position_y": ("FLOAT", {**coordinate, "tooltip": "Look-at mode: camera position, y."}),
            "position_z": ("FLOAT", {**coordinate, "default": EG3D_RADIUS,
                                     "tooltip": "Look-at mode: camera position, z."}),
            "image_size": ("INT", {"default": 512, "min": 1, "max": 16384,
                                   "tooltip": "Side in pixels of the images the INTRINSICS refer to (output, and "
                                              "input when intrinsics are connected)."}),
            "load3d_fov": ("FLOAT", {"default": LOAD3D_DEFAULT_FOV, "min": 0.1, "max": 179.0, "step": 0.1,
                                     "tooltip": "Vertical FOV in degrees of the Load 3D perspective camera (its "
                                                "camera menu; 35 by default), used for load3d_camera in and out."}),
        }, "optional": {
            "load3d_camera": ("LOAD3D_CAMERA", {"tooltip": "ComfyUI Load 3D's camera_info: replaces the widgets "
                                                           "with one camera (perspective only)."}),
            "extrinsics": ("EXTRINSICS", {"tooltip": "World-to-camera matrices [N,3,4] or [N,4,4] (OpenCV): "
                                                     "replace the widget cameras' poses."}),
            "intrinsics": ("INTRINSICS", {"tooltip": "Intrinsics [N,3,3] (or one) in pixels of image_size x "
                                                     "image_size images: replace the widget FOV."}),
        }}

    def make(self, mode, yaw, pitch, radius, fov, frames, yaw_end, pitch_end, target_x, target_y, target_z,
             position_x, position_y, position_z, image_size, load3d_fov, load3d_camera=None, extrinsics=None,
             intrinsics=None):
        target, position = (target_x, target_y, target_z), (position_x, position_y, position_z)
        if load3d_camera is not None:
            if extrinsics is not None or intrinsics is not None:
                raise ValueError("connect either load3d_camera or extrinsics/intrinsics, not both.")
            cameras = Cameras.from_load3d(load3d_camera, load3d_fov)
        else:
            cameras = _widget_cameras(mode, yaw, pitch, radius, fov, frames, yaw_end, pitch_end, target, position)
            if extrinsics is not None or intrinsics is not None:
                matrices = cameras.to_intrinsics(image_size, image_size) if intrinsics is None else intrinsics
                poses = cameras.to_extrinsics() if extrinsics is None else extrinsics
                cameras = Cameras.from_matrices(poses, matrices, image_size, image_size)
        return (cameras, cameras.to_load3d(0, load3d_fov), cameras.to_extrinsics(),
                cameras.to_intrinsics(image_size, image_size))


# ------------------------------------------------------------------------------------- procedural head
def _scene_occluder(count, seed):
    """The scene's occluder disc along its observed-sequence track (one centre per view, seeded)."""
    return observed_sequence(count, resolution=1, seed=seed).occluder


def _scene_cameras(mode, frames, occluder, seed, camera):
    """(Cameras, Occluder or None) of the procedural head for the chosen mode."""
    if mode == SCENE_MODES[1]:
        if camera is not None:
            raise ValueError("'observed video' makes its own head-turning cameras; disconnect camera, or choose "
                             "'views' to render your cameras.")
        sequence = observed_sequence(frames, resolution=1, seed=seed)
        cameras = Cameras(sequence.cam2world, sequence.intrinsics, torch.zeros(frames, 3))
        return cameras, sequence.occluder if occluder else None
    if mode != SCENE_MODES[0]:
        raise ValueError(f"mode must be one of {SCENE_MODES}, got {mode!r}.")
    if camera is None:
        cam2world, intrinsics = orbit_cameras(frames, seed=seed)
        camera = Cameras(cam2world, intrinsics, torch.zeros(frames, 3))
    camera = _check_record(camera, Cameras, "camera")
    return camera, _scene_occluder(len(camera), seed) if occluder else None


class TameProceduralHead:
    DESCRIPTION = ("The pack's weight-free 3-D test scene: a procedural head inside the tri-plane box, rendered "
                   "exactly by ray intersection, optionally with an occluder disc (the 'OOD' object, a hand or "
                   "mask stand-in). views: the connected cameras, or `frames` random views near frontal. "
                   "observed video: a head-turning clip with its own cameras (the occluder drifts). Feeds Fit "
                   "Triplane (clean views) and Fit OOD (observed frames), with exact masks to check against.")
    CATEGORY = CATEGORY
    FUNCTION = "render"
    RETURN_TYPES = ("IMAGE", "MASK", "MASK", "TAME_CAMERA")
    RETURN_NAMES = ("images", "occluder_mask", "object_mask", "camera")
    OUTPUT_TOOLTIPS = (
        "The renders, RGB on a black background.",
        "1 where the occluder is the first surface (all 0 with occluder off).",
        "1 where a ray meets the head (occluded or not).",
        "The cameras of the renders (the input ones, the random views or the observed video's).",
    )

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "mode": (SCENE_MODES, {"default": SCENE_MODES[0],
                                   "tooltip": "views: the cameras input (or random views); observed video: a "
                                              "head-turning clip with its own cameras."}),
            "resolution": _resolution_input(64, "Side of the square renders in pixels."),
            "frames": ("INT", {"default": 8, "min": 1, "max": 10000,
                               "tooltip": "Number of random views (views without cameras) or of video frames."}),
            "occluder": ("BOOLEAN", {"default": False, "tooltip": "Put the occluder disc in front of the face."}),
            "seed": ("INT", {**SEED_OPTIONS, "tooltip": "Seed of the random views, the video's motion and the "
                                                        "occluder's drift."}),
        }, "optional": {
            "camera": ("TAME_CAMERA", {"tooltip": "Cameras to render (views mode)."}),
        }}

    def render(self, mode, resolution, frames, occluder, seed, camera=None):
        cameras, disc = _scene_cameras(mode, frames, occluder, seed, camera)
        scene = render_scene(cameras.cam2world, cameras.intrinsics, resolution, disc)
        return (frames_to_image(scene.images), batch_to_mask(scene.occluder_mask), batch_to_mask(scene.head_mask),
                cameras)


# ------------------------------------------------------------------------------------- generator
def _generator_files():
    names = set()
    for folder in host.model_folders(MODEL_KIND):
        if folder.is_dir():
            names.update(path.relative_to(folder).as_posix() for path in folder.rglob("*")
                         if path.suffix.lower() in GENERATOR_SUFFIXES)
    return sorted(names)


class TameLoadTriplaneGenerator:
    DESCRIPTION = ("Load an EG3D tri-plane generator from models/tame/triplane: an official EG3D .pkl (read "
                   "without running any of its code) or a .safetensors written by Tame. No weights ship with "
                   "the pack: without a file, fit a tri-plane to views with Fit Triplane instead. Also outputs "
                   "the generator as a TAME_GENERATOR (W+ latents) for the edit-consistency nodes.")
    CATEGORY = CATEGORY
    FUNCTION = "load"
    RETURN_TYPES = ("TAME_TRIPLANE_GENERATOR", "TAME_GENERATOR")
    RETURN_NAMES = ("triplane_generator", "generator")
    OUTPUT_TOOLTIPS = (
        "The EG3D generator (mapping, tri-plane synthesis, decoder), for Triplane From Latent.",
        "The same generator decoding W+ latents [frames, w_dim, num_ws, 1] at its frontal camera, for Encode/"
        "Decode Frames, Latent MLP Refine and Generator Finetune.",
    )

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "model": (_generator_files() or [NO_GENERATOR], {
                "tooltip": "EG3D checkpoint (.pkl, e.g. ffhqrebalanced512-128.pkl) or Tame .safetensors in "
                           "models/tame/triplane."}),
            "output": (list(OUTPUTS), {"default": OUTPUTS[0],
                                       "tooltip": "What the TAME_GENERATOR decodes: the raw neural render (128 px "
                                                  "for FFHQ) or the super-resolved image (512 px)."}),
        }}

    def load(self, model, output):
        if model == NO_GENERATOR:
            folders = ", ".join(str(f) for f in host.model_folders(MODEL_KIND))
            raise FileNotFoundError(
                f"No tri-plane generator file in {folders}. Put an EG3D checkpoint (.pkl) or a Tame .safetensors "
                f"there and reload the node; Tame ships no EG3D weights. Without one, use Fit Triplane on views "
                f"(e.g. Procedural Head).")
        path = host.model_path(MODEL_KIND, model)
        device = host.compute_device()
        with torch.inference_mode(False):
            generator = TriplaneGenerator.from_file(path).to(device)
        return generator, StyleGANWPlusGenerator(generator, output=output, device=device)


class TameTriplaneFromLatent:
    DESCRIPTION = ("Synthesise a tri-plane with an EG3D generator: from a seed (z -> mapping network at the "
                   "frontal camera, with truncation) or from W+ latents (e.g. refined by the edit nodes). The "
                   "result renders from any camera (Render Triplane) and is the InD prior for Fit OOD.")
    CATEGORY = CATEGORY
    FUNCTION = "synthesise"
    RETURN_TYPES = ("TAME_TRIPLANE",)
    RETURN_NAMES = ("triplane",)
    OUTPUT_TOOLTIPS = ("The tri-plane (planes, the generator's decoder and render settings, and its W+ latents).",)

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "triplane_generator": ("TAME_TRIPLANE_GENERATOR", {"tooltip": "From Load Triplane Generator."}),
            "seed": ("INT", {**SEED_OPTIONS, "tooltip": "Seed of z ~ N(0, I) (ignored when a latent is connected)."}),
            "truncation_psi": ("FLOAT", {"default": 0.7, "min": 0.0, "max": 2.0, "step": 0.05,
                                         "tooltip": "Truncation towards the mean w (1 = none; EG3D samples with "
                                                    "0.7)."}),
        }, "optional": {
            "latent": ("LATENT", {"tooltip": "W+ latents [frames, w_dim, num_ws, 1] (the TAME_GENERATOR layout of "
                                             "Load Triplane Generator); one tri-plane per latent."}),
        }}

    def synthesise(self, triplane_generator, seed, truncation_psi, latent=None):
        if not isinstance(triplane_generator, TriplaneGenerator):
            raise ValueError(f"triplane_generator must be a TAME_TRIPLANE_GENERATOR from Load Triplane Generator, "
                             f"got {type(triplane_generator).__name__}.")
        model = triplane_generator
        device = next(model.parameters()).device
        with torch.no_grad():
            if latent is None:
                z = torch.randn(1, model.z_dim, generator=torch.Generator().manual_seed(int(seed))).to(device)
                ws = model.mapping(z, camera_label(*frontal_camera(model)).to(device), truncation_psi)
            else:
                ws = _wplus(latent, model).to(device)
            planes = model.planes(ws)
        return (TriplaneRecord(TriplaneField(planes, model.decoder), model.render_settings(), ws),)


def _wplus(latent, model):
    samples = latent.get("samples") if isinstance(latent, dict) else None
    expected = (model.w_dim, model.num_ws, 1)
    if not isinstance(samples, torch.Tensor) or samples.dim() != 4 or tuple(samples.shape[1:]) != expected:
        shape = tuple(samples.shape) if isinstance(samples, torch.Tensor) else type(samples).__name__
        raise ValueError(f"latent must hold W+ codes [frames,{model.w_dim},{model.num_ws},1] of this generator "
                         f"(Encode Frames / Latent MLP Refine with its TAME_GENERATOR), got {shape}.")
    if not bool(torch.isfinite(samples).all()):
        raise ValueError("latent contains NaN or Inf values; check the node that produced it.")
    return codes_to_wplus(samples.float())


# ------------------------------------------------------------------------------------- fitting
class TameFitTriplane:
    DESCRIPTION = ("Fit a tri-plane (planes + EG3D decoder) to posed views of an object: the in-distribution "
                   "prior when no EG3D generator is at hand. Views should show the object without the "
                   "out-of-distribution content (e.g. Procedural Head with the occluder off). Adam on random "
                   "pixel rays, L2 on colour; CPU-sized by default.")
    CATEGORY = CATEGORY
    FUNCTION = "fit"
    RETURN_TYPES = ("TAME_TRIPLANE",)
    RETURN_NAMES = ("triplane",)
    OUTPUT_TOOLTIPS = ("The fitted tri-plane, rendered with the sampling it was fitted with (24 + 24 samples between "
                       "EG3D's near 2.25 and far 3.3).",)

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "images": ("IMAGE", {"tooltip": "The views (square, one per camera)."}),
            "camera": ("TAME_CAMERA", {"tooltip": "The cameras of the views, in the same order."}),
            "steps": ("INT", {"default": 300, "min": 1, "max": 100000,
                              "tooltip": "Optimisation steps (1024 rays each)."}),
            "plane_resolution": ("INT", {"default": 64, "min": 4, "max": 512, "step": 4,
                                         "tooltip": "Side of each feature plane in texels (EG3D: 256)."}),
            "lr": ("FLOAT", {"default": 0.02, "min": 1e-5, "max": 1.0, "step": 0.001,
                             "tooltip": "Adam learning rate of the planes (the decoder uses a quarter)."}),
            "seed": ("INT", {**SEED_OPTIONS, "tooltip": "Seed of the initial planes and the ray batches."}),
        }}

    def fit(self, images, camera, steps, plane_resolution, lr, seed):
        with torch.inference_mode(False):
            frames, cam2world, intrinsics = _posed(images, camera, "images")
            field = fit_triplane(frames, cam2world, intrinsics, steps=steps, plane_resolution=plane_resolution,
                                 lr=lr, decoder_lr=lr / 4, seed=seed, progress=host.progress(steps, "fit triplane"))
        return (TriplaneRecord(field, FIT_SETTINGS),)


class TameFitOOD:
    DESCRIPTION = ("In-N-Out: explain observed frames as the in-distribution tri-plane plus a free "
                   "out-of-distribution (OOD) field with one code per frame (what the prior cannot show: hands, "
                   "masks, make-up). Composite L2 + perceptual loss, blending entropy and area terms; an optional "
                   "mask of the OOD pixels guides the split. Then Remove OOD renders the object without it.")
    CATEGORY = CATEGORY
    FUNCTION = "fit"
    RETURN_TYPES = ("TAME_OOD_FIELD",)
    RETURN_NAMES = ("ood_field",)
    OUTPUT_TOOLTIPS = ("The OOD field (planes, decoder, per-frame codes) with the InD tri-plane it composites with.",)

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "frames": ("IMAGE", {"tooltip": "The observed frames (square, one per camera)."}),
            "camera": ("TAME_CAMERA", {"tooltip": "The cameras of the frames, in the same order."}),
            "triplane": ("TAME_TRIPLANE", {"tooltip": "The InD prior (Fit Triplane, or Triplane From Latent)."}),
            "steps": ("INT", {"default": 200, "min": 1, "max": 100000,
                              "tooltip": "Optimisation steps (4 patches of 16 x 16 pixels each)."}),
            "ind_lr_scale": ("FLOAT", {"default": 0.0, "min": 0.0, "max": 1.0, "step": 0.01,
                                       "tooltip": "Learning rate of the InD tri-plane relative to the OOD field "
                                                  "(0 keeps the prior fixed; small values let it adapt)."}),
            "seed": ("INT", {**SEED_OPTIONS, "tooltip": "Seed of the OOD initialisation and the patches."}),
        }, "optional": {
            "mask": ("MASK", {"tooltip": "1 on pixels that show OOD content (one mask per frame): an extra loss "
                                         "makes the OOD field explain them."}),
        }}

    def fit(self, frames, camera, triplane, steps, ind_lr_scale, seed, mask=None):
        record = _triplane(triplane)
        with torch.inference_mode(False):
            images, cam2world, intrinsics = _posed(frames, camera)
            masks = None if mask is None else _frame_masks(mask, images)
            result = fit_ood(images, cam2world, intrinsics, _trainable(record.field), steps=steps,
                             ind_lr_scale=ind_lr_scale, masks=masks, seed=seed,
                             progress=host.progress(steps, "fit OOD"))
        return (OODRecord(result, record),)


def _frame_masks(mask, frames):
    masks = mask_to_batch(mask, "mask")
    if masks.shape[0] != frames.shape[0] or masks.shape[-2:] != frames.shape[-2:]:
        raise ValueError(f"mask is {masks.shape[0]} x {masks.shape[-1]}x{masks.shape[-2]} but the frames are "
                         f"{frames.shape[0]} x {frames.shape[-1]}x{frames.shape[-2]}; give one mask per frame at "
                         f"the frame size.")
    return masks.to(frames.device).clone()


# ------------------------------------------------------------------------------------- rendering
class TameRenderTriplane:
    DESCRIPTION = ("Render a tri-plane from cameras (EG3D's two-pass volume renderer): colour, depth and "
                   "opacity. With a TAME_OOD_FIELD, renders the In-N-Out composite of the InD and OOD fields.")
    CATEGORY = CATEGORY
    FUNCTION = "render"
    RETURN_TYPES = ("IMAGE", "IMAGE", "MASK")
    RETURN_NAMES = ("images", "depth", "opacity")
    OUTPUT_TOOLTIPS = (
        "The renders (the composite when an OOD field is connected), black background.",
        "Depth as grey: 1 at the near plane, 0 at the far plane and where nothing is hit.",
        "Accumulated opacity per pixel (1 = solid).",
    )

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "triplane": ("TAME_TRIPLANE", {"tooltip": "The tri-plane to render (with an OOD field: the one it was "
                                                      "fitted with; the composite uses the fit's InD field, refined "
                                                      "when ind_lr_scale > 0)."}),
            "camera": ("TAME_CAMERA", {"tooltip": "Cameras; one image per camera."}),
            "resolution": _resolution_input(128, "Side of the square renders in pixels."),
        }, "optional": {
            "ood_field": ("TAME_OOD_FIELD", {"tooltip": "Render the composite with this OOD field."}),
            "frame_code": _frame_code_input(-1),
        }}

    def render(self, triplane, camera, resolution, ood_field=None, frame_code=-1):
        record, camera = _triplane(triplane), _check_record(camera, Cameras, "camera")
        ood = None if ood_field is None else _check_record(ood_field, OODRecord, "ood_field")
        if ood is not None and ood.triplane is not record:
            raise ValueError("the OOD field was fitted with another tri-plane; connect the TAME_TRIPLANE that went "
                             "into its Fit OOD node.")
        out = _render(record, camera, resolution, ood, frame_code)
        settings = record.settings if ood is None else ood.triplane.settings
        return frames_to_image(out.images), _depth_image(out.depth, settings), batch_to_mask(out.opacity)


class TameRemoveOOD:
    DESCRIPTION = ("OOD removal (In-N-Out): render the fitted InD field alone (the object without the "
                   "occluder), the OOD field alone, and where the OOD field owns the rays (max blend weight b).")
    CATEGORY = CATEGORY
    FUNCTION = "remove"
    RETURN_TYPES = ("IMAGE", "IMAGE", "MASK")
    RETURN_NAMES = ("removed", "ood_only", "blend")
    OUTPUT_TOOLTIPS = (
        "The InD field alone: the frames with the OOD content removed.",
        "The OOD field alone (what was removed).",
        "Per-pixel maximum of the blend weight b along the ray (1 = the OOD field owns the ray).",
    )

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "ood_field": ("TAME_OOD_FIELD", {"tooltip": "From Fit OOD."}),
            "camera": ("TAME_CAMERA", {"tooltip": "Cameras (the fitted ones, or novel views with frame_code)."}),
            "resolution": _resolution_input(128, "Side of the square renders in pixels."),
            "frame_code": _frame_code_input(-1),
        }}

    def remove(self, ood_field, camera, resolution, frame_code):
        ood = _check_record(ood_field, OODRecord, "ood_field")
        camera = _check_record(camera, Cameras, "camera")
        code = _code_choice(frame_code, ood, len(camera))
        cam2world, intrinsics = _on(ood.fit.ind, camera)
        composite = render_composite(ood.fit, cam2world, intrinsics, resolution, code, ood.triplane.settings,
                                     host.progress(1, "remove OOD"))
        return frames_to_image(composite.ind_images), frames_to_image(composite.ood_images), \
            batch_to_mask(composite.blend_max)


class TameRenderOrbit:
    DESCRIPTION = ("An orbit video of a tri-plane (or of its composite with an OOD field): `frames` cameras "
                   "sweeping yaw over +-yaw_range degrees about the frontal view at one pitch and radius.")
    CATEGORY = CATEGORY
    FUNCTION = "render"
    RETURN_TYPES = ("IMAGE", "IMAGE")
    RETURN_NAMES = ("images", "depth")
    OUTPUT_TOOLTIPS = ("The orbit video (one frame per camera).",
                       "Depth per frame as grey: 1 at the near plane, 0 at the far plane and where nothing is hit.")

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "triplane": ("TAME_TRIPLANE", {"tooltip": "The tri-plane to render."}),
            "frames": ("INT", {"default": 24, "min": 1, "max": 10000, "tooltip": "Number of video frames."}),
            "radius": ("FLOAT", {"default": EG3D_RADIUS, "min": 0.01, "max": 100.0, "step": 0.01,
                                 "tooltip": "Camera distance from the origin (EG3D: 2.7)."}),
            "pitch": ("FLOAT", {"default": FRONTAL_DEGREES, "min": 1.0, "max": 179.0, "step": 1.0,
                                "tooltip": "Pitch in degrees (90 = level; less looks down from above)."}),
            "yaw_range": ("FLOAT", {"default": 30.0, "min": 0.0, "max": 180.0, "step": 1.0,
                                    "tooltip": "The yaw sweeps from 90 - yaw_range to 90 + yaw_range degrees."}),
            "fov": ("FLOAT", {"default": EG3D_FOV, "min": 0.1, "max": 179.0, "step": 0.01,
                              "tooltip": "Field of view in degrees, EG3D's convention."}),
            "resolution": _resolution_input(128, "Side of the square frames in pixels."),
        }, "optional": {
            "ood_field": ("TAME_OOD_FIELD", {"tooltip": "Render the composite with this OOD field."}),
            "frame_code": _frame_code_input(0),
        }}

    def render(self, triplane, frames, radius, pitch, yaw_range, fov, resolution, ood_field=None, frame_code=0):
        camera = Cameras.orbit(FRONTAL_DEGREES - yaw_range, pitch, radius, fov, frames,
                               FRONTAL_DEGREES + yaw_range, pitch)
        images, depth, _ = TameRenderTriplane().render(triplane, camera, resolution, ood_field, frame_code)
        return images, depth


NODE_CLASS_MAPPINGS = {cls.__name__: cls for cls in (
    TameCamera, TameProceduralHead, TameLoadTriplaneGenerator, TameTriplaneFromLatent, TameFitTriplane,
    TameFitOOD, TameRenderTriplane, TameRemoveOOD, TameRenderOrbit)}
NODE_DISPLAY_NAME_MAPPINGS = {
    "TameCamera": "Camera (Tame)",
    "TameProceduralHead": "Procedural Head (Tame)",
    "TameLoadTriplaneGenerator": "Load Triplane Generator (Tame)",
    "TameTriplaneFromLatent": "Triplane From Latent (Tame)",
    "TameFitTriplane": "Fit Triplane (Tame)",
    "TameFitOOD": "Fit OOD (Tame)",
    "TameRenderTriplane": "Render Triplane (Tame)",
    "TameRemoveOOD": "Remove OOD (Tame)",
    "TameRenderOrbit": "Render Orbit (Tame)",
}
