"""Tri-plane kernels, cameras, ray marching and the two-pass renderer against closed forms and a
per-ray brute-force reference (float64)."""
import math

import pytest
import torch
import torch.nn.functional as F

from tame.kernels.rays import (focal_to_fov, fov_to_focal, importance_depths, look_at, normalized_intrinsics,
                               orbit_cam2world, pixel_rays, stratified_depths)
from tame.kernels.triplane import project_onto_planes, sample_triplane
from tame.kernels.volume import composite_march, march
from tame.models.triplane.decoders import OODDecoder, OSGDecoder
from tame.models.triplane.renderer import (OODField, RenderSettings, TriplaneField, render, render_rays,
                                           validate_planes)

FOCAL = 4.2647


# ---------------------------------------------------------------- brute-force reference (one ray at a time)

def reference_bilinear(plane, u, v):
    """grid_sample(bilinear, zeros, align_corners=False) of plane `[C,H,W]` at one (u, v), written out."""
    channels, height, width = plane.shape
    x, y = ((u + 1) * width - 1) / 2, ((v + 1) * height - 1) / 2
    x0, y0 = math.floor(x), math.floor(y)
    value = torch.zeros(channels, dtype=plane.dtype)
    for xi, wx in ((x0, x0 + 1 - x), (x0 + 1, x - x0)):
        for yi, wy in ((y0, y0 + 1 - y), (y0 + 1, y - y0)):
            if 0 <= xi < width and 0 <= yi < height:
                value = value + wx * wy * plane[:, yi, xi]
    return value


def reference_feature(planes, point):
    """Mean over the XY, XZ, ZX planes (`[3,C,H,W]`) at one world point (box_warp 1)."""
    x, y, z = (2 * float(c) for c in point)
    pairs = ((x, y), (x, z), (z, x))
    return sum(reference_bilinear(planes[p], *pairs[p]) for p in range(3)) / 3


def reference_layer(layer, x):
    return layer.weight / math.sqrt(layer.weight.shape[1]) @ x + layer.bias


def reference_decode(decoder, feature):
    out = reference_layer(decoder.net[2], F.softplus(reference_layer(decoder.net[0], feature)))
    return out[0], torch.sigmoid(out[1:]) * 1.002 - 0.001


def reference_importance(depths, weights, count):
    """EG3D's smoothing and deterministic inverse-CDF sampling for one ray, with explicit loops."""
    k = len(depths)
    widened = [weights[max(i - 1, 0)] if i == k - 1 else max(weights[max(i - 1, 0)], weights[i]) for i in range(k)]
    smoothed = [(widened[i] + widened[i + 1]) / 2 + 0.01 for i in range(k - 1)][1:-1]
    bins = [(depths[i] + depths[i + 1]) / 2 for i in range(k - 1)]
    total = sum(w + 1e-5 for w in smoothed)
    cdf = [0.0]
    for w in smoothed:
        cdf.append(cdf[-1] + (w + 1e-5) / total)
    samples = []
    for s in range(count):
        u = s / (count - 1)
        above = min(sum(1 for c in cdf if c <= u), len(cdf) - 1)
        below = max(sum(1 for c in cdf if c <= u) - 1, 0)
        span = cdf[above] - cdf[below]
        span = 1.0 if span < 1e-5 else span
        samples.append(bins[below] + (u - cdf[below]) / span * (bins[above] - bins[below]))
    return samples


def reference_march(depths, densities, features, ood=None):
    """Midpoint MipRayMarcher2 (or the blend composite when ood = (densities, features, blends)) for one ray."""
    transmittance, colour, weights, weighted_depth = 1.0, 0.0, [], 0.0
    for k in range(len(depths) - 1):
        delta, t_mid = depths[k + 1] - depths[k], (depths[k] + depths[k + 1]) / 2
        alpha = 1 - math.exp(-F.softplus(torch.tensor((densities[k] + densities[k + 1]) / 2 - 1)).item() * delta)
        c_mid = (features[k] + features[k + 1]) / 2
        if ood is None:
            part_ood, part_ind, c_ood = 0.0, alpha, 0.0
        else:
            b = (ood[2][k] + ood[2][k + 1]) / 2
            alpha_o = 1 - math.exp(-F.softplus(torch.tensor((ood[0][k] + ood[0][k + 1]) / 2 - 1)).item() * delta)
            part_ood, part_ind, c_ood = b * alpha_o, (1 - b) * alpha, (ood[1][k] + ood[1][k + 1]) / 2
        weight = transmittance * (part_ood + part_ind)
        colour = colour + transmittance * (part_ood * c_ood + part_ind * c_mid)
        weights.append(weight)
        weighted_depth += weight * t_mid
        transmittance *= (1 - part_ood) * (1 - part_ind) + 1e-10
    return colour, weighted_depth / sum(weights), sum(weights), weights


