"""Binomial filter, BlurPool downsampling and the LF/HF split against closed-form results; blur matrices
against numpy's padded correlation."""
import math

import numpy as np
import pytest
import torch
from PIL import Image

from tame.kernels.frequency import (
    binomial_taps,
    blur_downsample,
    lanczos_matrix,
    lanczos_upsample,
    lowpass,
    merge_frequencies,
    split_frequencies,
)
from tame.kernels.filters import blur_matrix, gaussian_taps, separable_blur


def checkerboard(h=16, w=16):
    ys, xs = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    return ((-1.0) ** (ys + xs)).float().view(1, 1, h, w)


def test_binomial_taps_is_pascal_row():
    assert torch.equal(binomial_taps(5), torch.tensor([1.0, 4, 6, 4, 1]) / 16)
    assert torch.allclose(binomial_taps(3, torch.float64), torch.tensor([0.25, 0.5, 0.25], dtype=torch.float64))


@pytest.mark.parametrize("omega", [0.0, 0.4, 1.1, 2.0, math.pi])
def test_lowpass_frequency_response_is_cos4(omega):
    """A cosine along x comes out scaled by cos^4(omega/2) away from the reflect-padded borders."""
    xs = torch.arange(64, dtype=torch.float64)
    wave = torch.cos(omega * xs + 0.3).view(1, 1, 1, -1).expand(1, 1, 8, -1)
    filtered = lowpass(wave)
    expected = math.cos(omega / 2) ** 4 * wave
    assert torch.allclose(filtered[..., 2:-2], expected[..., 2:-2], atol=1e-12)


def test_constant_image_has_no_high_band():
    image = torch.full((2, 3, 12, 10), 0.37)
    low, high = split_frequencies(image, passes=3)
    assert torch.allclose(low, image, atol=1e-6)
    assert high.abs().max() < 1e-6


def test_lowpass_removes_checkerboard_entirely():
    """Nyquist in both axes: response cos^4(pi/2) = 0, borders included (reflection keeps the pattern)."""
    board = checkerboard(12, 14).double()
    assert lowpass(board).abs().max() < 1e-12
    low, high = split_frequencies(board)
    assert torch.allclose(high, board)


def test_split_then_merge_is_exact():
    image = torch.rand(2, 3, 20, 24)
    low, high = split_frequencies(image, passes=2)
    assert torch.equal(merge_frequencies(low, high), low + high)
    assert torch.allclose(merge_frequencies(low, high), image, atol=1e-6)


def test_passes_add_variance():
    """p passes of a variance-1 filter = Gaussian-like blur with variance p: impulse second moment."""
    impulse = torch.zeros(1, 1, 41, 41, dtype=torch.float64)
    impulse[..., 20, 20] = 1.0
    response = lowpass(impulse, passes=3)[0, 0, 20]
    offsets = torch.arange(-20, 21, dtype=torch.float64)
    row_mass = response.sum()
    assert torch.isclose((response * offsets ** 2).sum() / row_mass, torch.tensor(3.0, dtype=torch.float64))


