"""Synthetic clips: the ground truth is checked against the frames themselves and closed forms."""
import math

import pytest
import torch
import torch.nn.functional as F

from tame.models.data.layers import Blob, ConvexPolygon, SceneLayer, SyntheticClip, render_layers
from tame.models.data.motion import maps_from_motion, similarity_motion
from tame.models.data.scenes import make_demo_video, render_clip
from tame.models.data.textures import procedural_texture
from tame.tests.support.scenes import render_pair


def _warp(images, flow):
    """Sample `images` [N,C,H,W] at p + flow(p), align_corners=True pixel convention."""
    _, _, height, width = images.shape
    ys, xs = torch.meshgrid(torch.arange(height, dtype=torch.float32),
                            torch.arange(width, dtype=torch.float32), indexing="ij")
    x, y = xs + flow[:, 0], ys + flow[:, 1]
    grid = torch.stack((2 * x / (width - 1) - 1, 2 * y / (height - 1) - 1), dim=-1)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="border", align_corners=True)


def _pixel_xy(height, width):
    ys, xs = torch.meshgrid(torch.arange(height, dtype=torch.float64),
                            torch.arange(width, dtype=torch.float64), indexing="ij")
    return xs, ys


def _clean_pixels(clip):
    """[T-1,1,H,W] bool: visible in t+1 and at least 1 px from any layer edge in both frames."""
    index = clip.layer_index.float()
    edge = (F.max_pool2d(index, 3, 1, 1) != -F.max_pool2d(-index, 3, 1, 1)).float()
    edge_at_target = _warp(edge[1:], clip.flow_forward) > 0
    return (clip.occlusion_forward == 0) & (edge[:-1] == 0) & ~edge_at_target


def _warp_error(clip, flow):
    warped = _warp(clip.frames[1:], flow)
    clean = _clean_pixels(clip)
    return (warped - clip.frames[:-1]).abs().mean(dim=1, keepdim=True)[clean].mean().item()


def _background_only(texture, motion, num_frames, height, width):
    """Render `texture` moving by the per-frame content motion [3,3], view centred at first."""
    offset = ((texture.shape[-1] - width) / 2.0, (texture.shape[-2] - height) / 2.0)
    first = torch.tensor([[1.0, 0.0, offset[0]], [0.0, 1.0, offset[1]], [0.0, 0.0, 1.0]],
                         dtype=torch.float64)
    maps = maps_from_motion(first, motion.expand(num_frames - 1, 3, 3))
    return render_layers([SceneLayer(texture, maps)], height, width)


def test_procedural_texture_is_rich_bounded_and_deterministic():
    texture = procedural_texture(96, 128, seed=3)
    assert texture.shape == (3, 96, 128) and texture.dtype == torch.float32
    assert texture.min() >= 0 and texture.max() <= 1
    assert torch.equal(texture, procedural_texture(96, 128, seed=3))
    assert not torch.equal(texture, procedural_texture(96, 128, seed=4))
    assert texture.std() > 0.05
    # detail at fine and coarse scales: neighbour differences and a spread of block means
    fine = (texture[:, :, 1:] - texture[:, :, :-1]).abs().mean()
    coarse = F.avg_pool2d(texture[None], 16).std()
    assert fine > 0.005 and coarse > 0.03


def test_clip_fields_have_the_documented_shapes():
    clip = render_clip(num_frames=3, height=40, width=56, motion=3.0, seed=1)
    assert isinstance(clip, SyntheticClip)
    assert clip.frames.shape == (3, 3, 40, 56)
    assert clip.flow_forward.shape == clip.flow_backward.shape == (2, 2, 40, 56)
    assert clip.occlusion_forward.shape == clip.occlusion_backward.shape == (2, 1, 40, 56)
    assert clip.layer_index.shape == (3, 1, 40, 56) and clip.layer_index.max() <= 2
    assert set(clip.occlusion_forward.unique().tolist()) <= {0.0, 1.0}
    pair = render_pair(40, 56, 3.0, seed=1)
    assert pair.frames.shape == (2, 3, 40, 56)


@pytest.mark.parametrize("motion", [1.5, 6.0, 20.0])
def test_backward_warp_with_true_flow_reproduces_frame(motion):
    clip = render_clip(num_frames=3, height=96, width=128, motion=motion, num_layers=3, seed=7)
    error = _warp_error(clip, clip.flow_forward)
    assert error < 0.02
    # the check can fail: a flow half a pixel off (in x) is clearly worse
    shifted = clip.flow_forward + torch.tensor([0.5, 0.0]).view(1, 2, 1, 1)
    assert _warp_error(clip, shifted) > 2 * error


