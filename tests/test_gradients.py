"""Gradients of the differentiable kernels against finite differences (torch.autograd.gradcheck, float64)."""
import torch
from torch.autograd import gradcheck

from tame.kernels.consistency import soft_visibility
from tame.kernels.frequency import lowpass
from tame.kernels.warp import backward_warp, remap

GEN = torch.Generator().manual_seed(0)


def smooth_flow(n=1, h=7, w=9, amplitude=1.3):
    """A flow whose samples stay away from pixel centres and borders' kinks (bilinear is piecewise linear)."""
    base = torch.rand(n, 2, h, w, dtype=torch.float64, generator=GEN) * 0.6 + 0.2
    return (base * amplitude).requires_grad_(True)


def test_backward_warp_gradients_in_image_and_flow():
    image = torch.rand(1, 2, 7, 9, dtype=torch.float64, generator=GEN, requires_grad=True)
    flow = smooth_flow()
    for mode in ("bilinear", "bicubic"):
        assert gradcheck(lambda i, f: backward_warp(i, f, padding="border", mode=mode)[0], (image, flow),
                         eps=1e-6, atol=1e-5)


def test_remap_gradients_at_another_target_size():
    image = torch.rand(1, 1, 6, 8, dtype=torch.float64, generator=GEN, requires_grad=True)
    coords = (torch.rand(1, 2, 4, 11, dtype=torch.float64, generator=GEN) * torch.tensor(
        [6.0, 4.0], dtype=torch.float64).view(1, 2, 1, 1) + 0.3).requires_grad_(True)
    assert gradcheck(lambda i, c: remap(i, c)[0], (image, coords), eps=1e-6, atol=1e-5)


def test_soft_visibility_gradients_in_both_flows():
    flow_ab = smooth_flow(amplitude=0.8)
    flow_ba = (-flow_ab.detach() + 0.05 * torch.rand(flow_ab.shape, dtype=torch.float64, generator=GEN)
               ).requires_grad_(True)
    assert gradcheck(lambda a, b: soft_visibility(a, b, alpha=2.0), (flow_ab, flow_ba), eps=1e-6, atol=1e-5)


def test_lowpass_gradient():
    x = torch.rand(1, 2, 8, 9, dtype=torch.float64, generator=GEN, requires_grad=True)
    assert gradcheck(lambda v: lowpass(v, passes=2), (x,), eps=1e-6, atol=1e-6)
