"""SpyNet optical flow (Ranjan & Black, "Optical Flow Estimation using a Spatial Pyramid Network", 2017).

Written for this pack in the variant that BasicVSR uses (6 pyramid levels, no batch norm) with the
parameter names of BasicSR's `SpyNet`: `basic_module.{level}.basic_module.{0,2,4,6,8}.{weight,bias}`
plus the `mean` / `std` normalisation buffers. MMagic's checkpoints name the same convolutions
`basic_module.{level}.basic_module.{0..4}.conv.*`; `checkpoints.py` renames them.

Direction: `SpyNet()(image1, image2)` returns F_{1->2} in the pack's convention, i.e. backward-warping
image2 with it aligns image2 with image1. This is BasicSR's `spynet(ref, supp)` with ref = image1 and
supp = image2 (BasicVSR warps the supporting frame's features with exactly this flow).

Computation: both images are bilinearly resized to a multiple of 32, normalised with the ImageNet mean
and std, and average-pooled into 6 levels. From the coarsest level up, the flow so far is upsampled x2
(vectors doubled), image2 is warped with it, and the level's network predicts a residual from
[image1, warped image2, flow]. The result is resized back and its vectors rescaled to the input size.
"""
import torch
import torch.nn.functional as F
from torch import nn

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
LEVEL_WIDTHS = (8, 32, 64, 32, 16, 2)


class SpyNetLevel(nn.Module):
    """One pyramid level: `[N,8,h,w]` (image1, warped image2, flow) -> `[N,2,h,w]` flow residual."""

    def __init__(self):
        super().__init__()
        layers = []
        for in_channels, out_channels in zip(LEVEL_WIDTHS[:-1], LEVEL_WIDTHS[1:]):
            layers += [nn.Conv2d(in_channels, out_channels, 7, padding=3), nn.ReLU()]
        self.basic_module = nn.Sequential(*layers[:-1])

    def forward(self, x):
        return self.basic_module(x)


def _warp_border(image, flow):
    """Sample image `[N,C,h,w]` at p + flow(p) (flow `[N,2,h,w]` pixels), bilinear, border clamp."""
    n, _, h, w = image.shape
    ys, xs = torch.meshgrid(torch.arange(h, dtype=flow.dtype, device=flow.device),
                            torch.arange(w, dtype=flow.dtype, device=flow.device), indexing="ij")
    x = 2 * (xs + flow[:, 0]) / max(w - 1, 1) - 1
    y = 2 * (ys + flow[:, 1]) / max(h - 1, 1) - 1
    return F.grid_sample(image, torch.stack([x, y], dim=-1), mode="bilinear", padding_mode="border",
                         align_corners=True)


def _upsample_flow_x2(flow):
    """`[N,2,h,w]` -> `[N,2,2h,2w]`, corner-aligned bilinear, vectors doubled."""
    return 2 * F.interpolate(flow, scale_factor=2, mode="bilinear", align_corners=True)


class SpyNet(nn.Module):
    """SpyNet with `num_levels` pyramid levels (the published BasicVSR weights have 6)."""

    def __init__(self, num_levels=6):
        super().__init__()
        self.basic_module = nn.ModuleList(SpyNetLevel() for _ in range(num_levels))
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1))

    @property
    def size_multiple(self):
        """The network works on sizes divisible by this (2^(levels-1))."""
        return 2 ** (len(self.basic_module) - 1)

    def forward(self, image1, image2):
        """Flow from image1 to image2.

        image1, image2: `[N,3,H,W]` float RGB in [0,1], any H, W.
        Returns `[N,2,H,W]` pixel flow F_{1->2} (channel 0 = x): image2 sampled at p + F(p) ~ image1(p).
        """
        if image1.ndim != 4 or image1.shape[1] != 3 or image1.shape != image2.shape:
            raise ValueError(f"SpyNet expects two RGB images [N,3,H,W] of the same shape, got "
                             f"{tuple(image1.shape)} and {tuple(image2.shape)}")
        height, width = image1.shape[-2:]
        unit = self.size_multiple
        work = (-(-height // unit) * unit, -(-width // unit) * unit)
        pair = torch.cat([image1, image2]).to(self.mean.dtype)
        if work != (height, width):
            pair = F.interpolate(pair, size=work, mode="bilinear", align_corners=False)
        flow = self._coarse_to_fine(*pair.chunk(2))
        if work == (height, width):
            return flow
        flow = F.interpolate(flow, size=(height, width), mode="bilinear", align_corners=False)
        return flow * flow.new_tensor([width / work[1], height / work[0]]).view(1, 2, 1, 1)

    def _coarse_to_fine(self, image1, image2):
        """`[N,3,H,W]` x2 in [0,1], H, W multiples of `size_multiple` -> `[N,2,H,W]` flow."""
        pyramid = [(torch.cat([image1, image2]) - self.mean) / self.std]
        for _ in range(len(self.basic_module) - 1):
            pyramid.append(F.avg_pool2d(pyramid[-1], kernel_size=2, stride=2))
        coarsest = pyramid[-1]
        flow = coarsest.new_zeros(coarsest.shape[0] // 2, 2, *coarsest.shape[-2:])
        for level, images in zip(self.basic_module, reversed(pyramid)):
            if images.shape[-2:] != flow.shape[-2:]:
                flow = _upsample_flow_x2(flow)
            reference, support = images.chunk(2)
            flow = flow + level(torch.cat([reference, _warp_border(support, flow), flow], dim=1))
        return flow
