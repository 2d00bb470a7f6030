"""Long-video nodes: streaming blind consistency and streaming temporal upscaling of video FILES (memory
bounded by a window, not by the video's length), and the quick flow-guided temporal filter (IMAGE)."""
import time

from ..models.edit.blind import BlindSettings
from ..models.edit.windowed import DEFAULT_OVERLAP, DEFAULT_WINDOW, WindowedSettings, windowed_blind_stream
from ..models.io.video import FORMATS, READ_CHUNK_FRAMES, VideoWriter, iter_frame_chunks, probe
from ..models.video.streaming import DEFAULT_LOOKAHEAD, temporal_upscale_stream
from ..models.video.temporal_filter import DEFAULT_RADIUS, DEFAULT_TOLERANCE, FilterSettings, flow_temporal_filter
from ..models.vsr.wrapper import KEEP_DETAIL_DEFAULT
from . import host
from .edit_nodes import SEED_OPTIONS, _distance
from .flow_nodes import builtin_estimator
from .tensors import frames_to_image, image_to_frames
from .upscale_wrapper_nodes import KEEP_DETAIL_INPUT, UPSCALE_MODEL_INPUT, WRAPPER_SETTINGS_INPUTS, chosen_upscaler
from .video_io import FORMAT_EXTENSIONS, _preview_entries

CATEGORY = "Tame/long video"
FLOW_INPUT = {"flow_model": ("TAME_FLOW_MODEL", {"tooltip": "Flow estimator from Load Flow Model; default: "
                                                            "built-in medium."})}


def _file_inputs(prefix):
    """Output file, frame range and encoding inputs of the file nodes."""
    return {
        "filename_prefix": ("STRING", {"default": prefix,
                                       "tooltip": "Name inside the output folder; a counter is appended."}),
        "format": (list(FORMATS), {"default": "mp4",
                                   "tooltip": "mp4: H.264. webm: VP9. png: lossless numbered frames."}),
        "start_frame": ("INT", {"default": 0, "min": 0, "max": 10_000_000,
                                "tooltip": "First frame to process; 0 is the first frame of the file."}),
        "max_frames": ("INT", {"default": 0, "min": 0, "max": 10_000_000,
                               "tooltip": "Most frames to process; 0 goes to the end of the file."}),
        "quality": ("INT", {"default": 85, "min": 0, "max": 100,
                            "tooltip": "Encoding quality, 0 = smallest file, 100 = best (ignored for png)."}),
    }


def _input_video(name, what):
    if not name.strip():
        raise ValueError(f"No {what} video given. Type an absolute path or the name of a file in the input "
                         f"folder {host.input_dir()}.")
    return host.resolve_input_file(name.strip())


def frames_in_range(info, start_frame, max_frames, path):
    """Frames a (start, max) range selects from a probed file; error if start is past its end."""
    if start_frame >= info.frame_count:
        raise ValueError(f"start_frame {start_frame} is beyond the end of '{path.name}', which has "
                         f"{info.frame_count} frames.")
    available = info.frame_count - start_frame
    return min(max_frames, available) if max_frames else available


def check_pair(original, processed, start_frame, max_frames):
    """(VideoInfo of the original, frame count) after checking both files agree in size and length."""
    info_o, info_p = probe(original), probe(processed)
    if (info_o.width, info_o.height) != (info_p.width, info_p.height):
        raise ValueError(f"'{original.name}' is {info_o.width}x{info_o.height} but '{processed.name}' is "
                         f"{info_p.width}x{info_p.height}; the processed video must have the original's size "
                         f"(resize it first, e.g. Load Video with max side and Save Video).")
    count_o = frames_in_range(info_o, start_frame, max_frames, original)
    count_p = frames_in_range(info_p, start_frame, max_frames, processed)
    if count_o != count_p:
        raise ValueError(f"from frame {start_frame}, '{original.name}' has {count_o} frames and "
                         f"'{processed.name}' {count_p}; both must cover the same frames (set max_frames to "
                         f"{min(count_o, count_p)} to use the common part).")
    if count_o < 2:
        raise ValueError(f"temporal consistency needs at least 2 frames, the range holds {count_o}.")
    return info_o, count_o


def _chunks_chw(path, start_frame, count):
    """`[t,3,H,W]` chunks of a file's frames start_frame .. start_frame+count-1."""
    return (chunk.permute(0, 3, 1, 2) for chunk in
            iter_frame_chunks(path, READ_CHUNK_FRAMES, start=start_frame, count=count))


def _file_result(target, subfolder, format, extra=()):
    return {"ui": {"images": _preview_entries(target, subfolder, format), "animated": (format != "png",)},
            "result": (str(target), *extra)}


