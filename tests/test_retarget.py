"""Retarget: mesh solver, saliency, fill, layered warp record, video tie, quality measures, nodes and errors."""
import math

import pytest
import torch
import torch.nn.functional as F

from tame.kernels.fill import push_pull_fill
from tame.kernels.mesh_warp import MeshTerms, mesh_grid, mesh_jacobian, solve_mesh
from tame.kernels.metrics import warping_error
from tame.kernels.saliency import saliency, spectral_residual
from tame.kernels.warp import pixel_grid
from tame.models.data.scenes import render_clip
from tame.models.flow.estimate import estimate_video_flow
from tame.models.metrics.retarget_quality import (bidirectional_similarity, carved_registration, mask_box_aspect,
                                                  salient_distortion)
from tame.models.retarget.image import retarget_image
from tame.models.retarget.video import VideoSettings, retarget_video, transport_vertices
from tame.nodes.flow_nodes import builtin_estimator
from tame.nodes.retarget_nodes import TameApplyRetarget, TameRetarget, TameRetargetVideo, TameSaliency


def _terms(grid, similarity=0.0, uniform=0.05):
    h, v = (grid.rows + 1, grid.cols), (grid.rows, grid.cols + 1)
    full = lambda value, shape: torch.full(shape, float(value), dtype=torch.float64)  # noqa: E731
    return MeshTerms((full(similarity, h), full(similarity, v)), (full(uniform, h), full(uniform, v)),
                     (full(0, h), full(0, v)), (full(1, h), full(1, v)))


