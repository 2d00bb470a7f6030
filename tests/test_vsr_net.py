"""TameVSRNet: shapes, the zero-initialised temporal modules, BlurPool, the HF shuttle, exact tiling and
chunking, streaming, cancellation and weight files. Tiny widths and 19x26 LR frames keep it fast."""
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from tame.models.flow.estimate import FlowEstimator
from tame.models.io.weights import load_state_dict, read_safetensors_metadata
from tame.models.vsr import TameVSRNet, load_vsr_weights, save_vsr_weights, upscale_video, upscale_video_stream
from tame.models.vsr.arch import FeaturePropagation
from tame.models.vsr.blocks import Downsample

HEIGHT, WIDTH = 19, 26  # odd and not a multiple of 8: exercises the internal padding


def tiny_net(scale=4, **switches):
    torch.manual_seed(0)
    return TameVSRNet(scale=scale, channels=8, num_blocks=1, unet_multipliers=(1, 2, 2), head_channels=8,
                      **switches).eval()


def perturb(net, keep_temporal=False, std=0.05, seed=1):
    """Move every parameter off its initial value (the zero-initialised ones included), so outputs
    are not trivially bicubic; `keep_temporal` leaves the temporal modules at their zero init."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, parameter in net.named_parameters():
            if keep_temporal and "temporal" in name:
                continue
            parameter.add_(std * torch.randn(parameter.shape, generator=generator))
    return net


def video(frames=6, height=HEIGHT, width=WIDTH, seed=0, offsets=None):
    """A smooth texture seen through a window at `offsets[t]` = (x, y) px (default (2t, t)): frame t
    is `texture(p + offsets[t])`, so F_{t->t+1} = offsets[t] - offsets[t+1]. `[T,3,h,w]` in [0,1]."""
    offsets = offsets or [(2 * t, t) for t in range(frames)]
    generator = torch.Generator().manual_seed(seed)
    texture = F.avg_pool2d(torch.rand(1, 3, height + 3 * frames + 8, width + 3 * frames + 8,
                                      generator=generator), 3, stride=1)[0]
    return torch.stack([texture[:, y:y + height, x:x + width] for x, y in offsets[:frames]])


class PanEstimator(nn.Module):
    """A deterministic stand-in for a flow network: a constant pan plus a term that depends on the
    images, `[N,3,H,W]` x2 -> `[N,2,H,W]`."""

    def forward(self, image1, image2):
        change = (image2.mean((1, 2, 3)) - image1.mean((1, 2, 3))).view(-1, 1, 1, 1)
        base = torch.tensor([1.25, -0.5]).view(1, 2, 1, 1)
        return (base + 8 * change).expand(image1.shape[0], 2, *image1.shape[-2:]).contiguous()


def estimator():
    return FlowEstimator(PanEstimator(), "pan", "cpu")


def clip_flows(frames):
    """Flows of a `[T,3,h,w]` clip as the network's batched inputs `[1,T-1,2,h,w]` (both directions)."""
    module = PanEstimator()
    forward = module(frames[:-1], frames[1:])
    backward = module(frames[1:], frames[:-1])
    return forward[None], backward[None]


def run_clip(net, frames, **kwargs):
    with torch.no_grad():
        return net(frames[None], *clip_flows(frames), **kwargs)[0][0]


# ---------------------------------------------------------------- architecture
@pytest.mark.parametrize("scale", [2, 4, 8])
def test_output_shapes(scale):
    net = tiny_net(scale)
    lr = torch.rand(2, 3, 3, HEIGHT, WIDTH)
    flows = torch.zeros(2, 2, 2, HEIGHT, WIDTH)
    with torch.no_grad():
        sr, state = net(lr, flows, flows)
    assert sr.shape == (2, 3, 3, scale * HEIGHT, scale * WIDTH)
    assert state.hidden.shape == (2, 8, HEIGHT, WIDTH)
    assert len(net.decoder) == 3 + {2: 1, 4: 2, 8: 3}[scale]
    assert sum(block.attention is not None for block in net.decoder) == 1
    assert net.decoder[0].attention is not None


def test_untrained_network_is_bicubic():
    net = tiny_net(use_noise=True)
    frames = video(3)
    expected = F.interpolate(frames, scale_factor=4, mode="bicubic", align_corners=False)
    assert torch.allclose(run_clip(net, frames), expected, atol=1e-6)