class TameBlindConsistencyVideoFile:
    DESCRIPTION = ("Blind consistency for video FILES of any length: makes a per-frame processed video "
                   "consistent with the original video's motion, window by window (overlapping windows, "
                   "one anchor each, the network and the overlap frames carried from window to window), "
                   "reading both files and writing the result chunk by chunk. Memory is bounded by one "
                   "window; works on a moving camera over long clips.")
    CATEGORY = CATEGORY
    FUNCTION = "process"
    OUTPUT_NODE = True
    RETURN_TYPES = ("STRING", "STRING")
    RETURN_NAMES = ("path", "report")
    OUTPUT_TOOLTIPS = ("Path of the written consistent video file or PNG folder.",
                       "Windows, iterations, losses and the time taken.")

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "original_video": ("STRING", {"default": "", "tooltip": "The unprocessed video file (absolute path "
                                                                    "or a name in the input folder); its flow "
                                                                    "guides consistency."}),
            "processed_video": ("STRING", {"default": "", "tooltip": "The per-frame processed video file: same "
                                                                     "frames, same size."}),
            **_window_inputs(),
            **_file_inputs("tame/consistent"),
        }, "optional": dict(FLOW_INPUT)}

    def process(self, original_video, processed_video, window_frames, overlap_frames, epochs, later_epochs, lr,
                seed, filename_prefix, format, start_frame, max_frames, quality, flow_model=None):
        original = _input_video(original_video, "original")
        processed = _input_video(processed_video, "processed")
        info, count = check_pair(original, processed, start_frame, max_frames)
        settings = WindowedSettings(BlindSettings(epochs=epochs, lr=lr, seed=seed), window_frames, overlap_frames,
                                    later_epochs)
        settings.check()
        estimator, distance = flow_model or builtin_estimator(), _distance()
        target, subfolder = host.numbered_output_path(filename_prefix, FORMAT_EXTENSIONS[format])
        started = time.perf_counter()
        with VideoWriter(target, info.fps, format, quality) as writer:
            result = windowed_blind_stream(
                _chunks_chw(original, start_frame, count), _chunks_chw(processed, start_frame, count),
                lambda frames: writer.write(frames.permute(0, 2, 3, 1)), estimator, settings, distance,
                host.progress(count, "blind consistency (file)"), host.compute_device(), count)
        report = windowed_report(result, count, estimator, time.perf_counter() - started)
        return _file_result(target, subfolder, format, (report,))


def _window_inputs():
    """Window and optimisation inputs of the windowed blind consistency."""
    return {
        "window_frames": ("INT", {"default": DEFAULT_WINDOW, "min": 2, "max": 1024,
                                  "tooltip": "Frames per window; each window pairs its frames with its middle "
                                             "frame. Smaller follows a fast camera better, larger gives longer "
                                             "range consistency."}),
        "overlap_frames": ("INT", {"default": DEFAULT_OVERLAP, "min": 0, "max": 1023,
                                   "tooltip": "Frames shared with the previous window: their previous output is "
                                              "the target there and the two are cross-faded (no seams). Must "
                                              "be less than window_frames; about half is good (a shorter overlap "
                                              "shows a step at window borders)."}),
        "epochs": ("INT", {"default": 10, "min": 1, "max": 1000,
                           "tooltip": "Passes over the first window's frames (the network starts from scratch)."}),
        "later_epochs": ("INT", {"default": 5, "min": 1, "max": 1000,
                                 "tooltip": "Passes over every later window (the network continues from the "
                                            "previous window, so fewer are needed)."}),
        "lr": ("FLOAT", {"default": BlindSettings.lr, "min": 0.00001, "max": 0.1, "step": 0.00001,
                         "tooltip": "Adam learning rate of the network."}),
        "seed": ("INT", {**SEED_OPTIONS, "tooltip": "Seed of the network initialisation and pair order."}),
    }


def windowed_report(result, count, estimator, seconds):
    """One line about a windowed run: windows, iterations, mean loss of the first and last window, time."""
    text = f"windowed blind consistency: {count} frames, {len(result.windows)} windows, {len(result.losses)} iterations"
    name = getattr(estimator, "name", type(estimator).__name__)
    return f"{text}; D = {result.distance}; flow = {name}; {seconds:.1f} s"


