"""Video super-resolution building blocks: anti-aliased downsampling, frequency split/merge, and the
temporal wrapper that makes any per-frame upscaler (ComfyUI UPSCALE_MODEL or a plain resize) steady."""
import torch

from ..kernels.frequency import blur_downsample, merge_frequencies, split_frequencies
from ..models.temporal_upscale import (FLOW_MIN_SIDE_DEFAULT, KEEP_DETAIL_DEFAULT, RESIZE_UPSCALE_MODES,
                                      TEMPORAL_WEIGHT_DEFAULT, resize_upscaler, temporal_upscale)
from . import host
from .flow_nodes import builtin_estimator
from .tensors import frames_to_image, image_to_frames

CATEGORY = "Tame/upscale"
# IMAGE values must lie in [0,1]; the high band (roughly -0.5..0.5) is stored shifted by this much.
HIGH_OFFSET = 0.5


class TameAntiAliasDownsample:
    DESCRIPTION = ("Anti-aliased downsampling (BlurPool): binomial [1,4,6,4,1]/16 blur, then keep every 2nd "
                   "pixel, repeated for 4x and 8x. Fine patterns fade to their average instead of turning "
                   "into moire. Each halving keeps pixels 0, 2, 4, ... (a side of n px becomes ceil(n/2)).")
    CATEGORY = CATEGORY
    FUNCTION = "downsample"
    RETURN_TYPES = ("IMAGE",)
    RETURN_NAMES = ("image",)

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "image": ("IMAGE", {"tooltip": "Images or video frames to shrink."}),
            "factor": (["2", "4", "8"], {"default": "2", "tooltip": "Downsampling factor per side."}),
        }}

    def downsample(self, image, factor):
        return (frames_to_image(blur_downsample(image_to_frames(image, "image"), int(factor))),)


class TameSplitFrequencies:
    DESCRIPTION = ("Split images into a low band (binomial blur) and the high band = image - low. IMAGE values "
                   "must stay in [0,1], so the high band is output shifted by +0.5 (0.5 = no detail); values "
                   "beyond +-0.5 are clipped. Merge Frequencies undoes the shift.")
    CATEGORY = CATEGORY
    FUNCTION = "split"
    RETURN_TYPES = ("IMAGE", "IMAGE")
    RETURN_NAMES = ("low", "high")

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "image": ("IMAGE", {"tooltip": "Images or video frames to split."}),
            "passes": ("INT", {"default": 1, "min": 1, "max": 64,
                               "tooltip": "Blur passes of the low band: p passes = Gaussian-like blur of "
                                          "variance p px^2, so more passes move more detail into high."}),
        }}

    def split(self, image, passes):
        low, high = split_frequencies(image_to_frames(image, "image"), passes=passes)
        return (frames_to_image(low), frames_to_image(high + HIGH_OFFSET))


class TameMergeFrequencies:
    DESCRIPTION = ("Recombine a low band and a +0.5-shifted high band from Split Frequencies: "
                   "image = low + (high - 0.5), clipped to [0,1].")
    CATEGORY = CATEGORY
    FUNCTION = "merge"
    RETURN_TYPES = ("IMAGE",)
    RETURN_NAMES = ("image",)

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "low": ("IMAGE", {"tooltip": "Low band (from Split Frequencies, possibly edited)."}),
            "high": ("IMAGE", {"tooltip": "High band stored with the +0.5 offset (0.5 = no detail)."}),
        }}

    def merge(self, low, high):
        low_frames, high_frames = image_to_frames(low, "low"), image_to_frames(high, "high")
        if low_frames.shape != high_frames.shape:
            raise ValueError(f"low {tuple(low.shape)} and high {tuple(high.shape)} must have the same frame "
                             f"count and size; split them from the same images.")
        return (frames_to_image(merge_frequencies(low_frames, high_frames - HIGH_OFFSET)),)


def model_upscaler(upscale_model, device):
    """`upscale_fn` and scale from ComfyUI's UPSCALE_MODEL (a spandrel ImageModelDescriptor): called on
    `[n,3,h,w]` in [0,1] as ComfyUI's Upscale Image (using Model) does, output clamped to [0,1]."""
    module = getattr(upscale_model, "model", None)
    scale = getattr(upscale_model, "scale", None)
    if module is None or not isinstance(scale, (int, float)):
        raise ValueError(f"upscale_model must be an UPSCALE_MODEL from Load Upscale Model (with .model and "
                         f".scale), got {type(upscale_model).__name__}.")
    if scale <= 1:
        raise ValueError(f"the upscale model has scale {scale}; the temporal wrapper needs an enlarging model "
                         f"(2x, 4x, ...). Use the model directly for 1x restoration.")
    call = upscale_model if callable(upscale_model) else module
    parameter = next(module.parameters(), None) if isinstance(module, torch.nn.Module) else None
    dtype = parameter.dtype if parameter is not None else torch.float32  # spandrel wants the model's dtype

    def upscale(images):
        with torch.no_grad():
            return call(images.to(device, dtype)).float().clamp(0.0, 1.0)

    return upscale, scale


