"""Backward warp, flow resizing and composition against closed-form motions."""
import pytest
import torch

from tame.kernels.warp import backward_warp, compose_flow, pixel_grid, resize_flow

H, W = 24, 32


def constant_flow(dx, dy, n=1, h=H, w=W, dtype=torch.float32):
    return torch.tensor([dx, dy], dtype=dtype).view(1, 2, 1, 1).expand(n, 2, h, w).clone()


def ramp_image(dtype=torch.float64):
    """Three channels, each an affine function of (x, y): bilinear sampling reproduces them exactly."""
    grid = pixel_grid(H, W, dtype=dtype)
    x, y = grid[:, 0:1], grid[:, 1:2]
    return torch.cat((0.03 * x + 0.01 * y, 0.5 - 0.02 * y, 0.01 * x - 0.04 * y + 0.2), dim=1)


def expected_valid(dx, dy):
    grid = pixel_grid(H, W, dtype=torch.float64)
    x, y = grid[:, 0:1] + dx, grid[:, 1:2] + dy
    return ((x >= 0) & (x <= W - 1) & (y >= 0) & (y <= H - 1)).double()


def test_pixel_grid_holds_column_and_row_indices():
    grid = pixel_grid(3, 4)
    assert grid.shape == (1, 2, 3, 4)
    assert torch.equal(grid[0, 0, 2], torch.tensor([0.0, 1.0, 2.0, 3.0]))
    assert torch.equal(grid[0, 1, :, 3], torch.tensor([0.0, 1.0, 2.0]))


@pytest.mark.parametrize("dx, dy", [(0.25, 0.0), (-1.6, 2.3), (3.75, -0.5)])
def test_bilinear_warp_reproduces_affine_image_at_fractional_shift(dx, dy):
    image = ramp_image()
    warped, valid = backward_warp(image, constant_flow(dx, dy, dtype=torch.float64))
    grid = pixel_grid(H, W, dtype=torch.float64)
    x, y = grid[:, 0:1] + dx, grid[:, 1:2] + dy
    truth = torch.cat((0.03 * x + 0.01 * y, 0.5 - 0.02 * y, 0.01 * x - 0.04 * y + 0.2), dim=1)
    assert torch.equal(valid, expected_valid(dx, dy))
    inside = valid.bool().expand_as(warped)
    assert torch.allclose(warped[inside], truth[inside], atol=1e-12)


def test_integer_shift_equals_roll_on_interior():
    image = torch.rand(2, 5, H, W)
    warped, valid = backward_warp(image, constant_flow(3, -2, n=2))
    # warped(y, x) = image(y - 2, x + 3)  ==  roll by +2 rows and -3 columns
    rolled = torch.roll(image, shifts=(2, -3), dims=(-2, -1))
    assert torch.allclose(warped[..., 2:, :W - 3], rolled[..., 2:, :W - 3], atol=1e-5)
    assert valid[:, :, 2:, :W - 3].all() and valid[:, :, :2].sum() == 0 and valid[..., W - 3:].sum() == 0
    assert warped[..., :2, :].abs().max() < 1e-6  # zeros padding outside the frame (float32 rounding)


def test_padding_modes_outside_the_frame():
    image = ramp_image(torch.float32)
    flow = constant_flow(-5.0, 0.0)
    zeros, _ = backward_warp(image, flow, padding="zeros")
    border, _ = backward_warp(image, flow, padding="border")
    reflection, _ = backward_warp(image, flow, padding="reflection")
    assert zeros[..., :4].abs().max() == 0
    assert torch.allclose(border[..., :5], image[..., :1].expand(-1, -1, -1, 5))
    # reflection about the centre of column 0: x = -3 reads column 3
    assert torch.allclose(reflection[..., 2], image[..., 3], atol=1e-6)


def test_nearest_mode_picks_the_closest_pixel():
    image = torch.rand(1, 1, H, W)
    warped, _ = backward_warp(image, constant_flow(1.3, 0.0), mode="nearest")
    assert torch.equal(warped[..., :W - 2], image[..., 1:W - 1])


