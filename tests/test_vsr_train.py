"""VSR training: BI/BD degradations against closed forms, LR flow and augmentations against the exact
synthetic motion, the validation report, checkpoints/resume through the `tame train-vsr` handler, and
the GAN step. Tiny networks and clips keep it fast."""
import json

import pytest
import torch
from torch import nn

from tame.headless import cli
from tame.kernels.metrics import warping_error
from tame.models.data.degradations import block_dct_compress, degrade, lr_flow
from tame.models.data.scenes import render_clip
from tame.models.data.vsr_sources import (
    ClipPool,
    FolderSource,
    HRClip,
    ProceduralSource,
    flip_horizontal,
    flip_vertical,
    reverse_time,
    transpose,
)
from tame.models.flow.estimate import FlowEstimator
from tame.models.io.video import write_video
from tame.models.io.weights import load_state_dict, read_safetensors_metadata
from tame.models.vsr import TameVSRNet, load_vsr_weights
from tame.models.vsr.checkpoint import STATE_FILE, load_training_state
from tame.models.vsr.loop import TrainConfig, ValidationClip, train, validation_report
from tame.models.vsr.losses import temporal_change_loss

TINY_NET = {"channels": 8, "unet_multipliers": (1, 1, 2), "head_channels": 8}


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny convolutions run fastest on one thread, and much slower oversubscribed on a busy machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def hr_clip(frames=4, size=96, seed=3):
    clip = render_clip(frames, size, size, motion=8.0, num_layers=1, seed=seed)
    return HRClip(clip.frames, clip.flow_forward, clip.flow_backward)


# ---------------------------------------------------------------- degradations
@pytest.mark.parametrize("degradation", ["BI", "BD"])
def test_degradation_shape_and_constant(degradation):
    constant = torch.full((2, 3, 40, 56), 0.37)
    lr = degrade(constant, 4, degradation)
    assert lr.shape == (2, 3, 10, 14)
    assert torch.allclose(lr, torch.full_like(lr, 0.37), atol=1e-6)


def test_degradation_needs_divisible_sides():
    with pytest.raises(ValueError, match="divisible"):
        degrade(torch.rand(1, 3, 30, 32), 4, "BD")
    with pytest.raises(ValueError, match="BI"):
        degrade(torch.rand(1, 3, 32, 32), 4, "bicubic")


def ramp(height, width, x0=0.0, y0=0.0):
    """`[1,3,H,W]` with value 0.1 + 0.004 (x - x0) + 0.002 (y - y0) at pixel centre (x, y)."""
    ys, xs = torch.meshgrid(torch.arange(height, dtype=torch.float64), torch.arange(width, dtype=torch.float64),
                            indexing="ij")
    return (0.1 + 0.004 * (xs - x0) + 0.002 * (ys - y0)).expand(1, 3, height, width).float()


def test_bi_of_a_ramp_samples_the_block_centres():
    """A symmetric (antialiased bicubic) kernel keeps a linear function: LR pixel (i, j) equals the ramp at
    the centre of its 4x4 block, HR (4j + 1.5, 4i + 1.5), away from the borders."""
    lr = degrade(ramp(64, 96), 4, "BI")
    expected = ramp(16, 24, x0=-1.5 / 4, y0=-1.5 / 4)
    expected = 0.1 + (expected - 0.1) * 4  # the LR ramp's slope is 4x the HR one
    assert torch.allclose(lr[..., 2:-2, 2:-2], expected[..., 2:-2, 2:-2], atol=1e-5)


def test_bd_of_a_ramp_samples_every_fourth_pixel():
    lr = degrade(ramp(64, 96), 4, "BD")
    expected = 0.1 + 4 * (ramp(16, 24) - 0.1)
    assert torch.allclose(lr[..., 2:-2, 2:-2], expected[..., 2:-2, 2:-2], atol=1e-5)


@pytest.mark.parametrize("quality", [40, 75, 95])
def test_block_dct_compression_matches_jpeg(quality):
    """The JPEG quantisation without entropy coding loses what OpenCV's JPEG codec loses on a real photo."""
    cv2 = pytest.importorskip("cv2")
    data = pytest.importorskip("skimage.data")
    photo = torch.from_numpy(data.astronaut()[100:292, 150:342]).permute(2, 0, 1)[None].float() / 255
    ours = block_dct_compress(photo, quality)
    image = (photo[0].permute(1, 2, 0).numpy()[..., ::-1] * 255).round().astype("uint8")
    _, encoded = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
    theirs = torch.from_numpy(cv2.imdecode(encoded, 1)[..., ::-1].copy()).permute(2, 0, 1)[None].float() / 255
    error = lambda video: 10 * torch.log10(1 / ((video - photo) ** 2).mean())
    assert abs(error(ours) - error(theirs)) < 0.3
    assert 10 * torch.log10(1 / ((ours - theirs) ** 2).mean()) > 40  # the same losses, not just as many