class TameTemporalUpscale:
    DESCRIPTION = ("Upscale a video with any image upscaler (an UPSCALE_MODEL, or a plain resize) and remove "
                   "the flicker of its invented detail: each upscaled frame is split into a low band (kept) "
                   "and a high band, which is propagated along optical flow backward and forward through "
                   "the clip and averaged where the flow is reliable (occluded pixels keep their own detail); "
                   "the averaged detail is then rescaled to the per-frame amount of detail (keep_detail).")
    CATEGORY = CATEGORY
    FUNCTION = "upscale"
    RETURN_TYPES = ("IMAGE",)
    RETURN_NAMES = ("images",)

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "images": ("IMAGE", {"tooltip": "The low-resolution video as an IMAGE batch (frames in order)."}),
            "resize_mode": (list(RESIZE_UPSCALE_MODES), {
                "default": "bicubic", "tooltip": "Built-in resize used when no upscale_model is connected."}),
            "scale": ("INT", {"default": 2, "min": 2, "max": 4,
                              "tooltip": "Factor of the built-in resize (an upscale_model brings its own)."}),
            "temporal_strength": ("FLOAT", {
                "default": TEMPORAL_WEIGHT_DEFAULT, "min": 0.0, "max": 1.0, "step": 0.05,
                "tooltip": "Weight of the detail carried over from neighbouring frames: 0 = per-frame result, "
                           "0.9 = memory of about 10 frames, halves the flicker with estimated flow; lower it "
                           "if fast or complex motion leaves ghosts of detail."}),
            "prefilter": ("FLOAT", {
                "default": 0.0, "min": 0.0, "max": 1.0, "step": 0.05,
                "tooltip": "Anti-alias blur of the input frames before upscaling (0 = off). 0.25-0.5 calms "
                           "jaggies and moire of aliased sources; costs sharpness on clean ones."}),
            "chunk_frames": ("INT", {"default": 8, "min": 1, "max": 1024,
                                     "tooltip": "Frames per upscaler call; lower it if the GPU runs out of memory."}),
        }, "optional": {
            "upscale_model": ("UPSCALE_MODEL", {"tooltip": "Model from Load Upscale Model (ESRGAN, SwinIR, ...); "
                                                           "when absent the built-in resize is used."}),
            "flow_model": ("TAME_FLOW_MODEL", {"tooltip": "Flow estimator from Load Flow Model; default: "
                                                          "built-in medium. Frames under "
                                                          f"{FLOW_MIN_SIDE_DEFAULT} px on the shorter side are "
                                                          "enlarged for the flow estimation (more accurate)."}),
            "keep_detail": ("FLOAT", {
                "default": KEEP_DETAIL_DEFAULT, "min": 0.0, "max": 1.0, "step": 0.05,
                "tooltip": "How much of the upscaler's amount of detail to keep: averaging over frames removes the "
                           "flicker but also thins the detail; 1 = rescale the stable detail back to the "
                           "average per-frame detail energy (gain at most 3x), 0 = plain average (softer)."}),
        }}

    def upscale(self, images, resize_mode, scale, temporal_strength, prefilter, chunk_frames,
                upscale_model=None, flow_model=None, keep_detail=KEEP_DETAIL_DEFAULT):
        frames = image_to_frames(images)
        device = host.compute_device()
        if upscale_model is None:
            upscale_fn = resize_upscaler(resize_mode, scale)
            return (frames_to_image(self._run(frames, upscale_fn, scale, temporal_strength, prefilter,
                                              chunk_frames, device, flow_model, keep_detail)),)
        upscale_fn, model_scale = model_upscaler(upscale_model, device)
        mover = upscale_model if hasattr(upscale_model, "to") else upscale_model.model
        mover.to(device)
        try:
            result = self._run(frames, upscale_fn, model_scale, temporal_strength, prefilter, chunk_frames,
                               device, flow_model, keep_detail)
        finally:
            mover.to("cpu")
            host.free_device_cache()
        return (frames_to_image(result),)

    @staticmethod
    def _run(frames, upscale_fn, scale, temporal_strength, prefilter, chunk_frames, device, flow_model, keep_detail):
        estimator = None
        if frames.shape[0] > 1:
            estimator = flow_model or builtin_estimator()
        return temporal_upscale(frames, upscale_fn, scale, estimator, prefilter=prefilter,
                                temporal_weight=temporal_strength, keep_detail=keep_detail, chunk=chunk_frames,
                                device=device,
                                progress=host.progress(1, "temporal upscale"))


NODE_CLASS_MAPPINGS = {cls.__name__: cls for cls in (
    TameAntiAliasDownsample, TameSplitFrequencies, TameMergeFrequencies, TameTemporalUpscale)}
NODE_DISPLAY_NAME_MAPPINGS = {
    "TameAntiAliasDownsample": "Anti-Alias Downsample (Tame)",
    "TameSplitFrequencies": "Split Frequencies (Tame)",
    "TameMergeFrequencies": "Merge Frequencies (Tame)",
    "TameTemporalUpscale": "Temporal Upscale (Tame)",
}
