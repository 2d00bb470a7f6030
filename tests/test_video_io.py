"""Video file I/O: round trips, range semantics, atomic writing, error messages, the two nodes."""
import av
import cv2
import numpy as np
import pytest
import torch

from tame.models.io import video as video_file
from tame.models.io.video import VideoWriter, iter_frame_chunks, probe, read_frames, write_video
from tame.nodes import video_io

T, H, W, FPS = 12, 48, 64, 30
CODEC_MEAN_TOL = 4 / 255  # mean |error| at quality 85: 4:2:0 chroma on steep tiny ramps dominates
CODEC_MAX_TOL = 20 / 255


def ramp_frames(count=T, height=H, width=W):
    """`[count,H,W,3]`: red = horizontal ramp x/(W-1), green = vertical ramp, blue = frame_level(t)."""
    red = torch.linspace(0, 1, width).expand(height, width)
    green = torch.linspace(0, 1, height)[:, None].expand(height, width)
    return torch.stack([torch.stack([red, green, torch.full((height, width), frame_level(t))], -1)
                        for t in range(count)])


def frame_level(index):
    return (20 + 18 * index) / 255


def frame_ids(frames):
    """Recover each frame's index from its blue level (robust to codec noise of a few codes)."""
    blue = frames[..., 2].mean(dim=(1, 2)) * 255
    return [round((level - 20) / 18) for level in blue.tolist()]


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    """The ramp video written once per format: {'mp4': path, 'webm': path, 'png': folder}."""
    folder = tmp_path_factory.mktemp("clips")
    frames = ramp_frames()
    return {"mp4": write_video(folder / "clip.mp4", frames, FPS, "mp4"),
            "webm": write_video(folder / "clip.webm", frames, FPS, "webm"),
            "png": write_video(folder / "clip", frames, FPS, "png")}


def entries(folder):
    return sorted(p.name for p in folder.iterdir())


# ---------------------------------------------------------------- round trips
@pytest.mark.parametrize("format", ["mp4", "webm"])
def test_lossy_round_trip_matches_written_frames(clips, format):
    frames, fps = read_frames(clips[format])
    error = (frames - ramp_frames()).abs()
    assert frames.shape == (T, H, W, 3) and frames.dtype == torch.float32
    assert fps == FPS
    assert error.mean() < CODEC_MEAN_TOL and error.max() < CODEC_MAX_TOL
    assert frame_ids(frames) == list(range(T))


def test_png_sequence_is_lossless(clips):
    files = sorted(clips["png"].iterdir())
    assert [f.name for f in files] == [f"frame_{i:06d}.png" for i in range(T)]
    expected = (ramp_frames() * 255).round().to(torch.uint8).numpy()
    for index, file in enumerate(files):
        decoded = cv2.imread(str(file), cv2.IMREAD_UNCHANGED)[..., ::-1]  # independent decoder, BGR
        np.testing.assert_array_equal(decoded, expected[index])


@pytest.mark.parametrize("format", ["mp4", "webm"])
def test_probe_reports_count_rate_size_duration(clips, format):
    info = probe(clips[format])
    assert (info.frame_count, info.fps, info.width, info.height) == (T, FPS, W, H)
    assert info.duration == pytest.approx(T / FPS, abs=1.5 / FPS)


def test_ntsc_rate_is_stored_exactly(tmp_path):
    path = write_video(tmp_path / "ntsc.mp4", ramp_frames(3), 29.97, "mp4")
    assert probe(path).fps == pytest.approx(30000 / 1001, abs=1e-9)


