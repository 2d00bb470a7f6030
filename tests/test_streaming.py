"""Long-video tools: windowed blind consistency (in memory and streamed from files), the streaming temporal
upscale wrapper and the flow-guided temporal filter, checked against the whole-clip procedures, exact
synthetic motion and closed-form cases."""
import numpy as np
import pytest
import torch

from tame.kernels.metrics import psnr, warping_error
from tame.kernels.temporal_filter import chain_flows, weighted_temporal_mean
from tame.models.data.scenes import render_clip
from tame.models.edit.blind import BlindSettings, blind_consistency
from tame.models.edit.windowed import WindowedSettings, crossfade, windowed_blind_consistency, windowed_blind_stream
from tame.models.flow.estimate import FlowEstimator
from tame.models.io.video import write_video
from tame.models.video.streaming import temporal_upscale_stream
from tame.models.video.temporal_filter import FilterSettings, flow_temporal_filter
from tame.models.vsr.wrapper import temporal_upscale
from tame.nodes.flow_nodes import builtin_estimator
from tame.nodes.streaming_nodes import (
    TameBlindConsistencyVideoFile,
    TameFlowTemporalFilter,
    TameTemporalUpscaleVideoFile,
)
from tame.tests.support.peers import flickering_upscaler

TINY = BlindSettings(epochs=2, width=8, levels=2)


class ZeroFlow(torch.nn.Module):
    """An 'estimator' returning zero flow: enough where the flow's value does not matter to the check."""

    def forward(self, image1, image2):
        return torch.zeros(image1.shape[0], 2, *image1.shape[-2:])


def flicker(frames, amount=0.12, seed=0):
    """Per-frame, per-channel random gain: the typical flicker of a per-frame edit."""
    gen = torch.Generator().manual_seed(seed)
    return (frames * (1 + amount * torch.randn(frames.shape[0], 3, 1, 1, generator=gen))).clamp(0, 1)


def chunks(frames, size):
    return [frames[i:i + size] for i in range(0, frames.shape[0], size)]


@pytest.fixture(scope="module")
def estimator():
    return builtin_estimator()


@pytest.fixture(scope="module")
def pan():
    clip = render_clip(12, 24, 32, motion=3.0, num_layers=1, rotation=False, zoom=False, seed=4)
    return clip, flicker(clip.frames)


# ------------------------------------------------------------------ windowed blind consistency
def test_crossfade_is_a_linear_ramp():
    previous, current = torch.zeros(3, 3, 2, 2), torch.ones(3, 3, 2, 2)
    assert torch.allclose(crossfade(previous, current)[:, 0, 0, 0], torch.tensor([0.25, 0.5, 0.75]))


def test_window_larger_than_video_is_the_single_anchor_result(pan, estimator):
    clip, processed = pan
    one_epoch = BlindSettings(epochs=1, width=8, levels=2, mean_look=True)
    single = blind_consistency(clip.frames, processed, estimator, one_epoch).frames
    windowed = windowed_blind_consistency(clip.frames, processed, estimator, WindowedSettings(one_epoch, 64, 8))
    assert windowed.windows == [(0, 12, 5)]
    assert torch.allclose(windowed.frames, single, atol=1e-6)


def test_stream_equals_in_memory_for_any_read_chunking(pan, estimator):
    clip, processed = pan
    settings = WindowedSettings(TINY, 5, 2, later_epochs=1)
    reference = windowed_blind_consistency(clip.frames, processed, estimator, settings)
    assert [w[:2] for w in reference.windows] == [(0, 5), (3, 8), (6, 11), (9, 12)]
    written = []
    windowed_blind_stream(chunks(clip.frames, 7), chunks(processed, 2), written.append, estimator, settings)
    assert torch.allclose(torch.cat(written), reference.frames, atol=1e-6)


