"""The shipped autoencoder weights and the training recipe that made them (models/edit/train_autoencoder.py).

Reconstruction bounds: PSNR measured on the shipped file (see the numbers next to each bound) minus
a margin of about 1.5 dB, so retraining with the recipe passes but a broken or untrained file fails
(an untrained autoencoder scores about 10 dB).
"""
import pytest
import torch

from tame.headless import cli
from tame.kernels.metrics import psnr
from tame.models.data.scenes import render_clip
from tame.models.data.textures import procedural_texture
from tame.models.edit.autoencoder import SHIPPED_WEIGHTS, TameAutoencoder, load_autoencoder
from tame.models.edit.train_autoencoder import reconstruction_psnr, save_autoencoder, train_autoencoder
from tame.models.io.images import load_image_folder
from tame.models.io.video import write_video

MAX_BYTES = 10 * 1024 * 1024
TEXTURE_PSNR_BOUND = 27.2  # measured: 28.73 dB
SYNTHETIC_FRAME_PSNR_BOUND = 24.0  # measured: 25.53 dB (the worse frame)
PHOTO_PSNR_BOUND = 26.5  # measured: 27.84 dB, astronaut (held out from training)


@pytest.fixture(scope="module")
def shipped():
    return load_autoencoder()


def test_the_shipped_file_loads_and_is_small(shipped):
    assert SHIPPED_WEIGHTS.stat().st_size <= MAX_BYTES
    assert isinstance(shipped, TameAutoencoder) and not shipped.training
    assert (shipped.latent_channels, shipped.channels, shipped.downscale) == (4, (32, 64), 4)
    codes = shipped.encode(torch.rand(1, 3, 32, 48))
    assert codes.shape == (1, 4, 8, 12)


def test_it_reconstructs_a_procedural_texture(shipped):
    texture = procedural_texture(96, 128, seed=123)
    assert reconstruction_psnr(shipped, texture) > TEXTURE_PSNR_BOUND


def test_it_reconstructs_synthetic_frames(shipped):
    frames = render_clip(2, 96, 96, motion=2.0, num_layers=2, seed=7).frames
    with torch.no_grad():
        assert float(psnr(shipped(frames), frames).min()) > SYNTHETIC_FRAME_PSNR_BOUND


def test_it_reconstructs_a_held_out_photo(shipped):
    data = pytest.importorskip("skimage.data")
    astronaut = torch.from_numpy(data.astronaut()[96:352, 128:384]).permute(2, 0, 1).float() / 255.0
    assert reconstruction_psnr(shipped, astronaut) > PHOTO_PSNR_BOUND


def tiny_images():
    return [procedural_texture(24, 40, seed=1), procedural_texture(40, 24, seed=2)]


def test_three_training_steps_are_deterministic_for_a_seed():
    calls = []
    first = train_autoencoder(tiny_images(), steps=3, crop=16, batch=2, seed=4,
                              progress=lambda done, total: calls.append((done, total)),
                              latent_channels=2, channels=(4, 8))
    second = train_autoencoder(tiny_images(), steps=3, crop=16, batch=2, seed=4, latent_channels=2, channels=(4, 8))
    other = train_autoencoder(tiny_images(), steps=3, crop=16, batch=2, seed=5, latent_channels=2, channels=(4, 8))
    untrained = train_autoencoder(tiny_images(), steps=0, crop=16, batch=2, seed=4, latent_channels=2, channels=(4, 8))
    assert calls == [(1, 3), (2, 3), (3, 3)]
    state, again = first.state_dict(), second.state_dict()
    assert all(torch.equal(state[k], again[k]) for k in state)
    assert any(not torch.equal(state[k], other.state_dict()[k]) for k in state)
    assert any(not torch.equal(state[k], untrained.state_dict()[k]) for k in state)  # the steps changed it


def test_training_rejects_bad_settings_with_clear_messages(tmp_path):
    with pytest.raises(ValueError, match="multiple of"):
        train_autoencoder(tiny_images(), steps=1, crop=18)
    with pytest.raises(ValueError, match="must be \\[3,h,w\\]"):
        train_autoencoder([torch.rand(24, 24)], steps=1, crop=16)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        train_autoencoder(tmp_path / "missing", steps=1, crop=16)
    with pytest.raises(FileNotFoundError, match="no image files"):
        train_autoencoder(tmp_path, steps=1, crop=16)


def test_cli_trains_from_a_folder_and_writes_loadable_weights(tmp_path, capsys):
    images = torch.stack(tiny_images()[:1] * 2).permute(0, 2, 3, 1)  # [2,24,40,3]
    write_video(tmp_path / "photos", images, fps=1, format="png")
    loaded = load_image_folder(tmp_path / "photos")
    assert len(loaded) == 2 and (loaded[0] - images[0].permute(2, 0, 1)).abs().max() <= 0.5 / 255 + 1e-6
    out = tmp_path / "ae.safetensors"
    code = cli.main(["train-autoencoder", "--images", str(tmp_path / "photos"), "--steps", "2", "--crop", "16",
                     "--batch", "1", "--out", str(out)])
    assert code == 0 and "wrote" in capsys.readouterr().out
    assert load_autoencoder(out).channels == (32, 64)
    with pytest.raises(ValueError, match=".safetensors"):
        save_autoencoder(TameAutoencoder(2, (4,)), tmp_path / "ae.pt")
