"""Flow toolkit nodes: estimate, warp, consistency masks, visualise, convert, save/load."""
from pathlib import Path

from ..kernels.consistency import dilate_mask, occlusion_mask, soft_visibility
from ..kernels.flow_color import flow_to_color
from ..models.flow.builtin import BuiltinFlow
from ..models.flow.checkpoints import build_from_state_dict
from ..models.flow.estimate import FlowEstimator, estimate_video_flow
from ..models.flow.field import BACKWARD, FORWARD, from_optical_flow, to_optical_flow
from ..models.io import flow_files
from ..models.io.weights import load_state_dict
from . import host
from .tensors import batch_to_mask, check_flow_matches, frames_to_image, image_to_frames, mask_to_batch

BUILTIN = "built-in (no weights)"
QUALITIES = ["fast", "medium", "high"]
PADDINGS = ["border", "zeros", "reflection"]
DIRECTIONS = ["b onto a (forward flow)", "a onto b (backward flow)"]
CATEGORY = "Tame/flow"


def builtin_estimator(quality="medium"):
    return FlowEstimator(BuiltinFlow(quality=quality), f"built-in {quality}", host.compute_device())


class TameLoadFlowModel:
    DESCRIPTION = ("Choose the optical-flow estimator: the built-in weight-free method, or RAFT / SpyNet "
                   "weights placed in models/tame/flow (safetensors, or .pth loaded with weights_only).")
    CATEGORY = CATEGORY
    FUNCTION = "load"
    RETURN_TYPES = ("TAME_FLOW_MODEL",)
    RETURN_NAMES = ("flow_model",)
    OUTPUT_TOOLTIPS = ("The optical-flow estimator, for Estimate Flow, metrics, upscaling and editing nodes.",)

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "model": ([BUILTIN] + host.list_models("flow"), {
                "tooltip": "built-in needs no download; files come from models/tame/flow (RAFT large/small "
                           "in torchvision layout, SpyNet in BasicVSR/MMagic layout)."}),
            "quality": (QUALITIES, {"default": "medium",
                                    "tooltip": "Built-in only: fast = fewer pyramid iterations, high = "
                                               "slower and more accurate."}),
            "raft_iterations": ("INT", {"default": 12, "min": 1, "max": 64,
                                        "tooltip": "RAFT only: refinement iterations (12 is the published default)."}),
        }}

    def load(self, model, quality, raft_iterations):
        if model == BUILTIN:
            return (builtin_estimator(quality),)
        path = host.model_path("flow", model)
        module, kind = build_from_state_dict(load_state_dict(path))
        kwargs = {"num_iters": raft_iterations} if kind.startswith("raft") else {}
        return (FlowEstimator(module, f"{kind} ({Path(model).name})", host.compute_device(),
                              forward_kwargs=kwargs),)


class TameEstimateFlow:
    DESCRIPTION = ("Dense optical flow of a video (IMAGE batch = frames): between consecutive frames in both "
                   "directions, or from every frame to an anchor frame. Output TAME_FLOW feeds warp, masks, "
                   "visualisation and metrics.")
    CATEGORY = CATEGORY
    FUNCTION = "estimate"
    RETURN_TYPES = ("TAME_FLOW",)
    RETURN_NAMES = ("flow",)
    OUTPUT_TOOLTIPS = (
        "Flow fields in pixels between the chosen frame pairs (forward, and backward when bidirectional).",
    )

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "images": ("IMAGE", {"tooltip": "The video as an IMAGE batch (at least 2 frames)."}),
            "pairs": (["consecutive", "to anchor"], {
                "tooltip": "consecutive: pairs (t, t+1). to anchor: pairs (t, anchor) for every frame t, "
                           "e.g. to propagate an edit of the anchor frame."}),
            "anchor_frame": ("INT", {"default": 0, "min": 0, "max": 100000,
                                     "tooltip": "Anchor frame index (used when pairs = to anchor)."}),
            "bidirectional": ("BOOLEAN", {"default": True,
                                          "tooltip": "Also estimate the backward flow (needed for "
                                                     "occlusion masks and metrics)."}),
            "max_side": ("INT", {"default": 0, "min": 0, "max": 8192, "step": 8,
                                 "tooltip": "Estimate on frames downscaled to this longer side (0 = full "
                                            "size); vectors are rescaled to full resolution. Faster on 4K."}),
        }, "optional": {
            "flow_model": ("TAME_FLOW_MODEL", {"tooltip": "Estimator from Load Flow Model; default: built-in medium."}),
        }}

    def estimate(self, images, pairs, anchor_frame, bidirectional, max_side, flow_model=None):
        frames = image_to_frames(images, min_frames=2)
        estimator = flow_model or builtin_estimator()
        mode = "anchor" if pairs == "to anchor" else "consecutive"
        flows = estimate_video_flow(estimator, frames, mode, anchor_frame, bidirectional, max_side,
                                    progress=host.progress(frames.shape[0], "estimate flow"))
        return (flows,)


