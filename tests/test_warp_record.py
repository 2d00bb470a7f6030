"""`remap` and TAME_FLOW records whose source frames have another size than the target grid (retargeting)."""
import torch

from tame.kernels.warp import backward_warp, pixel_grid, remap, resize_flow, scaled_coordinates
from tame.models.flow.field import BACKWARD, FORWARD, FlowSet, from_optical_flow, to_optical_flow
from tame.models.io.flow_files import load_flowset, save_flowset
from tame.nodes.flow_nodes import DIRECTIONS, TameWarp

SOURCE = (40, 60)   # (H, W) of the frame sampled from
TARGET = (30, 90)   # (H, W) of the retargeted grid


def ramp(h, w, dtype=torch.float64):
    """Affine in (x, y): bilinear sampling reproduces it exactly."""
    grid = pixel_grid(h, w, dtype=dtype)
    return torch.cat((0.02 * grid[:, 0:1] + 0.01 * grid[:, 1:2], 0.5 - 0.015 * grid[:, 1:2]), dim=1)


def stretch_field(dtype=torch.float64):
    """Target pixel (x, y) -> source (x * sx, y * sy): the corners of the two frames correspond."""
    sx, sy = (SOURCE[1] - 1) / (TARGET[1] - 1), (SOURCE[0] - 1) / (TARGET[0] - 1)
    grid = pixel_grid(*TARGET, dtype=dtype)
    coords = grid * torch.tensor([sx, sy], dtype=dtype).view(1, 2, 1, 1)
    return coords - grid, coords


def test_remap_samples_a_source_at_target_size_coordinates():
    _, coords = stretch_field()
    sampled, valid = remap(ramp(*SOURCE), coords)
    x, y = coords[:, 0:1], coords[:, 1:2]
    truth = torch.cat((0.02 * x + 0.01 * y, 0.5 - 0.015 * y), dim=1)
    assert sampled.shape == (1, 2, *TARGET)
    assert torch.allclose(sampled, truth, atol=1e-9) and bool(valid.all())


def test_remap_marks_coordinates_outside_the_source_invalid():
    coords = pixel_grid(4, 5, dtype=torch.float64) + torch.tensor([-2.0, 0.0], dtype=torch.float64).view(1, 2, 1, 1)
    _, valid = remap(ramp(4, 5), coords)
    assert torch.equal(valid[0, 0, 0], torch.tensor([0.0, 0.0, 1.0, 1.0, 1.0], dtype=torch.float64))


def test_backward_warp_is_remap_at_grid_plus_flow():
    flow = torch.randn(2, 2, 12, 16, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    image = torch.rand(2, 3, 12, 16, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    warped, valid = backward_warp(image, flow, padding="border")
    sampled, inside = remap(image, pixel_grid(12, 16, dtype=torch.float64) + flow, padding="border")
    assert torch.allclose(warped, sampled, atol=1e-12) and torch.equal(valid, inside)


def test_scaled_coordinates_match_resize_flow_when_both_grids_scale_alike():
    flow = torch.randn(1, 2, 16, 24, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    coords = scaled_coordinates(flow, (8, 12), (0.5, 0.5))
    expected = pixel_grid(8, 12, dtype=torch.float64) + resize_flow(flow, (8, 12))
    assert torch.allclose(coords, expected, atol=1e-9)


def test_flowset_with_another_source_size_warps_frames_masks_and_latents():
    field, coords = stretch_field()
    flows = FlowSet(field.float(), pairs=[(0, 0)], num_frames=1, source_size=SOURCE)
    assert flows.size == TARGET and flows.source_size == SOURCE and not flows.consecutive
    source = ramp(*SOURCE).float()
    warped, valid = flows.warp(source, FORWARD)
    assert warped.shape == (1, 2, *TARGET) and bool(valid.all())
    assert torch.allclose(warped.double(), remap(ramp(*SOURCE), coords)[0], atol=1e-5)
    # a half-size "latent" of the source lands on the half-size target grid, at the matching places:
    # half-grid pixel j sits at full coordinate 2j + 0.5, which the stretch maps into the source, whose
    # full coordinate x sits at (x - 0.5) / 2 on the half-size source (pixel-area convention)
    half = ramp(SOURCE[0] // 2, SOURCE[1] // 2).float()
    warped_half, _ = flows.warp(half, FORWARD)
    assert warped_half.shape == (1, 2, TARGET[0] // 2, TARGET[1] // 2)
    sx, sy = (SOURCE[1] - 1) / (TARGET[1] - 1), (SOURCE[0] - 1) / (TARGET[0] - 1)
    grid = pixel_grid(TARGET[0] // 2, TARGET[1] // 2, dtype=torch.float64)
    x = ((2 * grid[:, 0:1] + 0.5) * sx - 0.5) / 2
    y = ((2 * grid[:, 1:2] + 0.5) * sy - 0.5) / 2
    truth = torch.cat((0.02 * x + 0.01 * y, 0.5 - 0.015 * y), dim=1)
    inner = (slice(None), slice(None), slice(1, -1), slice(1, -1))  # the border pixels sample outside
    assert torch.allclose(warped_half.double()[inner], truth[inner], atol=1e-5)


def test_tame_warp_node_applies_a_retarget_record_and_checks_the_source_size():
    field, _ = stretch_field()
    flows = FlowSet(field.float(), pairs=[(0, 0)], num_frames=1, source_size=SOURCE)
    image = ramp(*SOURCE).float()[:, :1].expand(1, 3, *SOURCE).permute(0, 2, 3, 1).contiguous()
    out, mask, _, valid = TameWarp().warp(flows, DIRECTIONS[0], "border", image=image,
                                          mask=torch.ones(1, *SOURCE))
    assert out.shape == (1, *TARGET, 3) and mask.shape == (1, *TARGET) and bool((valid == 1).all())
    try:
        TameWarp().warp(flows, DIRECTIONS[0], "border", image=torch.zeros(1, *TARGET, 3))
    except ValueError as error:
        assert "60x40" in str(error)
    else:
        raise AssertionError("a frame of the target size must be refused as the source")


def test_backward_field_lives_on_the_source_grid():
    field, _ = stretch_field()
    back = torch.zeros(1, 2, *SOURCE)
    flows = FlowSet(field.float(), back, pairs=[(0, 0)], num_frames=1, source_size=SOURCE)
    assert flows.warp(torch.rand(1, 1, *TARGET), BACKWARD)[0].shape == (1, 1, *SOURCE)
    try:
        FlowSet(field.float(), torch.zeros(1, 2, *TARGET), source_size=SOURCE)
    except ValueError as error:
        assert "grid of frames b" in str(error)
    else:
        raise AssertionError("a backward field on the wrong grid must be refused")


def test_save_and_load_keep_the_source_size(tmp_path):
    field, _ = stretch_field()
    flows = FlowSet(field.float(), pairs=[(0, 0)], num_frames=1, source_size=SOURCE)
    loaded = load_flowset(save_flowset(tmp_path / "retarget.safetensors", flows))
    assert loaded.source_size == SOURCE and torch.equal(loaded.forward, flows.forward)


def test_optical_flow_round_trip():
    forward = torch.randn(3, 2, 8, 10)
    flows = from_optical_flow(to_optical_flow(FlowSet(forward)))
    assert torch.equal(flows.forward, forward) and flows.consecutive
