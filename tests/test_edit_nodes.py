"""Edit-consistency nodes called directly on tiny inputs: generator loading (built-in file, ComfyUI VAE),
encode/decode, the jittered edit, both phases, blind mode, paste-back geometry and the error texts."""
import pytest
import torch
from safetensors.torch import save_file
from torch import nn

from tame.models.data.scenes import render_clip
from tame.models.edit.autoencoder import TameAutoencoder
from tame.models.edit.generator import AutoencoderGenerator
from tame.models.edit.lpips import LPIPS
from tame.nodes import edit_nodes
from tame.nodes.edit_nodes import (
    TameBlindConsistency,
    TameDecodeFrames,
    TameEncodeFrames,
    TameGeneratorFinetune,
    TameJitteredLatentEdit,
    TameLatentMLPRefine,
    TameLoadGenerator,
    TamePasteBack,
)

SIZE = 32
COUNT = 4


pytestmark = pytest.mark.usefixtures("cpu_without_model_files")


@pytest.fixture(scope="module")
def generator():
    """The shipped autoencoder when present, else a small randomly initialised one."""
    if edit_nodes.SHIPPED_AUTOENCODER.is_file():
        return TameLoadGenerator().load("built-in autoencoder")[0]
    torch.manual_seed(0)
    return AutoencoderGenerator(TameAutoencoder(4, (8, 16)).eval().requires_grad_(False))


@pytest.fixture(scope="module")
def video():
    """IMAGE `[T,H,W,3]` of a small synthetic clip."""
    return render_clip(COUNT, SIZE, SIZE, motion=1.5, num_layers=1, seed=4).frames.permute(0, 2, 3, 1).contiguous()


def encode(video, generator):
    return TameEncodeFrames().encode(video, generator)[0]


def jittered(video, generator, latent, **changes):
    arguments = dict(edit="warm colour", strength=1.0, strength_jitter=0.5, noise=0.1, seed=0,
                     red=0.0, green=0.0, blue=0.0)
    arguments.update(changes)
    return TameJitteredLatentEdit().edit(latent, generator, video, **arguments)[0]


def refine(generator, latent, original=None, mode="in-domain", epochs=1):
    return TameLatentMLPRefine().refine(generator, latent, mode, "fast", epochs, 0.0, 0.0, -1, 0,
                                        original=original)


def finetune(generator, latent, original=None, mode="in-domain", epochs=1):
    return TameGeneratorFinetune().finetune(generator, latent, mode, "fast", epochs, 0.0, -1, 0,
                                            original=original)


def weights(module):
    return {key: value.clone() for key, value in module.state_dict().items()}


# ------------------------------------------------------------------------------------- loading
def test_built_in_generator_loads_the_shipped_file_or_names_it(tmp_path, monkeypatch):
    missing = tmp_path / "weights" / "tame_autoencoder.safetensors"
    monkeypatch.setattr(edit_nodes, "SHIPPED_AUTOENCODER", missing)
    with pytest.raises(FileNotFoundError, match=r"tame_autoencoder\.safetensors' are missing from .*weights"):
        TameLoadGenerator().load("built-in autoencoder")
    model = TameAutoencoder(4, (8, 16)).eval()
    missing.parent.mkdir()
    save_file(model.state_dict(), str(missing))
    loaded = TameLoadGenerator().load("built-in autoencoder")[0]
    codes = torch.randn(2, 4, 3, 5)
    assert loaded.downscale == 4 and loaded.latent_channels == 4
    assert torch.equal(loaded.decode(codes), model.decode(codes))


class _FakeFirstStage(nn.Module):
    def __init__(self):
        super().__init__()
        self.decoder = nn.Sequential(nn.Conv2d(4, 8, 3, padding=1), nn.Upsample(scale_factor=8),
                                     nn.Conv2d(8, 3, 3, padding=1))

    def decode(self, z):
        return self.decoder(z)


class _FakeVAE:
    """What the nodes use of comfy.sd.VAE: first_stage_model, process_output, encode(pixels [B,H,W,3])."""
    latent_channels, downscale_ratio, upscale_ratio, latent_dim = 4, 8, 8, 2

    def __init__(self):
        torch.manual_seed(1)
        self.first_stage_model = _FakeFirstStage().eval()
        self.process_output = lambda image: ((image + 1.0) / 2.0).clamp(0.0, 1.0)
        self.encoded = []

    def encode(self, pixels):
        self.encoded.append(tuple(pixels.shape))
        return nn.functional.avg_pool2d(pixels.movedim(-1, 1), 8).repeat(1, 2, 1, 1)[:, :4]


