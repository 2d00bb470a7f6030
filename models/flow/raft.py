"""RAFT optical flow (Teed & Deng, "RAFT: Recurrent All-Pairs Field Transforms for Optical Flow", 2020).

Written for this pack; the parameter names and shapes follow torchvision's `raft_large` / `raft_small`
state dicts exactly, so the published torchvision checkpoints load with `load_state_dict(strict=True)`
(see `checkpoints.py`). Structure (paper section 3):

- feature encoder: shared by both images, 1/8 resolution features (instance norm).
- context encoder: image 1 only; its output splits into the initial GRU hidden state (tanh) and a
  context feature (ReLU).
- all-pairs correlation of the two feature maps, average-pooled into a 4-level pyramid; each iteration
  looks up a (2r+1)^2 window around the current correspondence on every level.
- update block: motion encoder (correlation + current flow) -> convolutional GRU -> flow head (delta).
- upsampling x8: convex combination of the 3x3 coarse neighbours with predicted weights (large), or
  bilinear (small).

Images are `[N,3,H,W]` in [0,1]; they are mapped to [-1,1] as torchvision's optical-flow transform does,
replicate-padded (centred) to a multiple of 8 and to at least 128 px per side, and the flow is cropped
back, so any size works.
"""
import math

import torch
import torch.nn.functional as F
from torch import nn

FACTOR = 8          # the encoders downsample by 8
MIN_SIDE = 128      # a 4-level pyramid over 1/8-resolution features needs >= 16 feature pixels per side