class TameTemporalUpscaleVideoFile:
    DESCRIPTION = ("Temporal upscale wrapper for video FILES of any length: upscales every frame with an "
                   "upscale model (or a built-in resize), steadies its invented detail along the optical "
                   "flow (forward state carried across chunks, backward pass with look-ahead), and writes the "
                   "result chunk by chunk. Memory is bounded by chunk + look-ahead.")
    CATEGORY = CATEGORY
    FUNCTION = "upscale"
    OUTPUT_NODE = True
    RETURN_TYPES = ("STRING",)
    RETURN_NAMES = ("path",)
    OUTPUT_TOOLTIPS = ("Path of the written upscaled video file or PNG folder.",)

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "video": ("STRING", {"default": "", "tooltip": "Absolute path of the video file, or a file name "
                                                           "inside the input folder."}),
            **WRAPPER_SETTINGS_INPUTS,
            "chunk_frames": ("INT", {"default": 8, "min": 1, "max": 1024,
                                     "tooltip": "Frames written at a time and per upscaler call."}),
            "lookahead_frames": ("INT", {
                "default": DEFAULT_LOOKAHEAD, "min": 0, "max": 1024,
                "tooltip": "Frames past each chunk that the backward pass reads first; more is closer to the "
                           "whole-clip result and holds more frames in memory."}),
            **_file_inputs("tame/temporal_upscale"),
        }, "optional": {
            **UPSCALE_MODEL_INPUT,
            **FLOW_INPUT,
            **KEEP_DETAIL_INPUT,
        }}

    def upscale(self, video, resize_mode, scale, temporal_strength, prefilter, chunk_frames, lookahead_frames,
                filename_prefix, format, start_frame, max_frames, quality, upscale_model=None, flow_model=None,
                keep_detail=KEEP_DETAIL_DEFAULT):
        path = _input_video(video, "input")
        info = probe(path)
        count = frames_in_range(info, start_frame, max_frames, path)
        device = host.compute_device()
        target, subfolder = host.numbered_output_path(filename_prefix, FORMAT_EXTENSIONS[format])
        with chosen_upscaler(upscale_model, resize_mode, scale, device) as (upscale_fn, upscale_factor), \
                VideoWriter(target, info.fps, format, quality) as writer:
            temporal_upscale_stream(
                _chunks_chw(path, start_frame, count), lambda frames: writer.write(frames.permute(0, 2, 3, 1)),
                upscale_fn, upscale_factor, flow_model or builtin_estimator(), prefilter=prefilter,
                temporal_weight=temporal_strength, keep_detail=keep_detail, chunk=chunk_frames,
                lookahead=lookahead_frames, device=device, progress=host.progress(count, "temporal upscale (file)"),
                total_frames=count)
        return _file_result(target, subfolder, format)


class TameFlowTemporalFilter:
    DESCRIPTION = ("Quick deflicker: every frame becomes the weighted mean of itself and its neighbours (+-radius "
                   "frames) warped onto it along the optical flow. Occluded pixels (forward-backward check) and "
                   "pixels whose colour differs too much get no weight, so moving objects do not ghost. Seconds "
                   "per clip; no training.")
    CATEGORY = CATEGORY
    FUNCTION = "filter"
    RETURN_TYPES = ("IMAGE",)
    RETURN_NAMES = ("images",)
    OUTPUT_TOOLTIPS = ("The filtered video (same frame count and size).",)

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "images": ("IMAGE", {"tooltip": "The flickering video as an IMAGE batch (frames in order)."}),
            "radius": ("INT", {"default": DEFAULT_RADIUS, "min": 1, "max": 8,
                               "tooltip": "Neighbours on each side that are averaged in; more removes more "
                                          "flicker, costs time and risks more flow errors."}),
            "colour_tolerance": ("FLOAT", {
                "default": DEFAULT_TOLERANCE, "min": 0.005, "max": 1.0, "step": 0.005,
                "tooltip": "Colour difference (0..1 scale) a warped neighbour may have and still count. Raise it "
                           "for strong flicker; lower it if edges of moving objects smear."}),
            "strength": ("FLOAT", {"default": 1.0, "min": 0.0, "max": 1.0, "step": 0.05,
                                   "tooltip": "Blend of the filtered frames into the input (0 = unchanged)."}),
        }, "optional": dict(FLOW_INPUT)}

    def filter(self, images, radius, colour_tolerance, strength, flow_model=None):
        frames = image_to_frames(images)
        settings = FilterSettings(radius=radius, tolerance=colour_tolerance, strength=strength)
        estimator = flow_model or builtin_estimator() if frames.shape[0] > 1 else None
        filtered = flow_temporal_filter(frames, estimator, settings, device=host.compute_device(),
                                        progress=host.progress(frames.shape[0] + 1, "temporal filter"))
        return (frames_to_image(filtered),)


NODE_CLASS_MAPPINGS = {cls.__name__: cls for cls in (TameBlindConsistencyVideoFile, TameTemporalUpscaleVideoFile,
                                                     TameFlowTemporalFilter)}
NODE_DISPLAY_NAME_MAPPINGS = {
    "TameBlindConsistencyVideoFile": "Blind Consistency Video File (Tame)",
    "TameTemporalUpscaleVideoFile": "Temporal Upscale Video File (Tame)",
    "TameFlowTemporalFilter": "Flow Temporal Filter (Tame)",
}
