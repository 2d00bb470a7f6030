"""A small U-Net image-to-image network, the generator of blind mode and of the DVP baseline.

Deep Video Prior (Lei et al., NeurIPS 2020) fits such a network per video, mapping each original
frame to its processed frame. Here: `levels` stride-2 stages with two 3x3 convolutions each
(leaky ReLU), nearest upsampling with skip concatenation on the way up, sigmoid output in [0,1].
"""
import torch
import torch.nn.functional as F
from torch import nn


def _double_conv(in_channels, out_channels):
    return nn.Sequential(nn.Conv2d(in_channels, out_channels, 3, padding=1), nn.LeakyReLU(0.2),
                         nn.Conv2d(out_channels, out_channels, 3, padding=1), nn.LeakyReLU(0.2))


class UNet(nn.Module):
    """`[N,in_channels,H,W]` -> `[N,3,H,W]` in [0,1]; any H, W (padded internally to 2**levels)."""

    def __init__(self, in_channels=3, width=32, levels=3):
        super().__init__()
        if int(levels) < 1 or int(width) < 1:
            raise ValueError(f"levels and width must be >= 1, got levels={levels}, width={width}.")
        self.levels = int(levels)
        widths = [int(width) * 2 ** k for k in range(self.levels + 1)]
        self.inc = _double_conv(in_channels, widths[0])
        self.down = nn.ModuleList(_double_conv(widths[k], widths[k + 1]) for k in range(self.levels))
        self.up = nn.ModuleList(_double_conv(widths[k + 1] + widths[k], widths[k])
                                for k in reversed(range(self.levels)))
        self.out = nn.Conv2d(widths[0], 3, 1)

    def forward(self, x):
        h, w = x.shape[-2:]
        multiple = 2 ** self.levels
        pad_h, pad_w = -h % multiple, -w % multiple
        x = F.pad(x, (0, pad_w, 0, pad_h), mode="replicate") if pad_h or pad_w else x
        skips = [self.inc(x)]
        for block in self.down:
            skips.append(block(F.avg_pool2d(skips[-1], 2)))
        y = skips.pop()
        for block in self.up:
            skip = skips.pop()
            y = block(torch.cat((F.interpolate(y, size=skip.shape[-2:], mode="nearest"), skip), 1))
        return torch.sigmoid(self.out(y))[..., :h, :w]
