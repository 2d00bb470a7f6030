"""Temporally consistent editing: two-phase optimisation, blind mode, adapters, paste-back, errors.

Videos are synthetic clips with exact flow (models/data/): E_warp is measured with the
ground-truth flow, independently of the estimator the optimisation uses.
"""
import pytest
import torch
from torch import nn

from tame.kernels.metrics import psnr, warping_error
from tame.models.data.scenes import render_clip
from tame.models.edit.autoencoder import TameAutoencoder, autoencoder_from_state_dict, load_autoencoder
from tame.models.edit.blind import BlindSettings, blind_consistency
from tame.models.edit.generator import AutoencoderGenerator, ComfyVAEGenerator, decode_frames
from tame.models.edit.jitter import colour_shift, jittered_edit, latent_direction
from tame.models.edit.losses import flow_consistency_loss, local_code, pair_flows
from tame.models.edit.lpips import LPIPS, LpipsDistance, lpips_from_state_dict
from tame.models.edit.optimize import ConsistencySettings, make_consistent
from tame.models.edit.pasteback import feather_mask, paste_back
from tame.models.flow.builtin import BuiltinFlow
from tame.tests.support.peers import dvp_baseline

SIZE = 48


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the optimisation is many tiny ops: threads only add overhead here
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def clip():
    return render_clip(8, SIZE, SIZE, motion=2.0, num_layers=1, seed=3)


@pytest.fixture(scope="module")
def autoencoder():
    """A TameAutoencoder trained for a few seconds on other synthetic clips (PSNR ~ 22 dB)."""
    torch.manual_seed(0)
    model = TameAutoencoder(4, (16, 32))
    frames = torch.cat([render_clip(4, SIZE, SIZE, motion=3.0, num_layers=2, seed=s).frames
                        for s in range(10, 14)])
    optimiser = torch.optim.Adam(model.parameters(), lr=3e-3)
    gen = torch.Generator().manual_seed(0)
    for _ in range(150):
        batch = frames[torch.randint(0, len(frames), (4,), generator=gen)]
        loss = (model(batch) - batch).abs().mean()
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    return model.eval().requires_grad_(False)


@pytest.fixture(scope="module")
def estimator():
    return BuiltinFlow(quality="fast")


@pytest.fixture(scope="module")
def edit(clip, autoencoder):
    """Codes of the clip, their reconstruction, and a flickering colour edit of them."""
    generator = AutoencoderGenerator(autoencoder)
    codes = generator.encode(clip.frames)
    direction = latent_direction(generator.encode, clip.frames, colour_shift(clip.frames, (0.25, -0.1, -0.15)))
    edited = jittered_edit(codes, direction, strength=1.0, strength_jitter=0.5, noise=0.15, seed=1).latents
    return generator, decode_frames(generator, codes), edited, decode_frames(generator, edited)


def e_warp(frames, clip):
    return float(warping_error(frames, clip.flow_forward, clip.flow_backward)[1])


def test_two_phases_make_the_jittered_edit_consistent_and_keep_it(clip, edit, estimator):
    generator, reconstruction, edited, direct = edit
    settings = ConsistencySettings.for_mode("in-domain", "fast")
    result = make_consistent(generator, edited, estimator, inputs=reconstruction, settings=settings)
    assert result.frames.shape == direct.shape
    assert e_warp(result.frames, clip) < 0.4 * e_warp(direct, clip)
    to_direct = float(psnr(result.frames, direct).mean())
    assert to_direct > 25.0
    assert to_direct > float(psnr(result.frames, reconstruction).mean()) + 5.0  # the edit is still there
    assert len(result.losses["phase1"]) == 10 * 7 and len(result.losses["phase2"]) == 5 * 7


