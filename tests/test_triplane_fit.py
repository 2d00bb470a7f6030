"""Procedural 3-D head (exact analytic renders) and tri-plane fitting: InD prior, In-N-Out OOD fit with
removal, PTI-style baseline. Tiny sizes; the full comparison is bench/triplane/bench_triplane.py."""
import math

import pytest
import torch

from tame.kernels.metrics import psnr
from tame.kernels.rays import orbit_cam2world
from tame.models.data.scene3d import (Occluder, eg3d_intrinsics, observed_sequence, orbit_cameras,
                                      render_scene)
from tame.models.triplane.fit import (fit_ood, fit_single_field_baseline, fit_triplane, ood_removal,
                                      render_composite, render_field)
from tame.models.triplane.renderer import RenderSettings

SIZE = 16
TINY = RenderSettings(coarse=16, fine=8)


def frontal_camera():
    return orbit_cam2world(math.pi / 2, math.pi / 2, 2.7), eg3d_intrinsics(1)


# ------------------------------------------------------------------------------------ scene
def test_frontal_centre_ray_meets_the_nose_at_its_analytic_depth():
    scene = render_scene(*frontal_camera(), 65)
    # nose ellipsoid (head units): centre z 0.245, y -0.03; semi-axes y 0.07, z 0.065; head scale 0.82
    nose_tip = 0.82 * (0.245 + 0.065 * math.sqrt(1 - (0.03 / 0.07) ** 2))
    assert scene.depth[0, 0, 32, 32].item() == pytest.approx(2.7 - nose_tip, abs=1e-5)
    assert scene.head_mask[0, 0, 32, 32] == 1 and scene.head_mask[0, 0, 0, 0] == 0
    assert scene.depth[0, 0, 0, 0] == 0 and scene.images[0, :, 0, 0].abs().max() == 0
    assert 0 <= scene.images.min() and scene.images.max() <= 1


def test_occluder_changes_exactly_the_pixels_of_its_mask():
    sequence = observed_sequence(3, resolution=32)
    changed = (sequence.frames - sequence.clean).abs().amax(1, keepdim=True) > 0
    assert torch.equal(changed, sequence.occluder_masks.bool())
    assert 0.03 < sequence.occluder_masks.mean() < 0.3
    centres = sequence.occluder.centres
    assert (centres[1:] - centres[:-1]).abs().max() > 0  # the disc moves


def test_scene_renders_are_deterministic():
    first, second = observed_sequence(3, resolution=24, seed=1), observed_sequence(3, resolution=24, seed=1)
    assert torch.equal(first.frames, second.frames) and torch.equal(first.cam2world, second.cam2world)
    assert not torch.equal(first.cam2world, observed_sequence(3, resolution=24, seed=2).cam2world)
    assert torch.equal(orbit_cameras(4, seed=3)[0], orbit_cameras(4, seed=3)[0])


def test_scene_bad_input():
    cam2world, intrinsics = orbit_cameras(2)
    with pytest.raises(ValueError, match="intrinsics"):
        render_scene(cam2world, intrinsics[:1], 8)
    with pytest.raises(ValueError, match="finite"):
        render_scene(cam2world * float("nan"), intrinsics, 8)
    with pytest.raises(ValueError, match="occluder"):
        render_scene(cam2world, intrinsics, 8, Occluder(torch.zeros(3, 3)))
    with pytest.raises(ValueError, match="resolution"):
        render_scene(cam2world, intrinsics, 0)


# ------------------------------------------------------------------------------------ fitting
@pytest.fixture(scope="module")
def prior_data():
    cameras = orbit_cameras(8, 0.6, 0.3, seed=0)
    images = render_scene(*cameras, SIZE).images
    return images, cameras


@pytest.fixture(scope="module")
def prior(prior_data):
    images, cameras = prior_data
    return fit_triplane(images, *cameras, steps=150, plane_resolution=32, channels=16, rays_per_step=256,
                        settings=TINY)


def test_fitting_a_triplane_reduces_the_error(prior_data, prior):
    images, cameras = prior_data
    start = fit_triplane(images, *cameras, steps=1, plane_resolution=32, channels=16, settings=TINY)
    before = psnr(render_field(start, *cameras, SIZE).images, images).mean()
    after = psnr(render_field(prior, *cameras, SIZE).images, images).mean()
    # measured: 13.4 dB at the start, 23.0 dB after 150 steps
    assert after > before + 6 and after > 20


def test_in_n_out_removal_is_closer_to_the_clean_views_than_the_baseline(prior):
    sequence = observed_sequence(3, resolution=SIZE)
    observed = (sequence.frames, sequence.cam2world, sequence.intrinsics)
    planes_before = prior.planes.clone()
    calls = []
    fit = fit_ood(*observed, prior, steps=40, ind_lr_scale=0.1, masks=sequence.occluder_masks, patch_size=8,
                  settings=TINY, progress=lambda done, total: calls.append((done, total)))
    baseline = fit_single_field_baseline(*observed, prior, steps=40, lr=0.1, patch_size=8, settings=TINY)
    assert calls[-1] == (40, 40) and torch.equal(prior.planes, planes_before)
    removed = ood_removal(fit, sequence.cam2world, sequence.intrinsics, SIZE).images
    baseline_images = render_field(baseline, sequence.cam2world, sequence.intrinsics, SIZE).images
    assert psnr(removed, sequence.clean).mean() > psnr(baseline_images, sequence.clean).mean() + 1.0
    composite = render_composite(fit, sequence.cam2world, sequence.intrinsics, SIZE)
    assert composite.images.shape == composite.ood_images.shape == (3, 3, SIZE, SIZE)
    assert composite.blend_max.shape == (3, 1, SIZE, SIZE)
    assert torch.allclose(composite.ind_images, removed, atol=1e-6)  # the composite pass's InD alone = removal
    novel = render_composite(fit, *orbit_cameras(2, seed=5), SIZE, frames=1)
    assert novel.images.shape == (2, 3, SIZE, SIZE)


def test_progress_may_cancel_a_fit(prior_data):
    images, cameras = prior_data

    def cancel(done, total):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        fit_triplane(images, *cameras, steps=5, plane_resolution=8, channels=8, rays_per_step=16, settings=TINY,
                     progress=cancel)


def test_fitting_bad_input(prior):
    sequence = observed_sequence(2, resolution=SIZE)
    frames, cam2world, intrinsics = sequence.frames, sequence.cam2world, sequence.intrinsics
    with pytest.raises(ValueError, match="one camera per frame"):
        fit_triplane(frames, cam2world[:1], intrinsics[:1], steps=1)
    with pytest.raises(ValueError, match="square"):
        fit_ood(frames[..., :-2], cam2world, intrinsics, prior, steps=1)
    with pytest.raises(ValueError, match="masks"):
        fit_ood(frames, cam2world, intrinsics, prior, steps=1, masks=sequence.occluder_masks[..., :-1, :-1])
    with pytest.raises(ValueError, match="NaN"):
        fit_single_field_baseline(frames * float("nan"), cam2world, intrinsics, prior, steps=1)
    with pytest.raises(ValueError, match="patch_size"):
        fit_ood(frames, cam2world, intrinsics, prior, steps=1, patch_size=SIZE + 1)
    with pytest.raises(ValueError, match="TriplaneField"):
        fit_single_field_baseline(frames, cam2world, intrinsics, prior.planes, steps=1)
    with pytest.raises(ValueError, match="frame codes"):
        fit = fit_ood(frames, cam2world, intrinsics, prior, steps=1, patch_size=8, settings=TINY)
        render_composite(fit, *orbit_cameras(3), SIZE)
