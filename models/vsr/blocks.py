"""Layers of the Tame VSR network (helpers of `arch.py`, in the manner of BasicSR's `arch_util`).

All image-space layers take `[N,C,H,W]`; the temporal layers take a clip `[B,T,C,H,W]`. No layer
normalises over space except the spatial self-attention, so every other layer is equivariant to
integer shifts of its input, which is what makes tiled inference exact (see `inference.py`).
"""
import torch
import torch.nn.functional as F
from torch import nn

from ...kernels.frequency import blur_downsample, split_frequencies

NEGATIVE_SLOPE = 0.2
HEAD_WIDTH = 32  # channels per attention head


def activation():
    return nn.LeakyReLU(NEGATIVE_SLOPE)


def conv3x3(in_channels, out_channels):
    return nn.Conv2d(in_channels, out_channels, 3, padding=1)


def attention_heads(channels):
    """Number of heads for `channels` features: one per 32 channels, at least one."""
    return max(1, channels // HEAD_WIDTH)


class ResidualBlock(nn.Module):
    """`x + conv(lrelu(conv(x)))` without normalisation; the residual branch starts scaled by 0.1."""

    def __init__(self, channels):
        super().__init__()
        self.conv1 = conv3x3(channels, channels)
        self.conv2 = conv3x3(channels, channels)
        self.act = activation()
        with torch.no_grad():
            self.conv2.weight.mul_(0.1)

    def forward(self, x):
        return x + self.conv2(self.act(self.conv1(x)))


def residual_stack(channels, count):
    return nn.Sequential(*[ResidualBlock(channels) for _ in range(count)])


class Downsample(nn.Module):
    """Halve the resolution: `[N,Cin,H,W]` -> `[N,Cout,ceil(H/2),ceil(W/2)]`.

    blurpool=True (anti-aliased): stride-1 3x3 conv -> LeakyReLU -> binomial `[1,4,6,4,1]/16` blur ->
    keep pixels 0, 2, 4, ... (BlurPool). blurpool=False: stride-2 3x3 conv -> LeakyReLU (the naive
    encoder, which folds frequencies above half the new Nyquist back onto low ones). Both keep the same
    sample grid (output pixel i sits on input pixel 2i).
    """

    def __init__(self, in_channels, out_channels, blurpool=True):
        super().__init__()
        self.blurpool = blurpool
        self.conv = nn.Conv2d(in_channels, out_channels, 3, stride=1 if blurpool else 2, padding=1)
        self.act = activation()

    def forward(self, x):
        x = self.act(self.conv(x))
        return blur_downsample(x, 2) if self.blurpool else x


class Upsample(nn.Module):
    """Double the resolution: bilinear x2 (pixel-area grid) -> 3x3 conv -> LeakyReLU.
    `[N,Cin,H,W]` -> `[N,Cout,2H,2W]`."""

    def __init__(self, in_channels, out_channels):
        super().__init__()
        self.conv = conv3x3(in_channels, out_channels)
        self.act = activation()

    def forward(self, x):
        x = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)
        return self.act(self.conv(x))


def high_frequency_shuttle(features):
    """HF shuttle: `f - lowpass(f)` with the binomial filter of BlurPool, `[N,C,H,W]` -> same shape."""
    return split_frequencies(features)[1]


class UpsampleToImage(nn.Module):
    """Last upsampling, straight to the RGB residual: 3x3 conv to 12 channels -> pixel shuffle x2.
    `[N,Cin,H,W]` -> `[N,3,2H,2W]`. Zero-initialised, so an untrained network adds no residual."""

    def __init__(self, in_channels):
        super().__init__()
        self.conv = conv3x3(in_channels, 3 * 4)
        nn.init.zeros_(self.conv.weight)
        nn.init.zeros_(self.conv.bias)

    def forward(self, x):
        return F.pixel_shuffle(self.conv(x), 2)