def test_flow_and_image_batches_broadcast_and_dtype_is_kept():
    image = torch.rand(3, 4, H, W, dtype=torch.float64)
    warped, valid = backward_warp(image, constant_flow(1.0, 1.0))
    assert warped.shape == (3, 4, H, W) and valid.shape == (3, 1, H, W)
    assert warped.dtype == torch.float64 and valid.dtype == torch.float64
    flows = torch.stack([constant_flow(float(i), 0.0)[0] for i in range(3)])
    warped, _ = backward_warp(image[:1], flows)
    assert torch.allclose(warped[2, ..., :W - 2], image[0, ..., 2:])
    half, _ = backward_warp(image[:1].half(), constant_flow(1.0, 0.0))
    assert half.dtype == torch.float16
    assert torch.allclose(half[..., :W - 1].double(), image[:1, ..., 1:], atol=1e-3)


def test_gradients_reach_image_and_flow():
    torch.manual_seed(0)
    image = torch.rand(1, 2, 5, 6, dtype=torch.float64, requires_grad=True)
    # fractional parts in [0.3, 0.7]: away from the kinks of bilinear interpolation at integer coordinates
    flow = (0.3 + 0.4 * torch.rand(1, 2, 5, 6, dtype=torch.float64)
            + torch.randint(-1, 2, (1, 2, 5, 6))).requires_grad_()
    assert torch.autograd.gradcheck(lambda i, f: backward_warp(i, f, padding="border")[0], (image, flow))
    assert torch.autograd.gradcheck(lambda i, f: backward_warp(i, f)[0], (image, flow))


def test_warp_rejects_bad_input():
    image = torch.rand(1, 3, H, W)
    with pytest.raises(ValueError, match="resize_flow"):
        backward_warp(image, constant_flow(0, 0, h=H + 1))
    with pytest.raises(ValueError, match="padding"):
        backward_warp(image, constant_flow(0, 0), padding="wrap")
    with pytest.raises(ValueError, match="batch"):
        backward_warp(torch.rand(2, 3, H, W), constant_flow(0, 0, n=3))
    with pytest.raises(ValueError, match=r"\[N,2,H,W\]"):
        backward_warp(image, torch.zeros(1, 3, H, W))


@pytest.mark.parametrize("size", [(12, 64), (48, 16), (24, 32)])
def test_resize_flow_rescales_constant_field(size):
    resized = resize_flow(constant_flow(2.0, -3.0), size)
    h, w = size
    assert resized.shape == (1, 2, h, w)
    assert torch.allclose(resized[:, 0], torch.full((1, h, w), 2.0 * w / W))
    assert torch.allclose(resized[:, 1], torch.full((1, h, w), -3.0 * h / H))


def test_resize_flow_keeps_the_motion_of_a_zoom_field():
    # A zoom about the image centre, in the pixel-area convention: F(p) = 0.1 (p + 0.5 - c).
    # Resizing must give the same physical motion in the new pixel units.
    def zoom(h, w):
        grid = pixel_grid(h, w, dtype=torch.float64) + 0.5
        return 0.1 * (grid - torch.tensor([w / 2, h / 2], dtype=torch.float64).view(1, 2, 1, 1))
    assert torch.allclose(resize_flow(zoom(H, W), (2 * H, 2 * W))[..., 2:-2, 2:-2], zoom(2 * H, 2 * W)[..., 2:-2, 2:-2],
                          atol=1e-9)


def test_resize_flow_rejects_bad_size():
    with pytest.raises(ValueError, match="size"):
        resize_flow(constant_flow(0, 0), (0, 10))


def test_compose_two_translations_is_their_sum():
    flow_ac, valid = compose_flow(constant_flow(2.5, -1.0), constant_flow(-4.0, 3.25))
    assert torch.allclose(flow_ac, constant_flow(-1.5, 2.25))
    assert torch.equal(valid, expected_valid(2.5, -1.0).float())


def test_compose_reads_second_flow_at_the_displaced_position():
    # F_bc(q) = 0.1 * q_x (affine, so bilinear sampling is exact): F_ac(p) = d + 0.1 * (p_x + d_x)
    grid = pixel_grid(H, W, dtype=torch.float64)
    flow_bc = torch.cat((0.1 * grid[:, 0:1], torch.zeros_like(grid[:, 1:2])), dim=1)
    flow_ab = constant_flow(1.5, 2.0, dtype=torch.float64)
    flow_ac, valid = compose_flow(flow_ab, flow_bc)
    expected_x = 1.5 + 0.1 * (grid[:, 0:1] + 1.5)
    inside = valid.bool()
    assert torch.allclose(flow_ac[:, 0:1][inside], expected_x[inside], atol=1e-12)
    assert torch.allclose(flow_ac[:, 1:2], torch.full_like(expected_x, 2.0))