def test_odd_size_is_padded_for_yuv420_and_kept_for_png(tmp_path):
    frames = ramp_frames(2, 33, 47)
    video = write_video(tmp_path / "odd.mp4", frames, FPS, "mp4")
    decoded, _ = read_frames(video)
    assert decoded.shape == (2, 34, 48, 3)
    assert (decoded[:, :33, :47] - frames).abs().mean() < CODEC_MEAN_TOL
    assert (decoded[:, 33, :47] - frames[:, 32]).abs().mean() < CODEC_MEAN_TOL  # replicated last row
    assert (decoded[:, :33, 47] - frames[:, :, 46]).abs().mean() < CODEC_MEAN_TOL  # and column
    pngs = write_video(tmp_path / "odd_png", frames, FPS, "png")
    assert cv2.imread(str(pngs / "frame_000000.png")).shape == (33, 47, 3)


def test_higher_quality_gives_smaller_error_and_bigger_file(tmp_path):
    generator = torch.Generator().manual_seed(0)
    noise = torch.rand(4, 32, 32, 1, generator=generator).expand(-1, -1, -1, 3)  # grey: luma detail
    errors, sizes = [], []
    for quality in (10, 95):
        path = write_video(tmp_path / f"q{quality}.mp4", noise, FPS, "mp4", quality)
        errors.append((read_frames(path)[0] - noise).abs().mean().item())
        sizes.append(path.stat().st_size)
    assert errors[1] < errors[0] / 2 and sizes[1] > 2 * sizes[0]


def test_ten_bit_sources_are_read_beyond_8_bit_precision(tmp_path):
    path = tmp_path / "ten_bit.mkv"
    ramp = np.linspace(0, 65535, 256).astype(np.uint16)
    image = np.stack([np.tile(ramp, (16, 1))] * 3, -1)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=FPS, options={"crf": "0"})
        stream.width, stream.height, stream.pix_fmt = 256, 16, "yuv420p10le"
        container.mux(stream.encode(av.VideoFrame.from_ndarray(image, format="rgb48le")))
        container.mux(stream.encode(None))
    frames, _ = read_frames(path)
    codes = frames[0, 8, :, 0] * 255
    assert (codes - codes.round()).abs().max() > 0.2  # not quantised to 1/255 steps
    assert (frames[0, 8, :, 0] - torch.from_numpy(ramp / 65535.0).float()).abs().max() < 0.01


# ---------------------------------------------------------------- range semantics
@pytest.mark.parametrize("start, count, stride, expected", [
    (0, 0, 1, list(range(T))),
    (3, 4, 1, [3, 4, 5, 6]),
    (1, 0, 3, [1, 4, 7, 10]),
    (2, 3, 4, [2, 6, 10]),
    (10, 5, 1, [10, 11]),  # count is capped at the end of the file
    (11, 0, 5, [11]),
])
@pytest.mark.parametrize("format", ["mp4", "webm"])
def test_start_count_stride_select_the_right_frames(clips, format, start, count, stride, expected):
    frames, fps = read_frames(clips[format], start=start, count=count, stride=stride)
    assert frame_ids(frames) == expected
    assert fps == FPS / stride


def test_max_side_downscales_with_aspect_and_antialiasing(clips):
    frames, _ = read_frames(clips["mp4"], max_side=32)
    assert frames.shape == (T, 24, 32, 3)
    # A 2x downscale of a linear ramp is the ramp at the new pixel centres (away from the border).
    centres_x = (torch.arange(32) * 2 + 0.5) / (W - 1)
    centres_y = (torch.arange(24) * 2 + 0.5) / (H - 1)
    assert (frames[:, 2:-2, 2:-2, 0] - centres_x[2:-2]).abs().mean() < CODEC_MEAN_TOL
    assert (frames[:, 2:-2, 2:-2, 1] - centres_y[2:-2, None]).abs().mean() < CODEC_MEAN_TOL
    assert frame_ids(frames) == list(range(T))
    assert read_frames(clips["mp4"], count=1, max_side=20)[0].shape == (1, 15, 20, 3)
    assert read_frames(clips["mp4"], count=1, max_side=500)[0].shape == (1, H, W, 3)


