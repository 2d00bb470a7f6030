"""The built-in, weight-free optical-flow estimator.

A DIS-style method (Kroeger et al. 2016 describe the algorithm) vectorised in torch: a coarse-to-fine
pyramid; on every level an inverse-compositional Lucas-Kanade search for the translation of
overlapping, mean-normalised patches (all patches solved at once with `unfold` + `grid_sample`);
densification by photometric-error-weighted averaging of the patches covering each pixel (`fold`);
then a short Horn-Schunck-style variational refinement. Patch updates that increase the matching
error are rejected, and patch samples that leave the frame get no weight, so pixels moving out of
the frame inherit the motion of their neighbours.
"""
import math

import torch
import torch.nn.functional as F

from ...kernels.warp import backward_warp, resize_flow

# finest pyramid level (0 = full resolution), patch size and stride, LK iterations, refinement iterations
PRESETS = {
    "fast": dict(finest=2, patch=8, stride=4, iterations=12, refine=4),
    "medium": dict(finest=1, patch=8, stride=4, iterations=16, refine=5),
    "high": dict(finest=0, patch=8, stride=3, iterations=20, refine=8),
}


def _gray(x):
    """`[N,3,H,W]` or `[N,1,H,W]` in [0,1] -> luminance `[N,1,H,W]`."""
    if x.shape[1] == 3:
        return 0.299 * x[:, :1] + 0.587 * x[:, 1:2] + 0.114 * x[:, 2:]
    return x


def _binomial_blur(x):
    kernel = torch.tensor([1.0, 4.0, 6.0, 4.0, 1.0], device=x.device, dtype=x.dtype) / 16
    x = F.conv2d(F.pad(x, (2, 2, 0, 0), mode="replicate"), kernel.view(1, 1, 1, 5))
    return F.conv2d(F.pad(x, (0, 0, 2, 2), mode="replicate"), kernel.view(1, 1, 5, 1))


def _gradients(x):
    """Central differences `[N,1,H,W]` -> (d/dx, d/dy)."""
    px = F.pad(x, (1, 1, 0, 0), mode="replicate")
    py = F.pad(x, (0, 0, 1, 1), mode="replicate")
    return (px[..., 2:] - px[..., :-2]) / 2, (py[..., 2:, :] - py[..., :-2, :]) / 2


def _sample(image, x, y):
    """Bilinear samples of `image` `[N,1,H,W]` at pixel coordinates `x, y` `[N,A,B]` -> `[N,A,B]`."""
    height, width = image.shape[-2:]
    grid = torch.stack((x * (2 / max(width - 1, 1)) - 1, y * (2 / max(height - 1, 1)) - 1), -1)
    return F.grid_sample(image, grid, mode="bilinear", padding_mode="border", align_corners=True)[:, 0]


def _pyramid(image, levels):
    pyramid = [image]
    for _ in range(levels - 1):
        pyramid.append(F.avg_pool2d(_binomial_blur(pyramid[-1]), 2, ceil_mode=True))
    return pyramid