def test_windowed_errors(pan, estimator):
    clip, processed = pan
    with pytest.raises(ValueError, match="processed video ends after 10 frames"):
        windowed_blind_stream(chunks(clip.frames, 4), chunks(processed[:10], 4), [].append, estimator,
                              WindowedSettings(TINY, 5, 2, 1))
    with pytest.raises(ValueError, match="at least 2 frames"):
        windowed_blind_stream([clip.frames[:1]], [processed[:1]], [].append, estimator, WindowedSettings(TINY))
    with pytest.raises(ValueError, match="resize"):
        windowed_blind_consistency(clip.frames, processed[..., :16], estimator, WindowedSettings(TINY))
    with pytest.raises(ValueError, match="overlap must be between"):
        WindowedSettings(TINY, 4, 4).check()


def test_windowed_beats_single_anchor_on_a_fast_pan(estimator):
    """The camera moves ~58 px (more than the frame width) between the middle and the ends: single-anchor
    pairs at the ends see nothing of the anchor, so their photometric term vanishes."""
    clip = render_clip(32, 24, 40, motion=6.0, num_layers=1, rotation=False, zoom=False, seed=2)
    clean = (clip.frames * torch.tensor([1.1, 0.95, 0.8]).view(1, 3, 1, 1)).clamp(0, 1)
    processed = flicker(clean)
    settings = BlindSettings(epochs=8, width=8, levels=2)
    single = blind_consistency(clip.frames, processed, estimator, settings).frames
    windowed = windowed_blind_consistency(clip.frames, processed, estimator,
                                          WindowedSettings(settings, 10, 3, 8)).frames

    def e_warp(video):
        return float(warping_error(video, clip.flow_forward, clip.flow_backward)[1])

    # measured: windowed / single 0.83 with the built-in medium flow (0.71 with 3 finest patch iterations)
    assert e_warp(windowed) < 0.87 * e_warp(single) < 0.1 * e_warp(processed)
    assert float(psnr(windowed, clean).mean()) > float(psnr(single, clean).mean()) - 1.5


# ------------------------------------------------------------------ streaming wrapper
def test_stream_wrapper_equals_whole_clip_with_full_lookahead(estimator):
    clip = render_clip(11, 16, 24, motion=2.0, seed=3)
    upscaler = flickering_upscaler(2)
    reference = temporal_upscale(clip.frames, upscaler, 2, estimator, chunk=4)
    written = []
    count = temporal_upscale_stream(chunks(clip.frames, 3), written.append, upscaler, 2, estimator, chunk=4,
                                    lookahead=11)
    assert count == 11 and [c.shape[0] for c in written] == [4, 4, 3]
    assert torch.allclose(torch.cat(written), reference, atol=1e-6)
    short = []
    temporal_upscale_stream(chunks(clip.frames, 3), short.append, upscaler, 2, estimator, chunk=4, lookahead=2)
    difference = (torch.cat(short) - reference).abs()
    assert 0 < float(difference.mean()) < 0.01


def test_stream_wrapper_single_frame_and_errors(estimator):
    frame = torch.rand(1, 3, 8, 8)
    written = []
    temporal_upscale_stream([frame], written.append, flickering_upscaler(2), 2, estimator)
    assert written[0].shape == (1, 3, 16, 16)
    with pytest.raises(ValueError, match="lookahead"):
        temporal_upscale_stream([frame], written.append, flickering_upscaler(2), 2, estimator, lookahead=-1)
    with pytest.raises(ValueError, match="no frames"):
        temporal_upscale_stream([], written.append, flickering_upscaler(2), 2, estimator)


# ------------------------------------------------------------------ file nodes
@pytest.fixture()
def folders(tmp_path, monkeypatch):
    (tmp_path / "in").mkdir()
    (tmp_path / "out").mkdir()
    monkeypatch.setenv("TAME_INPUT_DIR", str(tmp_path / "in"))
    monkeypatch.setenv("TAME_OUTPUT_DIR", str(tmp_path / "out"))
    return tmp_path / "in", tmp_path / "out"


