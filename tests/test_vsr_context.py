"""Sliding-window temporal context of the VSR network (models/vsr/context.py)."""
from pathlib import Path

import pytest
import torch

from tame.models.io.weights import load_state_dict, read_safetensors_metadata
from tame.models.vsr import load_vsr_weights, upscale_video
from tame.models.vsr.context import upscale_video_windowed
from tame.nodes.flow_nodes import builtin_estimator

WEIGHTS = Path(__file__).resolve().parents[1] / "models" / "weights" / "tame_vsr_x4.safetensors"


@pytest.fixture(scope="module")
def net():
    return load_vsr_weights(load_state_dict(WEIGHTS), read_safetensors_metadata(WEIGHTS)).eval()


@pytest.fixture(scope="module")
def frames():
    return torch.rand(9, 3, 12, 12, generator=torch.Generator().manual_seed(0))


def test_a_window_covering_the_clip_is_the_whole_clip_result(net, frames):
    estimator = builtin_estimator()
    expected = upscale_video(net, frames, estimator, chunk_frames=9)
    assert torch.allclose(upscale_video_windowed(net, frames, estimator, radius=9, chunk_frames=9), expected,
                          atol=1e-6)


def test_frames_outside_the_window_do_not_matter(net, frames):
    """radius 2, per frame: frame 5 sees frames 3..7, so changing frame 8 leaves frames 0..5 unchanged,
    while whole-clip propagation carries the change back to them."""
    estimator = builtin_estimator()
    changed = frames.clone()
    changed[8] = 1 - changed[8]
    windowed = [upscale_video_windowed(net, clip, estimator, radius=2, chunk_frames=1) for clip in (frames, changed)]
    assert torch.equal(windowed[0][:6], windowed[1][:6])
    assert not torch.equal(windowed[0][7], windowed[1][7])
    whole = [upscale_video(net, clip, estimator) for clip in (frames, changed)]
    assert not torch.equal(whole[0][5], whole[1][5])


def test_radius_must_be_a_whole_number(net, frames):
    with pytest.raises(ValueError, match="radius"):
        upscale_video_windowed(net, frames, builtin_estimator(), radius=-1)