def test_downscaling_is_antialiased(tmp_path):
    stripes = torch.zeros(1, H, W, 3)
    stripes[:, :, 1::2] = 1.0  # one-pixel columns: plain bilinear at scale 3.2 aliases to 0.1..0.9
    still = write_video(tmp_path / "stripes", stripes, FPS, "png") / "frame_000000.png"
    frames, _ = read_frames(still, max_side=20)  # a still image reads as a one-frame video
    assert frames.shape == (1, 15, 20, 3)
    assert (frames - 0.5).abs().max() < 0.05


def test_reading_stops_once_the_range_is_delivered(clips, monkeypatch):
    decoded = []
    original = video_file._decoded_frames

    def counting(*args):
        for frame in original(*args):
            decoded.append(frame)
            yield frame

    monkeypatch.setattr(video_file, "_decoded_frames", counting)
    frames, _ = read_frames(clips["mp4"], start=2, count=2, stride=2)
    assert frame_ids(frames) == [2, 4]
    assert len(decoded) == 5  # frames 0..4, nothing after the last wanted one


def test_iter_frame_chunks_streams_the_same_frames_in_bounded_chunks(clips):
    chunks = list(iter_frame_chunks(clips["webm"], chunk_frames=5, start=1, max_side=32))
    assert [c.shape[0] for c in chunks] == [5, 5, 1]
    assert all(c.shape[1:] == (24, 32, 3) for c in chunks)
    whole, _ = read_frames(clips["webm"], start=1, max_side=32)
    torch.testing.assert_close(torch.cat(chunks), whole)


def test_iter_frame_chunks_checks_arguments_before_iterating(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        iter_frame_chunks(tmp_path / "missing.mp4", 4)  # raised without calling next()
    with pytest.raises(ValueError, match="chunk_frames must be a positive whole number, got 0"):
        iter_frame_chunks(tmp_path / "missing.mp4", 0)


def test_progress_is_reported_per_chunk(clips, monkeypatch):
    monkeypatch.setattr(video_file, "READ_CHUNK_FRAMES", 5)
    reports = []
    read_frames(clips["mp4"], progress=lambda done, total: reports.append((done, total)))
    assert reports == [(5, T), (10, T), (12, T)]


# ---------------------------------------------------------------- encoders
def test_mp4_falls_back_to_mpeg4_without_x264(tmp_path, monkeypatch):
    monkeypatch.setattr(video_file, "encoder_available", lambda name: name != "libx264")
    with VideoWriter(tmp_path / "fallback.mp4", FPS, "mp4") as writer:
        writer.write(ramp_frames(4))
    assert writer.encoder == "mpeg4"
    frames, _ = read_frames(writer.path)
    assert (frames - ramp_frames(4)).abs().mean() < 2 * CODEC_MEAN_TOL
    assert frame_ids(frames) == [0, 1, 2, 3]


def test_webm_falls_back_to_vp8_without_vp9(tmp_path, monkeypatch):
    monkeypatch.setattr(video_file, "encoder_available", lambda name: name != "libvpx-vp9")
    with VideoWriter(tmp_path / "fallback.webm", FPS, "webm") as writer:
        writer.write(ramp_frames(4))
    assert writer.encoder == "libvpx"
    with av.open(str(writer.path)) as container:
        assert container.streams.video[0].codec_context.name == "vp8"
    assert (read_frames(writer.path)[0] - ramp_frames(4)).abs().mean() < 2 * CODEC_MEAN_TOL


def test_no_encoder_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setattr(video_file, "encoder_available", lambda name: False)
    with pytest.raises(ValueError, match=r"No WEBM encoder in this PyAV/FFmpeg build \(tried "
                                         r"libvpx-vp9, libvpx\)\. Save as another format"):
        VideoWriter(tmp_path / "x.webm", FPS, "webm")
    assert entries(tmp_path) == []


def test_quality_maps_onto_encoder_settings():
    x264, mpeg4 = video_file.ENCODERS["mp4"]
    assert [x264.options(q)["crf"] for q in (0, 85, 100)] == ["51", "18", "1"]
    assert mpeg4.options(85) == {"qscale": "3"}
    assert video_file.ENCODERS["webm"][0].options(85) == {"crf": "24", "b": "0"}


# ---------------------------------------------------------------- atomic writing
@pytest.mark.parametrize("format, name", [("mp4", "a.mp4"), ("webm", "a.webm"), ("png", "a")])
def test_failure_mid_write_leaves_nothing_behind(tmp_path, format, name):
    with pytest.raises(RuntimeError, match="upstream node failed"):
        with VideoWriter(tmp_path / name, FPS, format) as writer:
            writer.write(ramp_frames(3))
            # Nothing but a hidden temporary (encoders may not have flushed a byte yet).
            assert all(entry.startswith(f".{name}.partial-") for entry in entries(tmp_path))
            raise RuntimeError("upstream node failed")
    assert entries(tmp_path) == []


def test_bad_second_chunk_removes_the_partial_file(tmp_path):
    broken = ramp_frames(2)
    broken[1, 5, 5, 0] = float("nan")
    with pytest.raises(ValueError, match="NaN or infinite"):
        with VideoWriter(tmp_path / "a.mp4", FPS) as writer:
            writer.write(ramp_frames(2))
            writer.write(broken)
    assert entries(tmp_path) == []


def test_frame_size_change_between_chunks_is_refused(tmp_path):
    with pytest.raises(ValueError, match=r"frame size changed from \(48, 64\) to \(32, 64\) \(H, W\)"):
        with VideoWriter(tmp_path / "a.mp4", FPS) as writer:
            writer.write(ramp_frames(2))
            writer.write(ramp_frames(2, 32, 64))
    assert entries(tmp_path) == []


def test_failure_while_finalising_leaves_nothing_behind(tmp_path, monkeypatch):
    def failing_replace(source, target):
        raise OSError("disk full")

    monkeypatch.setattr(video_file.os, "replace", failing_replace)
    with pytest.raises(OSError, match="disk full"):
        write_video(tmp_path / "a.mp4", ramp_frames(3), FPS)
    assert entries(tmp_path) == []


def test_writer_without_frames_saves_nothing(tmp_path):
    with pytest.raises(ValueError, match="No frames were written to 'a.mp4'; nothing was saved."):
        with VideoWriter(tmp_path / "a.mp4", FPS):
            pass
    assert entries(tmp_path) == []


# ---------------------------------------------------------------- bad input: reading
def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"Video file '.*nope\.mp4' does not exist\. Check "):
        read_frames(tmp_path / "nope.mp4")