def test_zero_initialised_temporal_modules_leave_the_image_network_unchanged():
    frames = video(4)
    inflated = perturb(tiny_net(use_propagation=False), keep_temporal=True)
    image_net = tiny_net(use_propagation=False, use_temporal=False)
    image_state = {k: v for k, v in inflated.state_dict().items() if "temporal" not in k}
    image_net.load_state_dict(image_state)  # strict: the only difference is the temporal modules
    per_frame = torch.cat([run_clip(image_net, frames[t:t + 1]) for t in range(4)])
    clip = run_clip(inflated, frames)
    bicubic = F.interpolate(frames, scale_factor=4, mode="bicubic", align_corners=False)
    assert (clip - bicubic).abs().max() > 1e-3  # the comparison is not between two bicubic images
    assert torch.allclose(clip, per_frame, atol=1e-5)

    propagating = perturb(tiny_net(), keep_temporal=True)
    no_temporal = tiny_net(use_temporal=False)
    no_temporal.load_state_dict({k: v for k, v in propagating.state_dict().items() if "temporal" not in k})
    assert torch.allclose(run_clip(propagating, frames), run_clip(no_temporal, frames), atol=1e-5)

    perturb(inflated)  # once trained, the temporal modules mix frames
    assert (run_clip(inflated, frames) - per_frame).abs().max() > 1e-4


class AddHiddenState(nn.Module):
    """Stand-in recurrent trunk: `[features, warped hidden]` -> their sum."""

    def forward(self, stacked):
        features, hidden = stacked.chunk(2, dim=1)
        return features + hidden


def test_propagation_warps_the_hidden_state_onto_each_frame():
    """With a summing trunk and exact flows of a known pan, the backward branch at frame t holds
    (T - t) aligned copies of frame t and the forward branch t + 1 copies (away from the borders)."""
    offsets = torch.tensor([(0, 0), (2, 1), (3, 3), (6, 4), (7, 4)])
    frames = video(5, offsets=offsets.tolist())
    steps = (offsets[1:] - offsets[:-1]).float()  # F_{t+1->t} = steps[t], F_{t->t+1} = -steps[t]
    pan = steps.view(1, 4, 2, 1, 1).expand(1, 4, 2, HEIGHT, WIDTH)
    propagation = FeaturePropagation(3, 0)
    propagation.backward_trunk = propagation.forward_trunk = AddHiddenState()
    backward, _ = propagation.backward_pass(frames[None], -pan)
    forward, state = propagation.forward_pass(frames[None], pan)
    inner = (slice(None), slice(4, -4), slice(7, -7))
    for t in range(5):
        assert torch.allclose(backward[0, t][inner], (5 - t) * frames[t][inner], atol=1e-5)
        assert torch.allclose(forward[0, t][inner], (t + 1) * frames[t][inner], atol=1e-5)
    continued, _ = propagation.forward_pass(frames[None, 4:], pan[:, :0], state.linked(pan[:, 0] * 0))
    assert torch.allclose(continued[0, 0][inner], 6 * frames[4][inner], atol=1e-5)


def checkerboard(channels=4, size=16):
    """+-1 at the Nyquist frequency in both directions, a different amplitude per channel."""
    rows, cols = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    sign = 1.0 - 2.0 * ((rows + cols) % 2).float()
    return torch.linspace(0.5, 2.0, channels).view(1, channels, 1, 1) * sign


def test_blurpool_encoder_does_not_alias_a_checkerboard():
    blur = tiny_net().downsample[0]
    strided = tiny_net(use_blurpool=False).downsample[0]
    strided.load_state_dict(blur.state_dict())
    assert isinstance(blur, Downsample) and blur.blurpool and not strided.blurpool
    pattern = checkerboard(channels=8)
    shifted = torch.roll(pattern, 1, dims=-1)  # the same pattern one pixel over (= -pattern)
    with torch.no_grad():
        inner = (slice(None), slice(None), slice(2, -2), slice(2, -2))  # away from the zero padding
        blurred, blurred_shifted = blur(pattern)[inner], blur(shifted)[inner]
        naive, naive_shifted = strided(pattern)[inner], strided(shifted)[inner]
    # BlurPool removes the Nyquist component: a flat result that ignores the 1-pixel shift
    assert torch.allclose(blurred, blurred_shifted, atol=1e-5)
    assert torch.allclose(blurred, blurred.mean((2, 3), keepdim=True), atol=1e-5)
    # the strided conv aliases it to a constant whose value flips with the shift
    assert (naive - naive_shifted).abs().max() > 0.1


