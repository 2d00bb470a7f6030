"""TameVSRNet: a small video super-resolution network with the five components of VideoGigaGAN
(specs/vsr.md), each switchable for ablations.

Data flow for a clip `lr [B,T,3,h,w]`:
1. per-frame features (conv + residual block) at the low resolution (LR);
2. flow-guided bidirectional propagation (BasicVSR style, `use_propagation`): a backward branch runs
   t = T-1 .. 0, a forward branch t = 0 .. T-1, each warping its previous hidden state onto the
   current frame with the LR flow and fusing it with the current features through residual blocks;
   the two branches are independent and fused per frame (so a stream can carry the forward state
   exactly and approximate the backward one with a look-ahead window);
3. an asymmetric U-Net on the propagated features (padded to a multiple of 8): 3 encoder blocks, each
   ending in a downsampling that is anti-aliased (`use_blurpool`) or a stride-2 conv; skips carry
   `f - lowpass(f)` (`use_hf_shuttle`) or the whole `f`; 3 + log2(scale) decoder blocks, each ending in
   a x2 upsampling; spatial self-attention only in the first decoder block (`use_spatial_attention`);
   temporal conv + temporal self-attention (zero-initialised, `use_temporal`) in the decoder blocks at
   or below LR resolution; optional seeded per-block noise (`use_noise`);
4. output = bicubic(LR) + predicted residual; the last decoder block upsamples straight to the RGB
   residual (3x3 conv + pixel shuffle) and starts at zero, so an untrained network is exactly bicubic.

The U-Net is split for inference: the *trunk* (encoder and decoder blocks down to LR resolution,
including all attention) runs on whole frames of a chunk; the *head* (everything above LR
resolution: memory-heavy but with a receptive field of a few LR pixels) runs on spatial tiles.
"""
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ...kernels.warp import backward_warp
from .blocks import DecoderBlock, Downsample, activation, conv3x3, high_frequency_shuttle, residual_stack

SUPPORTED_SCALES = (2, 4, 8)
ENCODER_LEVELS = 3
GRID = 2 ** ENCODER_LEVELS  # the U-Net needs sides that are multiples of this
MIN_PADDED_SIDE = 2 * GRID  # keeps the deepest blur (5 taps, reflect padding) inside the image


@dataclass
class PropagationState:
    """Hidden state of a recurrent branch, to continue propagation in a later call.

    hidden: `[B,C,h,w]` state after the last frame of the previous call.
    flow_to_hidden: `[B,2,h,w]` flow from the first frame of the next call to the frame of `hidden`
        (forward branch: F_{t0 -> t0-1}; backward branch: F_{t1 -> t1+1}); set it with `linked`
        before passing the state on. None until then.
    """
    hidden: torch.Tensor
    flow_to_hidden: torch.Tensor = None

    def linked(self, flow):
        """This state with `flow_to_hidden` set, `flow` `[B,2,h,w]`."""
        return PropagationState(self.hidden, flow)


def padded_size(height, width):
    """(H, W) the U-Net runs at: multiples of 8, at least 16."""
    return tuple(max(MIN_PADDED_SIDE, math.ceil(side / GRID) * GRID) for side in (height, width))


def pad_frames(x, size):
    """Replicate-pad `[N,C,h,w]` at the bottom/right to `size` (H, W)."""
    pad_h, pad_w = size[0] - x.shape[-2], size[1] - x.shape[-1]
    return F.pad(x, (0, pad_w, 0, pad_h), mode="replicate") if pad_h or pad_w else x


def bicubic_upscale(lr, scale):
    """`[...,3,h,w]` -> `[...,3,scale*h,scale*w]` bicubic (pixel-area grid, borders clamped)."""
    flat = lr.reshape(-1, *lr.shape[-3:])
    up = F.interpolate(flat, scale_factor=scale, mode="bicubic", align_corners=False)
    return up.reshape(*lr.shape[:-2], *up.shape[-2:])


def frame_noise_seed(seed, frame, block):
    """Generator seed for the noise of `block` in video frame `frame` (deterministic, < 2**63)."""
    return (int(seed) * 1_000_003 + int(frame) * 64 + int(block)) % (2 ** 63)