def test_real_degradation_is_seeded_and_keeps_brightness():
    clip = hr_clip(frames=3)
    draws = [degrade(clip.frames, 4, "RealBI", torch.Generator().manual_seed(seed)) for seed in (5, 5, 6)]
    assert torch.equal(draws[0], draws[1]) and not torch.equal(draws[0], draws[2])
    bicubic = degrade(clip.frames, 4, "BI")
    for seed in range(6):  # half of the draws are plain BI; the others add zero-mean noise and blur
        lr = degrade(clip.frames, 4, "RealBI", torch.Generator().manual_seed(seed))
        assert lr.shape == bicubic.shape and 0 <= lr.min() and lr.max() <= 1
        assert abs(lr.mean() - bicubic.mean()) < 0.01


# ---------------------------------------------------------------- LR flow and augmentation
def lr_alignment_error(clip, degradation):
    """E_warp of the degraded frames with the LR flow derived from the exact HR flow."""
    lr = degrade(clip.frames, 4, degradation)
    return warping_error(lr, lr_flow(clip.flow_forward, 4, degradation), lr_flow(clip.flow_backward, 4, degradation))[1]


@pytest.mark.parametrize("degradation", ["BI", "BD"])
def test_lr_flow_aligns_lr_frames(degradation):
    clip = hr_clip()
    lr = degrade(clip.frames, 4, degradation)
    zero = torch.zeros(lr.shape[0] - 1, 2, *lr.shape[-2:])
    assert lr_alignment_error(clip, degradation) < 0.15 * warping_error(lr, zero, zero)[1]


def test_lr_flow_of_a_translation():
    flow = torch.empty(1, 2, 16, 16)
    flow[:, 0], flow[:, 1] = 6.0, -2.0
    for degradation in ("BI", "BD"):
        assert torch.allclose(lr_flow(flow, 4, degradation), flow[..., ::4, ::4] / 4)


@pytest.mark.parametrize("transform", [flip_horizontal, flip_vertical, transpose, reverse_time])
def test_augmentations_keep_flow_consistent(transform):
    clip = hr_clip()
    changed = transform(clip)
    zero = torch.zeros_like(changed.flow_forward)
    aligned = warping_error(changed.frames, changed.flow_forward, changed.flow_backward)[1]
    wrong = warping_error(changed.frames, clip.flow_forward, clip.flow_backward)[1]  # the untransformed flow
    assert aligned < 0.2 * warping_error(changed.frames, zero, zero)[1]
    assert aligned < 0.5 * wrong


def test_pool_batch_shapes():
    generator = torch.Generator().manual_seed(0)
    pool = ClipPool(ProceduralSource(), 2, 3, 64, generator)
    pool.refresh(generator)
    batch = pool.batch(generator, 2, 16, 4, "BD")
    assert batch.hr.shape == (2, 3, 3, 64, 64) and batch.lr.shape == (2, 3, 3, 16, 16)
    assert batch.flows_forward.shape == batch.flows_backward.shape == (2, 2, 2, 16, 16)


def test_folder_source_reads_sequences_and_videos(tmp_path):
    frames = render_clip(4, 40, 48, seed=1).frames
    write_video(tmp_path / "walk", frames.permute(0, 2, 3, 1), fps=1, format="png")  # a folder of PNGs
    write_video(tmp_path / "clip.mp4", frames.permute(0, 2, 3, 1), fps=8)
    source = FolderSource(tmp_path, num_frames=4)
    assert len(source.sequences) == 1 and len(source.videos) == 1 and not source.stills
    clips = [source.clip(torch.Generator().manual_seed(seed), 4, 16) for seed in range(8)]
    assert all(c.frames.shape == (4, 3, 40, 48) and not c.has_flow for c in clips)
    differences = [(c.frames - frames).abs() for c in clips]
    from_pngs = [d for d in differences if d.max() < 1 / 255]  # the PNG sequence is lossless (8 bit)
    from_video = [d for d in differences if d.max() >= 1 / 255]  # H.264 is close, not exact
    assert from_pngs and from_video and all(d.mean() < 0.05 for d in from_video)


def test_folder_without_data_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="no usable training data"):
        FolderSource(tmp_path, num_frames=4)


def test_temporal_change_loss_sees_flicker_not_steady_errors():
    clip = hr_clip()
    hr, flows = clip.frames[None], (clip.flow_forward[None], clip.flow_backward[None])
    signs = torch.tensor([1.0, -1.0, 1.0, -1.0]).view(1, 4, 1, 1, 1)
    steady = temporal_change_loss(hr + 0.05, hr, *flows)  # same error in every frame: no flicker
    flicker = temporal_change_loss(hr + 0.05 * signs, hr, *flows)  # frame changes off by +-0.1
    assert steady < 2e-3
    assert flicker == pytest.approx(0.1, rel=0.02)


# ---------------------------------------------------------------- validation report
class ZeroFlow(nn.Module):
    def forward(self, image1, image2):
        return image1.new_zeros(image1.shape[0], 2, *image1.shape[-2:])