def _direction(label):
    """The FlowSet direction of a node's direction label."""
    return FORWARD if label == DIRECTIONS[0] else BACKWARD


class TameWarp:
    DESCRIPTION = ("Warp images, masks or latents along a TAME_FLOW. For pair (a, b) the forward flow "
                   "pulls frame b onto frame a (output aligned with a); the backward flow pulls a onto b. "
                   "A single image/mask/latent is warped along every pair. Also outputs where the "
                   "samples fell inside the frame.")
    CATEGORY = CATEGORY
    FUNCTION = "warp"
    RETURN_TYPES = ("IMAGE", "MASK", "LATENT", "MASK")
    RETURN_NAMES = ("image", "mask", "latent", "valid")
    OUTPUT_TOOLTIPS = (
        "The warped images, one per pair.",
        "The warped masks, one per pair.",
        "The warped latents, one per pair.",
        "1 where the sample fell inside the frame it was read from.",
    )

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "flow": ("TAME_FLOW", {"tooltip": "Flow from Estimate Flow or Load Flow."}),
            "direction": (DIRECTIONS, {"tooltip": "Which way to warp each pair (a, b)."}),
            "padding": (PADDINGS, {"tooltip": "What samples outside the frame read: the border pixel, zero, "
                                              "or the mirrored image."}),
        }, "optional": {
            "image": ("IMAGE", {"tooltip": "Frames to warp (same video as the flow, or one image)."}),
            "mask": ("MASK", {"tooltip": "Masks to warp (one per frame, or one)."}),
            "latent": ("LATENT", {"tooltip": "Latents to warp; the flow is resized to the latent grid."}),
        }}

    def warp(self, flow, direction, padding, image=None, mask=None, latent=None):
        if image is None and mask is None and latent is None:
            raise ValueError("Connect an image, a mask or a latent to warp.")
        direction = _direction(direction)
        sampled_size = flow.field(direction)[2]
        outputs = [None, None, None]
        if image is not None:
            frames = image_to_frames(image)
            check_flow_matches(flow, frames, "image", sampled_size)
            outputs[0] = frames_to_image(flow.warp(frames, direction, padding)[0])
        if mask is not None:
            masks = mask_to_batch(mask)
            check_flow_matches(flow, masks, "mask", sampled_size)
            outputs[1] = batch_to_mask(flow.warp(masks, direction, padding)[0])
        if latent is not None:
            samples = latent["samples"]
            if samples.ndim != 4 or samples.shape[0] not in (1, flow.num_frames):
                raise ValueError(
                    f"latent samples {tuple(samples.shape)} must be [frames,C,h,w] with 1 or "
                    f"{flow.num_frames} frames to match the flow.")
            warped = flow.warp(samples.float(), direction, padding)[0]
            outputs[2] = {**latent, "samples": warped.to(samples.dtype)}
        return (*outputs, batch_to_mask(flow.valid(direction)))


