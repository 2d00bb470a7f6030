"""Temporal wrapper for per-frame upscalers: closed-form behaviour on static clips, measured flicker
reduction on clips with known motion, occlusion handling, progress, and the VSR nodes."""
import pytest
import torch
import torch.nn.functional as F
from skimage import data

from tame.kernels.frequency import blur_downsample, split_frequencies
from tame.kernels.metrics import psnr, warping_error
from tame.kernels.warp import backward_warp
from tame.models.data.scenes import render_clip
from tame.models.flow.builtin import BuiltinFlow
from tame.models.flow.estimate import FlowEstimator
from tame.models.flow.field import FlowSet
from tame.models.vsr.wrapper import (
    detail_sub_bands,
    energy_radius,
    estimate_lr_flow,
    hf_passes_for_scale,
    local_energy,
    match_energy,
    resize_upscaler,
    temporal_upscale,
)
from tame.nodes.frequency_nodes import HIGH_OFFSET, TameAntiAliasDownsample, TameMergeFrequencies, TameSplitFrequencies
from tame.nodes.upscale_wrapper_nodes import TameTemporalUpscale
from tame.tests.support.peers import flickering_upscaler


def astronaut(size=200):
    image = torch.from_numpy(data.astronaut()).permute(2, 0, 1).float() / 255
    return F.interpolate(image[None], size=(size, size), mode="area")[0]


def translation_clip(num_frames=8, size=96, step=(4, 2)):
    """Integer-pixel camera pan over a photo -> (frames [T,3,size,size], flow_fw, flow_bw).

    frame_t(p) = canvas(p + t * step), so F_{t->t+1} = -step everywhere (exact, no resampling)."""
    canvas = astronaut()
    frames = torch.stack([canvas[:, 30 + t * step[1]:30 + t * step[1] + size, 20 + t * step[0]:20 + t * step[0] + size]
                          for t in range(num_frames)])
    flow_fw = torch.tensor([-float(step[0]), -float(step[1])]).view(1, 2, 1, 1).expand(num_frames - 1, 2, size, size)
    return frames, flow_fw.clone(), -flow_fw