def read_png_folder(folder):
    import av
    frames = []
    for png in sorted(folder.glob("*.png")):
        with av.open(str(png)) as container:
            frames.append(next(container.decode(video=0)).to_ndarray(format="rgb24"))
    return torch.from_numpy(np.stack(frames)).float().div(255).permute(0, 3, 1, 2)


def test_blind_file_node_matches_in_memory_result(folders, pan):
    from tame.models.io.video import read_frames
    inputs, outputs = folders
    clip, processed = pan
    write_video(inputs / "orig.mp4", clip.frames.permute(0, 2, 3, 1), fps=12, quality=100)
    write_video(inputs / "proc.mp4", processed.permute(0, 2, 3, 1), fps=12, quality=100)
    node = TameBlindConsistencyVideoFile()
    result = node.process("orig.mp4", "proc.mp4", 6, 2, 1, 1, 1e-3, 0, "tame/c", "png", 0, 0, 85,
                          flow_model=FlowEstimator(ZeroFlow(), "zero"))
    path = result["result"][0]
    streamed = read_png_folder(outputs / "tame" / path.split("/")[-1])
    original, processed_read = (read_frames(inputs / name)[0].permute(0, 3, 1, 2) for name in ("orig.mp4", "proc.mp4"))
    from tame.nodes.edit_nodes import _distance
    settings = WindowedSettings(BlindSettings(epochs=1, lr=1e-3, seed=0), 6, 2, 1)
    expected = windowed_blind_consistency(original, processed_read, FlowEstimator(ZeroFlow(), "zero"),
                                          settings, _distance()).frames
    assert streamed.shape == expected.shape
    assert float((streamed - expected).abs().max()) <= 1 / 255 + 1e-4
    assert "3 windows" in result["result"][1]


def test_blind_file_node_refuses_mismatched_files(folders, pan):
    inputs, outputs = folders
    clip, processed = pan
    write_video(inputs / "orig.mp4", clip.frames.permute(0, 2, 3, 1), fps=12)
    write_video(inputs / "short.mp4", processed[:8].permute(0, 2, 3, 1), fps=12)
    small = torch.nn.functional.interpolate(processed, size=(16, 16))
    write_video(inputs / "small.mp4", small.permute(0, 2, 3, 1), fps=12)
    node = TameBlindConsistencyVideoFile()
    with pytest.raises(ValueError, match="set max_frames to 8"):
        node.process("orig.mp4", "short.mp4", 6, 2, 1, 1, 1e-3, 0, "tame/c", "mp4", 0, 0, 85)
    with pytest.raises(ValueError, match="must have the original's size"):
        node.process("orig.mp4", "small.mp4", 6, 2, 1, 1, 1e-3, 0, "tame/c", "mp4", 0, 0, 85)
    with pytest.raises(ValueError, match="at least 2 frames"):
        node.process("orig.mp4", "orig.mp4", 6, 2, 1, 1, 1e-3, 0, "tame/c", "mp4", 11, 0, 85)
    assert not any((outputs / "tame").glob("*")) if (outputs / "tame").exists() else True


def test_upscale_file_node_writes_the_whole_video_and_nothing_on_error(folders):
    from tame.models.io.video import probe
    inputs, outputs = folders
    clip = render_clip(9, 16, 24, motion=2.0, seed=1)
    write_video(inputs / "lr.mp4", clip.frames.permute(0, 2, 3, 1), fps=12)
    node = TameTemporalUpscaleVideoFile()
    path = node.upscale("lr.mp4", "bicubic", 2, 0.9, 0.0, 4, 3, "tame/up", "mp4", 0, 0, 85)["result"][0]
    info = probe(path)
    assert (info.frame_count, info.width, info.height) == (9, 48, 32)

    class Broken(torch.nn.Module):
        def forward(self, image1, image2):
            raise RuntimeError("flow failed")

    with pytest.raises(RuntimeError, match="flow failed"):
        node.upscale("lr.mp4", "bicubic", 2, 0.9, 0.0, 4, 3, "tame/up", "mp4", 0, 0, 85,
                     flow_model=FlowEstimator(Broken(), "broken"))
    assert sorted(p.name for p in (outputs / "tame").iterdir()) == ["up_00001.mp4"]