class TameFlowConsistency:
    DESCRIPTION = ("Forward-backward consistency of a bidirectional TAME_FLOW: soft visibility "
                   "exp(-alpha * eps) and a binary occlusion mask (1 = pixel of frame a is hidden or leaves "
                   "the frame in b), one mask per pair.")
    CATEGORY = CATEGORY
    FUNCTION = "masks"
    RETURN_TYPES = ("MASK", "MASK")
    RETURN_NAMES = ("visibility", "occlusion")
    OUTPUT_TOOLTIPS = (
        "Soft visibility exp(-alpha * eps) per pair, 1 = consistent.",
        "Binary occlusion mask per pair, 1 = hidden or out of frame.",
    )

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "flow": ("TAME_FLOW", {"tooltip": "Bidirectional flow (Estimate Flow with bidirectional on)."}),
            "alpha": ("FLOAT", {"default": 10.0, "min": 0.01, "max": 1000.0, "step": 0.01,
                                "tooltip": "Visibility sharpness: exp(-alpha * eps), eps in pixels (seed default 10)."}),
            "relative_tolerance": ("FLOAT", {"default": 0.01, "min": 0.0, "max": 1.0, "step": 0.001,
                                             "tooltip": "Occlusion test |F_ab + F_ba'|^2 < this * (|F_ab|^2 + |F_ba'|^2) + absolute."}),
            "absolute_tolerance": ("FLOAT", {"default": 0.5, "min": 0.0, "max": 100.0, "step": 0.01,
                                             "tooltip": "Absolute term of the occlusion test, in squared pixels."}),
            "dilate": ("INT", {"default": 0, "min": 0, "max": 64,
                               "tooltip": "Grow the occlusion mask by this many pixels (safety margin)."}),
        }}

    def masks(self, flow, alpha, relative_tolerance, absolute_tolerance, dilate):
        if flow.backward is None:
            raise ValueError("Consistency masks need the backward flow: enable 'bidirectional' in Estimate Flow.")
        visibility = soft_visibility(flow.forward, flow.backward, alpha)
        occlusion = occlusion_mask(flow.forward, flow.backward, relative_tolerance, absolute_tolerance)
        if dilate:
            occlusion = dilate_mask(occlusion, dilate)
        return (batch_to_mask(visibility), batch_to_mask(occlusion))


class TameVisualizeFlow:
    DESCRIPTION = ("Flow as colours (Middlebury colour wheel: hue = direction, saturation = speed), one "
                   "image per pair, normalised by one magnitude for the whole batch so frames compare.")
    CATEGORY = CATEGORY
    FUNCTION = "visualize"
    RETURN_TYPES = ("IMAGE",)
    RETURN_NAMES = ("image",)
    OUTPUT_TOOLTIPS = ("Flow as Middlebury colours, one image per pair (occluded pixels black when asked).",)

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "flow": ("TAME_FLOW", {"tooltip": "Flow to draw."}),
            "which": (["forward", "backward"], {"tooltip": "Draw the forward or the backward fields."}),
            "max_magnitude": ("FLOAT", {"default": 0.0, "min": 0.0, "max": 10000.0, "step": 0.5,
                                        "tooltip": "Pixels that map to full saturation (0 = robust max of the batch)."}),
        }, "optional": {
            "overlay_mask": ("MASK", {"tooltip": "Pixels where this mask is above 0.5 are drawn black, e.g. the "
                                                 "occlusion mask of Flow Consistency Masks."}),
        }}

    def visualize(self, flow, which, max_magnitude, overlay_mask=None):
        field = flow.forward if which == "forward" else flow.backward
        if field is None:
            raise ValueError("This flow has no backward fields: enable 'bidirectional' in Estimate Flow.")
        colors = flow_to_color(field, max_magnitude or None)
        if overlay_mask is not None:
            masks = mask_to_batch(overlay_mask, "overlay_mask")
            if masks.shape[0] not in (1, colors.shape[0]) or masks.shape[-2:] != colors.shape[-2:]:
                raise ValueError(f"overlay_mask {tuple(overlay_mask.shape)} does not match the flow "
                                 f"({colors.shape[0]} fields of {'x'.join(map(str, field.shape[-2:]))}).")
            colors = colors * (masks <= 0.5)
        return (frames_to_image(colors),)