@pytest.mark.parametrize("factor", [2, 4, 8])
def test_blur_downsample_maps_checkerboard_to_constant(factor):
    board = checkerboard(32, 32)
    down = blur_downsample(board, factor)
    assert down.shape[-2:] == (32 // factor, 32 // factor)
    assert down.abs().max() < 1e-6  # the +1/-1 pattern has mean 0: nothing aliases into the output
    naive = board[..., ::factor, ::factor]
    assert torch.allclose(naive, torch.ones_like(naive))  # plain striding turns it into a full-scale constant


def test_blur_downsample_keeps_low_frequencies():
    xs = torch.arange(64, dtype=torch.float64)
    wave = torch.cos(2 * math.pi * xs / 32).view(1, 1, 1, -1).expand(1, 1, 8, -1)
    down = blur_downsample(wave, 2)
    expected = math.cos(math.pi / 32) ** 4 * torch.cos(2 * math.pi * xs[::2] / 32)
    assert torch.allclose(down[0, 0, 1, 2:-2], expected[2:-2], atol=1e-12)
    assert down.shape[-1] == 32


def test_odd_sizes_round_up():
    assert blur_downsample(torch.rand(1, 3, 17, 9), 4).shape == (1, 3, 5, 3)


@pytest.mark.parametrize("size", [(40, 24), (30, 51)])
def test_lanczos_matches_pillow_away_from_borders(size):
    """Pillow's LANCZOS (a = 3, same pixel-centre convention) on a float image; Pillow truncates the
    window at the border where this resize repeats the edge pixel, so compare 3 input px inside."""
    image = torch.rand(13, 11, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    ours = lanczos_upsample(image.view(1, 1, 13, 11), size)[0, 0]
    pillow = Image.fromarray(image.numpy().astype(np.float32)).resize(size[::-1], Image.LANCZOS)
    reference = torch.from_numpy(np.array(pillow)).double()
    rows, columns = size[0] * 3 // 13 + 1, size[1] * 3 // 11 + 1
    interior = (slice(rows, -rows), slice(columns, -columns))
    assert torch.allclose(ours[interior], reference[interior], atol=1e-5)


def test_lanczos_keeps_constants_and_input_samples():
    """Rows sum to 1; at an integer factor with odd ratio the input samples are reproduced exactly."""
    assert torch.allclose(lanczos_matrix(7, 20).sum(1), torch.ones(20))
    image = torch.rand(1, 3, 5, 6, dtype=torch.float64)
    enlarged = lanczos_upsample(image, (15, 18))  # output pixel 3i + 1 is centred on input pixel i
    assert torch.allclose(enlarged[..., 1::3, 1::3], image, atol=1e-12)
    with pytest.raises(ValueError, match="enlarges only"):
        lanczos_matrix(8, 4)


def test_bad_input_raises_clear_errors():
    with pytest.raises(ValueError, match="factor"):
        blur_downsample(torch.rand(1, 3, 16, 16), 3)
    with pytest.raises(ValueError, match="too small"):
        lowpass(torch.rand(1, 3, 2, 16))
    with pytest.raises(ValueError, match="odd"):
        lowpass(torch.rand(1, 3, 16, 16), taps=4)
    with pytest.raises(ValueError, match="same shape"):
        merge_frequencies(torch.rand(1, 3, 8, 8), torch.rand(1, 3, 8, 9))


@pytest.mark.parametrize("length", [1, 5, 31])
@pytest.mark.parametrize("padding", ["replicate", "reflect"])
def test_blur_matrix_is_the_padded_correlation(length, padding):
    taps = gaussian_taps(2.0, dtype=torch.float64)                      # 13 taps: wider than length 5
    signal = np.random.default_rng(length).random(length)
    mode = "reflect" if padding == "reflect" and (taps.numel() - 1) // 2 < length else "edge"
    padded = np.pad(signal, (taps.numel() - 1) // 2, mode=mode)
    expected = np.correlate(padded, taps.numpy(), mode="valid")
    result = blur_matrix(length, taps, padding) @ torch.from_numpy(signal)
    assert torch.allclose(result, torch.from_numpy(expected), atol=1e-12)


def test_blur_matrices_on_both_axes_equal_the_separable_blur():
    image = torch.rand(2, 3, 17, 40, generator=torch.Generator().manual_seed(0))
    taps = gaussian_taps(3.0)
    for padding in ("replicate", "reflect"):
        blurred = blur_matrix(17, taps, padding) @ image @ blur_matrix(40, taps, padding).T
        assert torch.allclose(blurred, separable_blur(image, taps, padding), atol=1e-6)
    with pytest.raises(ValueError, match="padding"):
        blur_matrix(8, taps, "valid")
