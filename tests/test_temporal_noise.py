"""Temporal low-pass noise: autocorrelation against the filter design, chunk overlap identity, unit
variance, the NOISE contract and clear errors."""
import numpy as np
import pytest
import torch

from tame.kernels import temporal_noise as tn
from tame.nodes.longvideo_nodes import TameTemporalNoise, TemporalNoiseSource

BETA = 5.65


def numpy_filter(offsets, k):
    """The design written out independently: Kaiser(beta)-windowed sinc, cutoff 1/k, support |tau| <= k/2."""
    x = 2.0 * np.asarray(offsets, dtype=np.float64) / k
    window = np.i0(BETA * np.sqrt(np.clip(1.0 - x * x, 0.0, None))) / np.i0(BETA)
    return np.where(np.abs(x) <= 1.0, np.sinc(x) * window, 0.0)


def predicted_autocorrelation(k, step, lags, frames):
    """Mean over t of corr(y(t), y(t + lag)) for y(t) = sum_j h(t - j step) u_j / norm(t), u white."""
    times = np.arange(frames + max(lags) + 1)
    lattice = np.arange(-int(k) - 2, times[-1] // step + int(k) + 3)  # every j within reach of every t
    taps = numpy_filter(times[:, None] - lattice[None] * step, k)
    taps /= np.sqrt((taps ** 2).sum(1, keepdims=True))
    return np.array([(taps[:frames] * taps[lag:lag + frames]).sum(1).mean() for lag in lags])


def measured_autocorrelation(noise, lags):
    """Mean of x(t) x(t + lag) over elements and start frames of `[T,C,h,w]` unit-variance noise."""
    flat = noise.flatten(1).double()
    return np.array([float((flat[:flat.shape[0] - lag] * flat[lag:]).mean()) for lag in lags])


def default_node_inputs(**overrides):
    inputs = {"seed": 3, "frames": 12, "start_frame": 0, "width": 64, "height": 48, "channels": 4,
              "footprint_unit": "frames", "k_min": 16.0, "k_max": 512.0, "fps": 16.0, "filters": 16,
              "fresh_noise": 0.0}
    inputs.update(overrides)
    return inputs


def test_filter_matches_a_scipy_kaiser_firwin_design():
    signal = pytest.importorskip("scipy.signal")
    k = 24
    reference = signal.firwin(k + 1, 1.0 / k, window=("kaiser", BETA), fs=1.0, scale=False)
    ours = tn.kaiser_lowpass(torch.arange(-k // 2, k // 2 + 1, dtype=torch.float64), k).numpy()
    np.testing.assert_allclose(ours / ours.max(), reference / reference.max(), atol=1e-12)
    np.testing.assert_allclose(ours, numpy_filter(np.arange(-k // 2, k // 2 + 1), k), atol=1e-12)


def test_footprints_are_spaced_exponentially():
    ks = tn.footprints(500, 10000, 128)
    assert ks[0] == pytest.approx(500) and ks[-1] == pytest.approx(10000)
    ratios = np.diff(np.log(ks))
    np.testing.assert_allclose(ratios, np.log(20) / 127, rtol=1e-9)
    assert tn.footprints(7, 7, 1) == [7.0]


def test_weights_have_unit_norm_and_bounded_length():
    for k in (1.0, 5.5, 16.0, 500.0, 10000.0):
        indices, weights = tn.filter_weights(torch.arange(0, 40), k)
        np.testing.assert_allclose(weights.square().sum(1).numpy(), 1.0, rtol=1e-12)
        assert indices.shape[1] <= 12, "taps per frame must not grow with the footprint"


def test_measured_autocorrelation_matches_the_filter_design():
    bank, frames, lags = [12.0, 64.0], 300, list(range(0, 65, 4))
    assert [tn.lattice_step(k) for k in bank] == [1, 8]  # per-frame lattice and coarse lattice
    noise = tn.temporal_noise(torch.arange(1000, 1000 + frames + max(lags)), (1, 32, 32), 11, bank)
    predicted = np.mean([predicted_autocorrelation(k, tn.lattice_step(k), lags, frames) for k in bank], 0)
    assert predicted[0] == pytest.approx(1.0)
    assert predicted[3] < 0.75 and predicted[-1] < 0.01  # the prediction is far from trivial
    np.testing.assert_allclose(measured_autocorrelation(noise, lags), predicted, atol=0.03)


def test_fresh_noise_scales_the_correlation():
    bank, frames, lags = [40.0], 300, [0, 4, 8, 12]
    noise = tn.temporal_noise(torch.arange(frames + 12), (1, 32, 32), 5, bank, fresh=0.4)
    predicted = 0.6 * predicted_autocorrelation(40.0, tn.lattice_step(40.0), lags, frames)
    predicted[0] = 1.0
    np.testing.assert_allclose(measured_autocorrelation(noise, lags), predicted, atol=0.03)


def test_separately_generated_chunks_are_bit_identical_on_their_overlap(monkeypatch):
    bank = tn.footprints(16, 10000, 16)
    first = tn.temporal_noise(torch.arange(0, 100), (4, 6, 5), 42, bank)
    second = tn.temporal_noise(torch.arange(50, 150), (4, 6, 5), 42, bank)
    assert torch.equal(first[50:], second[:50])
    monkeypatch.setattr(tn, "_BLOCK_ELEMENTS", 7 * 4 * 6 * 5)  # blocks of 7 frames
    assert torch.equal(tn.temporal_noise(torch.arange(50, 150), (4, 6, 5), 42, bank), second)
    assert not torch.equal(tn.temporal_noise(torch.arange(50, 150), (4, 6, 5), 43, bank), second)


def test_node_chunks_agree_and_the_latent_has_the_latent_size():
    node = TameTemporalNoise()
    first, _, preview, _ = node.generate(**default_node_inputs(frames=100, start_frame=0))
    second, _, _, info = node.generate(**default_node_inputs(frames=100, start_frame=50))
    assert preview.shape == (100, 6, 8, 3) and 0.0 <= float(preview.min()) and float(preview.max()) <= 1.0
    assert first["samples"].shape == (100, 4, 6, 8) and first["samples"].dtype == torch.float32
    assert torch.equal(first["samples"][50:], second["samples"][:50])
    assert "frames 50..149" in info


def test_unit_variance_per_element():
    noise = tn.temporal_noise(torch.arange(0, 40), (4, 64, 64), 9, tn.footprints(16, 10000, 8))
    assert float(noise.var()) == pytest.approx(1.0, abs=0.05)
    assert abs(float(noise.mean())) < 0.05
    per_frame = noise.flatten(1).var(1)
    assert float((per_frame - 1).abs().max()) < 0.06  # 16384 independent elements per frame
    assert float(noise[1:].sub(noise[:-1]).square().mean()) < 0.05  # strongly correlated in time


def test_seconds_are_converted_with_fps():
    node = TameTemporalNoise()
    in_frames = node.generate(**default_node_inputs(k_min=16.0, k_max=64.0, filters=3))[0]["samples"]
    in_seconds = node.generate(**default_node_inputs(footprint_unit="seconds", k_min=0.5, k_max=2.0, fps=32.0,
                                                     filters=3))[0]["samples"]
    assert torch.equal(in_frames, in_seconds)


def test_size_from_a_latent_or_an_image():
    node = TameTemporalNoise()
    latent = {"samples": torch.zeros(2, 16, 5, 7)}
    assert node.generate(**default_node_inputs(), latent=latent)[0]["samples"].shape == (12, 16, 5, 7)
    image = torch.rand(1, 40, 72, 3)
    assert node.generate(**default_node_inputs(channels=3), image=image)[0]["samples"].shape == (12, 3, 5, 9)


def test_noise_object_follows_the_comfyui_contract():
    latent, noise, _, _ = TameTemporalNoise().generate(**default_node_inputs(frames=10, start_frame=20))
    assert isinstance(noise.seed, int)
    frames_as_batch = noise.generate_noise({"samples": torch.zeros(10, 4, 6, 8, dtype=torch.float16)})
    assert frames_as_batch.dtype == torch.float16 and frames_as_batch.shape == (10, 4, 6, 8)
    assert torch.equal(frames_as_batch, latent["samples"].half())
    picked = noise.generate_noise({"samples": torch.zeros(2, 4, 6, 8), "batch_index": [3, 7]})
    assert torch.equal(picked, latent["samples"][[3, 7]])
    video = noise.generate_noise({"samples": torch.zeros(2, 4, 10, 6, 8)})
    assert video.shape == (2, 4, 10, 6, 8)
    assert torch.equal(video[0].transpose(0, 1), latent["samples"])
    assert not torch.equal(video[0], video[1])
    with pytest.raises(ValueError, match="must be"):
        noise.generate_noise({"samples": torch.zeros(4, 6, 8)})


@pytest.mark.parametrize("overrides, message", [
    ({"frames": 0}, "at least 1 frame"),
    ({"k_min": 600.0, "k_max": 500.0}, "larger than k_max"),
    ({"k_min": 0.5}, "at least 1 frame"),
    ({"width": 4}, "empty latent"),
    ({"footprint_unit": "seconds", "fps": 0.0}, "fps must be positive"),
    ({"fresh_noise": 1.5}, "fresh"),
    ({"filters": 0}, "number of filters"),
])
def test_bad_node_inputs_raise_clear_errors(overrides, message):
    with pytest.raises(ValueError, match=message):
        TameTemporalNoise().generate(**default_node_inputs(**overrides))


def test_bad_kernel_inputs_raise_clear_errors():
    with pytest.raises(ValueError, match="at least one frame"):
        tn.temporal_noise(torch.arange(0), (4, 8, 8), 0, [16.0])
    with pytest.raises(ValueError, match="positive integers"):
        tn.temporal_noise(torch.arange(4), (0, 8, 8), 0, [16.0])
    with pytest.raises(ValueError, match="integers"):
        tn.temporal_noise(torch.tensor([0.5]), (4, 8, 8), 0, [16.0])
    with pytest.raises(ValueError, match="LATENT"):
        TameTemporalNoise().generate(**default_node_inputs(), latent={"samples": torch.zeros(4, 8)})


def test_noise_source_rejects_a_mismatched_batch_index():
    source = TemporalNoiseSource(0, 0, [16.0], 0.0)
    with pytest.raises(ValueError, match="batch_index"):
        source.generate_noise({"samples": torch.zeros(3, 4, 6, 8), "batch_index": [0, 1]})