class TameFlowConvert:
    DESCRIPTION = ("Convert between TAME_FLOW and OPTICAL_FLOW (float tensor [N,H,W,2] in pixels, forward "
                   "flows of consecutive pairs, as used by the controlnet preprocessor pack). Connect one side.")
    CATEGORY = CATEGORY
    FUNCTION = "convert"
    RETURN_TYPES = ("TAME_FLOW", "OPTICAL_FLOW")
    RETURN_NAMES = ("flow", "optical_flow")
    OUTPUT_TOOLTIPS = ("The flow as TAME_FLOW.", "The forward flows as OPTICAL_FLOW [N,H,W,2] in pixels.")

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {}, "optional": {
            "flow": ("TAME_FLOW", {"tooltip": "Tame flow of consecutive pairs to export."}),
            "optical_flow": ("OPTICAL_FLOW", {"tooltip": "[N,H,W,2] forward flows of consecutive pairs to import."}),
        }}

    def convert(self, flow=None, optical_flow=None):
        if (flow is None) == (optical_flow is None):
            raise ValueError("Connect exactly one input: a TAME_FLOW or an OPTICAL_FLOW.")
        if flow is not None:
            return (flow, to_optical_flow(flow))
        return (from_optical_flow(optical_flow), optical_flow)


class TameSaveFlow:
    DESCRIPTION = ("Save a TAME_FLOW to the output folder: one .safetensors file (all pairs, both "
                   "directions, pair indices) or a folder of Middlebury .flo flow_files.")
    CATEGORY = CATEGORY
    FUNCTION = "save"
    OUTPUT_NODE = True
    RETURN_TYPES = ("STRING",)
    RETURN_NAMES = ("path",)
    OUTPUT_TOOLTIPS = ("Path of the written .safetensors file or .flo folder.",)

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "flow": ("TAME_FLOW", {"tooltip": "Flow to save."}),
            "filename_prefix": ("STRING", {"default": "tame/flow",
                                           "tooltip": "Name inside the output folder; a counter is appended."}),
            "format": (["safetensors", "flo"], {"tooltip": "safetensors keeps everything in one file; flo "
                                                           "writes one .flo per pair and direction."}),
        }}

    def save(self, flow, filename_prefix, format):
        target, _ = host.numbered_output_path(filename_prefix, ".safetensors" if format == "safetensors" else "")
        if format == "safetensors":
            flow_files.save_flowset(target, flow)
        else:
            flow_files.save_flo_sequence(target, flow)
        return {"ui": {"text": [str(target)]}, "result": (str(target),)}


class TameLoadFlow:
    DESCRIPTION = "Load a flow saved by Save Flow (.safetensors), a .flo file, or a folder of .flo flow_files."
    CATEGORY = CATEGORY
    FUNCTION = "load"
    RETURN_TYPES = ("TAME_FLOW",)
    RETURN_NAMES = ("flow",)
    OUTPUT_TOOLTIPS = ("The loaded flow.",)

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "path": ("STRING", {"default": "", "tooltip": "Absolute path, or a name in the input folder."}),
        }}

    def load(self, path):
        resolved = Path(path).expanduser()
        if not resolved.is_absolute():
            resolved = host.input_dir() / resolved
        if resolved.is_dir() or resolved.suffix.lower() == ".flo":
            if not resolved.exists():
                raise FileNotFoundError(f"Flow file '{path}' does not exist (looked at {resolved}).")
            return (flow_files.load_flo_sequence(resolved),)
        return (flow_files.load_flowset(host.resolve_input_file(path)),)


NODE_CLASS_MAPPINGS = {cls.__name__: cls for cls in (
    TameLoadFlowModel, TameEstimateFlow, TameWarp, TameFlowConsistency, TameVisualizeFlow,
    TameFlowConvert, TameSaveFlow, TameLoadFlow)}
NODE_DISPLAY_NAME_MAPPINGS = {
    "TameLoadFlowModel": "Load Flow Model (Tame)",
    "TameEstimateFlow": "Estimate Flow (Tame)",
    "TameWarp": "Warp by Flow (Tame)",
    "TameFlowConsistency": "Flow Consistency Masks (Tame)",
    "TameVisualizeFlow": "Visualize Flow (Tame)",
    "TameFlowConvert": "Convert Flow (Tame)",
    "TameSaveFlow": "Save Flow (Tame)",
    "TameLoadFlow": "Load Flow (Tame)",
}