def binomial_lowpass(x):
    """Reference [1,4,6,4,1]/16 blur as one 5x5 depthwise conv with reflect padding."""
    taps = torch.tensor([1.0, 4.0, 6.0, 4.0, 1.0]) / 16
    kernel = (taps[:, None] * taps[None, :]).expand(x.shape[1], 1, 5, 5)
    return F.conv2d(F.pad(x, (2, 2, 2, 2), mode="reflect"), kernel, groups=x.shape[1])


def test_hf_shuttle_carries_features_minus_their_lowpass():
    features = torch.randn(2, 8, 32, 40)
    shuttled, plain = tiny_net(), tiny_net(use_hf_shuttle=False)
    with torch.no_grad():
        _, levels = shuttled.encode(features)
        skips = shuttled.skip_features(levels)
    assert [f.shape[-1] for f in levels] == [40, 20, 10]
    for level, skip in zip(levels, skips):
        assert torch.allclose(skip, level - binomial_lowpass(level), atol=1e-5)
        assert skip.abs().max() > 1e-3
    assert all(torch.equal(a, b) for a, b in zip(plain.skip_features(levels), levels))
    constant = torch.ones(1, 8, 16, 16)
    assert shuttled.skip_features([constant])[0].abs().max() < 1e-6


# ---------------------------------------------------------------- inference
def test_tiles_give_the_whole_frame_result_and_match_forward():
    """Tiling is exact for any network: temporal modules trained (perturbed) and noise on."""
    net = perturb(tiny_net(use_noise=True))
    frames = video(5)
    whole = upscale_video(net, frames, estimator(), chunk_frames=5, tile=0, seed=3)
    overlap = 2 * net.tile_margin + 1
    tiled = upscale_video(net, frames, estimator(), chunk_frames=5, tile=2 * overlap, tile_overlap=overlap,
                          seed=3)
    assert whole.shape == (5, 3, 4 * HEIGHT, 4 * WIDTH)
    assert torch.allclose(tiled, whole, atol=1e-5)
    reference = run_clip(net, frames, noise_seed=3).clamp(0, 1)
    assert torch.allclose(whole, reference, atol=1e-5)


def test_too_small_a_tile_margin_would_show():
    """The exactness above is not automatic: tiles that trust their edges differ from whole frames."""
    net = perturb(tiny_net())
    frames = video(2)
    with torch.no_grad():
        padded = torch.randn(1, 2, 8, 24, 32)
        trunk = net.unet_trunk(padded)[0]
        whole = net.unet_head(trunk)
        left = net.unet_head(trunk[..., :16])
    assert (left[..., :, 4 * 14:4 * 16] - whole[..., :, 4 * 14:4 * 16]).abs().max() > 1e-4
    margin = net.tile_margin
    inner = 4 * (16 - margin)
    assert torch.allclose(left[..., :inner], whole[..., :inner], atol=1e-5)


def test_chunking_is_exact_while_the_temporal_modules_are_zero():
    frames = video(5)
    net = perturb(tiny_net(use_noise=True), keep_temporal=True)
    whole = upscale_video(net, frames, estimator(), chunk_frames=5)
    for chunk in (1, 2):
        chunked = upscale_video(net, frames, estimator(), chunk_frames=chunk, tile=24, tile_overlap=12)
        assert torch.allclose(chunked, whole, atol=1e-5)
    perturb(net)  # trained temporal modules see only their chunk, so chunk borders now matter
    difference = upscale_video(net, frames, estimator(), chunk_frames=2) - \
        upscale_video(net, frames, estimator(), chunk_frames=5)
    assert difference.abs().max() > 1e-4


def chunks_of(frames, size, consumed=None):
    for start in range(0, frames.shape[0], size):
        if consumed is not None:
            consumed.append(start)
        yield frames[start:start + size]