class SpatialSelfAttention(nn.Module):
    """Residual multi-head self-attention over all pixels of each image, `[N,C,H,W]` -> same shape."""

    def __init__(self, channels):
        super().__init__()
        self.heads = attention_heads(channels)
        self.norm = nn.GroupNorm(8 if channels % 8 == 0 else 1, channels)
        self.qkv = nn.Conv2d(channels, 3 * channels, 1)
        self.out = nn.Conv2d(channels, channels, 1)

    def forward(self, x):
        n, c, h, w = x.shape
        q, k, v = self.qkv(self.norm(x)).reshape(n, 3, self.heads, c // self.heads, h * w).unbind(1)
        attended = F.scaled_dot_product_attention(q.transpose(-1, -2), k.transpose(-1, -2),
                                                  v.transpose(-1, -2))
        return x + self.out(attended.transpose(-1, -2).reshape(n, c, h, w))


class TemporalConv(nn.Module):
    """Residual 1-D convolution over time (kernel 3, no spatial extent), zero-initialised.

    `[B,T,C,H,W]` -> same shape: `x_t + W [x_{t-1}, x_t, x_{t+1}]` with the first/last frame repeated
    at the ends of the clip. Starts as the identity.
    """

    def __init__(self, channels):
        super().__init__()
        self.mix = nn.Conv2d(3 * channels, channels, 1)
        nn.init.zeros_(self.mix.weight)
        nn.init.zeros_(self.mix.bias)

    def forward(self, x):
        previous = torch.cat((x[:, :1], x[:, :-1]), 1)
        following = torch.cat((x[:, 1:], x[:, -1:]), 1)
        stacked = torch.cat((previous, x, following), 2)
        return x + self.mix(stacked.flatten(0, 1)).unflatten(0, x.shape[:2])


class TemporalSelfAttention(nn.Module):
    """Residual self-attention over the frames of a clip at each pixel (no spatial extent),
    zero-initialised output projection. `[B,T,C,H,W]` -> same shape; starts as the identity.

    No positional encoding: the temporal convolution before it gives the features their order.
    """

    def __init__(self, channels):
        super().__init__()
        self.heads = attention_heads(channels)
        self.norm = nn.LayerNorm(channels)
        self.qkv = nn.Linear(channels, 3 * channels)
        self.out = nn.Linear(channels, channels)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, x):
        b, t, c, h, w = x.shape
        tokens = x.permute(0, 3, 4, 1, 2).reshape(b * h * w, t, c)
        q, k, v = self.qkv(self.norm(tokens)).reshape(-1, t, 3, self.heads, c // self.heads).permute(
            2, 0, 3, 1, 4)
        attended = F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(-1, t, c)
        update = self.out(attended).reshape(b, h, w, t, c).permute(0, 3, 4, 1, 2)
        return x + update


class NoiseInjection(nn.Module):
    """`x + strength * noise`, one learned strength per channel (zero at init), noise `[N,1,H,W]`."""

    def __init__(self, channels):
        super().__init__()
        self.strength = nn.Parameter(torch.zeros(1, channels, 1, 1))

    def forward(self, x, noise):
        return x if noise is None else x + self.strength * noise


class DecoderBlock(nn.Module):
    """One decoder block: [+ skip] -> residual blocks -> [spatial attention] -> [temporal conv +
    temporal attention] -> [noise] (`body`), then x2 upsampling (`upsample`) to `out_channels`
    features, or to the RGB residual for the last block (`to_image`).

    The two halves are separate methods because inference runs the body of the last low-resolution
    block on whole frames and its upsampling on tiles.
    """

    def __init__(self, in_channels, out_channels, skip_channels=0, num_blocks=1,
                 spatial_attention=False, temporal=False, noise=False, to_image=False):
        super().__init__()
        self.skip = nn.Conv2d(skip_channels, in_channels, 1) if skip_channels else None
        self.blocks = residual_stack(in_channels, num_blocks)
        self.attention = SpatialSelfAttention(in_channels) if spatial_attention else None
        self.temporal_conv = TemporalConv(in_channels) if temporal else None
        self.temporal_attention = TemporalSelfAttention(in_channels) if temporal else None
        self.noise = NoiseInjection(in_channels) if noise else None
        self.up = UpsampleToImage(in_channels) if to_image else Upsample(in_channels, out_channels)

    def body(self, x, num_frames=1, skip=None, noise=None):
        """x `[B*T,C,H,W]` (clip frames flattened), skip `[B*T,Cs,H,W]`, noise `[B*T,1,H,W]` -> `[B*T,C,H,W]`."""
        if self.skip is not None:
            x = x + self.skip(skip)
        x = self.blocks(x)
        if self.attention is not None:
            x = self.attention(x)
        if self.temporal_conv is not None:
            clip = x.unflatten(0, (-1, num_frames))
            x = self.temporal_attention(self.temporal_conv(clip)).flatten(0, 1)
        if self.noise is not None:
            x = self.noise(x, noise)
        return x

    def upsample(self, x):
        return self.up(x)
