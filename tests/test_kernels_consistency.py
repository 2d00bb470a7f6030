"""Forward-backward consistency on motions whose occlusions are known exactly."""
import math

import pytest
import torch

from tame.kernels.consistency import dilate_mask, forward_backward_error, occlusion_mask, soft_visibility

H, W = 32, 40


def constant_flow(dx, dy, dtype=torch.float32):
    return torch.tensor([dx, dy], dtype=dtype).view(1, 2, 1, 1).expand(1, 2, H, W).clone()


def out_of_frame_band(dx, dy):
    """1 where p + (dx, dy) leaves the frame (integer shifts)."""
    band = torch.zeros(1, 1, H, W)
    if dx > 0:
        band[..., W - dx:] = 1
    if dx < 0:
        band[..., :-dx] = 1
    if dy > 0:
        band[..., H - dy:, :] = 1
    if dy < 0:
        band[..., :-dy, :] = 1
    return band


def test_translation_and_its_inverse_are_consistent_except_out_of_frame():
    forward, backward = constant_flow(3, -2), constant_flow(-3, 2)
    assert forward_backward_error(forward, backward).abs().max() < 1e-6
    assert torch.equal(occlusion_mask(forward, backward), out_of_frame_band(3, -2))
    assert torch.equal(occlusion_mask(backward, forward), out_of_frame_band(-3, 2))
    visibility = soft_visibility(forward, backward)
    assert torch.allclose(visibility, 1 - out_of_frame_band(3, -2), atol=1e-5)


def test_soft_visibility_is_exp_of_minus_ten_eps():
    forward, backward = constant_flow(1.0, 0.0), constant_flow(-1.0, 0.3)  # round trip misses by 0.3 px
    eps = forward_backward_error(forward, backward)
    assert torch.allclose(eps, torch.full_like(eps, 0.3), atol=1e-6)
    visibility = soft_visibility(forward, backward)
    assert math.isclose(float(visibility[0, 0, 5, 5]), math.exp(-3.0), rel_tol=1e-5)
    assert float(soft_visibility(forward, backward, alpha=1.0)[0, 0, 5, 5]) == pytest.approx(math.exp(-0.3))


def moving_square(x0=10, y0=8, size=12, shift=4):
    """Square at columns [x0, x0+size) of frame a moves right by `shift` px over a static background.

    Returns F_ab, F_ba built analytically and the strips that are covered / uncovered.
    """
    rows = slice(y0, y0 + size)
    flow_ab, flow_ba = torch.zeros(1, 2, H, W), torch.zeros(1, 2, H, W)
    flow_ab[0, 0, rows, x0:x0 + size] = shift
    flow_ba[0, 0, rows, x0 + shift:x0 + shift + size] = -shift
    covered = torch.zeros(1, 1, H, W)            # background of a hidden by the square in b
    covered[0, 0, rows, x0 + size:x0 + size + shift] = 1
    disoccluded = torch.zeros(1, 1, H, W)        # background of b that the square hid in a
    disoccluded[0, 0, rows, x0:x0 + shift] = 1
    return flow_ab, flow_ba, covered, disoccluded


def test_moving_square_occludes_exactly_the_covered_and_uncovered_strips():
    flow_ab, flow_ba, covered, disoccluded = moving_square()
    assert torch.equal(occlusion_mask(flow_ab, flow_ba), covered)
    assert torch.equal(occlusion_mask(flow_ba, flow_ab), disoccluded)
    eps = forward_backward_error(flow_ba, flow_ab)
    assert torch.allclose(eps[disoccluded.bool()], torch.full((int(disoccluded.sum()),), 4.0))
    assert eps[~disoccluded.bool()].abs().max() < 1e-4  # float32 coordinate rounding


def test_threshold_scales_with_flow_magnitude():
    # |F_ab + F_ba~|^2 = 1 vs 0.01 * (|F_ab|^2 + |F_ba~|^2) + 0.5: occluded for slow, visible for fast motion
    slow = occlusion_mask(constant_flow(1.0, 0.0), constant_flow(-2.0, 0.0))
    fast = occlusion_mask(constant_flow(8.0, 0.0), constant_flow(-9.0, 0.0))
    assert slow[..., :W - 1].all()
    assert fast[..., :W - 8].sum() == 0
    assert occlusion_mask(constant_flow(1.0, 0.0), constant_flow(-2.0, 0.0), a2=1.5)[..., :W - 1].sum() == 0


def test_error_is_differentiable_in_both_flows_even_where_it_is_zero():
    forward = constant_flow(2.0, 1.0, torch.float64).requires_grad_()
    backward = (constant_flow(-2.0, -1.0, torch.float64) + 0.1 * torch.rand(1, 2, H, W, dtype=torch.float64))
    backward.requires_grad_()
    forward_backward_error(forward, backward).sum().backward()
    assert torch.isfinite(forward.grad).all() and forward.grad.abs().sum() > 0
    assert torch.isfinite(backward.grad).all() and backward.grad.abs().sum() > 0
    exact = constant_flow(2.0, 1.0).requires_grad_()
    forward_backward_error(exact, constant_flow(-2.0, -1.0)).sum().backward()
    assert torch.isfinite(exact.grad).all()


def test_dilate_mask_grows_a_pixel_into_a_square():
    mask = torch.zeros(2, 1, 9, 9)
    mask[0, 0, 4, 4] = 1
    dilated = dilate_mask(mask, 2)
    assert dilated.shape == mask.shape and dilated.dtype == mask.dtype
    assert dilated[0, 0, 2:7, 2:7].all() and dilated.sum() == 25
    assert torch.equal(dilate_mask(mask, 0), mask)
    assert dilate_mask(mask.bool(), 1).dtype == torch.bool
    with pytest.raises(ValueError, match="radius"):
        dilate_mask(mask, -1)


def test_flow_shapes_are_checked():
    with pytest.raises(ValueError, match="flow"):
        occlusion_mask(constant_flow(0, 0), torch.zeros(1, 2, H, W + 1))
    with pytest.raises(ValueError, match=r"\[N,2,H,W\]"):
        forward_backward_error(torch.zeros(1, 3, H, W), constant_flow(0, 0))