def reference_ray(field, origin, direction, settings, ood=None):
    """Two-pass render of one ray: features in [-1,1], depth, opacity."""
    def decode_at(t):
        point = origin + t * direction
        density, feature = reference_decode(field.decoder, reference_feature(field.planes[0], point))
        return density.item(), feature

    coarse = [settings.near + (settings.far - settings.near) * k / (settings.coarse - 1)
              for k in range(settings.coarse)]
    samples = [(t, *decode_at(t)) for t in coarse]
    weights = reference_march(coarse, [s[1] for s in samples], [s[2] for s in samples])[3]
    fine = reference_importance(coarse, weights, settings.fine)
    samples = sorted(samples + [(t, *decode_at(t)) for t in fine], key=lambda s: s[0])
    depths, densities, features = [s[0] for s in samples], [s[1] for s in samples], [s[2] for s in samples]
    ood_samples = None
    if ood is not None:
        ood_samples = ([], [], [])
        for t in depths:
            feature = reference_feature(ood.planes[0], origin + t * direction)
            out = reference_layer(ood.decoder.net[2], F.softplus(
                reference_layer(ood.decoder.net[0], torch.cat((feature, ood.codes[0]))))).detach()
            ood_samples[0].append(out[0].item())
            ood_samples[1].append(torch.sigmoid(out[1:-1]) * 1.002 - 0.001)
            ood_samples[2].append(torch.sigmoid(out[-1]).item())
    colour, depth, opacity, _ = reference_march(depths, densities, features, ood_samples)
    return 2 * colour - 1, depth, opacity


def random_field(channels=6, size=(8, 10), seed=0):
    torch.manual_seed(seed)
    planes = torch.randn(1, 3, channels, *size, dtype=torch.float64)
    decoder = OSGDecoder(features=channels, hidden=12, out_features=5).double()
    with torch.no_grad():
        decoder.net[2].bias[0] = 2.0  # dense enough that the samples matter
    return TriplaneField(planes, decoder)


def random_ood(channels=6, code=4, seed=1):
    torch.manual_seed(seed)
    decoder = OODDecoder(features=channels, code=code, hidden=12, out_features=5).double()
    return OODField(torch.randn(1, 3, channels, 8, 8, dtype=torch.float64), decoder,
                    torch.randn(1, code, dtype=torch.float64))


def oblique_camera(dtype=torch.float64):
    cam2world = orbit_cam2world(torch.tensor([1.3], dtype=dtype), 1.7, 2.7)
    return cam2world, normalized_intrinsics(FOCAL / 2, 1, dtype=dtype)


# ---------------------------------------------------------------- tri-plane kernels

def test_projection_maps_xy_xz_zx_with_box_warp():
    points = torch.tensor([[[0.1, 0.2, 0.3], [-0.4, 0.0, 0.25]]], dtype=torch.float64)
    coords = project_onto_planes(points, box_warp=0.5)
    p = 4 * points[0]
    assert coords.shape == (1, 3, 2, 2)
    assert torch.allclose(coords[0, 0], p[:, [0, 1]])
    assert torch.allclose(coords[0, 1], p[:, [0, 2]])
    assert torch.allclose(coords[0, 2], p[:, [2, 0]])


def linear_plane(coefficients, channels, height, width):
    """Plane `[C,H,W]` whose pixel centres hold a*u + b*v + c (u along W, v along H, in [-1,1])."""
    u = (2 * torch.arange(width, dtype=torch.float64) + 1) / width - 1
    v = (2 * torch.arange(height, dtype=torch.float64) + 1) / height - 1
    a, b, c = coefficients
    value = a * u.view(1, -1) + b * v.view(-1, 1) + c
    return value.expand(channels, height, width)


def test_sampling_linear_planes_gives_mean_of_the_three_functions():
    coefficients = ((0.7, -0.2, 0.1), (0.3, 0.9, -0.4), (-0.5, 0.25, 0.6))
    planes = torch.stack([linear_plane(c, 2, 9, 12) for c in coefficients]).unsqueeze(0)
    points = torch.rand(1, 20, 3, dtype=torch.float64) * 0.8 - 0.4  # inside the outer pixel centres
    sampled = sample_triplane(planes, points)
    x, y, z = (2 * points[0, :, i] for i in range(3))
    pairs = ((x, y), (x, z), (z, x))
    expected = sum(a * u + b * v + c for (a, b, c), (u, v) in zip(coefficients, pairs)) / 3
    assert sampled.shape == (1, 20, 2)
    assert torch.allclose(sampled[0, :, 0], expected, atol=1e-12)
    assert torch.allclose(sampled[0, :, 1], expected, atol=1e-12)


