"""PSNR/SSIM against closed forms and skimage; E_warp/RWE on exact synthetic motion; colour similarity."""
import math

import numpy as np
import pytest
import torch
from skimage.metrics import structural_similarity

from tame.kernels.metrics import (
    color_histogram,
    color_similarity_curve,
    psnr,
    referenced_warping_error,
    ssim,
    warping_error,
)

H, W = 32, 40


def translating_video(frames=4, dx=2, dy=1, seed=0):
    """Crops of one random texture, each frame moved by (dx, dy) px: I_{t+1}(p + d) = I_t(p) exactly."""
    generator = torch.Generator().manual_seed(seed)
    texture = torch.rand(3, H + 2 * frames * abs(dy), W + 2 * frames * abs(dx), generator=generator)
    y0, x0 = frames * abs(dy), frames * abs(dx)
    video = [texture[:, y0 - t * dy:y0 - t * dy + H, x0 - t * dx:x0 - t * dx + W] for t in range(frames)]
    return torch.stack(video)


def constant_flows(count, dx, dy):
    return torch.tensor([float(dx), float(dy)]).view(1, 2, 1, 1).expand(count, 2, H, W).clone()


def test_psnr_closed_form():
    a = torch.rand(3, 3, H, W)
    b = a + 0.1 * torch.tensor([1.0, -1.0, 1.0]).view(1, 3, 1, 1)  # MSE = 0.01 exactly
    assert torch.allclose(psnr(a, b), torch.full((3,), 20.0), atol=1e-4)
    assert torch.allclose(psnr(a, b, max_val=255.0), torch.full((3,), 20.0 + 20 * math.log10(255.0)), atol=1e-3)
    assert torch.isinf(psnr(a, a)).all()


def test_ssim_matches_skimage():
    generator = torch.Generator().manual_seed(1)
    clean = torch.nn.functional.avg_pool2d(torch.rand(2, 3, H + 4, W + 4, generator=generator), 5, stride=1)
    noisy = (clean + 0.08 * torch.randn(clean.shape, generator=generator)).clamp(0, 1)
    ours = ssim(clean, noisy)
    for i in range(2):
        reference = structural_similarity(
            clean[i].permute(1, 2, 0).double().numpy(), noisy[i].permute(1, 2, 0).double().numpy(),
            gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=1.0, channel_axis=2)
        assert abs(float(ours[i]) - reference) < 1e-3
    assert torch.allclose(ssim(clean, clean), torch.ones(2), atol=1e-5)
    assert float(ours.max()) < 0.95


def test_ssim_rejects_tiny_frames():
    with pytest.raises(ValueError, match="11x11"):
        ssim(torch.rand(1, 3, 8, 40), torch.rand(1, 3, 8, 40))


def test_warping_error_is_zero_for_exact_translation_with_exact_flow():
    video = translating_video(dx=2, dy=1)
    per_pair, mean = warping_error(video, constant_flows(3, 2, 1), constant_flows(3, -2, -1))
    assert per_pair.shape == (3,) and per_pair.abs().max() < 1e-10 and float(mean) < 1e-10
    # the same video with a wrong flow is far from consistent
    _, wrong = warping_error(video, constant_flows(3, 0, 0), constant_flows(3, 0, 0))
    assert float(wrong) > 0.05


def test_warping_error_of_a_brightness_step_is_its_square():
    first = 0.5 * torch.rand(1, 3, H, W)
    step = torch.tensor([0.3, 0.0, 0.0]).view(1, 3, 1, 1)  # red channel only: (0.3^2 + 0 + 0) / 3
    video = torch.cat((first, first + step, first + step))
    zero = constant_flows(2, 0, 0)
    per_pair, mean = warping_error(video, zero, zero)
    assert torch.allclose(per_pair, torch.tensor([0.03, 0.0]), atol=1e-6)
    assert float(mean) == pytest.approx(0.015, abs=1e-6)