def test_backward_flow_reproduces_frame_and_is_consistent_with_forward():
    clip = render_clip(num_frames=3, height=96, width=128, motion=8.0, num_layers=3, seed=2)
    clean = _clean_pixels(clip)
    round_trip = clip.flow_forward + _warp(clip.flow_backward, clip.flow_forward)
    assert round_trip.norm(dim=1, keepdim=True)[clean].max() < 1e-3
    warped = _warp(clip.frames[:-1], clip.flow_backward)
    visible = clip.occlusion_backward == 0
    assert (warped - clip.frames[1:]).abs().mean(dim=1, keepdim=True)[visible].mean() < 0.03


def test_camera_translation_gives_constant_flow_and_a_border_band_of_occlusion():
    height, width, dx, dy = 48, 64, 3.0, -2.0
    texture = procedural_texture(80, 96, seed=5)
    clip = _background_only(texture, similarity_motion(height, width, (dx, dy)), 3, height, width)
    assert torch.allclose(clip.flow_forward[:, 0], torch.full((2, height, width), dx), atol=1e-4)
    assert torch.allclose(clip.flow_forward[:, 1], torch.full((2, height, width), dy), atol=1e-4)
    assert torch.allclose(clip.flow_backward, -clip.flow_forward, atol=1e-4)
    # content moved by (3, -2): frame1[y-2, x+3] == frame0[y, x]
    assert torch.allclose(clip.frames[1][:, :height - 2, 3:], clip.frames[0][:, 2:, :width - 3], atol=1e-4)
    xs, ys = _pixel_xy(height, width)
    leaves = (xs > width - 1 - dx) | (ys < -dy)
    assert torch.equal(clip.occlusion_forward[0, 0].bool(), leaves)
    assert clip.occlusion_forward[0].sum() == 3 * height + 2 * width - 6


def test_rotation_and_zoom_give_the_closed_form_fields():
    height, width = 48, 64
    centre_x, centre_y = (width - 1) / 2, (height - 1) / 2
    xs, ys = _pixel_xy(height, width)
    texture = procedural_texture(120, 120, seed=6)
    angle = 0.04
    clip = _background_only(texture, similarity_motion(height, width, rotation=angle), 2, height, width)
    expected_x = math.cos(angle) * (xs - centre_x) - math.sin(angle) * (ys - centre_y) - (xs - centre_x)
    expected_y = math.sin(angle) * (xs - centre_x) + math.cos(angle) * (ys - centre_y) - (ys - centre_y)
    assert torch.allclose(clip.flow_forward[0, 0].double(), expected_x, atol=1e-4)
    assert torch.allclose(clip.flow_forward[0, 1].double(), expected_y, atol=1e-4)
    assert _warp_error(clip, clip.flow_forward) < 0.02

    scale = 1.05
    clip = _background_only(texture, similarity_motion(height, width, zoom=scale), 2, height, width)
    assert torch.allclose(clip.flow_forward[0, 0].double(), (scale - 1) * (xs - centre_x), atol=1e-4)
    assert torch.allclose(clip.flow_forward[0, 1].double(), (scale - 1) * (ys - centre_y), atol=1e-4)
    assert _warp_error(clip, clip.flow_forward) < 0.02


def test_moving_disc_occludes_exactly_the_background_it_will_cover():
    height, width, radius, step = 48, 64, 10.0, 4.0
    identity = torch.eye(3, dtype=torch.float64)
    background = SceneLayer(procedural_texture(height, width, seed=1), identity.expand(2, 3, 3))
    disc_texture = procedural_texture(25, 25, seed=2)
    # texture centre (12, 12) sits at view (20, 24) in frame 0 and (24, 24) in frame 1
    maps = torch.stack([torch.tensor([[1.0, 0, 12 - x], [0, 1.0, 12 - 24.0], [0, 0, 1.0]],
                                     dtype=torch.float64) for x in (20.0, 20.0 + step)])
    disc = SceneLayer(disc_texture, maps, Blob((12.0, 12.0), radius))
    clip = render_layers([background, disc], height, width)
    xs, ys = _pixel_xy(height, width)
    on_disc_0 = (xs - 20) ** 2 + (ys - 24) ** 2 < radius ** 2
    on_disc_1 = (xs - 20 - step) ** 2 + (ys - 24) ** 2 < radius ** 2
    assert torch.equal(clip.layer_index[0, 0].bool(), on_disc_0)
    assert torch.equal(clip.occlusion_forward[0, 0].bool(), on_disc_1 & ~on_disc_0)
    assert torch.equal(clip.occlusion_backward[0, 0].bool(), on_disc_0 & ~on_disc_1)
    assert torch.allclose(clip.flow_forward[0, 0][on_disc_0], torch.tensor(step))
    assert clip.flow_forward[0, :, ~on_disc_0].abs().max() == 0


def test_random_layers_produce_occlusion_inside_the_frame():
    clip = render_clip(num_frames=2, height=64, width=80, motion=6.0, num_layers=2, seed=4)
    interior = clip.occlusion_forward[:, :, 8:-8, 8:-8]
    assert interior.sum() > 10


