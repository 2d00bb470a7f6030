"""The built-in estimator against exact synthetic motion."""
import pytest
import torch

from tame.models.flow.builtin import BuiltinFlow
from tame.models.synthetic import render_clip, render_pair


def _epe(flow, truth, mask=None):
    error = (flow - truth).norm(dim=1)
    return error.mean().item() if mask is None else error[mask].mean().item()


@pytest.mark.parametrize("shift", [(0.4, -0.3), (7.0, 3.0), (-15.0, 6.0)])
def test_translation_is_recovered(shift):
    clip = render_clip(2, 128, 160, motion=1.0, num_layers=0, rotation=False, zoom=False, seed=3)
    image = clip.frames[:1]
    flow = torch.tensor(shift).view(1, 2, 1, 1).expand(1, 2, 128, 160)
    from tame.kernels.warp import backward_warp
    moved, _ = backward_warp(image, -flow, padding="reflection")   # content moves by +shift
    estimate = BuiltinFlow("medium")(image, moved)
    margin = int(max(abs(s) for s in shift)) + 4
    inner = estimate[..., margin:-margin, margin:-margin]
    truth = flow[..., margin:-margin, margin:-margin]
    assert _epe(inner, truth) < 0.25


def test_layers_rotation_zoom_epe_bound():
    clip = render_pair(144, 176, motion=6.0, seed=1)
    estimate = BuiltinFlow("medium")(clip.frames[:1], clip.frames[1:])
    visible = clip.occlusion_forward[:, 0] < 0.5
    assert _epe(estimate, clip.flow_forward, visible) < 1.0
    assert _epe(estimate, clip.flow_forward) < 1.5
    assert _epe(torch.zeros_like(estimate), clip.flow_forward) > 2.0  # the bound is meaningful


def test_odd_sizes_and_batch_equals_single_calls():
    clips = [render_pair(67, 93, motion=3.0, seed=s) for s in (0, 1)]
    first = torch.cat([c.frames[:1] for c in clips])
    second = torch.cat([c.frames[1:] for c in clips])
    model = BuiltinFlow("fast")
    batched = model(first, second)
    assert batched.shape == (2, 2, 67, 93)
    single = torch.cat([model(first[i:i + 1], second[i:i + 1]) for i in range(2)])
    assert torch.allclose(batched, single, atol=1e-4)


def test_gradient_reaches_both_images_only_when_asked():
    clip = render_pair(64, 80, motion=2.0, seed=2)
    first = clip.frames[:1].clone().requires_grad_(True)
    second = clip.frames[1:].clone().requires_grad_(True)
    model = BuiltinFlow("fast")
    assert not model(first, second).requires_grad
    model(first, second, grad_iterations=2).abs().sum().backward()
    assert first.grad.abs().sum() > 0 and second.grad.abs().sum() > 0


def test_unknown_quality_and_shape_mismatch():
    with pytest.raises(ValueError, match="unknown quality"):
        BuiltinFlow("ultra")
    with pytest.raises(ValueError, match="equal shapes"):
        BuiltinFlow()(torch.zeros(1, 3, 32, 32), torch.zeros(1, 3, 32, 40))