def test_folder_instead_of_file(tmp_path):
    with pytest.raises(ValueError, match="is a folder, not a video file"):
        probe(tmp_path)


def test_garbage_file_is_not_a_video(tmp_path):
    path = tmp_path / "notes.mp4"
    path.write_bytes(b"this is not a video\n" * 50)
    with pytest.raises(ValueError, match=r"'notes\.mp4' could not be opened as a video \(Invalid data "
                                         r"found when processing input\)\. Check that it is a complete"):
        read_frames(path)


def test_mp4_cut_inside_its_header(clips, tmp_path):
    path = tmp_path / "cut.mp4"
    path.write_bytes(clips["mp4"].read_bytes()[:400])  # the index (moov) is at the front
    with pytest.raises(ValueError, match=r"'cut\.mp4' has a video stream that cannot be decoded "
                                         r"\(unknown codec or damaged header\)\. Re-encode it"):
        probe(path)


def test_mp4_cut_inside_its_pictures(clips, tmp_path):
    path = tmp_path / "cut.mp4"
    path.write_bytes(clips["mp4"].read_bytes()[:-200])
    with pytest.raises(ValueError, match=r"'cut\.mp4' stopped decoding after \d+ frame\(s\) \(.*\)\. "
                                         r"The file is probably truncated or damaged"):
        read_frames(path)


