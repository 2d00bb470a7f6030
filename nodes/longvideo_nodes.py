"""Long-video tools (seed 003): temporal low-pass noise, pose keypoint heatmaps, colour drift real vs generated."""
import numbers

import torch

from ..kernels.pose import BODY25_TO_COCO18, KEYPOINTS, colorize_heatmaps, heatmap_sigma2, keypoint_heatmaps
from ..kernels.temporal_noise import footprints, lattice_step, temporal_noise
from ..models.metrics.color_drift import compare_color_drift, format_color_drift, plot_color_drift
from . import host
from .tensors import batch_to_mask, frames_to_image, image_to_frames

CATEGORY = "Tame/long video"
UNITS = ["frames", "seconds"]
COORDINATES = ["auto", "normalised (0..1)", "pixels"]
LATENT_DOWNSCALE = 8


# ------------------------------------------------------------------------------ temporal noise
class TemporalNoiseSource:
    """ComfyUI NOISE object (the `Noise_RandomNoise` contract: `seed`, `generate_noise(latent)`).

    `generate_noise` returns temporally low-pass noise shaped like `latent["samples"]`: `[B,C,h,w]`
    (frames as batch: frame start_frame + b, or start_frame + batch_index[b]) or `[B,C,T,h,w]`
    (video latents: frame start_frame + t; batch item b uses seed + b). float32 values are cast to
    the latent's dtype; the tensor is on the CPU, as ComfyUI's own noise.
    """

    def __init__(self, seed, start_frame, footprint_list, fresh):
        self.seed, self.start_frame = int(seed), int(start_frame)
        self.footprints, self.fresh = list(footprint_list), float(fresh)

    def frames(self, count, batch_index=None):
        """Absolute frame indices `[count]` int64 of a latent batch."""
        if batch_index is not None:
            if len(batch_index) != count:
                raise ValueError(f"latent batch_index has {len(batch_index)} entries for {count} latents.")
            return self.start_frame + torch.as_tensor(list(batch_index), dtype=torch.int64)
        return self.start_frame + torch.arange(count, dtype=torch.int64)

    def generate(self, frames, size, seed=None):
        return temporal_noise(frames, size, self.seed if seed is None else seed, self.footprints, self.fresh)

    def generate_noise(self, input_latent):
        samples = input_latent["samples"]
        if getattr(samples, "is_nested", False):
            raise ValueError("Temporal Noise cannot fill nested latents (several models at once); sample "
                             "them separately.")
        if samples.ndim == 4:
            frames = self.frames(samples.shape[0], input_latent.get("batch_index"))
            noise = self.generate(frames, tuple(samples.shape[1:]))
        elif samples.ndim == 5:
            frames = self.frames(samples.shape[2])
            noise = torch.stack([self.generate(frames, (samples.shape[1], *samples.shape[3:]), self.seed + b)
                                 .transpose(0, 1) for b in range(samples.shape[0])])
        else:
            raise ValueError(f"latent samples {tuple(samples.shape)} must be [B,C,h,w] or [B,C,T,h,w].")
        return noise.to(samples.dtype)


