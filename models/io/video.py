"""Video files in and out with PyAV: probe, read a frame range, write MP4/WebM/PNG sequences.

Frames are float32 tensors `[T,H,W,3]` in [0,1] (the IMAGE layout). Reading decodes sequentially and
stops once the requested range is delivered; `iter_frame_chunks` keeps memory bounded by one chunk.
Writing goes to a hidden temporary file (or folder) next to the target, which is renamed onto the
target only when everything was written; on any error the temporary output is deleted, so a target
path either holds a complete video or nothing.

Colour: video files are written as BT.709 limited-range YUV 4:2:0 and tagged so (VP8, which cannot
carry tags, uses BT.601, what every VP8 decoder assumes). 4:2:0 needs even sizes, so odd heights or
widths are padded by one replicated last row or column; the file is then one pixel larger than the
frames. PNG sequences keep the exact size, are lossless at 8 bits, and store no frame rate.
"""
import math
import os
import shutil
import uuid
from contextlib import contextmanager
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import torch
import torch.nn.functional as F
from av.video.reformatter import ColorRange, Colorspace

FORMATS = ("mp4", "webm", "png")
READ_CHUNK_FRAMES = 16
WRITE_CHUNK_FRAMES = 16
_RANGE_TOLERANCE = 0.5 / 255  # values this close outside [0,1] round to the same 8-bit code
_AVCOL_BT709 = 1  # FFmpeg's AVCOL_SPC_BT709, AVCOL_PRI_BT709 and AVCOL_TRC_BT709 are all 1


@dataclass(frozen=True)
class VideoInfo:
    """What a file holds: `frame_count` frames of `width` x `height` at `fps`, `duration` seconds."""
    frame_count: int
    fps: float
    width: int
    height: int
    duration: float


# ---------------------------------------------------------------- reading
def probe(path):
    """Frame count, frame rate, size and duration of the first video stream of `path`.

    The frame count is the container's when it stores one (MP4, MOV), else counted by demuxing
    the stream (WebM, MKV): exact either way, without decoding.
    """
    path = _existing_file(path)
    with _open_video(path) as (container, stream):
        fps = _stream_fps(stream, path)
        frame_count = stream.frames or _count_packets(container, stream, path)
        return VideoInfo(frame_count=frame_count, fps=fps, width=stream.codec_context.width,
                         height=stream.codec_context.height,
                         duration=_duration_seconds(container, stream, frame_count, fps))


def read_frames(path, start=0, count=0, stride=1, max_side=0, progress=None):
    """Frames `start, start+stride, ...` of a video file, at most `count` of them (0 = to the end).

    max_side: 0 keeps the size, else frames larger than that are downscaled (antialiased, aspect kept)
    so the longer side equals `max_side`; a frame whose size differs from the stream's (a mid-stream
    size change) is resized to it. progress: optional `progress(done, total)` per chunk.
    Returns (frames `[T,H,W,3]` float32 in [0,1], fps_out = fps / stride).
    """
    info, plan = _plan_reading(path, start, count, stride, max_side)
    height, width = fit_size(info.height, info.width, max_side)
    frames = torch.empty(plan.frame_count, height, width, 3)
    done = 0
    for chunk in _decode_chunks(plan, READ_CHUNK_FRAMES, (height, width), progress):
        frames[done:done + chunk.shape[0]] = chunk
        done += chunk.shape[0]
    return frames[:done], info.fps / stride


def iter_frame_chunks(path, chunk_frames=READ_CHUNK_FRAMES, start=0, count=0, stride=1, max_side=0,
                      progress=None):
    """Like `read_frames`, but yields `[t,H,W,3]` chunks of at most `chunk_frames` frames.

    Arguments are checked and the file probed now; decoding happens as the chunks are consumed.
    """
    if not isinstance(chunk_frames, int) or chunk_frames < 1:
        raise ValueError(f"chunk_frames must be a positive whole number, got {chunk_frames!r}.")
    info, plan = _plan_reading(path, start, count, stride, max_side)
    size = fit_size(info.height, info.width, max_side)
    return _decode_chunks(plan, chunk_frames, size, progress)