class FeaturePropagation(nn.Module):
    """BasicVSR-style bidirectional recurrent propagation of LR features (`channels` wide).

    Each branch: `hidden_t = trunk([features_t, warp(hidden_prev, flow)])` with a 3x3 conv and
    `num_blocks` residual blocks; `fuse([features, backward, forward])` (1x1 conv) gives the U-Net input.
    """

    def __init__(self, channels, num_blocks):
        super().__init__()
        self.backward_trunk = nn.Sequential(conv3x3(2 * channels, channels), activation(),
                                            residual_stack(channels, num_blocks))
        self.forward_trunk = nn.Sequential(conv3x3(2 * channels, channels), activation(),
                                           residual_stack(channels, num_blocks))
        self.fuse = nn.Sequential(nn.Conv2d(3 * channels, channels, 1), activation())

    @staticmethod
    def _recur(trunk, features, flows, order, state):
        """Run `trunk` over the frames in `order`; `flows[:, i]` aligns the hidden state of the
        previously visited frame with frame `order[i]` (i >= 1). Returns (hidden `[B,T,C,h,w]`, state)."""
        b, t, c, h, w = features.shape
        if state is None:
            hidden = features.new_zeros(b, c, h, w)
        else:
            if state.flow_to_hidden is None:
                raise ValueError("A propagation state passed to the next call needs flow_to_hidden: the "
                                 "flow from that call's first frame to the state's frame (state.linked(flow)).")
            hidden = backward_warp(state.hidden, state.flow_to_hidden.to(features.dtype))[0]
        outputs = [None] * t
        for step, frame in enumerate(order):
            if step > 0:
                hidden = backward_warp(hidden, flows[:, step - 1])[0]
            hidden = trunk(torch.cat((features[:, frame], hidden), 1))
            outputs[frame] = hidden
        return torch.stack(outputs, 1), PropagationState(hidden)

    def backward_pass(self, features, flows_forward, state=None):
        """features `[B,T,C,h,w]`, flows_forward `[B,T-1,2,h,w]` (F_{t->t+1}) -> (hidden `[B,T,C,h,w]`,
        state at frame 0). Frames are visited T-1 .. 0; `state` continues from a later clip."""
        order = list(range(features.shape[1] - 1, -1, -1))
        return self._recur(self.backward_trunk, features, flows_forward.flip(1), order, state)

    def forward_pass(self, features, flows_backward, state=None):
        """features `[B,T,C,h,w]`, flows_backward `[B,T-1,2,h,w]` (F_{t+1->t}) -> (hidden `[B,T,C,h,w]`,
        state at frame T-1). Frames are visited 0 .. T-1; `state` continues from an earlier clip."""
        order = list(range(features.shape[1]))
        return self._recur(self.forward_trunk, features, flows_backward, order, state)

    def combine(self, features, backward_hidden, forward_hidden):
        """Three `[B,T,C,h,w]` -> fused `[B,T,C,h,w]`."""
        stacked = torch.cat((features, backward_hidden, forward_hidden), 2)
        return self.fuse(stacked.flatten(0, 1)).unflatten(0, features.shape[:2])