def test_single_nonzero_plane_contributes_a_third():
    planes = torch.zeros(1, 3, 1, 9, 12, dtype=torch.float64)
    planes[0, 1] = linear_plane((0.3, 0.9, -0.4), 1, 9, 12)
    points = torch.rand(1, 10, 3, dtype=torch.float64) * 0.8 - 0.4
    x, z = 2 * points[0, :, 0], 2 * points[0, :, 2]
    assert torch.allclose(sample_triplane(planes, points)[0, :, 0], (0.3 * x + 0.9 * z - 0.4) / 3, atol=1e-12)


def test_points_outside_the_box_sample_zeros_and_shared_planes_broadcast():
    planes = torch.randn(1, 3, 4, 6, 6)
    outside = torch.tensor([[[0.8, 0.9, -0.9], [-1.0, 0.7, 2.0]]]).expand(3, 2, 3)
    assert torch.equal(sample_triplane(planes, outside), torch.zeros(3, 2, 4))
    inside = torch.rand(2, 5, 3) - 0.5
    shared = sample_triplane(planes, inside)
    assert torch.allclose(shared[1], sample_triplane(planes, inside[1:])[0])


# ---------------------------------------------------------------- cameras and rays

def test_focal_and_fov_convert_both_ways():
    # EG3D's 1.414 makes 18.837 degrees give 4.2634, close to (not exactly) FFHQ's 4.2647
    assert fov_to_focal(18.837) == pytest.approx(1 / (math.tan(math.radians(18.837) / 2) * 1.414))
    assert fov_to_focal(18.837) == pytest.approx(FOCAL, abs=2e-3)
    assert focal_to_fov(fov_to_focal(30.0)) == pytest.approx(30.0)
    assert torch.allclose(focal_to_fov(fov_to_focal(torch.tensor([12.0, 40.0]))), torch.tensor([12.0, 40.0]))


def test_frontal_orbit_camera_looks_down_minus_z_with_opencv_axes():
    cam2world = orbit_cam2world(math.pi / 2, math.pi / 2, 2.7).double()
    assert torch.allclose(cam2world[0, :3, 3], torch.tensor([0, 0, 2.7], dtype=torch.float64), atol=1e-6)
    assert torch.allclose(cam2world[0, :3, 0], torch.tensor([1.0, 0, 0], dtype=torch.float64), atol=1e-6)
    assert cam2world[0, 1, 1] == pytest.approx(-1, abs=1e-6)  # camera y (down) is world -y
    origins, directions = pixel_rays(cam2world, normalized_intrinsics(FOCAL, 1, torch.float64), 3)
    assert directions.shape == (1, 9, 3) and origins.shape == (1, 9, 3)
    assert torch.allclose(directions[0, 4], torch.tensor([0, 0, -1.0], dtype=torch.float64), atol=1e-6)
    top_left = directions[0, 0]
    assert top_left[0] < 0 < top_left[1]  # row 0 is the top of the image, column 0 the left
    assert torch.allclose(directions.norm(dim=-1), torch.ones(1, 9, dtype=torch.float64))


def test_look_at_round_trip():
    origins = torch.tensor([[0.5, 0.3, 2.5], [-2.0, 1.0, 0.4]], dtype=torch.float64)
    targets = torch.tensor([0.0, 0.1, 0.2], dtype=torch.float64)
    cam2world = look_at(origins, targets)
    rotation = cam2world[:, :3, :3]
    assert torch.allclose(rotation.transpose(1, 2) @ rotation, torch.eye(3, dtype=torch.float64).expand(2, 3, 3))
    assert torch.allclose(torch.linalg.det(rotation), torch.ones(2, dtype=torch.float64))
    distance = (targets - origins).norm(dim=-1, keepdim=True)
    assert torch.allclose(origins + distance * rotation[:, :, 2], targets.expand(2, 3))
    assert torch.allclose(cam2world[:, :3, 3], origins)


def test_orbit_keeps_radius_and_looks_at_target():
    target = (0.0, 0.0, 0.2)
    cam2world = orbit_cam2world(torch.tensor([1.0, 2.0], dtype=torch.float64), 1.2, 2.7, target)
    assert torch.allclose(cam2world[:, :3, 3].norm(dim=-1), torch.full((2,), 2.7, dtype=torch.float64))
    to_target = F.normalize(torch.tensor(target, dtype=torch.float64) - cam2world[:, :3, 3], dim=-1)
    assert torch.allclose(cam2world[:, :3, 2], to_target)


