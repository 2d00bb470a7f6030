"""Losses of the consistency optimisation (seed 001 §3.2-3.3).

Frames are `[N,3,H,W]` in [0,1]; flows `[N,2,H,W]` in pixels (specs/flow.md). A perceptual distance
`D` gives per-pixel maps `[N,1,H,W]` so masks can weight it (seed 001 eq. 1); LPIPS when its weights
are given (lpips.py), else the weight-free `CharbonnierSSIMDistance`.
"""
import inspect
import math

import torch
import torch.nn.functional as F

from ...kernels.consistency import forward_backward_error, soft_visibility
from ...kernels.filters import CHARBONNIER_EPS, charbonnier
from ...kernels.metrics import SSIM_RADIUS, ssim_map
from ...kernels.warp import backward_warp

VISIBILITY_ALPHA = 10.0  # exp(-10 eps), seed 001 §3.2
PD_QUANTILE = 0.98  # M^PD = D-map / its 98th percentile, clamped to [0,1]


class CharbonnierSSIMDistance:
    """Weight-free perceptual distance: per scale `mean_c sqrt((a-b)^2 + eps^2) + (1 - SSIM)/2`
    (Gaussian 11x11, sigma 1.5, reflected borders), over `scales` dyadic scales (average-pooled),
    each map upsampled to full size, averaged. Scales smaller than 11 px are skipped."""
    name = "Charbonnier + SSIM (weight-free, 3 scales)"

    def __init__(self, scales=3):
        self.scales = int(scales)

    def map(self, a, b):
        """`[N,C,H,W]` x2 -> distance map `[N,1,H,W]` (0 for identical images)."""
        size = a.shape[-2:]
        maps = []
        for level in range(self.scales):
            if level and min(a.shape[-2:]) < 2 * SSIM_RADIUS + 1:
                break
            penalty = charbonnier(a - b, CHARBONNIER_EPS).mean(1, keepdim=True) - CHARBONNIER_EPS
            dissimilarity = (1.0 - ssim_map(a, b, padding="reflect").mean(1, keepdim=True)) / 2.0
            level_map = penalty + dissimilarity
            maps.append(F.interpolate(level_map, size=size, mode="bilinear", align_corners=False)
                        if level else level_map)
            a, b = F.avg_pool2d(a, 2), F.avg_pool2d(b, 2)
        return torch.stack(maps).mean(0)

    def __call__(self, a, b):
        """Mean distance per image `[N]`."""
        return self.map(a, b).flatten(1).mean(1)


def perceptual_distance(lpips_state_dict=None, device="cpu"):
    """`D` for the optimisation: LPIPS (AlexNet) from its state dict when given, else weight-free."""
    if lpips_state_dict is None:
        return CharbonnierSSIMDistance()
    from .lpips import LpipsDistance, lpips_from_state_dict
    return LpipsDistance(lpips_from_state_dict(lpips_state_dict).to(device))


# ------------------------------------------------------------------------------------- flow
def flow_module(estimator):
    """(module, extra forward kwargs) of a `FlowEstimator`, or of a bare estimator module."""
    module = getattr(estimator, "module", estimator)
    if not callable(module):
        raise ValueError(f"estimator must be a flow estimator (FlowEstimator or nn.Module), got "
                         f"{type(estimator).__name__}.")
    return module, dict(getattr(estimator, "forward_kwargs", {}) or {})


def pair_flows(estimator, image_a, image_b, grad_iterations=1):
    """Flows both ways between `[N,3,H,W]` frames -> (F_{a->b}, F_{b->a}), each `[N,2,H,W]`.

    Differentiable: estimators whose forward takes `grad_iterations` (the built-in one) unroll that
    many finest-level iterations with gradient; others (RAFT) are differentiated end to end.
    Runs on the estimator's device (`FlowEstimator.device`, else the images' device); flows come back
    on the device of `image_a`.
    """
    module, kwargs = flow_module(estimator)
    forward = getattr(module, "forward", module)
    if "grad_iterations" in inspect.signature(forward).parameters:
        kwargs["grad_iterations"] = int(grad_iterations)
    device = getattr(estimator, "device", None) or image_a.device
    first = torch.cat((image_a, image_b)).to(device)
    second = torch.cat((image_b, image_a)).to(device)
    with torch.enable_grad():
        flows = module(first, second, **kwargs).to(image_a.device, torch.float32)
    return flows[:image_a.shape[0]], flows[image_a.shape[0]:]