def _noise_size(channels, width, height, latent, image):
    """(C, h, w) of one frame's noise: from the latent, else the image / 8, else the widgets / 8."""
    if latent is not None:
        samples = latent.get("samples") if isinstance(latent, dict) else None
        if not isinstance(samples, torch.Tensor) or samples.ndim not in (4, 5):
            raise ValueError("latent must be a LATENT with samples [B,C,h,w] or [B,C,T,h,w]; connect a LATENT "
                             "output (e.g. Empty Latent Image).")
        return (samples.shape[1], *samples.shape[-2:])
    if image is not None:
        frames = image_to_frames(image, "image")
        height, width = frames.shape[-2:]
    if width < LATENT_DOWNSCALE or height < LATENT_DOWNSCALE:
        raise ValueError(f"width x height {width} x {height} px gives an empty latent; both must be at least "
                         f"{LATENT_DOWNSCALE} px (the latent is 1/{LATENT_DOWNSCALE} of the image size).")
    return (channels, height // LATENT_DOWNSCALE, width // LATENT_DOWNSCALE)


def noise_preview(samples):
    """Noise `[T,C,h,w]` -> pictures `[T,3,h,w]`: channels 0-2 (repeated when C < 3) as 0.5 + 0.15 x."""
    channels = samples[:, [min(c, samples.shape[1] - 1) for c in range(3)]]
    return (0.5 + 0.15 * channels).clamp(0.0, 1.0)


def _footprints_in_frames(unit, k_min, k_max, fps, filters):
    """Footprints in frames of the node's footprint controls (seconds are multiplied by fps)."""
    if unit not in UNITS:
        raise ValueError(f"footprint_unit must be one of {UNITS}, got {unit!r}.")
    if unit == UNITS[1] and not fps > 0:
        raise ValueError(f"fps must be positive to convert footprints in seconds to frames, got {fps!r}.")
    scale = 1.0 if unit == UNITS[0] else fps
    return footprints(k_min * scale, k_max * scale, filters)


def _noise_info(frames, size, footprint_list, fresh):
    ks = ", ".join(f"{k:.1f}" for k in footprint_list)
    steps = sorted({lattice_step(k) for k in footprint_list})
    return (f"temporal noise: frames {frames[0]}..{frames[-1]}, per-frame size {size[0]}x{size[1]}x{size[2]} "
            f"(C x h x w), {len(footprint_list)} Kaiser low-pass filters, footprints [{ks}] frames, noise "
            f"lattice steps {steps} frames, fresh white-noise share {fresh:.2f}.")


class TameTemporalNoise:
    DESCRIPTION = ("Temporally low-pass noise for video generation of any length (LongVideoGAN filter bank, "
                   "seed 003): white noise filtered over time by N Kaiser low-pass filters whose footprints "
                   "are spaced exponentially from k_min to k_max, unit variance per element. Frames are "
                   "indexed by absolute frame number, so chunks generated separately (start 0 and start 50) "
                   "agree exactly where they overlap. Outputs the noise as a LATENT and as a NOISE for "
                   "SamplerCustomAdvanced.")
    CATEGORY = CATEGORY
    FUNCTION = "generate"
    RETURN_TYPES = ("LATENT", "NOISE", "IMAGE", "STRING")
    RETURN_NAMES = ("latent", "noise", "preview", "info")
    OUTPUT_TOOLTIPS = (
        "The noise as LATENT samples [frames, channels, height/8, width/8] (unit variance).",
        "The same noise process as a NOISE for SamplerCustomAdvanced: shaped like the latent it fills "
        "(frames as batch, or the time axis of video latents), starting at start_frame.",
        "Channels 0-2 of the noise as pictures at latent size (grey = 0, +-3.3 sigma = full range), to "
        "see how slowly it changes.",
        "The footprints in frames, the noise lattice steps and the sizes used.",
    )

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "seed": ("INT", {"default": 0, "min": 0, "max": 0xFFFFFFFFFFFFFFFF,
                             "tooltip": "Seed; with the absolute frame index it fully determines a frame."}),
            "frames": ("INT", {"default": 16, "min": 1, "max": 1000000,
                               "tooltip": "Number of frames of the LATENT output."}),
            "start_frame": ("INT", {"default": 0, "min": 0, "max": 100000000,
                                    "tooltip": "Absolute index of the first frame: generate a long video in "
                                               "pieces (0, 50, 100, ...) and the pieces agree on overlaps."}),
            "width": ("INT", {"default": 512, "min": 8, "max": 16384, "step": 8,
                              "tooltip": "Image width in pixels (latent width = width / 8)."}),
            "height": ("INT", {"default": 512, "min": 8, "max": 16384, "step": 8,
                               "tooltip": "Image height in pixels (latent height = height / 8)."}),
            "channels": ("INT", {"default": 4, "min": 1, "max": 256,
                                 "tooltip": "Latent channels (4 for SD1.x/SDXL, 16 for SD3/Flux/Wan)."}),
            "footprint_unit": (UNITS, {"default": "frames",
                                       "tooltip": "Unit of k_min and k_max: frames, or seconds (times fps)."}),
            "k_min": ("FLOAT", {"default": 16.0, "min": 0.001, "max": 1000000.0, "step": 1.0,
                                "tooltip": "Shortest filter footprint. Noise stays correlated for about a "
                                           "third of the footprint and is independent beyond 3/4 of it."}),
            "k_max": ("FLOAT", {"default": 512.0, "min": 0.001, "max": 1000000.0, "step": 1.0,
                                "tooltip": "Longest filter footprint (the seed: 500 to 10000 frames)."}),
            "fps": ("FLOAT", {"default": 16.0, "min": 0.001, "max": 1000.0, "step": 0.5,
                              "tooltip": "Frame rate, used when the footprints are in seconds."}),
            "filters": ("INT", {"default": 16, "min": 1, "max": 128,
                                "tooltip": "Number of filters N (the seed: 128). Cost grows linearly with N."}),
            "fresh_noise": ("FLOAT", {"default": 0.0, "min": 0.0, "max": 1.0, "step": 0.01,
                                      "tooltip": "Share of the variance given to independent per-frame noise "
                                                 "(0 = fully low-pass, 1 = ordinary white noise)."}),
        }, "optional": {
            "latent": ("LATENT", {"tooltip": "Take channels and latent size from this latent instead of the "
                                             "widgets."}),
            "image": ("IMAGE", {"tooltip": "Take the size from these frames (latent = image size / 8)."}),
        }}

    def generate(self, seed, frames, start_frame, width, height, channels, footprint_unit, k_min, k_max, fps,
                 filters, fresh_noise, latent=None, image=None):
        if frames < 1:
            raise ValueError(f"frames is {frames}; generate at least 1 frame.")
        size = _noise_size(channels, width, height, latent, image)
        footprint_list = _footprints_in_frames(footprint_unit, k_min, k_max, fps, filters)
        source = TemporalNoiseSource(seed, start_frame, footprint_list, fresh_noise)
        indices = source.frames(frames)
        samples = temporal_noise(indices, size, source.seed, footprint_list, fresh_noise,
                                 progress=host.progress(frames, "temporal noise"))
        info = _noise_info(indices.tolist(), size, footprint_list, fresh_noise)
        return ({"samples": samples}, source, frames_to_image(noise_preview(samples)), info)