def test_same_seed_same_result_and_the_user_generator_is_untouched(edit, estimator):
    generator, reconstruction, edited, _ = edit
    before = {k: v.clone() for k, v in generator.decoder.state_dict().items()}
    settings = ConsistencySettings.for_mode("in-domain", "fast", phase1_epochs=1, phase2_epochs=1)
    first = make_consistent(generator, edited[:4], estimator, inputs=reconstruction[:4], settings=settings)
    second = make_consistent(generator, edited[:4], estimator, inputs=reconstruction[:4], settings=settings)
    other = make_consistent(generator, edited[:4], estimator, inputs=reconstruction[:4],
                            settings=ConsistencySettings.for_mode("in-domain", "fast", phase1_epochs=1,
                                                                  phase2_epochs=1, seed=1))
    assert torch.equal(first.frames, second.frames)
    assert not torch.equal(first.frames, other.frames)
    assert all(torch.equal(before[k], v) for k, v in generator.decoder.state_dict().items())


def test_blind_mode_removes_flicker_of_a_per_frame_processing_and_keeps_it(clip, estimator):
    gen = torch.Generator().manual_seed(5)
    count = clip.frames.shape[0]
    graded = clip.frames.sqrt() * torch.tensor([1.0, 0.8, 0.5]).view(1, 3, 1, 1)  # a steady colour grade
    gain = 1.0 + 0.25 * (2.0 * torch.rand(count, 3, 1, 1, generator=gen) - 1.0)  # ... that flickers
    processed = (graded * gain + 0.03 * torch.randn(clip.frames.shape, generator=gen)).clamp(0.0, 1.0)
    result = blind_consistency(clip.frames, processed, estimator, BlindSettings(epochs=30, width=16))
    assert e_warp(result.frames, clip) < 0.1 * e_warp(processed, clip)
    kept = float(psnr(result.frames, processed).mean())
    assert kept > float(psnr(clip.frames, processed).mean()) + 5.0  # it learnt the grade
    dvp = dvp_baseline(clip.frames, processed, iterations=2 * 7 * 30, width=16)  # same frame steps
    assert kept > float(psnr(dvp, processed).mean())


class _FakeFirstStage(nn.Module):
    """Shaped like ComfyUI's AutoencoderKL: an encoder decode never uses, `decode(z)` -> [-1, 1]."""

    def __init__(self):
        super().__init__()
        self.encoder = nn.Conv2d(3, 4, 3, padding=1)
        self.post_quant_conv = nn.Conv2d(4, 4, 1)
        self.decoder = nn.Sequential(nn.Conv2d(4, 16, 3, padding=1), nn.SiLU(),
                                     nn.Upsample(scale_factor=8), nn.Conv2d(16, 3, 3, padding=1))

    def decode(self, z):
        return self.decoder(self.post_quant_conv(z))


class _FakeVAE:
    """The attributes of comfy.sd.VAE that the adapter reads."""

    def __init__(self):
        torch.manual_seed(0)
        self.first_stage_model = _FakeFirstStage().eval()
        self.latent_channels = 4
        self.downscale_ratio = 8
        self.upscale_ratio = 8
        self.latent_dim = 2
        self.process_input = lambda image: image * 2.0 - 1.0
        self.process_output = lambda image: torch.clamp((image + 1.0) / 2.0, min=0.0, max=1.0)


