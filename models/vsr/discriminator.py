"""The temporally inflated patch discriminator of VSR training and its non-saturating loss with R1.
"""

import torch
import torch.nn.functional as F
from torch import nn

from .blocks import Downsample, TemporalConv, activation, conv3x3


class TemporalDiscriminator(nn.Module):
    """Patch discriminator on clips, inflated with temporal convolutions like the generator.

    `[B,T,3,H,W]` -> logits `[B,T,1,H/16,W/16]`: a 3x3 conv, then 4 anti-aliased stride-2 levels
    (Downsample with BlurPool), each followed by a residual temporal convolution (kernel 3 over time,
    zero-initialised, so it starts as the per-frame image discriminator), then 3x3 and 1x1 convs.
    """

    def __init__(self, widths=(16, 32, 64, 64, 64)):
        super().__init__()
        self.stem = nn.Sequential(conv3x3(3, widths[0]), activation())
        self.levels = nn.ModuleList(Downsample(a, b, blurpool=True) for a, b in zip(widths, widths[1:]))
        self.temporal = nn.ModuleList(TemporalConv(width) for width in widths[1:])
        self.head = nn.Sequential(conv3x3(widths[-1], widths[-1]), activation(), nn.Conv2d(widths[-1], 1, 1))

    def forward(self, clips):
        b, t = clips.shape[:2]
        x = self.stem(clips.flatten(0, 1))
        for level, temporal in zip(self.levels, self.temporal):
            x = temporal(level(x).unflatten(0, (b, t))).flatten(0, 1)
        return self.head(x).unflatten(0, (b, t))


def discriminator_loss(discriminator, real, fake, r1_weight):
    """Non-saturating D loss with the R1 penalty on real clips -> (total, r1) scalars."""
    real = real.detach().requires_grad_(True)
    real_logits = discriminator(real)
    (gradient,) = torch.autograd.grad(real_logits.sum(), real, create_graph=True)
    r1 = gradient.square().flatten(1).sum(1).mean()
    total = F.softplus(discriminator(fake.detach())).mean() + F.softplus(-real_logits).mean() + r1_weight * r1
    return total, r1