# ------------------------------------------------------------------------------ pose heatmaps
def _pose_frames(pose_keypoint):
    """POSE_KEYPOINT (a list of frame dicts, or one dict) -> list of frame dicts (validated)."""
    if isinstance(pose_keypoint, dict):
        pose_keypoint = [pose_keypoint]
    if not isinstance(pose_keypoint, (list, tuple)):
        raise ValueError(f"pose_keypoint must be a POSE_KEYPOINT list of frames, got {type(pose_keypoint).__name__}.")
    if not pose_keypoint:
        raise ValueError("pose_keypoint has no frames (empty list); run the pose estimator on at least one image.")
    for number, frame in enumerate(pose_keypoint):
        if not isinstance(frame, dict):
            raise ValueError(f"pose_keypoint frame {number} must be a dict with 'people', got "
                             f"{type(frame).__name__}.")
    return list(pose_keypoint)


def _body_keypoints(values, where):
    """Flat [x, y, c] * 18 (or BODY_25 * 25) -> `[18,3]` float64 in COCO-18 order."""
    if not isinstance(values, (list, tuple)) or not all(isinstance(v, numbers.Real) for v in values):
        raise ValueError(f"{where}: pose_keypoints_2d must be a flat list of numbers [x, y, c, ...].")
    points = torch.tensor(values, dtype=torch.float64).view(-1, 3) if len(values) % 3 == 0 else None
    if points is None or points.shape[0] not in (KEYPOINTS, 25):
        raise ValueError(f"{where}: pose_keypoints_2d has {len(values)} values; expected {3 * KEYPOINTS} "
                         f"(18 OpenPose keypoints x [x, y, c]) or 75 (BODY_25).")
    if not torch.isfinite(points).all():
        raise ValueError(f"{where}: pose_keypoints_2d contains NaN or Inf.")
    return points[list(BODY25_TO_COCO18)] if points.shape[0] == 25 else points


