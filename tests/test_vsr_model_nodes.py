"""The VSR network nodes: loading (shipped file missing, user weights), IMAGE upscaling and streaming a
video file, with their input errors. A tiny network and 24x32 frames keep it fast."""
import cv2
import pytest
import torch
from torch import nn

from tame.models.flow.estimate import FlowEstimator
from tame.models.io import video as video_file
from tame.models.vsr import TameVSRNet, save_vsr_weights, upscale_video
from tame.nodes import vsr_nodes as nodes


class ZeroFlow(nn.Module):
    def forward(self, image1, image2):
        return image1.new_zeros(image1.shape[0], 2, *image1.shape[-2:])


def flow_model():
    return FlowEstimator(ZeroFlow(), "zero", "cpu")


@pytest.fixture
def model_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("TAME_MODELS_DIR", str(tmp_path / "models"))
    monkeypatch.setenv("TAME_OUTPUT_DIR", str(tmp_path / "output"))
    monkeypatch.setenv("TAME_INPUT_DIR", str(tmp_path / "input"))
    folder = tmp_path / "models" / "vsr"
    folder.mkdir(parents=True)
    torch.manual_seed(0)
    net = TameVSRNet(scale=2, channels=8, num_blocks=1, unet_multipliers=(1, 1, 2), head_channels=8)
    with torch.no_grad():
        for parameter in net.parameters():
            parameter.add_(0.05 * torch.randn_like(parameter))
    save_vsr_weights(net, folder / "tiny_x2.safetensors")
    return folder


def frames(count=3):
    ramp = torch.linspace(0, 1, 32).view(1, 1, 32, 1).expand(count, 24, 32, 3)
    return (ramp + 0.1 * torch.arange(count).view(-1, 1, 1, 1)).clamp(0, 1).contiguous()


def test_load_lists_user_weights_and_names_a_missing_shipped_file(model_folder, monkeypatch):
    choices = nodes.TameLoadVSRModel.INPUT_TYPES()["required"]["model"][0]
    assert choices == [nodes.SHIPPED, nodes.SHIPPED_CLEAN, nodes.SHIPPED_SMALL, "tiny_x2.safetensors"]
    model = nodes.TameLoadVSRModel().load("tiny_x2.safetensors")[0]
    assert model.scale == 2 and model.name == "tiny_x2.safetensors"
    for choice, file in nodes.SHIPPED_FILES.items():
        shipped = nodes.TameLoadVSRModel().load(choice)[0]
        assert shipped.scale == 4 and shipped.name == file
    monkeypatch.setattr(nodes, "WEIGHTS_FOLDER", model_folder / "absent")
    with pytest.raises(FileNotFoundError, match="tame_vsr_x4_small.safetensors.*absent"):
        nodes.TameLoadVSRModel().load(nodes.SHIPPED_SMALL)


def test_video_upscale_node(model_folder):
    model = nodes.TameLoadVSRModel().load("tiny_x2.safetensors")[0]
    node = nodes.TameVideoUpscale()
    images = frames()
    settings = dict(vsr_model=model, chunk_frames=2, tile_size=0, seed=0, flow_model=flow_model())
    (upscaled,) = node.upscale(images, scale="2", **settings)
    assert upscaled.shape == (3, 48, 64, 3) and 0 <= upscaled.min() and upscaled.max() <= 1
    expected = upscale_video(model.net, images.permute(0, 3, 1, 2), flow_model(), chunk_frames=2)
    assert torch.allclose(upscaled, expected.permute(0, 2, 3, 1), atol=1e-6)
    with pytest.raises(ValueError, match="These weights are 2x; choose scale 2 or load 4x weights"):
        node.upscale(images, scale="4", **settings)
    with pytest.raises(ValueError, match="at least 2"):
        node.upscale(images[:1], scale="2", **settings)
    with pytest.raises(ValueError, match="RGB"):
        node.upscale(torch.rand(3, 24, 32, 4), scale="2", **settings)


def test_upscale_video_file_streams_into_the_output_folder(model_folder, tmp_path):
    model = nodes.TameLoadVSRModel().load("tiny_x2.safetensors")[0]
    source = tmp_path / "clip.mp4"
    video_file.write_video(source, frames(5), fps=12, format="mp4", quality=100)
    node = nodes.TameUpscaleVideoFile()
    # frames 1..3 of the file, chunks of 2 frames, look-ahead 1: each chunk's window reaches the end
    settings = dict(vsr_model=model, chunk_frames=2, tile_size=0, seed=0, lookahead_frames=1, quality=85,
                    flow_model=flow_model())
    result = node.upscale(str(source), "vsr/test", "png", scale="2", start_frame=1, max_frames=3, **settings)
    folder = tmp_path / "output" / "vsr" / "test_00001"
    assert result["result"] == (str(folder),)
    pngs = sorted(folder.glob("*.png"))
    written = torch.stack([torch.from_numpy(cv2.imread(str(png))[..., ::-1].copy()) for png in pngs])
    decoded, _ = video_file.read_frames(source, start=1, count=3)
    expected = upscale_video(model.net, decoded.permute(0, 3, 1, 2), flow_model(), chunk_frames=2)
    expected = (expected.permute(0, 2, 3, 1) * 255).round()
    assert written.shape == (3, 48, 64, 3)
    assert (written.float() - expected).abs().max() <= 1
    with pytest.raises(ValueError, match="These weights are 2x"):
        node.upscale(str(source), "vsr/test", "png", scale="8", start_frame=1, max_frames=3, **settings)
    with pytest.raises(ValueError, match="at least 2 frames"):
        node.upscale(str(source), "vsr/one", "mp4", scale="2", start_frame=4, max_frames=0, **settings)
    assert not list((tmp_path / "output" / "vsr").glob("one*"))  # nothing half-written is left