# ---------------------------------------------------------------- depth samples

def test_stratified_depths_are_exact_without_generator_and_jittered_within_a_step_with_one():
    exact = stratified_depths(2, 3, 2.25, 3.3, 8, dtype=torch.float64)
    assert exact.shape == (2, 3, 8, 1)
    assert torch.allclose(exact[1, 2, :, 0], torch.linspace(2.25, 3.3, 8, dtype=torch.float64))
    jittered = stratified_depths(2, 3, 2.25, 3.3, 8, torch.Generator().manual_seed(0), dtype=torch.float64)
    offsets = jittered - exact
    assert bool((offsets >= 0).all() and (offsets < 1.05 / 7).all()) and bool((offsets > 0).any())


def test_importance_depths_deterministic_sorted_bounded_and_peaked():
    depths = stratified_depths(1, 2, 2.25, 3.3, 48, dtype=torch.float64)
    weights = torch.zeros(1, 2, 47, 1, dtype=torch.float64)
    weights[0, 0, 20] = 1.0
    weights[0, 1, 35] = 0.5
    fine = importance_depths(depths, weights, 48)
    assert torch.equal(fine, importance_depths(depths, weights, 48))
    assert bool((fine[..., 1:, 0] >= fine[..., :-1, 0]).all())
    assert bool((fine >= 2.25).all() and (fine <= 3.3).all())
    peak = (depths[0, 0, 20, 0] + depths[0, 0, 21, 0]) / 2
    near_peak = ((fine[0, 0, :, 0] - peak).abs() < 2 * 1.05 / 47).double().mean()
    assert near_peak > 0.5
    expected = reference_importance(depths[0, 0, :, 0].tolist(), weights[0, 0, :, 0].tolist(), 48)
    assert torch.allclose(fine[0, 0, :, 0], torch.tensor(expected, dtype=torch.float64), atol=1e-12)


# ---------------------------------------------------------------- marching

def test_constant_density_opacity_has_closed_form():
    depths = stratified_depths(1, 1, 2.25, 3.3, 30, dtype=torch.float64)
    raw = torch.full_like(depths, 1.7)
    result = march(depths, raw, torch.ones(1, 1, 30, 3, dtype=torch.float64))
    expected = 1 - math.exp(-math.log1p(math.exp(1.7 - 1)) * (3.3 - 2.25))
    assert result.opacity.item() == pytest.approx(expected, abs=1e-8)
    assert torch.allclose(result.features, result.opacity.expand(1, 1, 3))
    assert result.weights.shape == (1, 1, 29, 1)


def random_samples(n=2, m=5, k=9, c=4, seed=3):
    generator = torch.Generator().manual_seed(seed)
    depths = torch.sort(torch.rand(n, m, k, 1, generator=generator, dtype=torch.float64) + 2, dim=2).values
    return depths, [torch.randn(n, m, k, size, generator=generator, dtype=torch.float64) * 2
                    for size in (1, c, 1, c)]


def test_composite_with_blend_zero_or_one_equals_the_single_field_march():
    depths, (ind_density, ind_features, ood_density, ood_features) = random_samples()
    zeros = torch.zeros_like(ind_density)
    for blend, density, features in ((zeros, ind_density, ind_features), (zeros + 1, ood_density, ood_features)):
        composite = composite_march(depths, ind_density, ind_features, ood_density, ood_features, blend)
        single = march(depths, density, features)
        for got, expected in zip(composite, single):
            assert torch.allclose(got, expected, atol=1e-12)


# ---------------------------------------------------------------- renderer

def test_render_matches_brute_force_reference():
    field, settings = random_field(), RenderSettings(coarse=10, fine=8, ray_chunk=7)
    cam2world, intrinsics = oblique_camera()
    out = render(field, cam2world, intrinsics, 4, settings)
    origins, directions = pixel_rays(cam2world, intrinsics, 4)
    assert out.image.shape == (1, 5, 4, 4) and out.depth.shape == out.opacity.shape == (1, 1, 4, 4)
    for ray in (0, 6, 9, 15):
        with torch.no_grad():
            colour, depth, opacity = reference_ray(field, origins[0, ray], directions[0, ray], settings)
        i, j = divmod(ray, 4)
        assert (out.image[0, :, i, j] - colour).abs().max() <= 1e-5
        assert out.depth[0, 0, i, j].item() == pytest.approx(depth, abs=1e-5)
        assert out.opacity[0, 0, i, j].item() == pytest.approx(opacity, abs=1e-5)