# ------------------------------------------------------------------------------------- masks
def visibility_masks(flow_ab, flow_ba):
    """Soft visibility `exp(-10 eps)` of frame-a pixels in b and of frame-b pixels in a, detached:
    (`[N,1,H,W]` on a's grid, `[N,1,H,W]` on b's grid). Masks are weights, not something to optimise
    (a gradient through them would reward making the flow inconsistent)."""
    with torch.no_grad():
        return (soft_visibility(flow_ab, flow_ba, VISIBILITY_ALPHA),
                soft_visibility(flow_ba, flow_ab, VISIBILITY_ALPHA))


def perceptual_difference_mask(distance, output, reference):
    """M^PD `[N,1,H,W]` in [0,1]: where `output` differs perceptually from the aligned input
    `reference` (the edited region). The D-map divided by its 98th percentile per frame, clamped;
    detached."""
    with torch.no_grad():
        difference = distance.map(output, reference)
        scale = torch.quantile(difference.flatten(1), PD_QUANTILE, dim=1).view(-1, 1, 1, 1)
        return (difference / scale.clamp(min=1e-6)).clamp(0.0, 1.0)


def fuse_masks(visibility, difference=None):
    """In-domain: `clamp(M^vis + M^PD, 0, 1)`; out-of-domain (difference None): `M^vis`."""
    return visibility if difference is None else (visibility + difference).clamp(0.0, 1.0)


# ------------------------------------------------------------------------------------- losses
def photometric_loss(distance, frame_anchor, frame_other, flow_anchor_other, flow_other_anchor,
                     mask_at_anchor, mask_at_other):
    """Bi-directional photometric loss (seed 001 eq. 1), mean over pixels and the batch:
    `M_at_anc * D(I_anc, warp(I_i, F_{anc->i})) + M_at_i * D(I_i, warp(I_anc, F_{i->anc}))`.

    The masks live on the grid of the frame they weight (visibility of that frame's pixels in the
    other frame, fused with its M^PD).
    """
    other_at_anchor, _ = backward_warp(frame_other, flow_anchor_other, padding="border")
    anchor_at_other, _ = backward_warp(frame_anchor, flow_other_anchor, padding="border")
    term_anchor = mask_at_anchor * distance.map(frame_anchor, other_at_anchor)
    term_other = mask_at_other * distance.map(frame_other, anchor_at_other)
    return term_anchor.mean() + term_other.mean()


def flow_consistency_loss(flow_ab, flow_ba):
    """L_eps = mean |eps_{a->b}| + mean |eps_{b->a}| (forward-backward error in pixels)."""
    return forward_backward_error(flow_ab, flow_ba).mean() + forward_backward_error(flow_ba, flow_ab).mean()


def mask_loss(distance, outputs, inputs, difference_masks):
    """L_M (seed 001 eq. 6): `mean((1 - M^PD) * D(output, input))` over the given frames."""
    return ((1.0 - difference_masks) * distance.map(outputs, inputs)).mean()


def local_code(codes, prior_codes, radius):
    """`W_r = W + a (W_z - W) / ||W_z - W||` per frame, with `a = radius * sqrt(numel of one code)`,
    i.e. `radius` is the RMS step per code element. codes, prior_codes: `[N,C,*]`."""
    step = prior_codes - codes
    norm = step.flatten(1).norm(dim=1).clamp(min=1e-8).view(-1, *([1] * (codes.dim() - 1)))
    return codes + radius * math.sqrt(codes[0].numel()) * step / norm


def local_regulariser(distance, generator_original, generator_tuned, codes, lambda_l2=1.0):
    """L_r (seed 001 eq. 7) at codes `W_r`: `D(G_orig(W_r), G_new(W_r)) + lambda_l2 * MSE`."""
    with torch.no_grad():
        target = generator_original.decode(codes)
    output = generator_tuned.decode(codes)
    return distance(output, target).mean() + lambda_l2 * F.mse_loss(output, target)