class TameVSRNet(nn.Module):
    """Video super-resolution network (see the module docstring for the data flow).

    The defaults are the shipped small configuration: 0.32 M parameters (1.3 MB as float32), 12 GFLOP
    per frame at 320x180 -> 1280x720. The shipped default weights use `channels=32, num_blocks=4`:
    1.36 M parameters, 50 GFLOP per frame (both small enough to train on a CPU).

    Args:
        scale: 2, 4 or 8.
        channels: width of the LR features, the propagation and U-Net level 0.
        num_blocks: residual blocks per propagation branch.
        unet_multipliers: widths of U-Net levels 1..3 as multiples of `channels`.
        unet_blocks: residual blocks per encoder level and per decoder block.
        head_channels: width of the decoder blocks above LR resolution (unused at scale 2).
        use_*: the switchable components (propagation, BlurPool, HF shuttle, temporal modules,
            spatial attention) and per-block noise.
    """

    def __init__(self, scale=4, channels=16, num_blocks=1, unet_multipliers=(2, 2, 4), unet_blocks=1,
                 head_channels=16, use_propagation=True, use_blurpool=True, use_hf_shuttle=True,
                 use_temporal=True, use_spatial_attention=True, use_noise=False):
        super().__init__()
        if scale not in SUPPORTED_SCALES:
            raise ValueError(f"scale must be one of {SUPPORTED_SCALES}, got {scale!r}.")
        if len(unet_multipliers) != ENCODER_LEVELS:
            raise ValueError(f"unet_multipliers needs {ENCODER_LEVELS} entries (levels 1..3), "
                             f"got {unet_multipliers!r}.")
        self.config = dict(
            scale=scale, channels=channels, num_blocks=num_blocks, unet_multipliers=list(unet_multipliers),
            unet_blocks=unet_blocks, head_channels=head_channels, use_propagation=use_propagation,
            use_blurpool=use_blurpool, use_hf_shuttle=use_hf_shuttle, use_temporal=use_temporal,
            use_spatial_attention=use_spatial_attention, use_noise=use_noise)
        self.scale = scale
        self.upsamplings = int(math.log2(scale))
        widths = [channels] + [channels * m for m in unet_multipliers]

        self.extract = nn.Sequential(conv3x3(3, channels), activation(), residual_stack(channels, 1))
        self.propagation = FeaturePropagation(channels, num_blocks) if use_propagation else None
        self.encoder = nn.ModuleList(residual_stack(widths[i], unet_blocks) for i in range(ENCODER_LEVELS))
        self.downsample = nn.ModuleList(
            Downsample(widths[i], widths[i + 1], use_blurpool) for i in range(ENCODER_LEVELS))
        self.decoder = nn.ModuleList(self._decoder_blocks(widths, unet_blocks, head_channels))

    def _decoder_blocks(self, widths, unet_blocks, head_channels):
        """Blocks 0..2 climb levels 3 -> 0, block 3 sits at LR resolution, blocks 4.. above it."""
        cfg = self.config
        count = ENCODER_LEVELS + self.upsamplings
        for index in range(count):
            level = ENCODER_LEVELS - index  # < 0 above LR resolution
            in_width = widths[level] if level >= 0 else head_channels
            out_width = widths[level - 1] if level >= 1 else head_channels
            yield DecoderBlock(
                in_width, out_width, skip_channels=widths[level] if 0 <= level < ENCODER_LEVELS else 0,
                num_blocks=unet_blocks, spatial_attention=cfg["use_spatial_attention"] and index == 0,
                temporal=cfg["use_temporal"] and level >= 0, noise=cfg["use_noise"],
                to_image=index == count - 1)

    # ------------------------------------------------------------------ geometry
    def block_factor(self, index):
        """Resolution of decoder block `index` relative to the LR frame (1/8 .. scale/2)."""
        return 2.0 ** (index - ENCODER_LEVELS)

    @property
    def head_radius(self):
        """Receptive-field radius of the head (all layers above LR resolution), in LR pixels."""
        radius, last = 0.0, len(self.decoder) - 1
        for index in range(ENCODER_LEVELS, last + 1):
            factor = self.block_factor(index)
            if index > ENCODER_LEVELS:
                radius += 2 * self.config["unet_blocks"] / factor  # residual blocks' 3x3 convs
            # bilinear x2 (< 1 input pixel) + 3x3 conv at twice the resolution; the last upsampling
            # is a 3x3 conv + pixel shuffle
            radius += (1.0 if index == last else 1.5) / factor
        return radius

    @property
    def tile_margin(self):
        """LR pixels next to a tile's inner edge whose head output differs from a whole-frame run."""
        return math.ceil(self.head_radius) + 1

    # ------------------------------------------------------------------ stages
    def extract_features(self, lr):
        """`[B,T,3,h,w]` in [0,1] -> per-frame features `[B,T,C,h,w]`."""
        return self.extract(lr.flatten(0, 1)).unflatten(0, lr.shape[:2])

    def propagate(self, features, flows_forward, flows_backward, state=None):
        """Bidirectional propagation over a whole clip -> (U-Net input `[B,T,C,h,w]`, forward state).

        Without propagation the features pass unchanged and the state is None.
        """
        if self.propagation is None:
            return features, None
        backward_hidden, _ = self.propagation.backward_pass(features, flows_forward)
        forward_hidden, state = self.propagation.forward_pass(features, flows_backward, state)
        return self.propagation.combine(features, backward_hidden, forward_hidden), state

    def encode(self, x):
        """Encoder: `[N,C,H,W]` -> (bottom `[N,C3,H/8,W/8]`, [f_0, f_1, f_2] level features before
        each downsampling)."""
        levels = []
        for block, down in zip(self.encoder, self.downsample):
            x = block(x)
            levels.append(x)
            x = down(x)
        return x, levels

    def skip_features(self, level_features):
        """What each encoder level sends to the decoder: its HF part (`f - lowpass(f)`) with the HF
        shuttle, else the whole features."""
        if not self.config["use_hf_shuttle"]:
            return list(level_features)
        return [high_frequency_shuttle(f) for f in level_features]

    def unet_trunk(self, features, noise=None):
        """Encoder and the decoder blocks up to LR resolution on whole frames.

        features `[B,T,C,H,W]` with H, W multiples of 8 (see `padded_size`); noise: per-block maps
        from `noise_maps` (None = no noise). Returns `[B,T,C,H,W]`, the input of `unet_head`.
        """
        b, t = features.shape[:2]
        x, levels = self.encode(features.flatten(0, 1))
        skips = self.skip_features(levels)
        for index in range(ENCODER_LEVELS + 1):
            block = self.decoder[index]
            skip = skips[ENCODER_LEVELS - index] if index > 0 else None
            x = block.body(x, t, skip, None if noise is None else noise[index])
            if index < ENCODER_LEVELS:
                x = block.upsample(x)
        return x.unflatten(0, (b, t))

    def unet_head(self, x, noise=None):
        """Decoder layers above LR resolution: `[N,C,h,w]` (trunk output, whole or a tile) ->
        residual `[N,3,scale*h,scale*w]`. noise: the full list from `noise_maps`, cropped to the tile."""
        x = self.decoder[ENCODER_LEVELS].upsample(x)
        for index in range(ENCODER_LEVELS + 1, len(self.decoder)):
            block = self.decoder[index]
            x = block.upsample(block.body(x, 1, None, None if noise is None else noise[index]))
        return x

    def noise_maps(self, batch, frame_indices, size, seed=None, device=None):
        """Per-decoder-block noise `[batch*T,1,H_j,W_j]` for frames `frame_indices` of a video whose
        padded LR size is `size` (H, W), or None when the network has no noise layers.

        seed None draws from torch's global generator (training); an integer makes the noise of
        frame t and block j a fixed function of (seed, t, j), the same for every chunk and tile.
        """
        if not self.config["use_noise"]:
            return None
        maps = []
        for index in range(len(self.decoder)):
            shape = tuple(int(side * self.block_factor(index)) for side in size)
            if seed is None:
                maps.append(torch.randn(batch * len(frame_indices), 1, *shape, device=device))
                continue
            frames = [torch.randn(1, 1, *shape, generator=torch.Generator().manual_seed(
                frame_noise_seed(seed, frame, index))) for frame in frame_indices]
            maps.append(torch.cat(frames).to(device).repeat(batch, 1, 1, 1))
        return maps

    # ------------------------------------------------------------------ whole clip
    def forward(self, lr, flows_forward, flows_backward, state=None, frame_offset=0, noise_seed=None):
        """Upscale a clip.

        lr: `[B,T,3,h,w]` in [0,1] (T >= 1, any h, w). flows_forward: `[B,T-1,2,h,w]` F_{t->t+1} on the
        LR frames; flows_backward: `[B,T-1,2,h,w]` F_{t+1->t}. state: the forward-branch state returned
        by the previous clip, `linked` with F_{first frame -> previous last frame}, or None.
        frame_offset: index of the first frame in the video (selects the seeded noise).
        noise_seed: None = fresh random noise in training mode and seed 0 in eval mode.
        Returns (sr `[B,T,3,scale*h,scale*w]`, unclamped; forward-branch state or None).
        """
        self._check_clip(lr, flows_forward, flows_backward)
        b, t, _, h, w = lr.shape
        features, state = self.propagate(self.extract_features(lr), flows_forward, flows_backward, state)
        size = padded_size(h, w)
        padded = pad_frames(features.flatten(0, 1), size).unflatten(0, (b, t))
        if noise_seed is None and not self.training:
            noise_seed = 0
        noise = self.noise_maps(b, range(frame_offset, frame_offset + t), size, noise_seed, lr.device)
        residual = self.unet_head(self.unet_trunk(padded, noise).flatten(0, 1), noise)
        residual = residual[..., :self.scale * h, :self.scale * w].unflatten(0, (b, t))
        return bicubic_upscale(lr, self.scale) + residual, state

    @staticmethod
    def _check_clip(lr, flows_forward, flows_backward):
        if not isinstance(lr, torch.Tensor) or lr.dim() != 5 or lr.shape[2] != 3:
            raise ValueError(f"lr must be a tensor [B,T,3,h,w] (RGB clips), got "
                             f"{tuple(getattr(lr, 'shape', ()))}.")
        b, t, _, h, w = lr.shape
        expected = (b, t - 1, 2, h, w)
        for name, flows in (("flows_forward", flows_forward), ("flows_backward", flows_backward)):
            if not isinstance(flows, torch.Tensor) or tuple(flows.shape) != expected:
                raise ValueError(f"{name} must be [B,T-1,2,h,w] = {list(expected)} (one LR flow per "
                                 f"pair of consecutive frames), got {tuple(getattr(flows, 'shape', ()))}.")