def test_audio_only_file_has_no_video_stream(tmp_path):
    path = tmp_path / "tone.wav"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("pcm_s16le", rate=8000)
        samples = av.AudioFrame.from_ndarray(np.zeros((1, 800), np.int16), format="s16", layout="mono")
        samples.sample_rate = 8000
        container.mux(stream.encode(samples))
        container.mux(stream.encode(None))
    with pytest.raises(ValueError, match=r"'tone\.wav' has no video stream \(only audio, subtitles or "
                                         r"data, or its header is cut off\)\. Choose a file with "
                                         r"pictures\."):
        read_frames(path)


def test_video_stream_without_frames(tmp_path):
    path = tmp_path / "empty.webm"  # a picture track with no packets, kept alive by an audio track
    with av.open(str(path), "w") as container:
        video = container.add_stream("libvpx-vp9", rate=FPS)
        video.width, video.height, video.pix_fmt = W, H, "yuv420p"
        audio = container.add_stream("libopus", rate=48000)
        silence = av.AudioFrame.from_ndarray(np.zeros((1, 4800), np.float32), format="flt",
                                             layout="mono")
        silence.sample_rate = 48000
        container.mux(audio.encode(silence))
        container.mux(audio.encode(None))
    assert probe(path).frame_count == 0
    with pytest.raises(ValueError, match=r"'empty\.webm' contains no video frames\. Choose a file"):
        read_frames(path)


@pytest.mark.parametrize("format", ["mp4", "webm"])
def test_start_beyond_the_end_says_how_many_frames_there_are(clips, format):
    with pytest.raises(ValueError, match=rf"start frame 12 is beyond the end of 'clip\.{format}', which "
                                         r"has 12 frames \(first frame 0, last frame 11\)\. Choose a "
                                         r"smaller start frame\."):
        read_frames(clips[format], start=12)


@pytest.mark.parametrize("arguments, message", [
    ({"stride": 0}, r"stride must be 1 or more, got 0: 1 reads every frame, 2 every other frame\."),
    ({"stride": -2}, r"stride must be 1 or more, got -2"),
    ({"start": -1}, r"start frame must be a whole number >= 0, got -1 \(0 is the first frame\)\."),
    ({"count": -3}, r"frame count must be a whole number >= 0, got -3 \(0 reads to the end\)\."),
    ({"max_side": -8}, r"max side must be a whole number >= 0, got -8 \(0 keeps the size\)\."),
    ({"start": 1.5}, r"start frame must be a whole number >= 0, got 1\.5"),
])
def test_bad_range_arguments(clips, arguments, message):
    with pytest.raises(ValueError, match=message):
        read_frames(clips["mp4"], **arguments)


# ---------------------------------------------------------------- bad input: writing
@pytest.mark.parametrize("frames, message", [
    (torch.zeros(2, H, W, 4), r"frames must be \[T,H,W,3\] \(RGB, channels last\), got shape "
                              r"\(2, 48, 64, 4\)\. Drop an alpha channel"),
    (torch.zeros(H, W, 3), r"frames must be \[T,H,W,3\] \(RGB, channels last\), got shape \(48, 64, 3\)"),
    (torch.zeros(0, H, W, 3), r"frames are empty \(shape \(0, 48, 64, 3\)\); give at least one frame\."),
    (torch.zeros(2, H, W, 3, dtype=torch.uint8), r"frames must be floating point in \[0,1\], got "
                                                 r"torch\.uint8\."),
    (torch.full((2, H, W, 3), float("nan")), r"frames contain NaN or infinite values; fix the step"),
    (torch.full((2, H, W, 3), 1.5), r"frame values must lie in \[0,1\], found 1\.5\.\.1\.5\. Clamp or "
                                    r"normalise the images before saving\."),
    (np.zeros((2, H, W, 3), np.float32), r"frames must be a torch tensor \[T,H,W,3\], got ndarray\."),
])
def test_bad_frames_are_refused_before_any_file_exists(tmp_path, frames, message):
    with pytest.raises(ValueError, match=message):
        write_video(tmp_path / "a.mp4", frames, FPS)
    assert entries(tmp_path) == []