def test_comfy_vae_generator_encodes_with_the_vae_and_needs_a_vae(video):
    with pytest.raises(ValueError, match="no VAE is connected"):
        TameLoadGenerator().load("ComfyUI VAE")
    vae = _FakeVAE()
    generator = TameLoadGenerator().load("ComfyUI VAE", vae=vae)[0]
    latent = encode(video, generator)
    assert vae.encoded == [(COUNT, SIZE, SIZE, 3)]  # the VAE's own encode, ComfyUI's IMAGE layout
    assert latent["samples"].shape == (COUNT, 4, SIZE // 8, SIZE // 8)
    expected = vae.process_output(vae.first_stage_model.decode(latent["samples"])).permute(0, 2, 3, 1)
    assert torch.allclose(TameDecodeFrames().decode(latent, generator)[0], expected, atol=1e-6)


# ------------------------------------------------------------------------------------- encode / edit
def test_encode_crops_like_vae_encode_and_decode_inverts_the_layout(generator):
    images = torch.rand(3, SIZE + 2, SIZE + 3, 3)
    latent = encode(images, generator)
    scale = generator.downscale
    height, width = (SIZE + 2) // scale * scale, (SIZE + 3) // scale * scale
    top, left = ((SIZE + 2) % scale) // 2, ((SIZE + 3) % scale) // 2
    cropped = images[:, top:top + height, left:left + width].permute(0, 3, 1, 2)
    assert torch.equal(latent["samples"], generator.encode(cropped))
    decoded = TameDecodeFrames().decode(latent, generator)[0]
    assert decoded.shape == (3, height, width, 3)
    assert torch.allclose(decoded, generator.decode(latent["samples"]).permute(0, 2, 3, 1))


def test_jittered_edit_adds_the_encoded_edit_with_per_frame_strength(video, generator):
    latent = encode(video, generator)
    frames = video.permute(0, 3, 1, 2)
    offset = torch.tensor([0.2, -0.1, 0.05]).view(1, 3, 1, 1)
    direction = generator.encode((frames + offset).clamp(0, 1)) - generator.encode(frames)
    steady = jittered(video, generator, latent, edit="custom rgb", red=0.2, green=-0.1, blue=0.05,
                      strength_jitter=0.0, noise=0.0)
    assert torch.allclose(steady["samples"], latent["samples"] + direction, atol=1e-5)
    varied = jittered(video, generator, latent, edit="custom rgb", red=0.2, green=-0.1, blue=0.05,
                      strength_jitter=0.5, noise=0.0)
    strengths = ((varied["samples"] - latent["samples"]) * direction).flatten(1).sum(1) / \
        direction.square().flatten(1).sum(1)
    assert ((strengths > 0.5 - 1e-4) & (strengths < 1.5 + 1e-4)).all() and strengths.std() > 0.05
    gray = jittered(video, generator, latent, edit="desaturate", strength_jitter=0.0, noise=0.0)
    luma = 0.299 * frames[:, :1] + 0.587 * frames[:, 1:2] + 0.114 * frames[:, 2:]  # Rec. 601
    gray_direction = generator.encode(luma.expand_as(frames)) - generator.encode(frames)
    assert torch.allclose(gray["samples"], latent["samples"] + gray_direction, atol=1e-5)


# ------------------------------------------------------------------------------------- the two phases
def test_phases_chain_under_inference_mode_and_leave_the_input_generator_alone(video, generator):
    before = weights(generator.decoder)
    with torch.inference_mode():  # how ComfyUI runs nodes
        latent = encode(video, generator)
        edited = jittered(video, generator, latent)
        refined, report1 = refine(generator, edited, original=video, epochs=2)
        tuned, report2 = finetune(generator, refined, original=video, epochs=1)
        frames = TameDecodeFrames().decode(refined, tuned)[0]
    assert refined["samples"].shape == edited["samples"].shape
    assert not torch.equal(refined["samples"], edited["samples"])
    assert f"{2 * (COUNT - 1)} iterations" in report1 and f"{COUNT - 1} iterations" in report2
    assert "Charbonnier" in report1  # no LPIPS files: the weight-free distance, and the report says so
    assert frames.shape == video.shape and torch.isfinite(frames).all()
    assert tuned is not generator
    assert any(not torch.equal(before[k], v) for k, v in tuned.decoder.state_dict().items())
    assert all(torch.equal(before[k], v) for k, v in generator.decoder.state_dict().items())


def test_out_of_domain_needs_no_original_and_lpips_files_are_used(video, generator, tmp_path):
    lpips_folder = tmp_path / "models" / "lpips"
    lpips_folder.mkdir(parents=True)
    torch.manual_seed(0)
    save_file({k: v.contiguous() for k, v in LPIPS().state_dict().items()}, str(lpips_folder / "lpips.safetensors"))
    latent = encode(video, generator)
    refined, report = refine(generator, jittered(video, generator, latent), mode="out-of-domain")
    assert "LPIPS" in report
    assert refined["samples"].shape == latent["samples"].shape


def test_blind_consistency_node_returns_the_video_size(video):
    processed = (video * torch.tensor([1.0, 0.8, 0.6]) + 0.05 * torch.rand(COUNT, 1, 1, 3)).clamp(0, 1)
    images, report = TameBlindConsistency().process(video, processed, epochs=2, lr=1e-3, seed=0)
    assert images.shape == video.shape and images.min() >= 0 and images.max() <= 1
    assert f"{2 * (COUNT - 1)} iterations" in report


# ------------------------------------------------------------------------------------- errors
def test_bad_inputs_give_clear_errors(video, generator):
    latent = encode(video, generator)
    with pytest.raises(ValueError, match="has 3 frames but the latent has 4; the latent and frame counts must"):
        jittered(video[:3], generator, latent)
    with pytest.raises(ValueError, match="has 3 frames but the latent has 4"):
        refine(generator, latent, original=video[:3])
    with pytest.raises(ValueError, match="at least 2 frames, got 1 latent"):
        refine(generator, {"samples": latent["samples"][:1]}, mode="out-of-domain")
    with pytest.raises(ValueError, match="16 channels .* made by another VAE"):
        refine(generator, {"samples": torch.zeros(COUNT, 16, 8, 8)}, mode="out-of-domain")
    with pytest.raises(ValueError, match="16 channels"):
        TameDecodeFrames().decode({"samples": torch.zeros(COUNT, 16, 8, 8)}, generator)
    larger = torch.nn.functional.interpolate(video.permute(0, 3, 1, 2), scale_factor=1.5).permute(0, 2, 3, 1)
    with pytest.raises(ValueError, match=r"original frames are 48x48 but the latents decode to 32x32"):
        finetune(generator, latent, original=larger)
    with pytest.raises(ValueError, match="in-domain mode needs the original IMAGE"):
        refine(generator, latent)
    with pytest.raises(ValueError, match="same frame count and size"):
        TameBlindConsistency().process(video, larger, epochs=1, lr=1e-3, seed=0)
    with pytest.raises(ValueError, match="NaN or Inf"):
        refine(generator, {"samples": latent["samples"] * float("nan")}, original=video)
    with pytest.raises(ValueError, match="must be a LATENT"):
        TameDecodeFrames().decode(latent["samples"], generator)
    with pytest.raises(ValueError, match="must be a TAME_GENERATOR"):
        TameDecodeFrames().decode(latent, object())


# ------------------------------------------------------------------------------------- paste back
def test_paste_back_box_mask_and_feather_geometry():
    frames, crops = torch.zeros(2, 20, 20, 3), torch.ones(2, 5, 10, 3)
    pasted = TamePasteBack().paste(frames, crops, x=3, y=4, width=0, height=0, feather=0)[0]
    expected = torch.zeros(20, 20)
    expected[4:9, 3:13] = 1.0  # width/height 0: the crop's own size at (x, y)
    assert torch.equal(pasted[..., 0], expected.expand(2, -1, -1))
    feathered = TamePasteBack().paste(frames, crops, x=5, y=5, width=10, height=10, feather=4)[0][0, :, :, 0]
    assert feathered[5, 5] == pytest.approx(0.5 / 4) and feathered[5, 10] == pytest.approx(0.5 / 4)
    assert feathered[7, 8] == pytest.approx(2.5 / 4) and feathered[10, 10] == 1.0
    assert feathered[4].abs().sum() == 0 and feathered[:, 15:].abs().sum() == 0
    mask = torch.zeros(2, 20, 20)
    mask[0, 2:6, 10:18] = 1.0
    mask[1, 12:20, 0:4] = 0.8
    from_mask = TamePasteBack().paste(frames, crops, x=0, y=0, width=1, height=1, feather=0, mask=mask)[0]
    assert torch.allclose(from_mask[..., 1], (mask > 0.5).float(), atol=1e-6)
    one_frame = TamePasteBack().paste(frames[:1], crops, x=3, y=4, width=0, height=0, feather=0)[0]
    assert torch.equal(one_frame, pasted)
    with pytest.raises(ValueError, match="frames has 3 images and crops 2"):
        TamePasteBack().paste(torch.zeros(3, 20, 20, 3), crops, 0, 0, 0, 0, 0)
    mask[1] = 0.0
    with pytest.raises(ValueError, match="mask 1 is empty"):
        TamePasteBack().paste(frames, crops, 0, 0, 0, 0, 0, mask=mask)
