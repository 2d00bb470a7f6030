"""Flow nodes: behaviour on synthetic motion, file round trips, and bad-input errors."""
import pytest
import torch

from tame.models.data.scenes import render_clip
from tame.models.flow.field import FlowSet
from tame.models.io.flow_files import read_flo, write_flo
from tame.nodes.flow_nodes import (
    DIRECTIONS,
    TameEstimateFlow,
    TameFlowConsistency,
    TameFlowConvert,
    TameLoadFlow,
    TameSaveFlow,
    TameVisualizeFlow,
    TameWarp,
)
from tame.nodes.metrics_nodes import TameTemporalMetrics


@pytest.fixture(scope="module")
def clip():
    return render_clip(3, 64, 80, motion=3.0, num_layers=1, seed=4)


@pytest.fixture(scope="module")
def video(clip):
    return clip.frames.permute(0, 2, 3, 1).contiguous()


@pytest.fixture(scope="module")
def truth(clip):
    return FlowSet(clip.flow_forward, clip.flow_backward)


@pytest.fixture
def folders(tmp_path, monkeypatch):
    monkeypatch.setenv("TAME_OUTPUT_DIR", str(tmp_path / "out"))
    monkeypatch.setenv("TAME_INPUT_DIR", str(tmp_path / "in"))
    return tmp_path


def test_warp_with_exact_flow_aligns_frames(clip, video, truth):
    warped, _, _, valid = TameWarp().warp(truth, DIRECTIONS[0], "border", image=video)
    visible = (clip.occlusion_forward[:, 0] < 0.5) & (valid > 0.5)
    error = (warped - video[:2]).abs().mean(-1)
    assert error[visible].mean() < 0.02
    assert error[visible].mean() < 0.5 * (video[1:] - video[:2]).abs().mean(-1)[visible].mean()


def test_estimate_flow_pairs_and_masks(video, clip):
    flow = TameEstimateFlow().estimate(video, "to anchor", 1, True, 0)[0]
    assert flow.pairs == [(0, 1), (1, 1), (2, 1)] and torch.all(flow.forward[1] == 0)
    consecutive = TameEstimateFlow().estimate(video, "consecutive", 0, True, 0)[0]
    visibility, occlusion = TameFlowConsistency().masks(consecutive, 10.0, 0.01, 0.5, 0)
    assert visibility.shape == occlusion.shape == (2, 64, 80)
    truth_occluded = clip.occlusion_forward[:, 0] > 0.5
    assert occlusion[truth_occluded].mean() > occlusion[~truth_occluded].mean()


def test_visualize_convert_and_file_round_trips(truth, folders):
    colours = TameVisualizeFlow().visualize(truth, "forward", 0.0)[0]
    assert colours.shape == (2, 64, 80, 3)
    tame_flow, optical = TameFlowConvert().convert(flow=truth)
    assert optical.shape == (2, 64, 80, 2) and torch.equal(optical[..., 0], truth.forward[:, 0])
    back = TameFlowConvert().convert(optical_flow=optical)[0]
    assert torch.equal(back.forward, truth.forward)
    path = TameSaveFlow().save(truth, "tame/flow", "safetensors")["result"][0]
    loaded = TameLoadFlow().load(path)[0]
    assert torch.equal(loaded.forward, truth.forward) and torch.equal(loaded.backward, truth.backward)
    folder = TameSaveFlow().save(truth, "tame/flo", "flo")["result"][0]
    from_flo = TameLoadFlow().load(folder)[0]
    assert torch.equal(from_flo.forward, truth.forward) and torch.equal(from_flo.backward, truth.backward)


def test_flo_matches_the_middlebury_layout(tmp_path):
    field = torch.arange(2 * 3 * 4, dtype=torch.float32).view(2, 3, 4)
    path = write_flo(tmp_path / "a.flo", field)
    raw = path.read_bytes()
    assert raw[:4] == b"PIEH" and len(raw) == 12 + 3 * 4 * 8
    assert torch.equal(read_flo(path), field)


def test_metrics_report_with_reference(video):
    report, plot, xt = TameTemporalMetrics().measure(video, reference=video)["result"]
    assert "E_warp" in report and "PSNR" in report and plot.shape[-1] == 3 and xt.shape[1:3] == (3, 80)


def test_bad_inputs_give_clear_errors(video, truth, folders):
    with pytest.raises(ValueError, match="at least 2"):
        TameEstimateFlow().estimate(video[:1], "consecutive", 0, True, 0)
    with pytest.raises(ValueError, match="flow was estimated at 80x64"):
        TameWarp().warp(truth, DIRECTIONS[0], "border", image=video[:, :32])
    with pytest.raises(ValueError, match="belongs to a video of 3 frames"):
        TameWarp().warp(truth, DIRECTIONS[0], "border", image=torch.cat([video, video]))
    nan_video = video.clone()
    nan_video[0, 0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match="NaN or Inf"):
        TameEstimateFlow().estimate(nan_video, "consecutive", 0, True, 0)
    with pytest.raises(ValueError, match="empty"):
        TameEstimateFlow().estimate(video[:, :0], "consecutive", 0, True, 0)
    with pytest.raises(ValueError, match="NaN or Inf"):
        TameSaveFlow().save(FlowSet(torch.full((1, 2, 4, 4), float("nan"))), "tame/f", "safetensors")
    wrong = folders / "wrong.safetensors"
    wrong.write_bytes(b"not a flow file")
    with pytest.raises(ValueError, match="not a readable safetensors file"):
        TameLoadFlow().load(str(wrong))
    short = folders / "short.flo"
    short.write_bytes(b"PIEH")
    with pytest.raises(ValueError, match="truncated"):
        TameLoadFlow().load(str(short))
    with pytest.raises(FileNotFoundError, match="does not exist"):
        TameLoadFlow().load("missing.safetensors")