def test_values_within_half_a_code_of_the_range_are_accepted(tmp_path):
    frames = ramp_frames(2)
    frames[0, 0, 0] = 1.0 + 1e-4
    frames[0, 0, 1] = -1e-4
    write_video(tmp_path / "a", frames, FPS, "png")
    assert entries(tmp_path / "a") == ["frame_000000.png", "frame_000001.png"]


@pytest.mark.parametrize("name, settings, error, message", [
    ("a.mp4", {"format": "gif"}, ValueError, r"format must be one of mp4, webm, png, got 'gif'\."),
    ("a.mp4", {"fps": 0}, ValueError, r"fps must be a positive number below 10000, got 0\."),
    ("a.mp4", {"quality": 101}, ValueError, r"quality must be between 0 and 100, got 101\."),
    ("a.mov", {}, ValueError, r"'a\.mov' does not end in \.mp4; name the file 'a\.mp4' or choose the "
                              r"format that matches its extension\."),
    ("no_such_folder/a.mp4", {}, FileNotFoundError, r"Folder '.*no_such_folder' does not exist; create "
                                                    r"it before saving\."),
])
def test_bad_write_settings(tmp_path, name, settings, error, message):
    arguments = {"fps": FPS, "format": "mp4", "quality": 85, **settings}
    with pytest.raises(error, match=message):
        write_video(tmp_path / name, ramp_frames(1), **arguments)
    assert entries(tmp_path) == []


def test_existing_target_is_not_overwritten(tmp_path):
    (tmp_path / "a.mp4").write_bytes(b"keep me")
    with pytest.raises(FileExistsError, match=r"'.*a\.mp4' already exists; choose another name or "
                                              r"delete it first\."):
        write_video(tmp_path / "a.mp4", ramp_frames(1), FPS)
    assert (tmp_path / "a.mp4").read_bytes() == b"keep me" and entries(tmp_path) == ["a.mp4"]


# ---------------------------------------------------------------- nodes
@pytest.fixture
def folders(tmp_path, monkeypatch):
    input_dir, output_dir = tmp_path / "input", tmp_path / "output"
    input_dir.mkdir()
    output_dir.mkdir()
    monkeypatch.setenv("TAME_INPUT_DIR", str(input_dir))
    monkeypatch.setenv("TAME_OUTPUT_DIR", str(output_dir))
    return input_dir, output_dir


def test_load_node_reads_a_range_from_the_input_folder(clips, folders):
    input_dir, _ = folders
    (input_dir / "shots").mkdir()
    (input_dir / "shots" / "clip.mp4").write_bytes(clips["mp4"].read_bytes())
    frames, fps, count = video_io.TameLoadVideo().load("shots/clip.mp4", 2, 3, 2, 32)
    assert frames.shape == (3, 24, 32, 3) and frames.dtype == torch.float32
    assert frame_ids(frames) == [2, 4, 6] and fps == FPS / 2 and count == 3


def test_load_node_takes_absolute_paths_and_reports_progress(clips, folders, monkeypatch):
    reports = []
    monkeypatch.setattr(video_io.host, "_progress_handler",
                        lambda label, done, total: reports.append((label, done, total)))
    frames, fps, count = video_io.TameLoadVideo().load(str(clips["webm"]), 0, 0, 1, 0)
    assert count == T and fps == FPS and frame_ids(frames) == list(range(T))
    assert reports[-1] == ("Loading video", T, T)


def test_load_node_errors(folders):
    input_dir, _ = folders
    with pytest.raises(ValueError, match=r"No video given\. Type an absolute path or the name of a file "
                                         r"in the input folder"):
        video_io.TameLoadVideo().load("  ", 0, 0, 1, 0)
    with pytest.raises(FileNotFoundError, match=r"Input file 'gone\.mp4' does not exist"):
        video_io.TameLoadVideo().load("gone.mp4", 0, 0, 1, 0)
    assert video_io.TameLoadVideo.IS_CHANGED("gone.mp4") == "missing"