def test_composite_render_matches_brute_force_reference():
    field, ood, settings = random_field(), random_ood(), RenderSettings(coarse=8, fine=6)
    cam2world, intrinsics = oblique_camera()
    origins, directions = pixel_rays(cam2world, intrinsics, 3)
    out = render_rays(field, origins, directions, settings, ood=ood)
    assert out.blend.shape == (1, 9, 14, 1) and out.blend_max.shape == (1, 9, 1)
    assert torch.allclose(out.blend_max, out.blend.amax(dim=2))
    for ray in (1, 4, 8):
        with torch.no_grad():
            colour, depth, opacity = reference_ray(field, origins[0, ray], directions[0, ray], settings, ood)
        assert (out.features[0, ray] - colour).abs().max() <= 1e-5
        assert out.depth[0, ray].item() == pytest.approx(depth, abs=1e-5)
        assert out.opacity[0, ray].item() == pytest.approx(opacity, abs=1e-5)


def test_render_is_chunk_invariant_reports_progress_and_can_be_cancelled():
    field, settings = random_field(), RenderSettings(coarse=6, fine=4)
    cam2world, intrinsics = oblique_camera()
    whole = render(field, cam2world, intrinsics, 5, settings)
    calls = []
    chunked = render(field, cam2world, intrinsics, 5, RenderSettings(coarse=6, fine=4, ray_chunk=10),
                     progress=lambda done, total: calls.append((done, total)))
    assert calls == [(1, 3), (2, 3), (3, 3)]
    assert torch.allclose(whole.image, chunked.image) and torch.allclose(whole.depth, chunked.depth)

    def cancel(done, total):
        raise InterruptedError("cancelled")
    with pytest.raises(InterruptedError):
        render(field, cam2world, intrinsics, 5, RenderSettings(coarse=6, fine=4, ray_chunk=10), progress=cancel)


def test_render_is_differentiable_in_planes_decoders_and_codes():
    field, ood = random_field(), random_ood()
    field.planes.requires_grad_(True)
    ood.planes.requires_grad_(True)
    ood.codes.requires_grad_(True)
    cam2world, intrinsics = oblique_camera()
    out = render(field, cam2world, intrinsics, 3, RenderSettings(coarse=6, fine=4), ood=ood,
                 generator=torch.Generator().manual_seed(0))
    (out.image.sum() + out.ood_image.sum() + out.blend_max.sum()).backward()
    tensors = [field.planes, ood.planes, ood.codes, *field.decoder.parameters(), *ood.decoder.parameters()]
    assert all(t.grad is not None and t.grad.abs().sum() > 0 for t in tensors)


def test_decoder_state_dict_uses_eg3d_names():
    assert set(OSGDecoder().state_dict()) == {"net.0.weight", "net.0.bias", "net.2.weight", "net.2.bias"}
    assert OODDecoder().state_dict()["net.2.weight"].shape == (34, 64)


# ---------------------------------------------------------------- bad input

def test_bad_planes_are_rejected_with_clear_messages():
    field = random_field()
    cam2world, intrinsics = oblique_camera()
    field.planes[0, 1, 0, 2, 3] = float("nan")
    with pytest.raises(ValueError, match="NaN/Inf"):
        render(field, cam2world, intrinsics, 2, RenderSettings(coarse=4, fine=0))
    with pytest.raises(ValueError, match=r"\[N,3,C,H,W\]"):
        validate_planes(torch.zeros(1, 2, 4, 8, 8))
    with pytest.raises(ValueError, match="floating-point"):
        validate_planes(torch.zeros(1, 3, 4, 8, 8, dtype=torch.int64))


def test_bad_shapes_and_settings_are_rejected():
    field = random_field()
    with pytest.raises(ValueError, match=r"points must be a tensor \[N,M,3\]"):
        sample_triplane(field.planes, torch.zeros(4, 3, dtype=torch.float64))
    with pytest.raises(ValueError, match=r"cam2world must be a tensor \[N,4,4\]"):
        pixel_rays(torch.eye(4), normalized_intrinsics(FOCAL, 1), 4)
    with pytest.raises(ValueError, match="codes must be a tensor"):
        OODDecoder(features=4, code=3)(torch.zeros(2, 5, 4), torch.zeros(1, 3))
    with pytest.raises(ValueError, match="near < far"):
        RenderSettings(near=3.0, far=2.0)
    with pytest.raises(ValueError, match="up vector"):
        look_at(torch.tensor([[0.0, 2.0, 0.0]]), (0.0, 0.0, 0.0))