def test_warping_error_ignores_occluded_pixels():
    """A square moves right by 4 px over a static background; the background it covers is occluded."""
    background = torch.rand(1, 3, H, W, generator=torch.Generator().manual_seed(2))
    square = torch.rand(1, 3, 12, 12, generator=torch.Generator().manual_seed(3))
    frame_a, frame_b = background.clone(), background.clone()
    frame_a[..., 8:20, 10:22] = square
    frame_b[..., 8:20, 14:26] = square
    flow_ab, flow_ba = torch.zeros(1, 2, H, W), torch.zeros(1, 2, H, W)
    flow_ab[0, 0, 8:20, 10:22] = 4
    flow_ba[0, 0, 8:20, 14:26] = -4
    per_pair, _ = warping_error(torch.cat((frame_a, frame_b)), flow_ab, flow_ba)
    assert float(per_pair[0]) < 1e-9
    # the covered strip (background of a at columns 22..25, square in b) would otherwise dominate
    assert (frame_a[..., 8:20, 22:26] - frame_b[..., 8:20, 22:26]).abs().mean() > 0.1


def test_referenced_warping_error_warps_the_reference_with_the_output_flow():
    reference = translating_video(dx=-1, dy=2, seed=4)
    black = torch.zeros_like(reference)
    true_fw, true_bw = constant_flows(3, -1, 2), constant_flows(3, 1, -2)
    per_pair, mean = referenced_warping_error(black, reference, true_fw, true_bw)
    assert per_pair.abs().max() < 1e-10
    zero = constant_flows(3, 0, 0)
    _, with_zero_flow = referenced_warping_error(black, reference, zero, zero)
    expected = (reference[:-1] - reference[1:]).square().mean()
    assert float(with_zero_flow) == pytest.approx(float(expected), rel=1e-5)
    with pytest.raises(ValueError, match="same frame count"):
        referenced_warping_error(black[:2], reference, true_fw, true_bw)


def test_warping_error_checks_flow_count():
    video = translating_video()
    with pytest.raises(ValueError, match="one flow per consecutive pair"):
        warping_error(video, constant_flows(4, 0, 0), constant_flows(4, 0, 0))


def test_color_histogram_matches_numpy_histogramdd():
    frames = torch.rand(2, 3, 16, 20, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    ours = color_histogram(frames, bins=20)
    assert ours.shape == (2, 8000)
    for t in range(2):
        pixels = frames[t].reshape(3, -1).T.numpy()
        reference, _ = np.histogramdd(pixels, bins=20, range=[(0, 1)] * 3)
        assert np.allclose(ours[t].numpy(), reference.ravel() / pixels.shape[0])
    ones = color_histogram(torch.ones(1, 3, 4, 4))
    assert float(ones[0, -1]) == 1.0  # value 1.0 falls into the last bin


def test_color_similarity_is_one_for_identical_frames_and_drops_for_a_colour_shift():
    frame = torch.rand(1, 3, H, W, generator=torch.Generator().manual_seed(6))
    assert torch.allclose(color_similarity_curve(frame.expand(4, -1, -1, -1)), torch.ones(4))
    grey = torch.full((1, 3, H, W), 0.5)
    half_red = grey.clone()
    half_red[:, 0, :, : W // 2] = 0.9                  # half the pixels change bin
    all_red = grey.clone()
    all_red[:, 0] = 0.9
    curve = color_similarity_curve(torch.cat((grey, half_red, all_red)))
    assert torch.allclose(curve, torch.tensor([1.0, 0.5, 0.0]))
    shifted = (frame + torch.tensor([0.15, 0.0, -0.1]).view(1, 3, 1, 1)).clamp(0, 1)
    assert float(color_similarity_curve(torch.cat((frame, shifted)))[1]) < 0.5


def test_ssim_of_many_frames_equals_frame_by_frame():
    a, b = torch.rand(6, 3, 16, 16), torch.rand(6, 3, 16, 16)
    together = ssim(a, b)
    assert torch.allclose(together, torch.cat([ssim(a[i:i + 1], b[i:i + 1]) for i in range(6)]))