def fit_size(height, width, max_side):
    """(H, W) scaled down so the longer side is at most `max_side` (0 = no limit), aspect kept."""
    if max_side == 0 or max(height, width) <= max_side:
        return height, width
    scale = max_side / max(height, width)
    return max(1, round(height * scale)), max(1, round(width * scale))


@dataclass(frozen=True)
class _ReadPlan:
    path: Path
    start: int
    stride: int
    frame_count: int  # frames to deliver


def _plan_reading(path, start, count, stride, max_side):
    """Check the range arguments against the file; return (VideoInfo, _ReadPlan)."""
    _check_whole(start, "start frame", "0 is the first frame")
    _check_whole(count, "frame count", "0 reads to the end")
    _check_whole(max_side, "max side", "0 keeps the size")
    if not isinstance(stride, int) or stride < 1:
        raise ValueError(
            f"stride must be 1 or more, got {stride!r}: 1 reads every frame, 2 every other frame.")
    info = probe(path)
    name = Path(path).name
    if info.frame_count == 0:
        raise ValueError(f"'{name}' contains no video frames. Choose a file that has a picture track.")
    if start >= info.frame_count:
        raise ValueError(
            f"start frame {start} is beyond the end of '{name}', which has {info.frame_count} frames "
            f"(first frame 0, last frame {info.frame_count - 1}). Choose a smaller start frame.")
    available = math.ceil((info.frame_count - start) / stride)
    wanted = min(count, available) if count else available
    return info, _ReadPlan(Path(path), start, stride, wanted)


def _check_whole(value, what, hint):
    if not isinstance(value, int) or value < 0:
        raise ValueError(f"{what} must be a whole number >= 0, got {value!r} ({hint}).")


def _decode_chunks(plan, chunk_frames, size, progress):
    """Yield `[t,H,W,3]` float32 chunks of the frames `plan` selects, resized to `size` (H, W)."""
    delivered = 0
    for batch in _batches(_selected_frames(plan), chunk_frames):
        delivered += len(batch)
        if progress is not None:
            progress(delivered, plan.frame_count)
        yield _to_image_batch(batch, size)
    if delivered == 0:
        raise ValueError(
            f"No frame of '{plan.path.name}' from frame {plan.start} on could be decoded, although its "
            f"index lists them. The file is probably truncated or damaged.")


def _batches(items, size):
    """Lists of `size` consecutive items (the last one may be shorter)."""
    batch = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def _selected_frames(plan):
    """`[H,W,3]` float32 arrays of frames start, start+stride, ... (at most plan.frame_count)."""
    selected = 0
    with _open_video(plan.path) as (container, stream):
        stream.thread_type = "AUTO"
        for index, frame in enumerate(_decoded_frames(container, stream, plan.path)):
            if index < plan.start or (index - plan.start) % plan.stride:
                continue
            yield _frame_to_array(frame)
            selected += 1
            if selected == plan.frame_count:
                return


def _frame_to_array(frame):
    """av.VideoFrame -> `[H,W,3]` float32 numpy in [0,1] (16-bit decode for >8-bit sources)."""
    if max(component.bits for component in frame.format.components) > 8:
        return frame.to_ndarray(format="rgb48le").astype(np.float32) / 65535.0
    return frame.to_ndarray(format="rgb24").astype(np.float32) / 255.0


def _to_image_batch(arrays, size):
    """List of `[h,w,3]` arrays -> `[t,H,W,3]` float32 tensor resized (antialiased) to `size`."""
    frames = torch.from_numpy(np.stack(arrays))
    if tuple(frames.shape[1:3]) == tuple(size):
        return frames
    channels_first = frames.permute(0, 3, 1, 2)
    resized = F.interpolate(channels_first, size=size, mode="bilinear", antialias=True,
                            align_corners=False)
    return resized.clamp_(0.0, 1.0).permute(0, 2, 3, 1).contiguous()


def _existing_file(path):
    path = Path(path).expanduser()
    if not path.exists():
        raise FileNotFoundError(f"Video file '{path}' does not exist. Check the path or file name.")
    if not path.is_file():
        raise ValueError(f"'{path}' is a folder, not a video file. Give the path of a video file.")
    return path


