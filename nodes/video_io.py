"""Video file nodes: load a frame range into an IMAGE batch, save an IMAGE batch as a video."""

from ..models.io.video import FORMATS, check_frames, read_frames, write_video
from . import host

FORMAT_EXTENSIONS = {"mp4": ".mp4", "webm": ".webm", "png": ""}


class TameLoadVideo:
    DESCRIPTION = ("Loads a range of frames from a video file (MP4, WebM, MOV, MKV, ...) as an IMAGE "
                   "batch, optionally every n-th frame and downscaled. Also outputs the frame rate of "
                   "the loaded frames and how many there are.")
    CATEGORY = "Tame/video"
    FUNCTION = "load"
    RETURN_TYPES = ("IMAGE", "FLOAT", "INT")
    RETURN_NAMES = ("frames", "fps", "frame_count")
    OUTPUT_TOOLTIPS = (
        "The loaded frames [frames,H,W,3] in [0,1].",
        "Frames per second of the file (divided by the stride).",
        "How many frames were loaded.",
    )

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "video": ("STRING", {
                "default": "",
                "tooltip": "Absolute path of the video file, or a file name (with subfolder) inside "
                           "ComfyUI's input folder."}),
            "start_frame": ("INT", {
                "default": 0, "min": 0, "max": 10_000_000,
                "tooltip": "Index of the first frame to load; 0 is the first frame of the file."}),
            "frame_count": ("INT", {
                "default": 0, "min": 0, "max": 10_000_000,
                "tooltip": "Most frames to load; 0 loads to the end of the file."}),
            "stride": ("INT", {
                "default": 1, "min": 1, "max": 1000,
                "tooltip": "Load every n-th frame: 1 = every frame, 2 = every other frame. The fps "
                           "output is divided by it."}),
            "max_side": ("INT", {
                "default": 0, "min": 0, "max": 16384,
                "tooltip": "Downscale (antialiased, aspect ratio kept) so the longer side is at most "
                           "this many pixels; 0 keeps the original size."}),
        }}

    @classmethod
    def IS_CHANGED(cls, video, **_):
        """Reload when the file changes on disk, not only when the inputs change."""
        try:
            stat = host.resolve_input_file(video.strip()).stat()
        except OSError:  # the load itself reports the missing file clearly
            return "missing"
        return f"{stat.st_mtime_ns}-{stat.st_size}"

    def load(self, video, start_frame, frame_count, stride, max_side):
        if not video.strip():
            raise ValueError(
                f"No video given. Type an absolute path or the name of a file in the input folder "
                f"{host.input_dir()}.")
        path = host.resolve_input_file(video.strip())
        frames, fps = read_frames(
            path, start=start_frame, count=frame_count, stride=stride, max_side=max_side,
            progress=host.progress(frame_count or 1, "Loading video"))
        return frames, fps, frames.shape[0]


class TameSaveVideo:
    DESCRIPTION = ("Saves an IMAGE batch into ComfyUI's output folder as an MP4 (H.264), a WebM (VP9) "
                   "or a folder of numbered PNG files, named <prefix>_00001 and counting up. The file "
                   "appears only once it is complete. Outputs its absolute path.")
    CATEGORY = "Tame/video"
    FUNCTION = "save"
    OUTPUT_NODE = True
    RETURN_TYPES = ("STRING",)
    RETURN_NAMES = ("path",)
    OUTPUT_TOOLTIPS = ("Path of the written video file or PNG folder.",)

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "images": ("IMAGE", {"tooltip": "The frames to save, in order."}),
            "filename_prefix": ("STRING", {
                "default": "tame/video",
                "tooltip": "Name of the output inside the output folder; may contain subfolders "
                           "(tame/video -> output/tame/video_00001.mp4)."}),
            "format": (list(FORMATS), {
                "default": "mp4",
                "tooltip": "mp4: H.264, plays everywhere. webm: VP9, smaller files for the web. png: "
                           "lossless numbered images in a folder (no frame rate stored)."}),
            "fps": ("FLOAT", {
                "default": 24.0, "min": 0.01, "max": 1000.0, "step": 0.001,
                "tooltip": "Frames per second of the saved video (29.97, 23.976, ... are stored as the "
                           "exact NTSC rates)."}),
            "quality": ("INT", {
                "default": 85, "min": 0, "max": 100,
                "tooltip": "0 = smallest file, 100 = best picture; 85 is close to visually lossless. "
                           "Ignored for png, which is always lossless."}),
        }}

    def save(self, images, filename_prefix, format, fps, quality):
        if format not in FORMAT_EXTENSIONS:
            raise ValueError(f"format must be one of {', '.join(FORMAT_EXTENSIONS)}, got {format!r}.")
        images = images.clamp(0, 1)  # upscalers overshoot slightly; ComfyUI's SaveImage clips too
        check_frames(images)
        target, subfolder = host.numbered_output_path(filename_prefix, FORMAT_EXTENSIONS[format])
        write_video(target, images, fps, format, quality,
                               progress=host.progress(images.shape[0], "Saving video"))
        return {"ui": {"images": _preview_entries(target, subfolder, format),
                       "animated": (format != "png",)},
                "result": (str(target),)}


def _preview_entries(target, subfolder, format):
    """ComfyUI `ui.images` entries: the video file, or every PNG of the sequence folder."""
    if format != "png":
        return [{"filename": target.name, "subfolder": subfolder, "type": "output"}]
    frames_subfolder = f"{subfolder}/{target.name}" if subfolder else target.name
    return [{"filename": png.name, "subfolder": frames_subfolder, "type": "output"}
            for png in sorted(target.glob("*.png"))]


NODE_CLASS_MAPPINGS = {"TameLoadVideo": TameLoadVideo, "TameSaveVideo": TameSaveVideo}
NODE_DISPLAY_NAME_MAPPINGS = {"TameLoadVideo": "Load Video (Tame)", "TameSaveVideo": "Save Video (Tame)"}
