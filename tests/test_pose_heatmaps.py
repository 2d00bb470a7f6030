"""Pose keypoint heatmaps against closed-form Gaussians; coordinate detection; malformed input."""
import math

import pytest
import torch

from tame.kernels.pose import colorize_heatmaps, heatmap_sigma2, keypoint_colors, keypoint_heatmaps
from tame.nodes.longvideo_nodes import TamePoseHeatmaps, is_normalised, pose_heatmaps

W, H = 64, 48
SIGMA2 = 0.005 * 64 ** 2  # R = max(W, H) = 64 -> 20.48 px^2


def body(points, size=18):
    """Flat pose_keypoints_2d with the given {keypoint: (x, y)} visible, the rest (0, 0, 0)."""
    values = [0.0] * (3 * size)
    for k, (x, y) in points.items():
        values[3 * k:3 * k + 3] = [float(x), float(y), 0.9]
    return values


def frame(*people, canvas=(W, H)):
    data = {"people": [{"pose_keypoints_2d": p, "face_keypoints_2d": None, "hand_left_keypoints_2d": None,
                        "hand_right_keypoints_2d": []} for p in people]}
    if canvas is not None:
        data.update(canvas_width=canvas[0], canvas_height=canvas[1])
    return data


def gaussian(dx, dy, sigma2=SIGMA2):
    return math.exp(-(dx * dx + dy * dy) / (2 * sigma2))


def test_sigma_follows_the_seed_formula():
    assert heatmap_sigma2(64) == pytest.approx(20.48)
    assert heatmap_sigma2(8) == 0.5  # 0.005 * 64 = 0.32 < 0.5
    with pytest.raises(ValueError):
        heatmap_sigma2(0)


def test_kernel_peak_and_closed_form_values():
    points = torch.tensor([[[10.0, 20.0], [30.5, 5.0]]])
    maps = keypoint_heatmaps(points, torch.tensor([[True, False]]), H, W, SIGMA2)
    assert maps.shape == (2, H, W)
    assert float(maps[0, 20, 10]) == pytest.approx(1.0)
    assert float(maps[0, 24, 13]) == pytest.approx(gaussian(3, 4), rel=1e-6)
    assert float(maps[0, 20, 40]) == pytest.approx(gaussian(30, 0), rel=1e-5)
    assert float(maps[1].abs().max()) == 0.0  # invisible


def test_normalised_coordinates_peak_on_their_pixel():
    pose = [frame(body({0: (10 / W, 20 / H), 4: (0.5, 0.5)}))]
    maps = pose_heatmaps(pose)
    assert maps.shape == (1, 18, H, W)
    assert float(maps[0, 0, 20, 10]) == pytest.approx(1.0)
    assert float(maps[0, 0, 17, 14]) == pytest.approx(gaussian(4, 3), rel=1e-6)
    assert float(maps[0, 4, 24, 32]) == pytest.approx(1.0)
    assert float(maps[0, 1].max()) == 0.0


def test_pixel_coordinates_are_scaled_from_the_canvas():
    pose = [frame(body({2: (20, 40)}), canvas=(128, 96))]  # pixel canvas twice the output size
    maps = pose_heatmaps(pose, width=W, height=H)
    assert float(maps[0, 2, 20, 10]) == pytest.approx(1.0)
    assert float(maps[0, 2, 20, 15]) == pytest.approx(gaussian(5, 0), rel=1e-6)


def test_detection_of_normalised_vs_pixels():
    points = torch.tensor([[0.2, 0.9, 1.0], [5.0, 300.0, 0.0], [1.0, 0.0, 0.5]])
    assert is_normalised(points)  # the invisible (5, 300) is ignored
    assert not is_normalised(torch.tensor([[0.2, 0.9, 1.0], [12.0, 30.0, 1.0]]))
    pixel_pose = [frame(body({0: (32, 24)}))]
    assert float(pose_heatmaps(pixel_pose)[0, 0, 24, 32]) == pytest.approx(1.0)
    forced = pose_heatmaps([frame(body({0: (0.5, 0.5)}))], coordinates="pixels")
    assert float(forced[0, 0, 0, 0]) == pytest.approx(gaussian(0.5, 0.5), rel=1e-6)