@contextmanager
def _open_video(path):
    """(container, first video stream) of `path`; FFmpeg errors become ValueError."""
    try:
        container = av.open(str(path))
    except av.FFmpegError as err:
        raise ValueError(
            f"'{path.name}' could not be opened as a video ({_reason(err)}). Check that it is a "
            f"complete video file (MP4, WebM, MOV, MKV, ...).") from err
    with container:
        if not container.streams.video:
            raise ValueError(
                f"'{path.name}' has no video stream (only audio, subtitles or data, or its header is "
                f"cut off). Choose a file with pictures.")
        stream = container.streams.video[0]
        if stream.codec_context is None:
            raise ValueError(
                f"'{path.name}' has a video stream that cannot be decoded (unknown codec or damaged "
                f"header). Re-encode it to H.264 or VP9.")
        yield container, stream


def _reason(err):
    return getattr(err, "strerror", None) or str(err)


def _decoded_frames(container, stream, path):
    """Decoded frames in presentation order; a decoding failure becomes a ValueError."""
    index = 0
    try:
        for frame in container.decode(stream):
            yield frame
            index += 1
    except av.FFmpegError as err:
        raise ValueError(
            f"'{path.name}' stopped decoding after {index} frame(s) ({_reason(err)}). The file is "
            f"probably truncated or damaged; re-encode it, or read only frames before that point."
        ) from err


def _count_packets(container, stream, path):
    try:
        return sum(1 for packet in container.demux(stream) if packet.size > 0)
    except av.FFmpegError as err:
        raise ValueError(
            f"'{path.name}' could not be read to count its frames ({_reason(err)}). The file is "
            f"probably truncated or damaged.") from err


def _stream_fps(stream, path):
    rate = stream.average_rate or stream.guessed_rate or stream.base_rate
    if not rate or rate <= 0:
        raise ValueError(f"'{path.name}' does not state a frame rate; re-encode it with a fixed one.")
    return float(rate)


def _duration_seconds(container, stream, frame_count, fps):
    if stream.duration and stream.time_base:
        return float(stream.duration * stream.time_base)
    if container.duration:
        return container.duration / av.time_base
    return frame_count / fps


# ---------------------------------------------------------------- writing
@dataclass(frozen=True)
class _Encoder:
    """An FFmpeg encoder and how `quality` 0..100 maps onto its quality setting.

    `quality_setting` is `(option, value at quality 0, at 85, at 100)`, interpolated linearly in
    between; option "qscale" means a fixed quantiser (qmin = qmax).
    """
    name: str
    quality_setting: tuple
    fixed_options: tuple = ()
    colorspace: Colorspace = Colorspace.ITU709

    def options(self, quality):
        option, worst, good, best = self.quality_setting
        value = round(float(np.interp(quality, [0, 85, 100], [worst, good, best])))
        return {option: str(value), **dict(self.fixed_options)}


# First available encoder wins. x264 CRF 18 (quality 85) is near visually lossless; quality 100 is
# CRF 1, not 0, because CRF 0 switches to a lossless profile that browsers do not play.
ENCODERS = {
    "mp4": (_Encoder("libx264", ("crf", 51, 18, 1)),
            _Encoder("mpeg4", ("qscale", 31, 3, 1))),
    "webm": (_Encoder("libvpx-vp9", ("crf", 63, 24, 0), (("b", "0"),)),
             _Encoder("libvpx", ("crf", 63, 10, 4), (("b", "100M"),), Colorspace.ITU601)),
}


def encoder_available(name):
    """True when this PyAV build can encode with FFmpeg encoder `name`."""
    try:
        av.Codec(name, "w")
    except (av.codec.codec.UnknownCodecError, ValueError):
        return False
    return True


def choose_encoder(format):
    """The first available `_Encoder` for `format` ('mp4' or 'webm'); ValueError when none is."""
    for encoder in ENCODERS[format]:
        if encoder_available(encoder.name):
            return encoder
    names = ", ".join(encoder.name for encoder in ENCODERS[format])
    raise ValueError(
        f"No {format.upper()} encoder in this PyAV/FFmpeg build (tried {names}). Save as another "
        f"format (png always works) or install a PyAV build with these encoders.")


