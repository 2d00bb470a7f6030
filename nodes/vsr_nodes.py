"""Video super-resolution network nodes: load TameVSRNet weights, upscale an IMAGE batch, and upscale a
video file in a stream (memory bounded by the chunk, not the video)."""
import math
from pathlib import Path

from ..models.io.video import FORMATS, VideoWriter, iter_frame_chunks, probe
from ..models.io.weights import load_state_dict, read_safetensors_metadata
from ..models.vsr import VSRModel, check_scale, load_vsr_weights, upscale_video, upscale_video_stream
from ..models.vsr.inference import DEFAULT_CHUNK_FRAMES, DEFAULT_LOOKAHEAD_FRAMES, DEFAULT_TILE_OVERLAP
from . import host
from .flow_nodes import builtin_estimator
from .tensors import frames_to_image, image_to_frames
from .video_io import FORMAT_EXTENSIONS, _preview_entries

CATEGORY = "Tame/upscale"
SHIPPED = "shipped default (4x)"
SHIPPED_CLEAN = "shipped clean input (4x)"
SHIPPED_SMALL = "shipped small (4x, faster)"
WEIGHTS_FOLDER = Path(__file__).resolve().parents[1] / "models" / "weights"
SHIPPED_FILES = {SHIPPED: "tame_vsr_x4.safetensors", SHIPPED_CLEAN: "tame_vsr_x4_clean.safetensors",
                 SHIPPED_SMALL: "tame_vsr_x4_small.safetensors"}
SCALES = ["4", "2", "8"]


def _common_inputs():
    """Inputs shared by both upscale nodes."""
    return {
        "vsr_model": ("TAME_VSR_MODEL", {"tooltip": "Network from Load VSR Model."}),
        "scale": (SCALES, {"default": "4", "tooltip": "Upscaling factor; must match the loaded weights."}),
        "chunk_frames": ("INT", {
            "default": DEFAULT_CHUNK_FRAMES, "min": 1, "max": 256,
            "tooltip": "Frames the U-Net processes together (its temporal layers see one chunk). Larger "
                       "uses more memory; flow-guided propagation links the chunks."}),
        "tile_size": ("INT", {
            "default": 0, "min": 0, "max": 8192, "step": 8,
            "tooltip": f"Side of the spatial tiles of the high-resolution layers, in input pixels "
                       f"(0 = whole frames, else at least {2 * DEFAULT_TILE_OVERLAP}). Saves GPU memory; "
                       f"the result is the same."}),
        "seed": ("INT", {"default": 0, "min": 0, "max": 2 ** 32 - 1,
                         "tooltip": "Seed of the network's noise layers (weights trained with noise only)."}),
    }


def _flow_input():
    return {"flow_model": ("TAME_FLOW_MODEL", {
        "tooltip": "Optical flow on the input frames, which aligns neighbours; default: built-in medium."})}


class TameLoadVSRModel:
    DESCRIPTION = ("Load the Tame video super-resolution network (flow-guided propagation, anti-aliased "
                   "U-Net with temporal attention): the weights shipped with the pack (4x: the default, for "
                   "camera footage with blur, noise and compression; the clean-input one, +0.2 dB on clean "
                   "downscaled video; or the small one: about 2x faster, 0.9 dB lower PSNR), or a .safetensors "
                   "file from models/tame/vsr written by the Tame VSR training command.")
    CATEGORY = CATEGORY
    FUNCTION = "load"
    RETURN_TYPES = ("TAME_VSR_MODEL",)
    RETURN_NAMES = ("vsr_model",)
    OUTPUT_TOOLTIPS = ("The Tame VSR network, for Video Upscale and Upscale Video File.",)

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "model": (list(SHIPPED_FILES) + host.list_models("vsr"), {
                "tooltip": "The shipped 4x weights (default: trained for camera footage with blur, noise and "
                           "compression; clean input: sharper on clean, downscaled video such as renders, less "
                           "steady on noisy or compressed input; small: faster, less detail), or your own from "
                           "models/tame/vsr (their scale and settings are stored in the file)."}),
        }}

    def load(self, model):
        if model in SHIPPED_FILES:
            path = WEIGHTS_FOLDER / SHIPPED_FILES[model]
            if not path.is_file():
                raise FileNotFoundError(
                    f"The shipped VSR weights '{path.name}' are missing from {path.parent}. Reinstall "
                    f"Tame, or train weights with the Tame VSR training command, put them into "
                    f"models/tame/vsr and choose them here.")
        else:
            path = host.model_path("vsr", model)
        net = load_vsr_weights(load_state_dict(path), read_safetensors_metadata(path))
        return (VSRModel(net.to(host.compute_device()), path.name),)