def test_validation_report_of_an_untrained_network_equals_bicubic():
    clip = hr_clip(frames=3, size=48)
    lr = degrade(clip.frames, 4, "BI")
    forward, backward = lr_flow(clip.flow_forward, 4, "BI"), lr_flow(clip.flow_backward, 4, "BI")
    validation = ValidationClip(clip.frames, lr, forward, backward, clip.flow_forward, clip.flow_backward)
    net = TameVSRNet(**TINY_NET)  # zero-initialised output: exactly bicubic
    report = validation_report(net, [validation], FlowEstimator(ZeroFlow(), "zero"))
    assert set(report["model"]) == set(report["bicubic"]) == {"psnr", "ssim", "e_warp_true_flow", "e_warp", "rwe"}
    assert set(report["truth"]) == {"e_warp_true_flow", "e_warp"}
    assert report["psnr_gain"] == pytest.approx(0.0, abs=1e-4)
    assert report["model"]["rwe"] == pytest.approx(report["bicubic"]["rwe"], rel=1e-4)
    # with zero "estimated" flow the RWE is the truth's own frame difference, whatever the output
    assert report["model"]["rwe"] == pytest.approx(report["truth"]["e_warp"], rel=1e-4)


# ---------------------------------------------------------------- command line: checkpoints and resume
def run_cli(tmp_path, *extra, flow="fast"):
    args = ["train-vsr", str(tmp_path / "run"), "--flow", flow, "--batch", "1", "--frames", "3", "--crop", "16",
            "--pool-clips", "2", "--val-clips", "1", "--val-frames", "3", "--val-size", "48", "--log-every", "1",
            "--val-every", "2", "--checkpoint-every", "2", "--channels", "8", "--lr", "1e-3", *extra]
    return cli.main(args)


def test_cli_trains_checkpoints_and_resumes(tmp_path, capsys):
    assert run_cli(tmp_path, "--steps", "2", "--blocks", "2", "--degradation", "RealBI") == 0
    state_path = tmp_path / "run" / STATE_FILE
    first = load_training_state(state_path)
    assert first["step"] == 2 and first["optimizer"]["state"]  # Adam moments are saved
    weights = tmp_path / "run" / "vsr_x4.safetensors"
    net = load_vsr_weights(load_state_dict(weights), read_safetensors_metadata(weights))
    assert net.config["channels"] == 8 and net.config["num_blocks"] == 2
    assert read_safetensors_metadata(weights)["training_steps"] == "2"
    assert read_safetensors_metadata(weights)["degradation"] == "RealBI"
    assert torch.equal(net.state_dict()["extract.0.weight"], first["net"]["extract.0.weight"])

    assert run_cli(tmp_path, "--steps", "3", "--resume", "--blocks", "2", "--degradation", "RealBI") == 0
    second = load_training_state(state_path)
    assert second["step"] == 3
    assert int(second["optimizer"]["state"][0]["step"]) == 3  # Adam continued rather than restarted
    records = [json.loads(line) for line in (tmp_path / "run" / "train_log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records if "loss" in r] == [1, 2, 3]
    validation = [r["validation"] for r in records if "validation" in r]
    assert validation and {"model", "bicubic", "truth", "psnr_gain", "clips"} <= set(validation[-1])
    assert {"psnr", "ssim", "e_warp_true_flow", "e_warp", "rwe"} == set(validation[-1]["model"])
    assert "step 3/3" in capsys.readouterr().err


def test_cli_resume_with_other_network_options_is_refused(tmp_path, capsys):
    assert run_cli(tmp_path, "--steps", "1") == 0
    assert run_cli(tmp_path, "--steps", "2", "--resume", "--no-temporal") == cli.EXIT_INVALID
    assert "Resume with the same network options" in capsys.readouterr().err


def test_videos_without_flow_estimator_are_a_clear_error(tmp_path, capsys):
    data = tmp_path / "videos"
    data.mkdir()
    write_video(data / "clip.mp4", render_clip(12, 64, 64, seed=2).frames.permute(0, 2, 3, 1), fps=8)
    assert run_cli(tmp_path, "--steps", "1", "--data", str(data), flow="none") == cli.EXIT_INVALID
    assert "flow estimator is needed" in capsys.readouterr().err


# ---------------------------------------------------------------- GAN
def test_gan_and_temporal_terms_train(tmp_path):
    config = TrainConfig(steps=1, batch_size=1, num_frames=3, crop=16, pool_clips=1, val_clips=1, val_frames=3,
                         val_size=48, gan=True, temporal_weight=1.0, lr=1e-3, net=TINY_NET)
    logged = []
    train(config, ProceduralSource(), tmp_path, log=logged.append)
    record = json.loads((tmp_path / "train_log.jsonl").read_text().splitlines()[0])
    assert record["r1"] > 0 and record["gan_d"] > 0 and record["gan_g"] > 0 and record["temporal"] > 0
    state = load_training_state(tmp_path / STATE_FILE)
    temporal = [k for k in state["discriminator"] if k.startswith("temporal.")]
    assert temporal and any(state["discriminator"][k].abs().sum() > 0 for k in temporal if k.endswith("weight"))