def test_comfy_vae_adapter_decodes_like_comfy_and_never_modifies_the_vae(estimator):
    vae = _FakeVAE()
    original = {k: v.clone() for k, v in vae.first_stage_model.state_dict().items()}
    generator = ComfyVAEGenerator(vae)
    latents = torch.randn(3, 4, 4, 4, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        expected = vae.process_output(vae.first_stage_model.decode(latents))
    assert torch.allclose(generator.decode(latents), expected, atol=1e-6)
    assert generator.downscale == 8 and generator.latent_channels == 4
    assert len(generator.layers()) == 3  # the encoder is not part of decode
    settings = ConsistencySettings.for_mode("out-of-domain", phase1_epochs=1, phase2_epochs=2,
                                            phase2_lr=1e-2, freeze_last=1)
    result = make_consistent(generator, latents, estimator, settings=settings)
    tuned = result.generator.decoder.state_dict()
    assert not torch.equal(tuned["decoder.0.weight"], original["decoder.0.weight"])  # phase 2 ran
    assert torch.equal(tuned["decoder.3.weight"], original["decoder.3.weight"])  # last layer frozen
    assert all(torch.equal(original[k], v) for k, v in vae.first_stage_model.state_dict().items())
    assert all(torch.equal(original[k], v) for k, v in generator.decoder.state_dict().items())


def test_bad_inputs_give_clear_errors(edit, estimator, clip):
    generator, reconstruction, edited, _ = edit
    out_of_domain = ConsistencySettings.for_mode("out-of-domain", phase1_epochs=1, phase2_epochs=0)
    with pytest.raises(ValueError, match="latents but"):
        make_consistent(generator, edited, estimator, inputs=reconstruction[:5])
    with pytest.raises(ValueError, match="at least 2 frames"):
        make_consistent(generator, edited[:1], estimator, settings=out_of_domain)
    with pytest.raises(ValueError, match="another VAE"):
        make_consistent(generator, torch.zeros(4, 16, 12, 12), estimator, settings=out_of_domain)
    with pytest.raises(ValueError, match="decode to"):
        make_consistent(generator, edited, estimator, inputs=reconstruction[..., :40, :40])
    with pytest.raises(ValueError, match="needs the input"):
        make_consistent(generator, edited, estimator)
    with pytest.raises(ValueError, match="same frame count and size"):
        blind_consistency(clip.frames, clip.frames[..., :32, :32], estimator)
    with pytest.raises(ValueError, match="at least 2 frames"):
        blind_consistency(clip.frames[:1], clip.frames[:1], estimator)
    with pytest.raises(ValueError, match="ComfyUI VAE"):
        ComfyVAEGenerator(object())


def test_a_raising_progress_cancels_promptly(edit, estimator):
    generator, reconstruction, edited, _ = edit
    calls = []

    def progress(done, total):
        calls.append((done, total))
        if done >= 2:
            raise InterruptedError("cancelled")

    with pytest.raises(InterruptedError):
        make_consistent(generator, edited, estimator, inputs=reconstruction, progress=progress)
    assert calls == [(0, 105), (1, 105), (2, 105)]


def test_local_code_steps_the_given_rms_distance_towards_the_prior():
    codes = torch.randn(2, 4, 5, 5, generator=torch.Generator().manual_seed(0))
    prior = torch.randn(2, 4, 5, 5, generator=torch.Generator().manual_seed(1))
    moved = local_code(codes, prior, radius=0.3)
    rms = (moved - codes).flatten(1).square().mean(1).sqrt()
    assert torch.allclose(rms, torch.full((2,), 0.3), atol=1e-5)
    cosine = nn.functional.cosine_similarity((moved - codes).flatten(1), (prior - codes).flatten(1))
    assert torch.allclose(cosine, torch.ones(2), atol=1e-5)


def test_jittered_edit_strengths_and_exact_offset():
    codes = torch.randn(6, 4, 3, 3, generator=torch.Generator().manual_seed(0))
    direction = torch.tensor([1.0, -2.0, 0.0, 0.5]).view(1, 4, 1, 1)
    jittered = jittered_edit(codes, direction, strength=2.0, strength_jitter=0.25, noise=0.0, seed=3)
    assert ((jittered.strengths >= 1.5) & (jittered.strengths <= 2.5)).all()
    assert jittered.strengths.std() > 0
    assert torch.allclose(jittered.latents, codes + jittered.strengths.view(-1, 1, 1, 1) * direction)
    steady = jittered_edit(codes, direction, strength=2.0, strength_jitter=0.0, noise=0.0)
    assert torch.allclose(steady.latents, codes + 2.0 * direction)


def test_paste_back_feathers_inside_the_box_and_clips_at_the_frame_border():
    frames = torch.zeros(2, 1, 20, 20)
    crops = torch.ones(2, 1, 10, 10)
    pasted = paste_back(frames, crops, [(5, 5, 10, 10), (-5, 12, 10, 10)], feather=4)
    expected = torch.zeros(20, 20)
    expected[5:15, 5:15] = feather_mask(10, 10, 4)[0, 0]
    assert torch.allclose(pasted[0, 0], expected)
    assert pasted[0, 0, 10, 10] == 1.0 and pasted[0, 0, 5, 5] == pytest.approx(0.125)
    assert pasted[1, 0, :12].abs().sum() == 0 and pasted[1, 0, 12:, 5:].abs().sum() == 0
    assert torch.allclose(pasted[1, 0, 12:, :5], feather_mask(10, 10, 4)[0, 0, :8, 5:])


def test_autoencoder_round_trips_its_state_dict_and_reports_a_missing_file(tmp_path):
    from safetensors.torch import save_file
    model = TameAutoencoder(6, (8, 16, 16))
    path = tmp_path / "ae.safetensors"
    save_file(model.state_dict(), str(path))
    loaded = load_autoencoder(path)
    assert loaded.latent_channels == 6 and loaded.downscale == 8
    frames = torch.rand(1, 3, 16, 24)
    assert torch.equal(loaded(frames), model(frames))
    with pytest.raises(FileNotFoundError, match="tame_autoencoder.safetensors"):
        load_autoencoder(tmp_path / "tame_autoencoder.safetensors")
    with pytest.raises(ValueError, match="not a Tame autoencoder"):
        autoencoder_from_state_dict({"weight": torch.zeros(1)})


def test_pair_flows_differentiates_through_the_estimator():
    class ContrastFlow(nn.Module):  # a flow that depends smoothly on the images
        def forward(self, image1, image2, init_flow=None, grad_iterations=0):
            self.grad_iterations = grad_iterations
            return (image2 - image1).mean(1, keepdim=True).expand(-1, 2, -1, -1) * 3.0

    module = ContrastFlow()
    frames = torch.rand(2, 3, 8, 8, requires_grad=True)
    forward, backward = pair_flows(module, frames[0:1], frames[1:2], grad_iterations=2)
    assert module.grad_iterations == 2
    assert torch.allclose(forward, -backward)
    flow_consistency_loss(forward, backward + 0.5).backward()
    assert frames.grad is not None and frames.grad.abs().sum() > 0


def test_lpips_loads_torchvision_alexnet_plus_lin_weights():
    reference = LPIPS()
    torch.manual_seed(0)
    for parameter in reference.parameters():
        nn.init.uniform_(parameter, 0.0, 0.1)
    backbone = {f"features.{k.split('.')[2]}.{k.split('.')[3]}": v
                for k, v in reference.state_dict().items() if k.startswith("net.")}
    backbone["classifier.1.weight"] = torch.zeros(2)  # ignored: not part of LPIPS
    lins = {f"lins.{k[3]}.model.1.weight": v for k, v in reference.state_dict().items() if k.startswith("lin")}
    model = lpips_from_state_dict({**backbone, **lins})
    a, b = torch.rand(2, 3, 48, 48), torch.rand(2, 3, 48, 48)
    assert torch.equal(model(a, b), reference.eval()(a, b))
    assert torch.equal(model(a, a), torch.zeros(2))
    assert LpipsDistance(model).map(a, b).shape == (2, 1, 48, 48)
    with pytest.raises(ValueError, match="lin layers"):
        lpips_from_state_dict(backbone)


def test_frame_context_lets_a_per_pixel_mapper_undo_a_per_frame_offset():
    """Codes = content + s_t * d with a different strength s_t per frame: fitting W + f(W) to the
    content alone is only possible when f sees the frame (its mean code), not one pixel."""
    from tame.models.edit.mapper import LatentMapper, refine_codes
    gen = torch.Generator().manual_seed(0)
    content = torch.randn(6, 4, 8, 8, generator=gen)
    content = content - content.mean(dim=(2, 3), keepdim=True)
    direction = torch.tensor([1.0, -0.5, 0.25, 0.75]).view(1, 4, 1, 1)
    strengths = torch.linspace(-1.0, 1.0, 6).view(6, 1, 1, 1)
    codes = content + strengths * direction
    errors = {}
    for context in (False, True):
        mapper = LatentMapper(4, layers=3, frame_context=context, seed=0)
        optimiser = torch.optim.Adam(mapper.parameters(), lr=1.0)
        for _ in range(600):
            refined, _ = refine_codes(mapper, codes, 1.0)
            loss = (refined - content).square().mean()
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
        errors[context] = float(loss)
    offset_energy = float((strengths * direction).square().mean())
    assert errors[True] < 0.05 * offset_energy and errors[True] < errors[False] / 4