def _frame_people(frame, number):
    """[18,3] keypoint arrays of the people of a frame (people with no body keypoints are skipped)."""
    people = frame.get("people") or []
    if not isinstance(people, (list, tuple)):
        raise ValueError(f"pose_keypoint frame {number}: 'people' must be a list, got {type(people).__name__}.")
    arrays = []
    for index, person in enumerate(people):
        if not isinstance(person, dict):
            raise ValueError(f"pose_keypoint frame {number} person {index} must be a dict, got "
                             f"{type(person).__name__}.")
        values = person.get("pose_keypoints_2d")
        if values:
            arrays.append(_body_keypoints(values, f"pose_keypoint frame {number} person {index}"))
    return arrays


def _canvas(frame, number):
    """(width, height) of the frame's canvas, or None when absent."""
    width, height = frame.get("canvas_width"), frame.get("canvas_height")
    if width is None or height is None:
        return None
    if not (isinstance(width, numbers.Real) and isinstance(height, numbers.Real) and width > 0 and height > 0):
        raise ValueError(f"pose_keypoint frame {number}: canvas_width/canvas_height must be positive numbers, "
                         f"got {width!r} x {height!r}.")
    return float(width), float(height)


def is_normalised(points):
    """True when every visible keypoint (c > 0) of `[K,3]` has x and y in [0, 1] (DWPose style)."""
    visible = points[:, 2] > 0
    return bool(((points[visible, :2] >= 0) & (points[visible, :2] <= 1)).all())


def _to_output_pixels(points, coordinates, canvas, size, where):
    """`[K,3]` detector keypoints -> `[K,2]` (x, y) in output pixels of size (width, height)."""
    normalised = is_normalised(points) if coordinates == COORDINATES[0] else coordinates == COORDINATES[1]
    if normalised:
        return points[:, :2] * torch.tensor(size, dtype=torch.float64)
    if canvas is None:
        raise ValueError(f"{where}: keypoints are in pixels but the frame has no canvas_width/canvas_height; "
                         f"set coordinates to 'normalised (0..1)' if they are, or use a detector that "
                         f"saves the canvas size.")
    return points[:, :2] * torch.tensor([size[0] / canvas[0], size[1] / canvas[1]], dtype=torch.float64)


def _output_size(frames, width, height):
    """(width, height) of the heatmaps: the widgets, 0 = the first frame's canvas."""
    canvas = _canvas(frames[0], 0)
    if (width == 0 or height == 0) and canvas is None:
        raise ValueError("width/height are 0 (= canvas size) but the first pose frame has no canvas_width/"
                         "canvas_height; set width and height.")
    return (int(width) or round(canvas[0]), int(height) or round(canvas[1]))


def pose_heatmaps(pose_keypoint, width=0, height=0, coordinates="auto"):
    """POSE_KEYPOINT -> per-keypoint heatmaps `[T,18,H,W]` (max over people), R = max(W, H)."""
    frames = _pose_frames(pose_keypoint)
    if coordinates not in COORDINATES:
        raise ValueError(f"coordinates must be one of {COORDINATES}, got {coordinates!r}.")
    size = _output_size(frames, width, height)
    sigma2 = heatmap_sigma2(max(size))
    maps = torch.zeros(len(frames), KEYPOINTS, size[1], size[0])
    for number, frame in enumerate(frames):
        where, canvas = f"pose_keypoint frame {number}", _canvas(frame, number)
        people = _frame_people(frame, number)
        if people:
            points = torch.stack([_to_output_pixels(p, coordinates, canvas, size, where) for p in people])
            visible = torch.stack([p[:, 2] > 0 for p in people])
            maps[number] = keypoint_heatmaps(points, visible, size[1], size[0], sigma2)
    return maps


