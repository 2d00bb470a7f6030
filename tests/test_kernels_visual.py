"""Flow colours, space-time slices and the built-in line plot."""
import pytest
import torch

from tame.kernels.flow_color import color_wheel, color_wheel_image, flow_to_color, robust_max_magnitude
from tame.kernels.plot import PALETTE, line_plot, text_mask
from tame.kernels.xt_slice import xt_slice, yt_slice


def single_vector(dx, dy):
    return torch.tensor([float(dx), float(dy)]).view(1, 2, 1, 1)


def test_color_wheel_has_55_colours_through_the_six_primaries():
    wheel = color_wheel() * 255
    assert wheel.shape == (55, 3)
    # segment starts: red, yellow (after 15), green (+6), cyan (+4), blue (+11), magenta (+13)
    starts = {0: (255, 0, 0), 15: (255, 255, 0), 21: (0, 255, 0), 25: (0, 255, 255), 36: (0, 0, 255),
              49: (255, 0, 255)}
    for index, rgb in starts.items():
        assert wheel[index].tolist() == list(rgb)


@pytest.mark.parametrize("direction, rgb", [
    ((1, 0), (1.0, 0.0, 0.0)),                      # right: red
    ((0, 1), (1.0, 229.5 / 255, 0.0)),              # down (+y): between wheel entries 13 and 14, yellow-orange
    ((-1, 0), (0.0, 209 / 255, 1.0)),               # left: entry 27, cyan-blue
    ((0, -1), (88 / 255, 0.0, 1.0)),                # up: between entries 40 and 41, blue-violet
])
def test_direction_sets_the_hue(direction, rgb):
    color = flow_to_color(single_vector(*direction), max_magnitude=1.0)
    assert torch.allclose(color.flatten(), torch.tensor(rgb), atol=1e-6)


def test_magnitude_sets_the_saturation():
    assert torch.equal(flow_to_color(single_vector(0, 0), max_magnitude=1.0).flatten(), torch.ones(3))
    half = flow_to_color(single_vector(2, 0), max_magnitude=4.0).flatten()
    assert torch.allclose(half, torch.tensor([1.0, 0.5, 0.5]))
    beyond = flow_to_color(single_vector(8, 0), max_magnitude=4.0).flatten()
    assert torch.allclose(beyond, torch.tensor([0.75, 0.0, 0.0]))


def test_automatic_scale_is_shared_by_the_batch():
    flow = torch.zeros(2, 2, 10, 10)
    flow[0, 0] = 1.0
    flow[1, 0] = 4.0
    assert robust_max_magnitude(flow) == pytest.approx(4.0)
    colors = flow_to_color(flow)
    assert torch.allclose(colors[1, :, 5, 5], torch.tensor([1.0, 0.0, 0.0]))
    assert torch.allclose(colors[0, :, 5, 5], torch.tensor([1.0, 0.75, 0.75]))  # a quarter of the way


def test_non_finite_flow_is_black_and_bad_scale_is_rejected():
    flow = torch.zeros(1, 2, 2, 2)
    flow[0, 0, 0, 0] = float("nan")
    colors = flow_to_color(flow, max_magnitude=1.0)
    assert colors[0, :, 0, 0].abs().sum() == 0 and torch.equal(colors[0, :, 1, 1], torch.ones(3))
    with pytest.raises(ValueError, match="max_magnitude"):
        flow_to_color(flow, max_magnitude=0.0)


def test_color_wheel_image_is_a_legend():
    legend = color_wheel_image(65)
    assert legend.shape == (3, 65, 65)
    assert torch.allclose(legend[:, 32, 32], torch.ones(3))            # centre: zero flow
    assert torch.allclose(legend[:, 32, 64], torch.tensor([1.0, 0.0, 0.0]))  # right edge: red
    assert torch.equal(legend[:, 0, 0], torch.ones(3))                # corner: outside the circle


def test_xt_and_yt_slices_read_one_row_or_column_over_time():
    video = torch.rand(5, 3, 8, 10)
    rows = xt_slice(video, row=2)
    assert rows.shape == (3, 5, 10)
    assert torch.equal(rows[:, 4], video[4, :, 2])
    assert torch.equal(xt_slice(video), xt_slice(video, row=4))
    columns = yt_slice(video, column=7)
    assert columns.shape == (3, 8, 5)
    assert torch.equal(columns[:, :, 3], video[3, :, :, 7])
    with pytest.raises(ValueError, match="row"):
        xt_slice(video, row=8)


def test_text_mask_lays_glyphs_out_with_a_gap():
    mask = text_mask("1-", scale=2)
    assert mask.shape == (14, 22)
    assert not mask[:, 10:12].any()        # gap column between the glyphs
    assert mask[6:8, 12:22].all()          # the minus sign is one full row (row 3 of 7)
    assert torch.equal(text_mask("ab"), text_mask("AB"))


def palette_pixels(image, index):
    color = torch.tensor(PALETTE[index]).view(3, 1, 1)
    return (image - color).abs().amax(0) < 1e-4


def test_line_plot_draws_each_series_where_its_values_are():
    image = line_plot({"low": torch.full((20,), 0.25), "high": torch.full((20,), 0.75)},
                      height=200, width=300, title="two lines", y_range=(0.0, 1.0))
    assert image.shape == (3, 200, 300) and image.min() >= 0 and image.max() <= 1
    low_rows = torch.nonzero(palette_pixels(image, 0))[:, 0].float()
    high_rows = torch.nonzero(palette_pixels(image, 1))[:, 0].float()
    assert low_rows.numel() > 200 and high_rows.numel() > 200
    # y grows upwards: 0.75 is drawn above 0.25, both well inside the image
    assert high_rows.median() < low_rows.median()
    assert 40 < high_rows.median() < 100 < low_rows.median() < 170
    assert (image[:, :12].amax(0) < 0.5).any()  # title text on top


def test_line_plot_survives_nan_constant_and_single_values():
    values = torch.tensor([1.0, float("nan"), 1.0, 1.0])
    image = line_plot({"gappy": values, "one": torch.tensor([3.0])})
    assert image.shape == (3, 256, 512) and torch.isfinite(image).all()
    with pytest.raises(ValueError, match="non-empty"):
        line_plot({})
    with pytest.raises(ValueError, match="y_range"):
        line_plot({"a": values}, y_range=(1.0, 1.0))
    with pytest.raises(ValueError, match="1-D"):
        line_plot({"a": torch.zeros(2, 2)})
