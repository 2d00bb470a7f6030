"""Retarget nodes: weight-free saliency, content-aware aspect change of images and videos, reusable warps."""
import torch

from ..kernels.saliency import apply_user_masks, saliency
from ..models.retarget.image import MAX_UPSCALE, retarget_image, stack_warps
from ..models.retarget.video import VideoSettings, retarget_video
from . import host
from .flow_nodes import DIRECTIONS, TameWarp, builtin_estimator
from .tensors import batch_to_mask, frames_to_image, image_to_frames, mask_to_batch

CATEGORY = "Tame/retarget"
MAX_SIDE = 16384


def _masks_for(frames, mask, name):
    """MASK for a batch of frames -> `[1 or T,1,H,W]` or None; error on a size or count mismatch."""
    if mask is None:
        return None
    masks = mask_to_batch(mask, name)
    if masks.shape[-2:] != frames.shape[-2:]:
        raise ValueError(f"{name} is {masks.shape[-1]}x{masks.shape[-2]} but the images are "
                         f"{frames.shape[-1]}x{frames.shape[-2]}; resize the mask to the image size.")
    if masks.shape[0] not in (1, frames.shape[0]):
        raise ValueError(f"{name} has {masks.shape[0]} masks for {frames.shape[0]} images; give one mask, "
                         f"or one per image.")
    return masks


def _pick(masks, index):
    return None if masks is None else masks[min(index, masks.shape[0] - 1)][None]


def _target_inputs():
    size = {"min": 2, "max": MAX_SIDE, "step": 1}
    return {
        "width": ("INT", {"default": 512, **size,
                          "tooltip": f"Output width in pixels (at most {MAX_UPSCALE}x the input)."}),
        "height": ("INT", {"default": 912, **size,
                           "tooltip": f"Output height in pixels (at most {MAX_UPSCALE}x the input)."}),
    }


_MASK_INPUTS = {
    "keep_mask": ("MASK", {"tooltip": "What must keep its shape (e.g. a segmentation of the subject); it then "
                                      "alone defines the salient layer. One mask, or one per image."}),
    "drop_mask": ("MASK", {"tooltip": "What may be squeezed away first (1 = may go)."}),
}


class TameSaliency:
    DESCRIPTION = ("Weight-free saliency of images: spectral residual (object-scale blobs) plus gradient energy "
                   "(edges), blurred to object scale, with an optional centre bias; keep / drop masks on top. "
                   "Feeds Retarget's saliency input, or any node that takes a MASK.")
    CATEGORY = CATEGORY
    FUNCTION = "compute"
    RETURN_TYPES = ("MASK", "IMAGE")
    RETURN_NAMES = ("saliency", "preview")
    OUTPUT_TOOLTIPS = ("Saliency per image in [0,1] (1 = most salient).", "The saliency as a grey image.")

    @classmethod
    def INPUT_TYPES(cls):
        weight = {"min": 0.0, "max": 1.0, "step": 0.05}
        return {"required": {
            "images": ("IMAGE", {"tooltip": "Images or video frames."}),
            "spectral_weight": ("FLOAT", {"default": 0.6, **weight, "tooltip": "Share of the spectral residual."}),
            "gradient_weight": ("FLOAT", {"default": 0.4, **weight, "tooltip": "Share of the gradient energy."}),
            "centre_weight": ("FLOAT", {"default": 0.3, **weight,
                                        "tooltip": "Centre bias: 0 = none, 1 = saliency times a centred Gaussian."}),
        }, "optional": dict(_MASK_INPUTS)}

    def compute(self, images, spectral_weight, gradient_weight, centre_weight, keep_mask=None, drop_mask=None):
        frames = image_to_frames(images)
        keep, drop = _masks_for(frames, keep_mask, "keep_mask"), _masks_for(frames, drop_mask, "drop_mask")
        report = host.progress(frames.shape[0], "saliency")
        maps = []
        for t in range(frames.shape[0]):
            frame_map = saliency(frames[t][None], spectral_weight, gradient_weight, centre_weight)
            maps.append(apply_user_masks(frame_map, _pick(keep, t), _pick(drop, t)))
            report(t + 1)
        maps = torch.cat(maps)
        return batch_to_mask(maps), frames_to_image(maps.expand(-1, 3, -1, -1))


class TameRetarget:
    DESCRIPTION = ("Content-aware change of aspect ratio (HALO's layered idea, solved per image, no weights): a "
                   "salient layer keeps its aspect ratio, a background layer absorbs the change, the background "
                   "is filled where the subject moved away. Outputs the warp, reusable on masks, depth maps, "
                   "latents and other frames (Apply Retarget, Warp by Flow). For a video use Retarget Video.")
    CATEGORY = CATEGORY
    FUNCTION = "retarget"
    RETURN_TYPES = ("IMAGE", "TAME_FLOW", "MASK")
    RETURN_NAMES = ("image", "warp", "warped_saliency")
    OUTPUT_TOOLTIPS = (
        "The retargeted images at width x height.",
        "The warp (output pixel -> source position, two layers), one pair per image.",
        "The saliency carried to the output.",
    )

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"images": ("IMAGE", {"tooltip": "Images to retarget, each on its own."}),
                             **_target_inputs()},
                "optional": {**_MASK_INPUTS,
                             "saliency": ("MASK", {"tooltip": "Saliency to use instead of the built-in one "
                                                              "(e.g. from Saliency or a segmentation node)."})}}

    def retarget(self, images, width, height, keep_mask=None, drop_mask=None, saliency=None):
        frames = image_to_frames(images)
        keep, drop = _masks_for(frames, keep_mask, "keep_mask"), _masks_for(frames, drop_mask, "drop_mask")
        given = _masks_for(frames, saliency, "saliency")
        report = host.progress(frames.shape[0], "retarget")
        results = []
        for t in range(frames.shape[0]):
            results.append(retarget_image(frames[t][None], (height, width), _pick(keep, t), _pick(drop, t),
                                          saliency_map=_pick(given, t)))
            report(t + 1)
        warp = stack_warps([r.warp for r in results])
        return (frames_to_image(torch.cat([r.image for r in results])), warp,
                batch_to_mask(torch.cat([r.warped_saliency for r in results])))


