"""The temporal wrapper node: makes any per-frame upscaler (ComfyUI UPSCALE_MODEL or a plain resize) steady."""
from contextlib import contextmanager

from ..models.vsr.wrapper import (
    FLOW_MIN_SIDE_DEFAULT,
    KEEP_DETAIL_DEFAULT,
    RESIZE_UPSCALE_MODES,
    TEMPORAL_WEIGHT_DEFAULT,
    resize_upscaler,
    temporal_upscale,
)
from . import host
from .comfy_objects import model_upscaler
from .flow_nodes import builtin_estimator
from .tensors import frames_to_image, image_to_frames

CATEGORY = "Tame/upscale"

# Inputs shared by the wrapper nodes (IMAGE batch here, video file in streaming_nodes), in widget order.
WRAPPER_SETTINGS_INPUTS = {
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
}
UPSCALE_MODEL_INPUT = {
    "upscale_model": ("UPSCALE_MODEL", {"tooltip": "Model from Load Upscale Model (ESRGAN, SwinIR, ...); "
                                                   "when absent the built-in resize is used."}),
}
KEEP_DETAIL_INPUT = {
    "keep_detail": ("FLOAT", {
        "default": KEEP_DETAIL_DEFAULT, "min": 0.0, "max": 1.0, "step": 0.05,
        "tooltip": "How much of the upscaler's amount of detail to keep: averaging over frames removes the "
                   "flicker but also thins the detail; 1 = rescale the stable detail back to the "
                   "average per-frame detail energy (gain at most 3x), 0 = plain average (softer)."}),
}


@contextmanager
def chosen_upscaler(upscale_model, resize_mode, scale, device):
    """Yield (upscale_fn, scale): the model's on `device` (moved back to the CPU afterwards), else the resize."""
    if upscale_model is None:
        yield resize_upscaler(resize_mode, scale), scale
        return
    upscale_fn, model_scale = model_upscaler(upscale_model, device)
    mover = upscale_model if hasattr(upscale_model, "to") else upscale_model.model
    mover.to(device)
    try:
        yield upscale_fn, model_scale
    finally:
        mover.to("cpu")
        host.free_device_cache()


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
    OUTPUT_TOOLTIPS = ("The upscaled video with its detail steadied along the flow.",)

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "images": ("IMAGE", {"tooltip": "The low-resolution video as an IMAGE batch (frames in order)."}),
            **WRAPPER_SETTINGS_INPUTS,
            "chunk_frames": ("INT", {"default": 8, "min": 1, "max": 1024,
                                     "tooltip": "Frames per upscaler call; lower it if the GPU runs out of memory."}),
        }, "optional": {
            **UPSCALE_MODEL_INPUT,
            "flow_model": ("TAME_FLOW_MODEL", {"tooltip": "Flow estimator from Load Flow Model; default: "
                                                          "built-in medium. Frames under "
                                                          f"{FLOW_MIN_SIDE_DEFAULT} px on the shorter side are "
                                                          "enlarged for the flow estimation (more accurate)."}),
            **KEEP_DETAIL_INPUT,
        }}

    def upscale(self, images, resize_mode, scale, temporal_strength, prefilter, chunk_frames,
                upscale_model=None, flow_model=None, keep_detail=KEEP_DETAIL_DEFAULT):
        frames = image_to_frames(images)
        device = host.compute_device()
        with chosen_upscaler(upscale_model, resize_mode, scale, device) as (upscale_fn, upscale_factor):
            result = self._run(frames, upscale_fn, upscale_factor, temporal_strength, prefilter, chunk_frames,
                               device, flow_model, keep_detail)
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


NODE_CLASS_MAPPINGS = {"TameTemporalUpscale": TameTemporalUpscale}
NODE_DISPLAY_NAME_MAPPINGS = {"TameTemporalUpscale": "Temporal Upscale (Tame)"}