def _conv_unit(in_channels, out_channels, kernel_size, stride=1, norm=None, relu=True):
    """conv (with bias) -> optional norm -> optional ReLU, indexed 0, 1, 2 like torchvision's blocks."""
    layers = [nn.Conv2d(in_channels, out_channels, kernel_size, stride, padding=(kernel_size - 1) // 2)]
    if norm == "instance":
        layers.append(nn.InstanceNorm2d(out_channels))
    elif norm == "batch":
        layers.append(nn.BatchNorm2d(out_channels))
    elif norm is not None:
        raise ValueError(f"unknown norm '{norm}' (use 'instance', 'batch' or None)")
    if relu:
        layers.append(nn.ReLU())
    return nn.Sequential(*layers)


def _shortcut(in_channels, out_channels, stride, norm):
    """Identity, or a strided 1x1 projection when the block changes resolution."""
    if stride == 1 and in_channels == out_channels:
        return nn.Identity()
    return _conv_unit(in_channels, out_channels, 1, stride, norm, relu=False)


class ResidualUnit(nn.Module):
    """Two 3x3 conv-norm-ReLU layers plus shortcut, ReLU after the sum (RAFT-large encoders)."""

    def __init__(self, in_channels, out_channels, norm, stride=1):
        super().__init__()
        self.convnormrelu1 = _conv_unit(in_channels, out_channels, 3, stride, norm)
        self.convnormrelu2 = _conv_unit(out_channels, out_channels, 3, 1, norm)
        self.downsample = _shortcut(in_channels, out_channels, stride, norm)

    def forward(self, x):
        return F.relu(self.downsample(x) + self.convnormrelu2(self.convnormrelu1(x)))


class BottleneckUnit(nn.Module):
    """1x1 reduce to a quarter -> 3x3 (strided) -> 1x1 expand, plus shortcut (RAFT-small encoders)."""

    def __init__(self, in_channels, out_channels, norm, stride=1):
        super().__init__()
        narrow = out_channels // 4
        self.convnormrelu1 = _conv_unit(in_channels, narrow, 1, 1, norm)
        self.convnormrelu2 = _conv_unit(narrow, narrow, 3, stride, norm)
        self.convnormrelu3 = _conv_unit(narrow, out_channels, 1, 1, norm)
        self.downsample = _shortcut(in_channels, out_channels, stride, norm)

    def forward(self, x):
        branch = self.convnormrelu3(self.convnormrelu2(self.convnormrelu1(x)))
        return F.relu(self.downsample(x) + branch)


class Encoder(nn.Module):
    """`[N,3,H,W]` -> `[N,widths[4],H/8,W/8]`: 7x7 stride-2 stem, three stages of two units, 1x1 head."""

    def __init__(self, widths, unit, norm):
        super().__init__()
        if len(widths) != 5:
            raise ValueError(f"encoder widths need 5 entries (stem, 3 stages, output), got {widths}")
        self.convnormrelu = _conv_unit(3, widths[0], 7, 2, norm)
        self.layer1 = self._stage(unit, widths[0], widths[1], norm, stride=1)
        self.layer2 = self._stage(unit, widths[1], widths[2], norm, stride=2)
        self.layer3 = self._stage(unit, widths[2], widths[3], norm, stride=2)
        self.conv = nn.Conv2d(widths[3], widths[4], 1)

    @staticmethod
    def _stage(unit, in_channels, out_channels, norm, stride):
        return nn.Sequential(unit(in_channels, out_channels, norm, stride),
                             unit(out_channels, out_channels, norm, 1))

    def forward(self, x):
        return self.conv(self.layer3(self.layer2(self.layer1(self.convnormrelu(x)))))


class MotionEncoder(nn.Module):
    """(flow `[N,2,h,w]`, correlation `[N,C,h,w]`) -> `[N,out_channels,h,w]`; the flow is appended last."""

    def __init__(self, corr_channels, corr_widths, flow_widths, out_channels):
        super().__init__()
        self.convcorr1 = _conv_unit(corr_channels, corr_widths[0], 1)
        self.convcorr2 = _conv_unit(corr_widths[0], corr_widths[1], 3) if len(corr_widths) == 2 else nn.Identity()
        self.convflow1 = _conv_unit(2, flow_widths[0], 7)
        self.convflow2 = _conv_unit(flow_widths[0], flow_widths[1], 3)
        self.conv = _conv_unit(corr_widths[-1] + flow_widths[-1], out_channels - 2, 3)

    def forward(self, flow, corr):
        corr = self.convcorr2(self.convcorr1(corr))
        motion = self.convflow2(self.convflow1(flow))
        return torch.cat([self.conv(torch.cat([corr, motion], dim=1)), flow], dim=1)


class ConvGRU(nn.Module):
    """Convolutional GRU cell: h' = (1-z) h + z tanh(W_q [r h, x]), z, r = sigmoid(W_{z,r} [h, x])."""

    def __init__(self, hidden_size, input_size, kernel_size):
        super().__init__()
        padding = tuple((k - 1) // 2 for k in kernel_size)
        channels = hidden_size + input_size
        self.convz = nn.Conv2d(channels, hidden_size, kernel_size, padding=padding)
        self.convr = nn.Conv2d(channels, hidden_size, kernel_size, padding=padding)
        self.convq = nn.Conv2d(channels, hidden_size, kernel_size, padding=padding)

    def forward(self, hidden, x):
        joint = torch.cat([hidden, x], dim=1)
        update = torch.sigmoid(self.convz(joint))
        reset = torch.sigmoid(self.convr(joint))
        candidate = torch.tanh(self.convq(torch.cat([reset * hidden, x], dim=1)))
        return (1 - update) * hidden + update * candidate


class RecurrentBlock(nn.Module):
    """One GRU per kernel shape, applied in order (large: separable 1x5 then 5x1; small: one 3x3)."""

    def __init__(self, hidden_size, input_size, kernel_sizes):
        super().__init__()
        if len(kernel_sizes) not in (1, 2):
            raise ValueError(f"RAFT uses one or two GRU kernel shapes, got {kernel_sizes}")
        for index, kernel_size in enumerate(kernel_sizes, start=1):
            self.add_module(f"convgru{index}", ConvGRU(hidden_size, input_size, kernel_size))

    def forward(self, hidden, x):
        for gru in self.children():
            hidden = gru(hidden, x)
        return hidden


class FlowHead(nn.Module):
    """GRU state `[N,hidden,h,w]` -> flow update `[N,2,h,w]` in 1/8-resolution pixels."""

    def __init__(self, in_channels, hidden_size):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, hidden_size, 3, padding=1)
        self.conv2 = nn.Conv2d(hidden_size, 2, 3, padding=1)

    def forward(self, x):
        return self.conv2(F.relu(self.conv1(x)))


class UpdateBlock(nn.Module):
    """One refinement step: (hidden, context, correlation, flow) -> (new hidden, delta flow)."""

    def __init__(self, motion_encoder, recurrent_block, flow_head):
        super().__init__()
        self.motion_encoder = motion_encoder
        self.recurrent_block = recurrent_block
        self.flow_head = flow_head

    def forward(self, hidden, context, corr, flow):
        motion = self.motion_encoder(flow, corr)
        hidden = self.recurrent_block(hidden, torch.cat([context, motion], dim=1))
        return hidden, self.flow_head(hidden)


class MaskPredictor(nn.Module):
    """GRU state -> `[N,9*8*8,h,w]` logits of the convex upsampling weights (scaled by 0.25)."""

    def __init__(self, in_channels, hidden_size=256, scale=0.25):
        super().__init__()
        self.convrelu = _conv_unit(in_channels, hidden_size, 3)
        self.conv = nn.Conv2d(hidden_size, 9 * FACTOR * FACTOR, 1)
        self.scale = scale

    def forward(self, hidden):
        return self.scale * self.conv(self.convrelu(hidden))


def _correlation_pyramid(features1, features2, num_levels):
    """All-pairs correlation `<f1(p), f2(q)> / sqrt(C)` pooled over q.

    features: `[N,C,h,w]` each. Returns `num_levels` tensors `[N*h*w, 1, h/2^l, w/2^l]`: row
    n*h*w + p holds the correlation of pixel p of image 1 with every pixel of image 2.
    """
    n, channels, h, w = features1.shape
    volume = torch.bmm(features1.flatten(2).transpose(1, 2), features2.flatten(2))
    volume = (volume / math.sqrt(channels)).reshape(n * h * w, 1, h, w)
    pyramid = [volume]
    for _ in range(num_levels - 1):
        pyramid.append(F.avg_pool2d(pyramid[-1], 2, stride=2))
    return pyramid


def _window_offsets(radius, device):
    """`[(2r+1)^2, 2]` (dx, dy) offsets, dx-major: the channel order the published weights expect."""
    steps = torch.arange(-radius, radius + 1, dtype=torch.float32, device=device)
    dx, dy = torch.meshgrid(steps, steps, indexing="ij")
    return torch.stack([dx, dy], dim=-1).reshape(-1, 2)


def _lookup(pyramid, coords, radius):
    """Bilinear correlation lookup around `coords` `[N,2,h,w]` (x, y in 1/8-resolution pixels).

    Returns `[N, levels*(2r+1)^2, h, w]`, level-major; samples outside the volume read 0.
    """
    n, _, h, w = coords.shape
    offsets = _window_offsets(radius, coords.device)
    centres = coords.permute(0, 2, 3, 1).reshape(n * h * w, 1, 1, 2)
    features = []
    for level, volume in enumerate(pyramid):
        points = centres / 2 ** level + offsets.view(1, 1, -1, 2)
        height, width = volume.shape[-2:]
        grid = torch.stack([2 * points[..., 0] / (width - 1) - 1,
                            2 * points[..., 1] / (height - 1) - 1], dim=-1)
        sampled = F.grid_sample(volume, grid, mode="bilinear", padding_mode="zeros", align_corners=True)
        features.append(sampled.view(n, h, w, -1))
    return torch.cat(features, dim=-1).permute(0, 3, 1, 2).contiguous()


def _pixel_grid(n, h, w, device):
    """`[N,2,h,w]` pixel coordinates, channel 0 = x, 1 = y."""
    ys, xs = torch.meshgrid(torch.arange(h, device=device, dtype=torch.float32),
                            torch.arange(w, device=device, dtype=torch.float32), indexing="ij")
    return torch.stack([xs, ys]).unsqueeze(0).expand(n, 2, h, w)


def _convex_upsample(flow, mask_logits):
    """`[N,2,h,w]` 1/8-resolution flow -> `[N,2,8h,8w]` full-resolution flow (paper section 3.3).

    Each fine pixel is a softmax-weighted combination of the 3x3 coarse neighbours of its cell;
    mask_logits `[N,9*8*8,h,w]` is ordered (neighbour, row in cell, column in cell).
    """
    n, _, h, w = flow.shape
    weights = mask_logits.view(n, 9, FACTOR, FACTOR, h, w).softmax(dim=1)
    neighbours = F.unfold(FACTOR * flow, kernel_size=3, padding=1).view(n, 2, 9, h, w)
    fine = torch.einsum("nkijyx,nckyx->ncyixj", weights, neighbours)
    return fine.reshape(n, 2, FACTOR * h, FACTOR * w)


def _bilinear_upsample(flow):
    """`[N,2,h,w]` -> `[N,2,8h,8w]`, vectors scaled by 8 (corner-aligned bilinear)."""
    h, w = flow.shape[-2:]
    return FACTOR * F.interpolate(flow, size=(FACTOR * h, FACTOR * w), mode="bilinear", align_corners=True)


def _centred_padding(size):
    """(before, after) replicate padding that brings `size` to a multiple of 8 and at least MIN_SIDE."""
    target = max(MIN_SIDE, -(-size // FACTOR) * FACTOR)
    extra = target - size
    return extra // 2, extra - extra // 2


def _check_pair(image1, image2):
    if image1.ndim != 4 or image1.shape[1] != 3:
        raise ValueError(f"RAFT expects images [N,3,H,W], got {tuple(image1.shape)}")
    if image1.shape != image2.shape:
        raise ValueError(
            f"RAFT needs two images of the same shape, got {tuple(image1.shape)} and {tuple(image2.shape)}")


class RAFT(nn.Module):
    """RAFT flow network; use `raft_large()` / `raft_small()` for the published configurations.

    feature_widths / context_widths: 5 channel counts (stem, 3 stages, output) of the two encoders.
    unit: 'residual' (large) or 'bottleneck' (small) encoder units.
    context_norm: 'batch' (large) or None (small); the feature encoder always uses instance norm.
    corr_levels, corr_radius: correlation pyramid depth and lookup radius.
    motion_corr_widths / motion_flow_widths / motion_channels: motion encoder layout.
    hidden_size: GRU state channels (the first `hidden_size` channels of the context encoder output).
    gru_kernels: kernel shapes of the GRUs applied in order.
    head_width: flow head hidden channels.
    convex_upsampling: learned convex x8 upsampling (large) instead of bilinear (small).
    """

    def __init__(self, *, feature_widths, context_widths, unit, context_norm, corr_levels, corr_radius,
                 motion_corr_widths, motion_flow_widths, motion_channels, hidden_size, gru_kernels,
                 head_width, convex_upsampling):
        super().__init__()
        unit_class = {"residual": ResidualUnit, "bottleneck": BottleneckUnit}[unit]
        if context_widths[-1] <= hidden_size:
            raise ValueError(f"context encoder output ({context_widths[-1]}) must exceed hidden_size "
                             f"({hidden_size}): it holds the hidden state and the context")
        self.corr_levels = corr_levels
        self.corr_radius = corr_radius
        self.hidden_size = hidden_size
        self.feature_encoder = Encoder(feature_widths, unit_class, "instance")
        self.context_encoder = Encoder(context_widths, unit_class, context_norm)
        motion_encoder = MotionEncoder(corr_levels * (2 * corr_radius + 1) ** 2, motion_corr_widths,
                                       motion_flow_widths, motion_channels)
        gru_input = motion_channels + context_widths[-1] - hidden_size
        self.update_block = UpdateBlock(motion_encoder, RecurrentBlock(hidden_size, gru_input, gru_kernels),
                                        FlowHead(hidden_size, head_width))
        self.mask_predictor = MaskPredictor(hidden_size) if convex_upsampling else None

    def forward(self, image1, image2, num_iters=12, return_all=False):
        """Flow from image1 to image2.

        image1, image2: `[N,3,H,W]` float in [0,1], any H, W.
        num_iters: refinement iterations (12 is the published default; more for large motion).
        Returns `[N,2,H,W]` pixel flow F_{1->2} (channel 0 = x), or with `return_all` the list of the
        `num_iters` successive predictions (last = final).
        """
        _check_pair(image1, image2)
        if num_iters < 1:
            raise ValueError(f"num_iters must be at least 1, got {num_iters}")
        height, width = image1.shape[-2:]
        (top, bottom), (left, right) = _centred_padding(height), _centred_padding(width)
        pair = torch.cat([image1, image2]).to(self.feature_encoder.conv.weight.dtype)
        pair = F.pad(2 * pair - 1, (left, right, top, bottom), mode="replicate")
        predictions = self._iterate(pair, num_iters)
        cropped = [flow[..., top:top + height, left:left + width] for flow in predictions]
        return cropped if return_all else cropped[-1]

    def _iterate(self, pair, num_iters):
        """pair: `[2N,3,H,W]` (images 1 then images 2) in [-1,1], H, W multiples of 8 and >= 128.

        Returns the list of `num_iters` flows `[N,2,H,W]`.
        """
        n = pair.shape[0] // 2
        features1, features2 = self.feature_encoder(pair).chunk(2)
        pyramid = _correlation_pyramid(features1, features2, self.corr_levels)
        hidden, context = self.context_encoder(pair[:n]).split(
            [self.hidden_size, self.context_encoder.conv.out_channels - self.hidden_size], dim=1)
        hidden, context = torch.tanh(hidden), F.relu(context)
        coords0 = _pixel_grid(n, *features1.shape[-2:], device=features1.device)
        coords1 = coords0.clone()
        predictions = []
        for _ in range(num_iters):
            coords1 = coords1.detach()  # the paper stops gradients through the lookup positions
            corr = _lookup(pyramid, coords1, self.corr_radius)
            hidden, delta = self.update_block(hidden, context, corr, coords1 - coords0)
            coords1 = coords1 + delta
            predictions.append(self._upsample(coords1 - coords0, hidden))
        return predictions

    def _upsample(self, flow, hidden):
        if self.mask_predictor is None:
            return _bilinear_upsample(flow)
        return _convex_upsample(flow, self.mask_predictor(hidden))


def raft_large():
    """RAFT as published (torchvision `raft_large` layout, 5.26 M parameters)."""
    return RAFT(feature_widths=(64, 64, 96, 128, 256), context_widths=(64, 64, 96, 128, 256),
                unit="residual", context_norm="batch", corr_levels=4, corr_radius=4,
                motion_corr_widths=(256, 192), motion_flow_widths=(128, 64), motion_channels=128,
                hidden_size=128, gru_kernels=((1, 5), (5, 1)), head_width=256, convex_upsampling=True)


def raft_small():
    """RAFT-small (torchvision `raft_small` layout, 0.99 M parameters)."""
    return RAFT(feature_widths=(32, 32, 64, 96, 128), context_widths=(32, 32, 64, 96, 160),
                unit="bottleneck", context_norm=None, corr_levels=4, corr_radius=3,
                motion_corr_widths=(96,), motion_flow_widths=(64, 32), motion_channels=82,
                hidden_size=96, gru_kernels=((3, 3),), head_width=128, convex_upsampling=False)