def test_load_node_notices_a_changed_file(clips, folders):
    input_dir, _ = folders
    target = input_dir / "clip.mp4"
    target.write_bytes(clips["mp4"].read_bytes())
    before = video_io.TameLoadVideo.IS_CHANGED("clip.mp4")
    target.write_bytes(clips["webm"].read_bytes())
    assert video_io.TameLoadVideo.IS_CHANGED("clip.mp4") != before


def test_save_node_counts_up_and_reports_the_output(folders):
    _, output_dir = folders
    node = video_io.TameSaveVideo()
    first = node.save(ramp_frames(4), "tame/clip", "mp4", 24.0, 85)
    second = node.save(ramp_frames(4), "tame/clip", "webm", 24.0, 85)
    assert first["result"] == (str(output_dir / "tame" / "clip_00001.mp4"),)
    assert second["result"] == (str(output_dir / "tame" / "clip_00002.webm"),)
    assert first["ui"] == {"images": [{"filename": "clip_00001.mp4", "subfolder": "tame",
                                       "type": "output"}], "animated": (True,)}
    assert probe(second["result"][0]).frame_count == 4
    assert entries(output_dir / "tame") == ["clip_00001.mp4", "clip_00002.webm"]


def test_save_node_png_sequence_in_the_output_root(folders):
    _, output_dir = folders
    result = video_io.TameSaveVideo().save(ramp_frames(3), "shot", "png", 24.0, 85)
    folder = output_dir / "shot_00001"
    assert result["result"] == (str(folder),)
    assert result["ui"]["images"] == [{"filename": f"frame_{i:06d}.png", "subfolder": "shot_00001",
                                       "type": "output"} for i in range(3)]
    assert result["ui"]["animated"] == (False,)
    assert entries(folder) == [f"frame_{i:06d}.png" for i in range(3)]


@pytest.mark.parametrize("prefix", ["../escape", "a/../../escape", "/tmp/escape"])
def test_save_node_refuses_to_leave_the_output_folder(folders, prefix):
    _, output_dir = folders
    with pytest.raises(ValueError, match=r"points outside the output folder .*; use a relative name "
                                         r"without '\.\.'\."):
        video_io.TameSaveVideo().save(ramp_frames(1), prefix, "mp4", 24.0, 85)
    assert entries(output_dir) == [] and not (output_dir.parent / "escape_00001.mp4").exists()


def test_save_node_allows_dots_that_stay_inside(folders):
    _, output_dir = folders
    result = video_io.TameSaveVideo().save(ramp_frames(1), "a/../b/clip", "mp4", 24.0, 85)
    assert result["result"] == (str(output_dir / "b" / "clip_00001.mp4"),)


def test_save_node_bad_input_creates_nothing(folders):
    _, output_dir = folders
    with pytest.raises(ValueError, match=r"frames must be \[T,H,W,3\]"):
        video_io.TameSaveVideo().save(torch.zeros(2, H, W, 4), "tame/clip", "mp4", 24.0, 85)
    with pytest.raises(ValueError, match=r"filename_prefix 'tame/' has no file name part"):
        video_io.TameSaveVideo().save(ramp_frames(1), "tame/", "mp4", 24.0, 85)
    assert entries(output_dir) == []


def test_node_declarations_are_complete():
    for node in (video_io.TameLoadVideo, video_io.TameSaveVideo):
        inputs = node.INPUT_TYPES()["required"]
        assert all("tooltip" in options for _, options in inputs.values())
        assert len(node.RETURN_TYPES) == len(node.RETURN_NAMES)
        assert callable(getattr(node, node.FUNCTION)) and node.DESCRIPTION
        assert node.CATEGORY == "Tame/video"
    assert set(video_io.NODE_CLASS_MAPPINGS) == set(video_io.NODE_DISPLAY_NAME_MAPPINGS)