def _patch_grid(num, padded_size, patch, stride, device, dtype):
    """Pixel coordinates of every patch sample: X, Y `[N, patch², P]` (P patches, row-major)."""
    rows, cols = ((s - patch) // stride + 1 for s in padded_size)
    origin_y = torch.arange(rows, device=device, dtype=dtype) * stride
    origin_x = torch.arange(cols, device=device, dtype=dtype) * stride
    ky, kx = torch.meshgrid(torch.arange(patch, device=device, dtype=dtype),
                            torch.arange(patch, device=device, dtype=dtype), indexing="ij")
    xs = kx.reshape(-1, 1) + origin_x.repeat(rows).view(1, -1)
    ys = ky.reshape(-1, 1) + origin_y.repeat_interleave(cols).view(1, -1)
    return xs.expand(num, -1, -1), ys.expand(num, -1, -1)


def patch_search(image1, image2, flow, patch=8, stride=4, iterations=16):
    """One pyramid level of DIS: refine `flow` `[N,2,H,W]` from gray `image1` to `image2` `[N,1,H,W]`.

    Returns the densified flow `[N,2,H,W]` in pixels of this level.
    """
    num, _, height, width = image1.shape
    padded = (patch + stride * math.ceil(max(height - patch, 0) / stride),
              patch + stride * math.ceil(max(width - patch, 0) / stride))
    pad = (0, padded[1] - width, 0, padded[0] - height)
    template_image = F.pad(image1, pad, mode="replicate")
    grad_x, grad_y = (F.unfold(g, patch, stride=stride) for g in _gradients(template_image))
    grad_x = grad_x - grad_x.mean(1, keepdim=True)
    grad_y = grad_y - grad_y.mean(1, keepdim=True)
    template = F.unfold(template_image, patch, stride=stride)
    template = template - template.mean(1, keepdim=True)
    hxx, hxy, hyy = (grad_x * grad_x).sum(1) + 1e-6, (grad_x * grad_y).sum(1), (grad_y * grad_y).sum(1) + 1e-6
    det = hxx * hyy - hxy * hxy
    xs, ys = _patch_grid(num, padded, patch, stride, image1.device, image1.dtype)
    initial = F.unfold(F.pad(flow, pad, mode="replicate"), patch, stride=stride)
    initial = initial.view(num, 2, patch * patch, -1).mean(2)           # [N,2,P]

    def residual(uv):
        warped = _sample(image2, xs + uv[:, :1], ys + uv[:, 1:])
        return warped - warped.mean(1, keepdim=True) - template

    uv = initial
    for _ in range(iterations):
        error = residual(uv)
        bx, by = (grad_x * error).sum(1), (grad_y * error).sum(1)
        step = torch.stack(((hyy * bx - hxy * by) / det, (hxx * by - hxy * bx) / det), 1)
        uv = uv - step.clamp(-patch / 2, patch / 2)
    error, initial_error = residual(uv).abs(), residual(initial).abs()
    worse = error.mean(1, keepdim=True) > initial_error.mean(1, keepdim=True)
    uv, error = torch.where(worse, initial, uv), torch.where(worse, initial_error, error)
    target_x, target_y = xs + uv[:, :1], ys + uv[:, 1:]
    inside = (target_x >= 0) & (target_x <= width - 1) & (target_y >= 0) & (target_y <= height - 1)
    weight = inside.to(error.dtype) / torch.clamp(error * 255.0, min=1.0) + 1e-4
    weighted = (weight[:, None] * uv[:, :, None]).reshape(num, 2 * patch * patch, -1)
    dense = F.fold(weighted, padded, patch, stride=stride) / F.fold(weight, padded, patch, stride=stride)
    return dense[..., :height, :width]


def variational_refine(image1, image2, flow, iterations, smoothness=0.002):
    """Horn-Schunck-style refinement of `flow` around its linearisation (Jacobi sweeps).

    Differentiable w.r.t. the images and the flow. Returns `[N,2,H,W]`.
    """
    if iterations == 0:
        return flow
    warped, _ = backward_warp(image2, flow, padding="border")
    grad_x, grad_y = _gradients(warped)
    temporal = warped - image1
    denominator = smoothness + grad_x * grad_x + grad_y * grad_y
    neighbours = torch.tensor([[0, 0.25, 0], [0.25, 0, 0.25], [0, 0.25, 0]],
                              device=flow.device, dtype=flow.dtype).view(1, 1, 3, 3)
    height, width = flow.shape[-2:]
    delta = torch.zeros_like(flow)
    for _ in range(3 * iterations):
        total = F.pad(flow + delta, (1, 1, 1, 1), mode="replicate").reshape(-1, 1, height + 2, width + 2)
        average = F.conv2d(total, neighbours).view_as(flow) - flow
        data = (grad_x * average[:, :1] + grad_y * average[:, 1:] + temporal) / denominator
        delta = torch.cat((average[:, :1] - grad_x * data, average[:, 1:] - grad_y * data), 1)
    return flow + delta


class BuiltinFlow(torch.nn.Module):
    """Weight-free flow estimator; `quality` picks a preset of PRESETS (fast, medium, high).

    forward(image1, image2) with `[N,3,H,W]` (or `[N,1,H,W]`) in [0,1] on any device returns the flow
    `[N,2,H,W]` in pixels from image1 to image2 (any H, W; motions of tens of pixels).
    `grad_iterations > 0`: the estimate runs without gradient, then that many refinement
    iterations at the finest level run with gradient w.r.t. both images.
    """

    def __init__(self, quality="medium"):
        super().__init__()
        if quality not in PRESETS:
            raise ValueError(f"unknown quality '{quality}' (choose one of {', '.join(PRESETS)})")
        self.quality = quality
        self.preset = PRESETS[quality]

    def forward(self, image1, image2, init_flow=None, grad_iterations=0):
        if image1.shape != image2.shape or image1.ndim != 4:
            raise ValueError(f"image pairs must have equal shapes [N,C,H,W], got "
                             f"{tuple(image1.shape)} and {tuple(image2.shape)}")
        size = tuple(image1.shape[-2:])
        preset = self.preset
        levels = max(preset["finest"] + 1, int(math.log2(max(min(size) / preset["patch"], 1))) + 1)
        gray1, gray2 = _gray(image1.float()), _gray(image2.float())
        with torch.no_grad():
            pyramid1, pyramid2 = _pyramid(gray1, levels), _pyramid(gray2, levels)
            flow = None
            for level in range(levels - 1, preset["finest"] - 1, -1):
                first, second = pyramid1[level], pyramid2[level]
                if flow is None:
                    flow = torch.zeros(first.shape[0], 2, *first.shape[-2:], device=first.device)
                    if init_flow is not None:
                        flow = resize_flow(init_flow.float(), tuple(first.shape[-2:]))
                else:
                    flow = resize_flow(flow, tuple(first.shape[-2:]))
                flow = patch_search(first, second, flow, preset["patch"], preset["stride"], preset["iterations"])
                flow = variational_refine(first, second, flow, preset["refine"])
        if grad_iterations:
            finest = preset["finest"]
            first, second = gray1, gray2
            if finest:
                first, second = (F.interpolate(g, size=tuple(pyramid1[finest].shape[-2:]), mode="area")
                                 for g in (gray1, gray2))
            flow = variational_refine(first, second, flow, grad_iterations)
        return resize_flow(flow, size) if tuple(flow.shape[-2:]) != size else flow