class TameApplyRetarget:
    DESCRIPTION = ("Apply a retarget warp (from Retarget or Retarget Video) to other images, masks, depth maps or "
                   "latents of the same size as the retargeted source: both layers are composited as they were "
                   "for the image. A single input is warped with every pair.")
    CATEGORY = CATEGORY
    FUNCTION = "apply"
    RETURN_TYPES = ("IMAGE", "MASK", "LATENT")
    RETURN_NAMES = ("image", "mask", "latent")
    OUTPUT_TOOLTIPS = ("The images at the retargeted size.", "The masks at the retargeted size.",
                       "The latents at the retargeted size (1/8 of the pixels).")

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"warp": ("TAME_FLOW", {"tooltip": "The warp output of Retarget or Retarget Video."})},
                "optional": {"image": ("IMAGE", {"tooltip": "Images at the source size."}),
                             "mask": ("MASK", {"tooltip": "Masks at the source size."}),
                             "latent": ("LATENT", {"tooltip": "Latents of images at the source size."})}}

    def apply(self, warp, image=None, mask=None, latent=None):
        if warp.source_size == warp.size and warp.layers is None:
            raise ValueError("This TAME_FLOW is the optical flow of a video, not a retarget warp; use Warp by Flow "
                             "for it, or connect the warp output of Retarget.")
        if latent is not None:
            _check_latent_aspect(latent["samples"], warp.source_size)
        return TameWarp().warp(warp, DIRECTIONS[0], "border", image, mask, latent)[:3]


def _check_latent_aspect(samples, source_size):
    if samples.ndim != 4:
        raise ValueError(f"latent samples must be [frames,C,h,w], got {tuple(samples.shape)}.")
    (h, w), (source_h, source_w) = samples.shape[-2:], source_size
    if abs(h * source_w - w * source_h) > source_h + source_w:  # more than a rounding of the latent size
        raise ValueError(f"the latent is {w}x{h} but the warp's source is {source_size[1]}x{source_size[0]}: "
                         f"encode images of the retargeted source's size.")


class TameRetargetVideo:
    DESCRIPTION = ("Retarget a video (e.g. 16:9 -> 9:16) without wobble: one layered warp per frame, each pulled "
                   "towards the previous frame's warp carried along the optical flow, and saliency smoothed "
                   "along the flow. Chunked: memory is bounded by the chunk, not the video.")
    CATEGORY = CATEGORY
    FUNCTION = "retarget"
    RETURN_TYPES = ("IMAGE", "TAME_FLOW", "MASK")
    RETURN_NAMES = ("images", "warp", "warped_saliency")
    OUTPUT_TOOLTIPS = ("The retargeted frames.", "The warp per frame (pairs (t, t)), for Apply Retarget.",
                       "The smoothed saliency carried to the output, per frame.")

    @classmethod
    def INPUT_TYPES(cls):
        defaults = VideoSettings()
        return {"required": {
            "images": ("IMAGE", {"tooltip": "The video as an IMAGE batch (at least 2 frames)."}),
            **_target_inputs(),
            "temporal_weight": ("FLOAT", {"default": defaults.temporal_weight, "min": 0.0, "max": 100.0, "step": 0.1,
                                          "tooltip": "Pull of each frame's warp to the previous one carried by "
                                                     "the flow (0 = every frame on its own)."}),
            "saliency_memory": ("FLOAT", {"default": defaults.saliency_memory, "min": 0.0, "max": 0.99, "step": 0.01,
                                          "tooltip": "Share of the previous frame's saliency (carried by the flow) "
                                                     "in each frame's saliency."}),
            "chunk": ("INT", {"default": defaults.chunk, "min": 2, "max": 1024,
                              "tooltip": "Frames per flow-estimation chunk."}),
        }, "optional": {**_MASK_INPUTS,
                        "flow_model": ("TAME_FLOW_MODEL", {"tooltip": "Estimator; default: built-in fast."})}}

    def retarget(self, images, width, height, temporal_weight, saliency_memory, chunk, keep_mask=None,
                 drop_mask=None, flow_model=None):
        frames = image_to_frames(images)  # retarget_video checks the frame count
        keep, drop = _masks_for(frames, keep_mask, "keep_mask"), _masks_for(frames, drop_mask, "drop_mask")
        video = VideoSettings(temporal_weight, saliency_memory, chunk)
        out, warp, warped_saliency = retarget_video(
            frames, (height, width), flow_model or builtin_estimator("fast"), keep, drop, video=video,
            progress=host.progress(frames.shape[0], "retarget video"))
        return frames_to_image(out), warp, batch_to_mask(warped_saliency)


NODE_CLASS_MAPPINGS = {cls.__name__: cls for cls in (TameSaliency, TameRetarget, TameApplyRetarget, TameRetargetVideo)}
NODE_DISPLAY_NAME_MAPPINGS = {
    "TameSaliency": "Saliency (Tame)",
    "TameRetarget": "Retarget (Tame)",
    "TameApplyRetarget": "Apply Retarget (Tame)",
    "TameRetargetVideo": "Retarget Video (Tame)",
}