def test_streaming_matches_the_whole_clip_where_the_lookahead_reaches_the_end():
    frames = video(8)
    net = perturb(tiny_net(use_noise=True))
    whole = upscale_video(net, frames, estimator(), chunk_frames=3, seed=5)

    written = []
    count = upscale_video_stream(net, chunks_of(frames, 2), written.append, estimator(), chunk_frames=3,
                                 lookahead_frames=8, seed=5)
    assert count == 8 and [c.shape[0] for c in written] == [3, 3, 2]
    assert torch.allclose(torch.cat(written), whole, atol=1e-5)

    written = []
    upscale_video_stream(net, chunks_of(frames, 5), written.append, estimator(), chunk_frames=3,
                         lookahead_frames=2, seed=5)
    streamed = torch.cat(written)
    # chunk [0,3) starts its backward pass at frame 4, chunks [3,6) and [6,8) at the last frame
    assert torch.allclose(streamed[3:], whole[3:], atol=1e-5)
    assert (streamed[:3] - whole[:3]).abs().max() > 1e-6
    assert (streamed[:3] - whole[:3]).abs().max() < 0.05

    written = []
    upscale_video_stream(net, chunks_of(frames, 3), written.append, estimator(), chunk_frames=3,
                         lookahead_frames=0, seed=5)
    assert torch.allclose(torch.cat(written)[6:], whole[6:], atol=1e-5)  # only the last chunk sees the end


def test_cancelling_stops_within_one_chunk():
    frames = video(9)
    net = tiny_net()

    def cancel(done, total):
        raise RuntimeError("cancelled")

    written, consumed = [], []
    with pytest.raises(RuntimeError, match="cancelled"):
        upscale_video_stream(net, chunks_of(frames, 1, consumed), written.append, estimator(),
                             chunk_frames=2, lookahead_frames=1, progress=cancel)
    assert len(written) == 1 and len(consumed) <= 2 + 1 + 1

    calls = []
    original = net.unet_trunk
    net.unet_trunk = lambda *args: calls.append(1) or original(*args)
    reports = []

    def cancel_first_upscaled_chunk(done, total):
        reports.append((done, total))
        if done > 2 * total // 3:
            raise RuntimeError("cancelled")

    with pytest.raises(RuntimeError, match="cancelled"):
        upscale_video(net, frames, estimator(), chunk_frames=3, progress=cancel_first_upscaled_chunk)
    assert len(calls) == 1 and reports[-1] == (7, 9)


def test_a_single_frame_or_non_rgb_input_is_refused():
    net = tiny_net()
    with pytest.raises(ValueError, match="at least 2 frames"):
        upscale_video(net, video(1), estimator())
    with pytest.raises(ValueError, match="at least 2 frames"):
        upscale_video_stream(net, [video(1)], lambda chunk: None, estimator())
    with pytest.raises(ValueError, match="RGB"):
        upscale_video(net, torch.rand(3, 4, HEIGHT, WIDTH), estimator())
    with pytest.raises(ValueError, match="tile_overlap"):
        upscale_video(net, video(2), estimator(), tile=32, tile_overlap=2)


# ---------------------------------------------------------------- weights
def test_weights_round_trip_and_scale_check(tmp_path):
    net = perturb(tiny_net(scale=4, use_noise=True))
    path = save_vsr_weights(net, tmp_path / "vsr.safetensors", metadata={"trained_on": "test clips"})
    metadata = read_safetensors_metadata(path)
    assert metadata["trained_on"] == "test clips"
    loaded = load_vsr_weights(load_state_dict(path), metadata, scale=4)
    assert loaded.config == net.config
    frames = video(3)
    assert torch.equal(run_clip(loaded, frames), run_clip(net, frames))

    half = save_vsr_weights(net, tmp_path / "half.safetensors", dtype=torch.float16)
    assert half.stat().st_size < 0.6 * path.stat().st_size
    from_half = load_vsr_weights(load_state_dict(half), read_safetensors_metadata(half))
    assert torch.allclose(run_clip(from_half, frames), run_clip(net, frames), atol=2e-3)

    with pytest.raises(ValueError, match="(?i)these weights are 4x; choose scale 4 or load 2x weights"):
        load_vsr_weights(load_state_dict(path), metadata, scale=2)
    with pytest.raises(ValueError, match="no Tame VSR configuration"):
        load_vsr_weights(load_state_dict(path), {})
    state = load_state_dict(path)
    state.pop(next(iter(state)))
    with pytest.raises(ValueError, match="do not match"):
        load_vsr_weights(state, metadata)