class VideoWriter:
    """Write `[T,H,W,3]` float frames in [0,1] chunk by chunk to an MP4, a WebM or a PNG folder.

        with VideoWriter("clip.mp4", fps=24) as writer:
            for chunk in chunks:
                writer.write(chunk)

    path: target file (`.mp4` / `.webm`) or folder (png: `frame_000000.png`, ...); it must not exist
    yet and its parent folder must. quality 0..100 (ignored for png, which is lossless).
    The target appears only when the `with` block ends without an error; `encoder` names the FFmpeg
    encoder in use.
    """

    def __init__(self, path, fps, format="mp4", quality=85):
        self.path = Path(path).expanduser()
        _check_write_settings(self.path, fps, format, quality)
        self.format, self.fps, self.quality = format, fps, quality
        self._encoder = None if format == "png" else choose_encoder(format)
        self.encoder = "png" if self._encoder is None else self._encoder.name
        self.frames_written = 0
        self._sink = None
        self._temp = self.path.parent / f".{self.path.name}.partial-{uuid.uuid4().hex[:8]}"

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, traceback):
        if exc_type is None:
            self.close()
        else:
            self.abort()

    def write(self, frames):
        """Append `[T,H,W,3]` frames; the first call fixes the frame size."""
        check_frames(frames)
        size = tuple(frames.shape[1:3])
        if self._sink is None:
            self._sink = self._open_sink(*size)
        elif size != self._sink.frame_size:
            raise ValueError(
                f"frame size changed from {self._sink.frame_size} to {size} (H, W); every frame of one "
                f"video must have the same size.")
        for image in _to_uint8(frames):
            self._sink.add(image)
            self.frames_written += 1

    def close(self):
        """Finish encoding and move the result onto the target path."""
        if self._sink is None:
            raise ValueError(f"No frames were written to '{self.path.name}'; nothing was saved.")
        try:
            self._sink.finish()
            os.replace(self._temp, self.path)
        except BaseException:
            self.abort()
            raise

    def abort(self):
        """Stop and delete the temporary output; the target path is left untouched."""
        if self._sink is not None:
            self._sink.discard()
        if self._temp.is_dir():
            shutil.rmtree(self._temp, ignore_errors=True)
        elif self._temp.exists():
            self._temp.unlink()

    def _open_sink(self, height, width):
        if self._encoder is None:
            return _PngFolderSink(self._temp, height, width)
        return _ContainerSink(self._temp, self.format, self._encoder, self.fps, self.quality,
                              height, width)


def write_video(path, frames, fps, format="mp4", quality=85, progress=None):
    """Write `[T,H,W,3]` float frames in [0,1] to `path` (see `VideoWriter`); returns the path.

    All frames are checked before any file is created. progress: optional `progress(done, total)`.
    """
    check_frames(frames)
    total = frames.shape[0]
    with VideoWriter(path, fps, format, quality) as writer:
        for first in range(0, total, WRITE_CHUNK_FRAMES):
            writer.write(frames[first:first + WRITE_CHUNK_FRAMES])
            if progress is not None:
                progress(min(first + WRITE_CHUNK_FRAMES, total), total)
    return writer.path


def check_frames(frames):
    """ValueError unless `frames` is a non-empty float tensor `[T,H,W,3]`, finite, within [0,1]."""
    if not isinstance(frames, torch.Tensor):
        raise ValueError(f"frames must be a torch tensor [T,H,W,3], got {type(frames).__name__}.")
    if frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(
            f"frames must be [T,H,W,3] (RGB, channels last), got shape {tuple(frames.shape)}. Drop "
            f"an alpha channel or convert grey images to RGB first.")
    if 0 in frames.shape:
        raise ValueError(f"frames are empty (shape {tuple(frames.shape)}); give at least one frame.")
    if not frames.is_floating_point():
        raise ValueError(f"frames must be floating point in [0,1], got {frames.dtype}.")
    if not torch.isfinite(frames).all():
        raise ValueError("frames contain NaN or infinite values; fix the step that produced them.")
    low, high = frames.min().item(), frames.max().item()
    if low < -_RANGE_TOLERANCE or high > 1 + _RANGE_TOLERANCE:
        raise ValueError(
            f"frame values must lie in [0,1], found {low:.4g}..{high:.4g}. Clamp or normalise the "
            f"images before saving.")