def test_output_size_defaults_to_the_canvas_and_sigma_to_the_larger_side():
    maps = pose_heatmaps([frame(body({0: (0.5, 0.5)}), canvas=(200, 100))])
    assert maps.shape == (1, 18, 100, 200)
    sigma2 = 0.005 * 200 ** 2
    assert float(maps[0, 0, 50, 110]) == pytest.approx(gaussian(10, 0, sigma2), rel=1e-6)


def test_several_people_take_the_max_and_body25_is_mapped():
    nose_a, nose_b = body({0: (10, 10)}), body({0: (40, 30)})
    maps = pose_heatmaps([frame(nose_a, nose_b)])
    assert float(maps[0, 0, 10, 10]) == pytest.approx(1.0) and float(maps[0, 0, 30, 40]) == pytest.approx(1.0)
    assert float(maps[0, 0, 15, 20]) == pytest.approx(max(gaussian(10, 5), gaussian(20, 15)), rel=1e-6)
    body25 = body({9: (20, 20), 8: (5, 5)}, size=25)  # BODY_25 RHip = 9 -> COCO-18 RHip = 8; MidHip dropped
    maps25 = pose_heatmaps([frame(body25)])
    assert float(maps25[0, 8, 20, 20]) == pytest.approx(1.0)
    assert float(maps25[0, :, 5, 5].max()) < 0.01


def test_empty_and_missing_people_give_zero_heatmaps():
    pose = [frame(), {"people": None, "canvas_width": W, "canvas_height": H},
            frame(None), {"people": [{"pose_keypoints_2d": []}], "canvas_width": W, "canvas_height": H}]
    maps = pose_heatmaps(pose)
    assert maps.shape == (4, 18, H, W) and float(maps.abs().max()) == 0.0


def test_node_outputs_image_mask_and_keypoint_stack():
    pose = [frame(body({0: (10, 20), 5: (40, 30)})), frame()]
    image, mask, stack = TamePoseHeatmaps().render(pose, 0, 0, "auto")
    assert image.shape == (2, H, W, 3) and mask.shape == (2, H, W) and stack.shape == (36, H, W)
    assert torch.equal(stack[5], pose_heatmaps(pose)[0, 5])
    assert float(mask[0, 20, 10]) == pytest.approx(1.0) and float(mask[1].max()) == 0.0
    assert torch.allclose(image[0, 30, 40], keypoint_colors()[5], atol=1e-6)
    assert torch.allclose(colorize_heatmaps(stack[:18])[:, 20, 10], keypoint_colors()[0], atol=1e-6)


@pytest.mark.parametrize("pose, message", [
    ([], "no frames"),
    ("people", "list of frames"),
    ([["not a dict"]], "frame 0 must be a dict"),
    ([frame(body({0: (1, 1)})[:50])], "frame 0 person 0: pose_keypoints_2d has 50 values"),
    ([frame(["a"] * 54)], "flat list of numbers"),
    ([{"people": "x", "canvas_width": W, "canvas_height": H}], "'people' must be a list"),
    ([frame(body({0: (20, 20)}), canvas=None)], "width/height are 0"),
    ([frame(body({0: (1, 1)}), canvas=(0, 10))], "canvas_width/canvas_height must be positive"),
])
def test_malformed_input_raises_clear_errors(pose, message):
    with pytest.raises(ValueError, match=message):
        pose_heatmaps(pose)


def test_pixel_coordinates_without_canvas_need_one():
    with pytest.raises(ValueError, match="no canvas_width"):
        pose_heatmaps([frame(body({0: (20, 20)}), canvas=None)], width=W, height=H)