def object_scene(h=192, w=256, box=(60, 140, 90, 150)):
    generator = torch.Generator().manual_seed(0)
    image = 0.4 + 0.2 * F.interpolate(torch.rand(1, 3, h // 8, w // 8, generator=generator), size=(h, w),
                                      mode="bilinear")
    keep = torch.zeros(1, 1, h, w)
    top, bottom, left, right = box
    keep[..., top:bottom, left:right] = 1
    image[..., top:bottom, left:right] = torch.tensor([0.9, 0.1, 0.1]).view(1, 3, 1, 1)
    return image, keep


def test_uniform_terms_give_uniform_scaling_exactly():
    grid = mesh_grid((100, 200), (100, 60), cells=12)
    vertices, _ = solve_mesh(grid, _terms(grid))
    assert torch.allclose(vertices, grid.uniform_vertices(), atol=1e-6)


def test_rigid_region_keeps_a_similarity_while_the_frame_halves():
    grid = mesh_grid((192, 256), (192, 128), cells=24)
    terms = _terms(grid)
    rows, cols = slice(8, 16), slice(6, 10)
    terms.similarity[0][rows, cols] = 60.0
    terms.similarity[1][8:15, 6:11] = 60.0
    vertices, scale = solve_mesh(grid, terms)
    jacobian = mesh_jacobian(vertices, grid)
    inner = (slice(9, 15), slice(7, 10))
    assert jacobian[0, 0][inner].mean().item() == pytest.approx(scale, rel=0.02)
    assert jacobian[1, 1][inner].mean().item() == pytest.approx(scale, rel=0.02)
    assert vertices[0, :, 0].abs().max() < 1e-3 and (vertices[0, :, -1] - 255).abs().max() < 1e-3


def test_keep_mask_keeps_its_aspect_ratio_when_the_frame_aspect_changes_twofold():
    image, keep = object_scene()
    result = retarget_image(image, (192, 128), keep=keep)
    kept = result.warp.warp(keep)[0][0, 0]
    assert mask_box_aspect(kept) == pytest.approx(60 / 80, rel=0.05)
    squeezed = F.interpolate(keep, size=(192, 128), mode="bilinear")[0, 0]
    assert mask_box_aspect(squeezed) == pytest.approx(30 / 80, rel=0.05)  # what uniform scaling does


def test_layered_warp_reapplies_to_the_image_masks_and_latents():
    image, keep = object_scene()
    result = retarget_image(image, (192, 128), keep=keep)
    again = result.warp.warp(image)[0].clamp(0, 1)
    assert torch.allclose(again, result.image, atol=1e-6)
    latent = F.avg_pool2d(image, 8)
    warped_latent = result.warp.warp(latent)[0]
    assert warped_latent.shape[-2:] == (24, 16)
    assert (warped_latent - F.avg_pool2d(result.image, 8)).abs().mean() < 0.03


def test_saliency_peaks_on_an_object_on_a_flat_background():
    image = torch.full((1, 3, 96, 128), 0.5)
    image[..., 20:44, 80:104] = torch.tensor([0.9, 0.2, 0.1]).view(1, 3, 1, 1)
    for maps in (spectral_residual(image), saliency(image, centre_weight=0.0)):
        assert maps.min() >= 0 and maps.max() == pytest.approx(1.0)
        assert maps[..., 20:44, 80:104].mean() > 4 * maps[..., 60:, :50].mean()


def test_push_pull_fill_keeps_known_pixels_and_fills_a_ramp():
    ramp = torch.linspace(0, 1, 64).view(1, 1, 1, 64).expand(1, 1, 64, 64).clone()
    known = torch.ones(1, 1, 64, 64)
    known[..., 24:40, 24:40] = 0
    filled = push_pull_fill(ramp, known)
    assert torch.equal(filled[known.bool()], ramp[known.bool()])
    assert (filled - ramp)[..., 24:40, 24:40].abs().max() < 0.1
    constant = push_pull_fill(torch.full((1, 2, 32, 32), 0.25), known[..., :32, :32])
    assert torch.allclose(constant, torch.full_like(constant, 0.25), atol=1e-6)


def test_transport_by_a_translation_keeps_an_affine_warp():
    """Content moving with the camera through a uniform warp keeps the same warp (first-order exact)."""
    grid = mesh_grid((64, 96), (64, 48), cells=12)
    flow = torch.zeros(1, 2, 64, 96, dtype=torch.float64)
    flow[:, 0] = 3.0
    uniform = grid.uniform_vertices()
    assert torch.allclose(transport_vertices(uniform, grid, flow)[:, 2:-2, 2:-2], uniform[:, 2:-2, 2:-2], atol=1e-6)


def test_distortion_measure_closed_forms():
    size = (64, 32)
    weight = torch.ones(1, 1, 64, 64)
    squeeze = (pixel_grid(*size) + 0.5) * torch.tensor([2.0, 1.0]).view(1, 2, 1, 1) - 0.5
    assert salient_distortion(squeeze, weight) == pytest.approx(math.log(2), rel=1e-4)
    assert salient_distortion(pixel_grid(*size), weight) == pytest.approx(0.0, abs=1e-6)


def test_carved_registration_recovers_removed_columns():
    generator = torch.Generator().manual_seed(1)
    source = (torch.randint(0, 256, (1, 3, 8, 20), generator=generator).float() / 255)
    removed = [3, 4, 11, 17]
    kept = [x for x in range(20) if x not in removed]
    registration = carved_registration(source, source[..., kept])
    assert torch.equal(registration[0, 0, 0], torch.tensor(kept, dtype=torch.float32))


def test_completeness_sees_cut_content_and_coherence_sees_new_content():
    image, _ = object_scene()
    cropped = image[..., :, 64:192]
    squeezed = F.interpolate(image, size=(192, 128), mode="bilinear", antialias=True)
    noise = torch.rand(1, 3, 192, 128, generator=torch.Generator().manual_seed(2))
    crop_score = bidirectional_similarity(image, cropped)
    squeeze_score = bidirectional_similarity(image, squeezed)
    assert crop_score["coherence"] < 1e-6 < crop_score["completeness"]
    assert squeeze_score["completeness"] < crop_score["completeness"]  # the object-free sides are cut by the crop
    assert bidirectional_similarity(image, noise)["coherence"] > 10 * squeeze_score["coherence"]


def test_video_retarget_wobbles_less_than_per_frame_retargeting():
    clip = render_clip(num_frames=8, height=72, width=96, motion=2.0, num_layers=1, seed=5)
    estimator = builtin_estimator("fast")
    errors = {}
    for name, video in (("per frame", VideoSettings(temporal_weight=0.0, saliency_memory=0.0, chunk=4)),
                        ("tied", VideoSettings(chunk=4))):
        out, warp, warped_saliency = retarget_video(clip.frames, (72, 48), estimator, video=video)
        assert out.shape == (8, 3, 72, 48) and warp.pairs == [(t, t) for t in range(8)]
        assert warped_saliency.shape == (8, 1, 72, 48)
        flows = estimate_video_flow(estimator, out, bidirectional=True)
        errors[name] = warping_error(out, flows.forward, flows.backward)[1].item()
    assert errors["tied"] < 0.5 * errors["per frame"]


def test_nodes_chain_and_apply_to_masks_and_latents():
    image, keep = object_scene(96, 128, (30, 70, 45, 75))
    images = image.permute(0, 2, 3, 1)
    saliency_mask, preview = TameSaliency().compute(images, 0.6, 0.4, 0.3)
    assert saliency_mask.shape == (1, 96, 128) and preview.shape == (1, 96, 128, 3)
    out, warp, warped = TameRetarget().retarget(images, 64, 96, keep_mask=keep[:, 0], saliency=saliency_mask)
    assert out.shape == (1, 96, 64, 3) and warped.shape == (1, 96, 64)
    applied, mask, latent = TameApplyRetarget().apply(warp, image=images, mask=keep[:, 0],
                                                      latent={"samples": torch.rand(1, 4, 12, 16)})
    assert torch.allclose(applied, out, atol=1e-5)
    assert mask.shape == (1, 96, 64) and latent["samples"].shape == (1, 4, 12, 8)


@pytest.mark.parametrize("width,height,match", [(0, 96, "at least 2"), (600, 96, "more than 4x")])
def test_bad_target_sizes_are_clear_errors(width, height, match):
    image, _ = object_scene(96, 128, (30, 70, 45, 75))
    with pytest.raises(ValueError, match=match):
        TameRetarget().retarget(image.permute(0, 2, 3, 1), width, height)


def test_mask_size_mismatch_and_one_frame_video_are_clear_errors():
    image, _ = object_scene(96, 128, (30, 70, 45, 75))
    images = image.permute(0, 2, 3, 1)
    with pytest.raises(ValueError, match="resize the mask"):
        TameRetarget().retarget(images, 64, 96, keep_mask=torch.ones(1, 50, 50))
    with pytest.raises(ValueError, match="at least 2"):
        TameRetargetVideo().retarget(images, 64, 96, 4.0, 0.8, 16)
    optical_flow = estimate_video_flow(builtin_estimator("fast"), torch.rand(2, 3, 32, 32))
    with pytest.raises(ValueError, match="not a retarget warp"):
        TameApplyRetarget().apply(optical_flow, image=torch.rand(2, 32, 32, 3))