# ------------------------------------------------------------------ temporal filter
def test_chained_translations_add_up():
    shift = torch.zeros(1, 2, 8, 8)
    shift[:, 0] = 1.5
    assert torch.allclose(chain_flows([shift, shift, shift]), 3 * shift)
    centre = torch.zeros(1, 1, 2, 2)
    mean = weighted_temporal_mean(centre, [torch.ones_like(centre)], [torch.ones(1, 1, 2, 2)])
    assert torch.allclose(mean, torch.full_like(centre, 0.5))


def moving_square(frames=9, size=32, speed=2):
    """A bright square moving `speed` px/frame right over a static texture; exact flows and a flicker."""
    gen = torch.Generator().manual_seed(1)
    background = 0.3 + 0.2 * torch.rand(1, 3, size, size, generator=gen)
    video = background.repeat(frames, 1, 1, 1)
    forward = torch.zeros(frames - 1, 2, size, size)
    backward = torch.zeros_like(forward)
    for t in range(frames):
        x = 4 + speed * t
        video[t, :, 10:20, x:x + 8] = 0.9
        if t < frames - 1:
            forward[t, 0, 10:20, x:x + 8] = speed
            backward[t, 0, 10:20, x + speed:x + speed + 8] = -speed
    return video, (forward, backward)


def test_filter_does_not_ghost_and_reduces_flicker():
    clean, flows = moving_square()
    noisy = flicker(clean, 0.08)
    filtered = flow_temporal_filter(noisy, flows=flows, settings=FilterSettings(radius=2, tolerance=0.15))
    naive = torch.stack([noisy[max(0, t - 2):t + 3].mean(0) for t in range(noisy.shape[0])])
    error_filter = float((filtered - clean).abs().amax(1).flatten(1).amax(1).mean())
    error_naive = float((naive - clean).abs().amax(1).flatten(1).amax(1).mean())
    assert error_naive > 0.2 and error_filter < 0.5 * error_naive  # the naive mean leaves square ghosts
    e_noisy = float(warping_error(noisy, *flows)[1])
    assert float(warping_error(filtered, *flows)[1]) < 0.3 * e_noisy
    assert float(psnr(filtered, clean).mean()) > float(psnr(noisy, clean).mean()) + 3


def test_filter_node_with_estimated_flow(estimator):
    clip = render_clip(10, 32, 48, motion=3.0, seed=3)
    noisy = flicker(clip.frames, 0.1)
    (out,) = TameFlowTemporalFilter().filter(noisy.permute(0, 2, 3, 1), 2, 0.1, 1.0)
    out = out.permute(0, 3, 1, 2)
    assert out.shape == noisy.shape
    assert float(warping_error(out, clip.flow_forward, clip.flow_backward)[1]) < \
        0.3 * float(warping_error(noisy, clip.flow_forward, clip.flow_backward)[1])
    single = TameFlowTemporalFilter().filter(noisy[:1].permute(0, 2, 3, 1), 2, 0.1, 1.0)[0]
    assert torch.allclose(single, noisy[:1].permute(0, 2, 3, 1))


def test_blind_node_windowed_mode(pan):
    from tame.nodes.edit_nodes import TameBlindConsistency
    clip, processed = pan
    images, report = TameBlindConsistency().process(clip.frames.permute(0, 2, 3, 1), processed.permute(0, 2, 3, 1),
                                                    1, 1e-3, 0, FlowEstimator(ZeroFlow(), "zero"), window_frames=6,
                                                    overlap_frames=2)
    assert images.shape == (12, 24, 32, 3) and "3 windows" in report
