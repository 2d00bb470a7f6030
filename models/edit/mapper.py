"""Latent mapper f (seed 001 eq. 2): refined codes `W_hat = W + alpha * f(W)`.

The StyleCLIP mapper's shape: pixel normalisation, then `layers` fully connected layers with
equalised learning rate (weights stored at unit scale and multiplied by `lr_mul / sqrt(fan_in)` at
run time, lr_mul = 0.01) and leaky ReLU (slope 0.2, gain sqrt(2)). The equalised scaling is what
makes the seed's Adam learning rates (0.05 / 0.005) sensible. The layers act on the channel axis of
codes `[T,C,*]`: per latent vector for `[T,C]` codes, per latent pixel (1x1 convolutions) for
`[T,C,h,w]` latents. The last layer is linear (no activation) so the residual can take either sign.

Frame context (spatial latents only): a per-pixel f sees one latent pixel, while the seed's mapper
sees a frame's whole code, so it cannot tell a per-frame change (an edit applied with a different
strength in each frame) from picture content. With `frame_context`, every pixel's input is its code
concatenated with the frame's mean code, which restores that per-frame view; f stays an MLP applied
per latent pixel.
"""
import math

import torch
import torch.nn.functional as F
from torch import nn

LEAKY_SLOPE = 0.2
LEAKY_GAIN = math.sqrt(2.0)


class EqualLinear(nn.Module):
    """Fully connected layer on axis 1 of `[N,C_in,*]` with equalised learning rate."""

    def __init__(self, in_channels, out_channels, lr_mul=0.01, generator=None):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, generator=generator) / lr_mul)
        self.bias = nn.Parameter(torch.zeros(out_channels))
        self.scale = lr_mul / math.sqrt(in_channels)
        self.lr_mul = lr_mul

    def forward(self, x):
        bias = (self.bias * self.lr_mul).view(1, -1, *([1] * (x.dim() - 2)))
        return torch.einsum("oi,ni...->no...", self.weight * self.scale, x) + bias


class LatentMapper(nn.Module):
    """f: codes `[T,C,*]` -> residuals `[T,C,*]` (same shape).

    channels: C; hidden: width of the hidden layers (default max(C, 64)); layers: number of fully
    connected layers (StyleCLIP uses 4); frame_context: also feed each latent pixel its frame's mean
    code (for `[T,C]` codes, whole-frame vectors, that adds nothing); seed: weight initialisation
    (reproducible).
    """

    def __init__(self, channels, hidden=None, layers=4, lr_mul=0.01, frame_context=False, seed=0):
        super().__init__()
        if int(layers) < 1 or int(channels) < 1:
            raise ValueError(f"channels and layers must be >= 1, got channels={channels}, layers={layers}.")
        hidden = int(hidden or max(int(channels), 64))
        generator = torch.Generator().manual_seed(int(seed))
        self.frame_context = bool(frame_context)
        widths = [int(channels) * (2 if frame_context else 1)] + [hidden] * (int(layers) - 1) + [int(channels)]
        self.layers = nn.ModuleList(EqualLinear(a, b, lr_mul, generator) for a, b in zip(widths[:-1], widths[1:]))

    def forward(self, codes):
        """codes `[T,C,*]` -> residuals `[T,C,*]`."""
        x = codes
        if self.frame_context:
            context = codes.mean(dim=tuple(range(2, codes.dim())), keepdim=True) if codes.dim() > 2 else codes
            x = torch.cat([codes, context.expand_as(codes)], dim=1)
        x = x * torch.rsqrt(x.square().mean(dim=1, keepdim=True) + 1e-8)
        for index, layer in enumerate(self.layers):
            x = layer(x)
            if index < len(self.layers) - 1:
                x = F.leaky_relu(x, LEAKY_SLOPE) * LEAKY_GAIN
        return x


def refine_codes(mapper, codes, alpha):
    """`W_hat = W + alpha * f(W)` and the residual `f(W)` (for the L1 regulariser)."""
    residual = mapper(codes)
    return codes + alpha * residual, residual