class TamePoseHeatmaps:
    DESCRIPTION = ("Keypoint heatmaps from POSE_KEYPOINT (OpenPose / DWPose estimator nodes): a Gaussian "
                   "exp(-d^2 / 2 sigma^2) at each visible of the 18 body keypoints, sigma^2 = max(0.5, "
                   "0.005 R^2) with R the larger output side (seed 003 eq. 3.1); several people: max. "
                   "Normalised (0..1) or pixel coordinates are detected per person; faces and hands are "
                   "ignored; BODY_25 is mapped to the 18 keypoints.")
    CATEGORY = CATEGORY
    FUNCTION = "render"
    RETURN_TYPES = ("IMAGE", "MASK", "MASK")
    RETURN_NAMES = ("heatmap_image", "mask", "keypoint_masks")
    OUTPUT_TOOLTIPS = (
        "Colour picture per frame: each keypoint's heatmap in its own hue (max over keypoints).",
        "One mask per frame: the max over the 18 keypoint heatmaps (where the body is).",
        "Every keypoint's heatmap as its own mask: frames x 18 masks, frame-major (mask 18 t + k is "
        "keypoint k of frame t, OpenPose order nose, neck, r-shoulder, ...). 18x the memory of mask.",
    )

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "pose_keypoint": ("POSE_KEYPOINT", {"tooltip": "Keypoints from a pose estimator node (DWPose, "
                                                           "OpenPose): one entry per frame."}),
            "width": ("INT", {"default": 0, "min": 0, "max": 16384, "step": 8,
                              "tooltip": "Output width in pixels (0 = the pose canvas width)."}),
            "height": ("INT", {"default": 0, "min": 0, "max": 16384, "step": 8,
                               "tooltip": "Output height in pixels (0 = the pose canvas height)."}),
            "coordinates": (COORDINATES, {"default": "auto",
                                          "tooltip": "auto: a person whose visible keypoints all lie in "
                                                     "[0,1] is normalised, else pixels of the canvas."}),
        }}

    def render(self, pose_keypoint, width, height, coordinates):
        maps = pose_heatmaps(pose_keypoint, width, height, coordinates)
        image = torch.stack([colorize_heatmaps(frame) for frame in maps])
        mask = maps.amax(1, keepdim=True)
        return (frames_to_image(image), batch_to_mask(mask), maps.flatten(0, 1).contiguous())


# ------------------------------------------------------------------------------ colour drift
class TameColorDriftCompare:
    DESCRIPTION = ("Colour change over time, real vs generated (seed 003 eq. 2.1): the colour-histogram "
                   "similarity S between frames d apart, its mean and spread over all start frames, for "
                   "both videos on one plot. A generator that changes colours too slowly or too fast "
                   "shows curves above or below the real one.")
    CATEGORY = "Tame/metrics"
    FUNCTION = "compare"
    RETURN_TYPES = ("IMAGE", "STRING", "FLOAT")
    RETURN_NAMES = ("plot", "report", "gap")
    OUTPUT_TOOLTIPS = (
        "Plot of mean and std of S against frame separation for both videos.",
        "Text summary: mean +- std at separations 1, 2, 4, ... and the gap.",
        "Mean |S_real - S_generated| over the separations both videos cover (0 = same drift).",
    )
    OUTPUT_NODE = True

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "real": ("IMAGE", {"tooltip": "A real video (at least 2 frames)."}),
            "generated": ("IMAGE", {"tooltip": "A generated video (at least 2 frames; may differ in length "
                                               "and size)."}),
            "max_separation": ("INT", {"default": 128, "min": 1, "max": 100000,
                                       "tooltip": "Largest frame separation d (clipped to each video's "
                                                  "length - 1; the seed uses 128-frame clips)."}),
            "bins": ("INT", {"default": 20, "min": 2, "max": 32,
                             "tooltip": "Histogram bins per RGB channel (20 in the seed)."}),
        }}

    def compare(self, real, generated, max_separation, bins):
        real_frames = image_to_frames(real, "real", min_frames=2)
        generated_frames = image_to_frames(generated, "generated", min_frames=2)
        result = compare_color_drift(real_frames, generated_frames, max_separation, bins)
        report = format_color_drift(result)
        plot = frames_to_image(plot_color_drift(result)[None])
        return {"ui": {"text": [report]}, "result": (plot, report, result["gap"])}


NODE_CLASS_MAPPINGS = {
    "TameTemporalNoise": TameTemporalNoise,
    "TamePoseHeatmaps": TamePoseHeatmaps,
    "TameColorDriftCompare": TameColorDriftCompare,
}
NODE_DISPLAY_NAME_MAPPINGS = {
    "TameTemporalNoise": "Temporal Noise (Tame)",
    "TamePoseHeatmaps": "Pose Heatmaps (Tame)",
    "TameColorDriftCompare": "Colour Drift Real vs Generated (Tame)",
}