class PhaseCorrelationFlow(torch.nn.Module):
    """Global integer translation by phase correlation, as a constant flow field (an estimator for
    pure camera pans, independent of the pack's estimators)."""

    def forward(self, image1, image2):
        spectrum = torch.fft.rfft2(image2.mean(1)) * torch.fft.rfft2(image1.mean(1)).conj()
        correlation = torch.fft.irfft2(spectrum / spectrum.abs().clamp(min=1e-9), s=image1.shape[-2:])
        h, w = image1.shape[-2:]
        peak = correlation.flatten(1).argmax(1)
        dy, dx = peak // w, peak % w
        dy, dx = torch.where(dy > h // 2, dy - h, dy), torch.where(dx > w // 2, dx - w, dx)
        return torch.stack((dx, dy), 1).float().view(-1, 2, 1, 1).expand(-1, 2, h, w).contiguous()


def phase_correlation_estimator():
    return FlowEstimator(PhaseCorrelationFlow(), "phase correlation")


def lr_flows(flow_fw, flow_bw, factor):
    """Ground-truth flow on the blur_downsample grid (LR pixel i sits on HR pixel factor * i)."""
    return FlowSet(flow_fw[..., ::factor, ::factor] / factor, flow_bw[..., ::factor, ::factor] / factor)


def steady_detail_kept(result, per_frame, steady):
    """How much of the flicker-free part of the per-frame detail `result` keeps: projections of the high
    bands onto the high band of the steady upscaler (the random grain is uncorrelated with it)."""
    reference = split_frequencies(steady)[1]
    projection = lambda frames: (split_frequencies(frames)[1] * reference).sum()
    return (projection(result) / projection(per_frame)).item()


def hf_kept(result, per_frame):
    """Energy of the result's high band relative to the per-frame result's (the bench's "HF kept")."""
    return (split_frequencies(result)[1].square().mean() / split_frequencies(per_frame)[1].square().mean()).item()


def test_hf_passes_put_the_split_near_the_lr_nyquist():
    assert [hf_passes_for_scale(s) for s in (2, 3, 4, 8)] == [1, 1, 2, 9]
    for scale in (4, 8):  # response of the chosen passes at the LR Nyquist frequency is near one half
        response = torch.cos(torch.tensor(torch.pi / (2 * scale))) ** (4 * hf_passes_for_scale(scale))
        assert 0.35 < response < 0.65


def test_resize_upscaler_modes():
    images = torch.rand(2, 3, 10, 12)
    bicubic = resize_upscaler("bicubic", 3)(images)
    expected = F.interpolate(images, scale_factor=3, mode="bicubic", align_corners=False).clamp(0, 1)
    assert torch.allclose(bicubic, expected)
    for mode in ("lanczos", "bilinear"):
        result = resize_upscaler(mode, 2)(images)
        assert result.shape == (2, 3, 20, 24) and 0 <= result.min() and result.max() <= 1
    flat = torch.full((1, 3, 8, 8), 0.3)
    assert torch.allclose(resize_upscaler("lanczos", 4)(flat), torch.full((1, 3, 32, 32), 0.3), atol=1e-6)
    with pytest.raises(ValueError, match="resize mode"):
        resize_upscaler("nearest", 2)


def test_flickering_upscaler_is_seeded_by_frame_content():
    frames = torch.rand(4, 3, 16, 16)
    upscale = flickering_upscaler(2)
    together = upscale(frames)
    assert torch.equal(together, torch.cat([upscale(frames[i:i + 1]) for i in range(4)]))
    repeated = upscale(frames[:1].expand(2, -1, -1, -1))
    assert torch.equal(repeated[0], repeated[1])
    highs = split_frequencies(upscale(frames[:1].expand(2, -1, -1, -1) + torch.tensor([0.0, 1e-3]).view(2, 1, 1, 1)))[1]
    assert (highs[0] - highs[1]).abs().mean() > 0.01  # a nearly identical frame gets different detail


def static_clip_with_known_detail(num_frames=5, size=12, seed=0):
    """Identical LR frames and an upscaler adding a different known high-pass detail to each frame."""
    generator = torch.Generator().manual_seed(seed)
    frame = 0.3 + 0.4 * torch.rand(1, 3, size, size, generator=generator)
    details = 0.05 * split_frequencies(torch.randn(num_frames, 3, 2 * size, 2 * size, generator=generator))[1]
    bicubic = resize_upscaler("bicubic", 2)

    def upscale(images):  # the whole clip in one call (chunk >= num_frames)
        return bicubic(images) + details[:images.shape[0]]

    return frame.expand(num_frames, -1, -1, -1).contiguous(), upscale


def recurrence_weights(num_frames, weight):
    """Closed form of the two recurrent passes with full visibility -> `[T,T]` mixing matrix."""
    backward = torch.zeros(num_frames, num_frames, dtype=torch.float64)
    forward = torch.zeros_like(backward)
    backward[-1, -1] = forward[0, 0] = 1.0
    for t in range(num_frames - 2, -1, -1):
        backward[t] = weight * backward[t + 1]
        backward[t, t] += 1 - weight
    for t in range(1, num_frames):
        forward[t] = weight * forward[t - 1]
        forward[t, t] += 1 - weight
    return (backward + forward) / 2


@pytest.mark.parametrize("weight", [0.5, 0.8])
def test_static_video_gives_lf_plus_weighted_average_of_hf(weight):
    frames, upscale = static_clip_with_known_detail()
    zero = torch.zeros(4, 2, 12, 12)
    result = temporal_upscale(frames, upscale, 2, flows=FlowSet(zero, zero), prefilter=0.0,
                              temporal_weight=weight, keep_detail=0.0, chunk=8)
    lows, highs = split_frequencies(upscale(frames))
    mixing = recurrence_weights(5, weight).float()
    expected = lows + torch.einsum("tk,kchw->tchw", mixing, highs)
    assert torch.allclose(result, expected, atol=1e-5)
    assert torch.allclose(mixing.sum(1), torch.ones(5))


def test_static_video_keeps_the_per_frame_detail_energy():
    """Independent detail per frame on a static scene: the plain average keeps about
    sum(w^2) of the energy; the energy step brings every sub-band back to the per-frame energy."""
    generator = torch.Generator().manual_seed(1)
    details = 0.05 * split_frequencies(torch.randn(6, 3, 48, 48, generator=generator))[1]
    frames = torch.full((6, 3, 24, 24), 0.5)
    upscale = lambda images: resize_upscaler("bicubic", 2)(images) + details  # flat scene: all detail flickers
    zero = torch.zeros(5, 2, 24, 24)
    run = lambda **kw: temporal_upscale(frames, upscale, 2, flows=FlowSet(zero, zero), chunk=8, **kw)
    lows, highs = split_frequencies(upscale(frames))
    plain, full = run(keep_detail=0.0), run(keep_detail=1.0, max_gain=10.0)
    for band_index in (0, 1):
        energy = lambda result: detail_sub_bands(result - lows, 1)[band_index].square().mean().item()
        per_frame = energy(lows + highs)
        assert energy(plain) < 0.7 * per_frame
        assert energy(full) == pytest.approx(per_frame, rel=0.1)
    halfway = run(keep_detail=0.5, max_gain=10.0)
    assert torch.allclose(halfway - lows, 0.5 * ((plain - lows) + (full - lows)), atol=1e-5)  # linear in strength


def test_match_energy_gain_is_clamped_and_never_attenuates():
    """A stripe pattern with uniform local energy in one sub-band: the gain is sqrt(target ratio)."""
    xs = torch.arange(32.0)
    stripes = 0.1 * torch.cos(torch.pi * xs).view(1, 1, 1, 32).expand(1, 3, 32, 32)  # Nyquist: finer band only
    coarse, fine = detail_sub_bands(stripes, 1)
    assert coarse.abs().max() < 1e-6
    radius = energy_radius(2)
    energy = local_energy(fine, radius)
    targets = lambda factor: torch.cat((torch.zeros_like(energy), factor ** 2 * energy), 1)
    assert torch.allclose(match_energy(stripes, targets(1.5), radius, 1), 1.5 * stripes, atol=1e-6)
    assert torch.allclose(match_energy(stripes, targets(5.0), radius, 1, max_gain=3.0), 3.0 * stripes, atol=1e-6)
    assert torch.allclose(match_energy(stripes, targets(0.5), radius, 1), stripes, atol=1e-6)
    assert torch.allclose(match_energy(stripes, targets(2.0), radius, 1, keep_detail=0.25), 1.25 * stripes,
                          atol=1e-6)


def test_local_energy_is_a_box_mean_of_the_square():
    high = torch.zeros(1, 3, 9, 9)
    high[0, :, 4, 4] = 3.0
    energy = local_energy(high, 1)
    assert energy.shape == (1, 1, 9, 9)
    assert torch.allclose(energy[0, 0, 3:6, 3:6], torch.full((3, 3), 1.0))  # 9 / 9 px
    assert energy.sum().item() == pytest.approx(9.0)


def test_bicubic_warp_keeps_more_fine_detail_than_bilinear():
    """Half-pixel shift of a period-3 pattern (omega = 2 pi / 3): bilinear attenuates it to cos(omega/2) = 0.5;
    Keys cubic (a = -0.75, taps w(0.5) = 0.59375, w(1.5) = -0.09375) to
    2 (w(0.5) cos(omega/2) + w(1.5) cos(3 omega/2)) = 0.78125."""
    xs = torch.arange(48.0)
    pattern = torch.cos(2 * torch.pi * xs / 3).view(1, 1, 1, 48).expand(1, 1, 8, 48).contiguous()
    half = torch.zeros(1, 2, 8, 48)
    half[:, 0] = 0.5
    exact = torch.cos(2 * torch.pi * (xs + 0.5) / 3)[9:39]  # 10 whole periods
    amplitude = lambda mode: (backward_warp(pattern, half, mode=mode)[0][0, 0, 4, 9:39] * exact).mean() / 0.5
    assert amplitude("bilinear").item() == pytest.approx(0.5, abs=0.01)
    assert amplitude("bicubic").item() == pytest.approx(0.78125, abs=0.01)
    shift = torch.zeros(1, 2, 8, 48)
    shift[:, 0] = 2.0
    assert torch.allclose(backward_warp(pattern, shift, mode="bicubic")[0][..., :46], pattern[..., 2:], atol=1e-5)
    with pytest.raises(ValueError, match="mode"):
        backward_warp(pattern, shift, mode="lanczos")


def test_static_video_with_steady_upscaler_is_unchanged():
    frames = 0.2 + 0.6 * torch.rand(1, 3, 16, 16).expand(6, -1, -1, -1)
    zero = torch.zeros(5, 2, 16, 16)
    per_frame = resize_upscaler("lanczos", 2)(frames)
    result = temporal_upscale(frames, resize_upscaler("lanczos", 2), 2, flows=FlowSet(zero, zero), prefilter=0.0,
                              chunk=4)
    assert torch.allclose(result, per_frame, atol=1e-5)


def test_occluded_and_out_of_frame_pixels_keep_their_own_detail():
    """Flow leaving the frame everywhere (visibility 0) -> the per-frame result, untouched."""
    frames = torch.rand(4, 3, 12, 12)
    away = torch.full((3, 2, 12, 12), 40.0)
    upscale = flickering_upscaler(2)
    result = temporal_upscale(frames, upscale, 2, flows=FlowSet(away, away), prefilter=0.0)
    assert torch.allclose(result, upscale(frames), atol=1e-6)


def test_inconsistent_flow_region_is_not_blended():
    """Static clip, but the backward flow disagrees inside a box: there the round trip fails, the soft
    visibility is ~0 and the output keeps each frame's own detail; elsewhere it is averaged."""
    frames, upscale = static_clip_with_known_detail(num_frames=2, size=16)
    forward = torch.zeros(1, 2, 16, 16)
    backward = forward.clone()
    backward[:, 0, 4:12, 4:12] = 6.0
    result = temporal_upscale(frames, upscale, 2, flows=FlowSet(forward, backward), prefilter=0.0,
                              temporal_weight=0.8)
    per_frame = upscale(frames)
    inside, outside = (slice(None), slice(None), slice(14, 18), slice(14, 18)), (..., slice(0, 4), slice(0, 4))
    assert torch.allclose(result[inside], per_frame[inside], atol=1e-3)  # weight 0.8 * exp(-1 * 6) (default alpha 1)
    assert (result[outside] - per_frame[outside]).abs().max() > 0.01


def test_pan_with_estimated_flow_cuts_flicker_and_keeps_detail():
    """Integer-pixel pan (exact E_warp), flow from a phase-correlation estimator on the LR frames (at the LR
    size, flow_min_side 0: phase correlation finds integer shifts, and the pan is integer only there)."""
    hr, flow_fw, flow_bw = translation_clip()
    lr = blur_downsample(hr, 2)
    upscale = flickering_upscaler(2)
    per_frame = upscale(lr)
    wrapped = temporal_upscale(lr, upscale, 2, phase_correlation_estimator(), prefilter=0.0, flow_min_side=0,
                               chunk=3)
    steady = flickering_upscaler(2, sharpen_range=(0.75, 0.75), grain=0.0)(lr)
    e_per_frame, e_wrapped = warping_error(per_frame, flow_fw, flow_bw)[1], warping_error(wrapped, flow_fw, flow_bw)[1]
    assert e_wrapped < 0.3 * e_per_frame
    assert psnr(wrapped, hr).mean() > psnr(per_frame, hr).mean() - 0.2
    assert 0.95 < steady_detail_kept(wrapped, per_frame, steady) < 1.5  # integer motion: warps are exact
    assert hf_kept(wrapped, per_frame) > 0.8


class SizeRecordingPan(torch.nn.Module):
    """Records the frame sizes it is called on and returns the pan `step` (in LR pixels) in its own pixels."""

    def __init__(self, lr_width, step):
        super().__init__()
        self.lr_width, self.step, self.sizes = lr_width, step, []

    def forward(self, image1, image2):
        self.sizes.append(tuple(image1.shape[-2:]))
        flow = torch.tensor(self.step) * image1.shape[-1] / self.lr_width
        return flow.view(1, 2, 1, 1).expand(image1.shape[0], 2, *image1.shape[-2:]).contiguous()


def test_lr_flow_is_estimated_on_enlarged_small_frames_and_scaled_back():
    frames = torch.rand(3, 3, 20, 40)
    pan = SizeRecordingPan(40, (1.5, -0.5))
    flows = estimate_lr_flow(FlowEstimator(pan, "pan"), frames, min_side=64)
    assert set(pan.sizes) == {(64, 128)}
    assert flows.forward.shape == (2, 2, 20, 40) and flows.consecutive
    assert torch.allclose(flows.forward[:, 0], torch.tensor(1.5)) and torch.allclose(flows.forward[:, 1], torch.tensor(-0.5))
    pan.sizes.clear()
    estimate_lr_flow(FlowEstimator(pan, "pan"), frames, min_side=16)  # already big enough: LR size
    assert set(pan.sizes) == {(20, 40)}
    with pytest.raises(ValueError, match="flow_min_side"):
        estimate_lr_flow(FlowEstimator(pan, "pan"), frames, min_side=-1)


def test_small_clip_with_builtin_flow_meets_the_flicker_target():
    """Defaults with the built-in estimator on tiny LR frames (48 px, sub-pixel camera motion): the flow
    is estimated on enlarged frames, which is what brings the E_warp drop near the ground-truth-flow one."""
    clip = render_clip(6, 96, 96, image=astronaut(), motion=3.0, num_layers=1, seed=5)
    lr = blur_downsample(clip.frames, 2)
    upscale = flickering_upscaler(2)
    per_frame = upscale(lr)
    estimator = FlowEstimator(BuiltinFlow(quality="medium"), "built-in")
    flows = (clip.flow_forward, clip.flow_backward)
    e_per_frame = warping_error(per_frame, *flows)[1]
    wrapped = temporal_upscale(lr, upscale, 2, estimator)
    at_lr_size = temporal_upscale(lr, upscale, 2, estimator, flow_min_side=0)
    assert warping_error(wrapped, *flows)[1] < 0.5 * e_per_frame
    assert warping_error(wrapped, *flows)[1] < warping_error(at_lr_size, *flows)[1]
    assert psnr(wrapped, clip.frames).mean() > psnr(per_frame, clip.frames).mean() - 0.2
    assert hf_kept(wrapped, per_frame) > 0.8


def test_moving_layers_with_subpixel_motion():
    """render_clip: camera motion with rotation/zoom plus occluding layers; ground-truth LR flow."""
    clip = render_clip(8, 96, 96, image=astronaut(), motion=3.0, num_layers=2, seed=3)
    lr = blur_downsample(clip.frames, 2)
    upscale = flickering_upscaler(2)
    per_frame = upscale(lr)
    wrapped = temporal_upscale(lr, upscale, 2, flows=lr_flows(clip.flow_forward, clip.flow_backward, 2),
                               prefilter=0.0)
    steady = flickering_upscaler(2, sharpen_range=(0.75, 0.75), grain=0.0)(lr)
    flows = (clip.flow_forward, clip.flow_backward)
    assert warping_error(wrapped, *flows)[1] < 0.6 * warping_error(per_frame, *flows)[1]
    assert psnr(wrapped, clip.frames).mean() > psnr(per_frame, clip.frames).mean() - 0.2
    assert steady_detail_kept(wrapped, per_frame, steady) > 0.9
    assert hf_kept(wrapped, per_frame) > 0.8
    plain = temporal_upscale(lr, upscale, 2, flows=lr_flows(clip.flow_forward, clip.flow_backward, 2),
                             prefilter=0.0, keep_detail=0.0)
    assert hf_kept(plain, per_frame) < hf_kept(wrapped, per_frame) - 0.1  # the energy step is what keeps it


def test_single_frame_and_chunking():
    frames = torch.rand(1, 3, 10, 10)
    upscale = flickering_upscaler(2)
    assert torch.allclose(temporal_upscale(frames, upscale, 2, prefilter=0.0), upscale(frames))
    clip, _, _ = translation_clip(num_frames=5, size=32)
    small = blur_downsample(clip, 2)
    one = temporal_upscale(small, upscale, 2, phase_correlation_estimator(), chunk=1)
    many = temporal_upscale(small, upscale, 2, phase_correlation_estimator(), chunk=5)
    assert torch.allclose(one, many, atol=1e-6)


def test_progress_reaches_the_total_and_can_cancel():
    frames = blur_downsample(translation_clip(num_frames=5, size=32)[0], 2)
    calls = []
    temporal_upscale(frames, resize_upscaler("bicubic", 2), 2, phase_correlation_estimator(), chunk=2,
                     progress=lambda done, total: calls.append((done, total)))
    assert calls[-1][0] == calls[-1][1] == 4 + 3 * 5
    assert [done for done, _ in calls] == sorted(done for done, _ in calls)

    def cancel(done, total):
        if done > 6:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        temporal_upscale(frames, resize_upscaler("bicubic", 2), 2, phase_correlation_estimator(), chunk=2,
                         progress=cancel)


def test_bad_arguments():
    frames = torch.rand(3, 3, 8, 8)
    with pytest.raises(ValueError, match="estimator"):
        temporal_upscale(frames, resize_upscaler("bicubic", 2), 2)
    with pytest.raises(ValueError, match="upscaler returned"):
        temporal_upscale(frames, resize_upscaler("bicubic", 3), 2, phase_correlation_estimator())
    with pytest.raises(ValueError, match="temporal_weight"):
        temporal_upscale(frames, resize_upscaler("bicubic", 2), 2, phase_correlation_estimator(), temporal_weight=2)
    for bad in (-0.1, 1.5):
        with pytest.raises(ValueError, match="keep_detail"):
            temporal_upscale(frames, resize_upscaler("bicubic", 2), 2, phase_correlation_estimator(), keep_detail=bad)
    with pytest.raises(ValueError, match="max_gain"):
        temporal_upscale(frames, resize_upscaler("bicubic", 2), 2, phase_correlation_estimator(), max_gain=0.5)
    with pytest.raises(ValueError, match="consecutive"):
        zero = torch.zeros(1, 2, 8, 8)
        temporal_upscale(frames, resize_upscaler("bicubic", 2), 2, flows=FlowSet(zero, zero))


# ------------------------------------------------------------------ nodes
class NearestTwice(torch.nn.Module):
    def forward(self, images):
        return F.interpolate(images, scale_factor=2, mode="nearest")


class FakeUpscaleModel:
    """What Load Upscale Model hands over, reduced to the parts the node uses: .model and .scale."""

    def __init__(self):
        self.model = NearestTwice()
        self.scale = 2


def test_anti_alias_downsample_node_turns_checkerboard_grey():
    ys, xs = torch.meshgrid(torch.arange(32), torch.arange(32), indexing="ij")
    board = ((ys + xs) % 2).float()[None, :, :, None].expand(2, -1, -1, 3)
    (result,) = TameAntiAliasDownsample().downsample(board, "4")
    assert result.shape == (2, 8, 8, 3)
    assert torch.allclose(result, torch.full_like(result, 0.5), atol=1e-6)


def test_split_and_merge_nodes_round_trip_with_offset():
    image = astronaut()[:, 60:80, 50:74].permute(1, 2, 0)[None].expand(2, -1, -1, -1)  # detail within +-0.5
    low, high = TameSplitFrequencies().split(image, passes=2)
    assert HIGH_OFFSET == 0.5
    expected_low, expected_high = split_frequencies(image.permute(0, 3, 1, 2), passes=2)
    assert torch.allclose(high, (expected_high + 0.5).permute(0, 2, 3, 1), atol=1e-6)
    (merged,) = TameMergeFrequencies().merge(low, high)
    assert torch.allclose(merged, image, atol=1e-5)


def test_temporal_upscale_node_with_upscale_model_and_resize():
    images = blur_downsample(translation_clip(num_frames=4, size=32)[0], 2).permute(0, 2, 3, 1)
    node = TameTemporalUpscale()
    (with_model,) = node.upscale(images, "bicubic", 3, 0.8, 0.0, 2, upscale_model=FakeUpscaleModel(),
                                 flow_model=phase_correlation_estimator())
    assert with_model.shape == (4, 32, 32, 3)  # the model's scale (2) wins over the resize scale
    nearest = F.interpolate(images.permute(0, 3, 1, 2), scale_factor=2, mode="nearest").permute(0, 2, 3, 1)
    assert (with_model - nearest).abs().mean() < 0.05
    (resized,) = node.upscale(images, "lanczos", 3, 0.8, 0.1, 8, flow_model=phase_correlation_estimator())
    assert resized.shape == (4, 48, 48, 3) and 0 <= resized.min() and resized.max() <= 1
    (single,) = node.upscale(images[:1], "bilinear", 2, 0.8, 0.0, 8)  # one frame needs no flow
    assert single.shape == (1, 32, 32, 3)


def test_temporal_upscale_node_keep_detail_input():
    images = blur_downsample(translation_clip(num_frames=4, size=32)[0], 2)
    estimator = phase_correlation_estimator()
    (plain,) = TameTemporalUpscale().upscale(images.permute(0, 2, 3, 1), "bicubic", 2, 0.9, 0.0, 8,
                                             flow_model=estimator, keep_detail=0.0)
    expected = temporal_upscale(images, resize_upscaler("bicubic", 2), 2, estimator, temporal_weight=0.9,
                                keep_detail=0.0)
    assert torch.allclose(plain, expected.permute(0, 2, 3, 1), atol=1e-6)
    with pytest.raises(ValueError, match="keep_detail"):
        TameTemporalUpscale().upscale(images.permute(0, 2, 3, 1), "bicubic", 2, 0.8, 0.0, 8, flow_model=estimator,
                                      keep_detail=2.0)


def test_temporal_upscale_node_default_flow_model():
    images = blur_downsample(translation_clip(num_frames=3, size=32)[0], 2).permute(0, 2, 3, 1)
    (result,) = TameTemporalUpscale().upscale(images, "bicubic", 2, 0.8, 0.0, 8)
    assert result.shape == (3, 32, 32, 3)


def test_temporal_upscale_node_rejects_non_models():
    images = torch.rand(2, 8, 8, 3)
    with pytest.raises(ValueError, match="UPSCALE_MODEL"):
        TameTemporalUpscale().upscale(images, "bicubic", 2, 0.8, 0.0, 8, upscale_model=object())
