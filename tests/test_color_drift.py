"""Colour change over time vs frame separation (seed 003 eq. 2.1), real vs generated."""
import pytest
import torch

from tame.kernels.metrics import color_similarity_curve
from tame.models.metrics.color_drift import color_drift, compare_color_drift
from tame.nodes.longvideo_nodes import TameColorDriftCompare


def red_ramp(frames, bins=20):
    """Frame t: ten columns with red at the centres of bins t..t+9 (green, blue constant) -> `[T,3,4,10]`.

    Frames d apart share 10 - d of their 10 equally filled bins, so S(d) = (10 - d) / 10 exactly.
    """
    red = (torch.arange(10.0)[None] + torch.arange(frames)[:, None] + 0.5) / bins  # [T,10]
    video = torch.full((frames, 3, 4, 10), 0.5 / bins)
    video[:, 0] = red[:, None, :]
    return video


def test_steady_colour_ramp_has_closed_form_similarity():
    mean, std = color_drift(red_ramp(11), max_separation=10)
    assert torch.allclose(mean, (10 - torch.arange(11.0, dtype=torch.float64)) / 10, atol=1e-6)
    assert float(std.abs().max()) < 1e-6
    assert bool((mean[1:] < mean[:-1]).all())  # decreasing with separation


def test_separation_one_of_a_two_frame_video_is_the_existing_curve():
    video = torch.rand(2, 3, 16, 16)
    mean, std = color_drift(video)
    assert mean.shape == (2,) and float(std[1]) == 0.0
    assert float(mean[1]) == pytest.approx(float(color_similarity_curve(video)[1]), abs=1e-6)


def test_identical_videos_give_identical_curves():
    video = torch.rand(12, 3, 8, 8)
    result = compare_color_drift(video, video.clone(), max_separation=6)
    assert torch.equal(result["real_mean"], result["generated_mean"])
    assert torch.equal(result["real_std"], result["generated_std"])
    assert result["gap"] == 0.0 and result["real_mean"].numel() == 7


def test_gap_of_a_static_video_against_the_ramp():
    static = red_ramp(1).repeat(11, 1, 1, 1)
    result = compare_color_drift(static, red_ramp(11), max_separation=4)
    expected = sum(d / 10 for d in range(1, 5)) / 4  # S_static = 1, S_ramp = 1 - d/10
    assert result["gap"] == pytest.approx(expected, abs=1e-6)


def test_node_outputs_plot_report_and_gap():
    plot, report, gap = TameColorDriftCompare().compare(
        red_ramp(11).permute(0, 2, 3, 1), red_ramp(6).permute(0, 2, 3, 1), 128, 20)["result"]
    assert plot.shape == (1, 320, 640, 3) and 0.0 <= float(plot.min()) and float(plot.max()) <= 1.0
    assert gap == pytest.approx(0.0, abs=1e-6)  # same ramp speed, different lengths
    assert "d=8: real 0.2000 +- 0.0000 | generated n/a" in report


def test_too_short_videos_raise():
    with pytest.raises(ValueError, match="needs at least 2"):
        TameColorDriftCompare().compare(torch.rand(1, 8, 8, 3), torch.rand(3, 8, 8, 3), 8, 20)