class TameVideoUpscale:
    DESCRIPTION = ("Upscale a video (IMAGE batch, at least 2 frames) 2x/4x/8x with the Tame VSR network: "
                   "optical flow aligns neighbouring frames, features propagate through the whole clip, "
                   "then the U-Net runs chunk by chunk. Temporally steady detail instead of per-frame "
                   "flicker.")
    CATEGORY = CATEGORY
    FUNCTION = "upscale"
    RETURN_TYPES = ("IMAGE",)
    RETURN_NAMES = ("images",)
    OUTPUT_TOOLTIPS = ("The upscaled video.",)

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"images": ("IMAGE", {"tooltip": "The low-resolution frames, in order."}),
                             **_common_inputs()},
                "optional": _flow_input()}

    def upscale(self, images, vsr_model, scale, chunk_frames, tile_size, seed, flow_model=None):
        check_scale(vsr_model.scale, int(scale))
        frames = image_to_frames(images, min_frames=2)
        chunks = math.ceil(frames.shape[0] / chunk_frames)
        upscaled = upscale_video(vsr_model.net, frames, flow_model or builtin_estimator(), chunk_frames,
                                 tile_size, progress=host.progress(3 * chunks, "Video upscale"), seed=seed)
        return (frames_to_image(upscaled),)


class TameUpscaleVideoFile:
    DESCRIPTION = ("Upscale a video file with the Tame VSR network without loading it whole: frames are "
                   "read, upscaled and written chunk by chunk (memory bounded by a chunk plus the "
                   "look-ahead), into the output folder as MP4, WebM or PNG frames. Outputs the path.")
    CATEGORY = CATEGORY
    FUNCTION = "upscale"
    OUTPUT_NODE = True
    RETURN_TYPES = ("STRING",)
    RETURN_NAMES = ("path",)
    OUTPUT_TOOLTIPS = ("Path of the written upscaled video file or PNG folder.",)

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "video": ("STRING", {"default": "", "tooltip": "Absolute path of the video file, or a file "
                                                           "name inside ComfyUI's input folder."}),
            "filename_prefix": ("STRING", {"default": "tame/upscaled",
                                           "tooltip": "Name inside the output folder; a counter is appended."}),
            "format": (list(FORMATS), {
                "default": "mp4", "tooltip": "mp4: H.264. webm: VP9. png: lossless numbered frames."}),
            **_common_inputs(),
            "lookahead_frames": ("INT", {
                "default": DEFAULT_LOOKAHEAD_FRAMES, "min": 0, "max": 256,
                "tooltip": "Frames past each chunk that the backward propagation reads first. More is "
                           "closer to processing the whole video at once and holds more frames in memory."}),
            "start_frame": ("INT", {"default": 0, "min": 0, "max": 10_000_000,
                                    "tooltip": "First frame to upscale; 0 is the first frame of the file."}),
            "max_frames": ("INT", {"default": 0, "min": 0, "max": 10_000_000,
                                   "tooltip": "Most frames to upscale; 0 goes to the end of the file."}),
            "quality": ("INT", {"default": 85, "min": 0, "max": 100,
                                "tooltip": "Encoding quality, 0 = smallest file, 100 = best (ignored for png)."}),
        }, "optional": _flow_input()}

    def upscale(self, video, filename_prefix, format, vsr_model, scale, chunk_frames, tile_size, seed,
                lookahead_frames, start_frame, max_frames, quality, flow_model=None):
        check_scale(vsr_model.scale, int(scale))
        if not video.strip():
            raise ValueError(f"No video given. Type an absolute path or the name of a file in the input "
                             f"folder {host.input_dir()}.")
        path = host.resolve_input_file(video.strip())
        chunks = iter_frame_chunks(path, chunk_frames, start=start_frame, count=max_frames)
        info = probe(path)
        available = info.frame_count - start_frame
        total = min(max_frames, available) if max_frames else available
        target, subfolder = host.numbered_output_path(filename_prefix, FORMAT_EXTENSIONS[format])
        with VideoWriter(target, info.fps, format, quality) as writer:
            upscale_video_stream(
                vsr_model.net, read_chunks=(chunk.permute(0, 3, 1, 2) for chunk in chunks),
                write=lambda upscaled: writer.write(upscaled.permute(0, 2, 3, 1)),
                estimator=flow_model or builtin_estimator(), chunk_frames=chunk_frames,
                lookahead_frames=lookahead_frames, tile=tile_size, seed=seed, total_frames=total,
                progress=host.progress(total, "Upscale video file"))
        return {"ui": {"images": _preview_entries(target, subfolder, format), "animated": (format != "png",)},
                "result": (str(target),)}


NODE_CLASS_MAPPINGS = {cls.__name__: cls for cls in (TameLoadVSRModel, TameVideoUpscale, TameUpscaleVideoFile)}
NODE_DISPLAY_NAME_MAPPINGS = {
    "TameLoadVSRModel": "Load VSR Model (Tame)",
    "TameVideoUpscale": "Video Upscale (Tame VSR)",
    "TameUpscaleVideoFile": "Upscale Video File (Tame VSR)",
}