def test_same_seed_same_clip_other_seed_other_clip():
    first = render_clip(num_frames=3, height=40, width=48, seed=11)
    second = render_clip(num_frames=3, height=40, width=48, seed=11)
    for name in ("frames", "flow_forward", "flow_backward", "occlusion_forward", "occlusion_backward"):
        assert torch.equal(getattr(first, name), getattr(second, name))
    assert not torch.equal(first.frames, render_clip(num_frames=3, height=40, width=48, seed=12).frames)


@pytest.mark.parametrize("motion", [2.0, 8.0, 30.0])
def test_motion_magnitude_is_honoured(motion):
    clip = render_clip(num_frames=3, height=96, width=128, motion=motion, rotation=False, zoom=False,
                       seed=3)
    largest = clip.flow_forward.norm(dim=1).max().item()
    assert 0.5 * motion <= largest <= 1.5 * motion
    # rotation and zoom add at most 0.1 * motion each at the view corners, 0.05 each at a layer rim
    clip = render_clip(num_frames=3, height=96, width=128, motion=motion, seed=3)
    largest = clip.flow_forward.norm(dim=1).max().item()
    assert 0.5 * motion <= largest <= 1.8 * motion


def test_large_motion_at_480p_keeps_exact_truth():
    clip = render_pair(270, 480, 50.0, seed=8)
    assert 25.0 <= clip.flow_forward.norm(dim=1).max() <= 90.0
    assert _warp_error(clip, clip.flow_forward) < 0.02


def test_user_image_is_used_in_either_layout_and_never_runs_out():
    ys, xs = torch.meshgrid(torch.linspace(0, 1, 30), torch.linspace(0, 1, 40), indexing="ij")
    image = torch.stack((xs, ys, 0.5 * torch.ones_like(xs)))
    # one layer: background and layer both show the image (the blue channel is 0.5 everywhere)
    chw = render_clip(num_frames=3, height=48, width=64, image=image, motion=12.0, num_layers=1, seed=2)
    hwc = render_clip(num_frames=3, height=48, width=64, image=image.permute(1, 2, 0), motion=12.0,
                      num_layers=1, seed=2)
    assert torch.equal(chw.frames, hwc.frames) and chw.layer_index.max() == 1
    assert torch.allclose(chw.frames[:, 2], torch.full_like(chw.frames[:, 2], 0.5), atol=1e-3)
    assert _warp_error(chw, chw.flow_forward) < 0.02
    # a white image stays white everywhere: the camera never samples outside the texture
    white = render_clip(num_frames=4, height=48, width=64, image=torch.ones(3, 20, 20), motion=30.0,
                        num_layers=1, seed=1)
    assert white.frames.min() > 0.999


def test_shapes_contain_the_points_their_definition_says():
    points = torch.tensor([[0.5, 0.5], [1.5, 0.5], [0.0, 0.99], [-0.1, 0.2]])
    square = ConvexPolygon(((0.0, 0.0), (1.0, 0.0), (1.0, 1.0), (0.0, 1.0)))
    assert square.contains(points).tolist() == [True, False, True, False]
    clockwise = ConvexPolygon(((0.0, 0.0), (0.0, 1.0), (1.0, 1.0), (1.0, 0.0)))
    assert clockwise.contains(points).tolist() == [True, False, True, False]
    blob = Blob((0.0, 0.0), 2.0, ((3, 0.2, 0.7),))
    angles = torch.linspace(-3.1, 3.1, 50)
    boundary = 2.0 * (1 + 0.2 * torch.cos(3 * angles + 0.7))
    for factor, expected in ((0.98, True), (1.02, False)):
        ring = torch.stack((torch.cos(angles), torch.sin(angles)), dim=-1) * (factor * boundary)[:, None]
        assert blob.contains(ring).all() == expected and blob.contains(ring).any() == expected


def test_bad_arguments_raise_clear_errors():
    with pytest.raises(ValueError, match="num_frames"):
        render_clip(num_frames=1)
    with pytest.raises(ValueError, match="motion"):
        render_clip(motion=-1.0)
    with pytest.raises(ValueError, match="image"):
        render_clip(image=torch.rand(4, 20, 20))
    with pytest.raises(ValueError, match="background"):
        render_layers([SceneLayer(torch.rand(3, 8, 8), torch.eye(3).expand(2, 3, 3).double(),
                                  Blob((4.0, 4.0), 2.0))], 8, 8)


def test_demo_video_is_written(tmp_path):
    path = tmp_path / "demo.mp4"
    clip = make_demo_video(path, num_frames=4, height=48, width=64)
    assert path.is_file() and path.stat().st_size > 0
    assert clip.frames.shape == (4, 3, 48, 64)