def _check_write_settings(path, fps, format, quality):
    if format not in FORMATS:
        raise ValueError(f"format must be one of {', '.join(FORMATS)}, got {format!r}.")
    if isinstance(fps, bool) or not isinstance(fps, (int, float)) or not (0 < fps < 10000):
        raise ValueError(f"fps must be a positive number below 10000, got {fps!r}.")
    if isinstance(quality, bool) or not isinstance(quality, (int, float)) or not 0 <= quality <= 100:
        raise ValueError(f"quality must be between 0 and 100, got {quality!r}.")
    if format != "png" and path.suffix.lower() != f".{format}":
        raise ValueError(
            f"'{path.name}' does not end in .{format}; name the file '{path.stem}.{format}' or choose "
            f"the format that matches its extension.")
    if not path.parent.is_dir():
        raise FileNotFoundError(f"Folder '{path.parent}' does not exist; create it before saving.")
    if path.exists():
        raise FileExistsError(f"'{path}' already exists; choose another name or delete it first.")


def _to_uint8(frames):
    """`[T,H,W,3]` float in [0,1] -> numpy uint8 `[T,H,W,3]` (rounded)."""
    return (frames.detach().float().cpu() * 255.0).round_().clamp_(0, 255).to(torch.uint8).numpy()


def _rate_fraction(fps):
    """fps as a Fraction; 23.976, 29.97, 59.94 ... become the exact NTSC rates n*1000/1001."""
    ntsc = Fraction(round(fps * 1.001) * 1000, 1001)
    if abs(float(ntsc) - fps) < 1e-3:
        return ntsc
    return Fraction(fps).limit_denominator(1000)


class _ContainerSink:
    """Encodes uint8 RGB frames into one MP4/WebM file with the given encoder."""

    def __init__(self, path, format, encoder, fps, quality, height, width):
        self.frame_size = (height, width)
        self.colorspace = encoder.colorspace
        # faststart: the index goes to the front so browsers can play while loading
        options = {"movflags": "+faststart"} if format == "mp4" else {}
        self.container = av.open(str(path), "w", format=format, options=options)
        try:
            self.stream = self._add_stream(encoder, fps, quality, height + height % 2, width + width % 2)
        except BaseException:
            self.container.close()
            raise

    def _add_stream(self, encoder, fps, quality, height, width):
        options = encoder.options(quality)
        qscale = options.pop("qscale", None)
        stream = self.container.add_stream(encoder.name, rate=_rate_fraction(fps), options=options)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        context = stream.codec_context
        if qscale is not None:
            context.qmin = context.qmax = int(qscale)
        if encoder.colorspace == Colorspace.ITU709:
            context.colorspace = context.color_primaries = context.color_trc = _AVCOL_BT709
        context.color_range = ColorRange.MPEG.value
        return stream

    def add(self, image):
        """image: `[H,W,3]` uint8 RGB; odd sizes are padded by repeating the last row/column."""
        height, width = image.shape[:2]
        if height % 2 or width % 2:
            image = np.pad(image, ((0, height % 2), (0, width % 2), (0, 0)), mode="edge")
        rgb = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")
        yuv = rgb.reformat(format="yuv420p", dst_colorspace=self.colorspace,
                           dst_color_range=ColorRange.MPEG)
        self.container.mux(self.stream.encode(yuv))

    def finish(self):
        self.container.mux(self.stream.encode(None))
        self.container.close()

    def discard(self):
        try:
            self.container.close()
        except av.FFmpegError:  # closing a half-written file may fail; it is deleted anyway
            pass


class _PngFolderSink:
    """Writes uint8 RGB frames as `frame_000000.png`, ... into a new folder (lossless, 8 bit)."""

    def __init__(self, folder, height, width):
        self.frame_size = (height, width)
        self.folder = Path(folder)
        self.folder.mkdir()
        self.encoder = av.CodecContext.create("png", "w")
        self.encoder.width, self.encoder.height, self.encoder.pix_fmt = width, height, "rgb24"
        self.count = 0

    def add(self, image):
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")
        data = b"".join(bytes(packet) for packet in self.encoder.encode(frame))
        (self.folder / f"frame_{self.count:06d}.png").write_bytes(data)
        self.count += 1

    def finish(self):
        self.encoder.encode(None)

    def discard(self):
        """Nothing stays open between frames; the writer deletes the folder."""
