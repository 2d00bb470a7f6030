"""Tri-plane nodes called directly on tiny inputs: cameras and their round trips through LOAD3D_CAMERA and
EXTRINSICS/INTRINSICS, the procedural head, render shapes and ranges, the generator loader (empty folder,
Tame safetensors, corrupt pickle), a tiny fit pipeline (Fit Triplane -> Fit OOD -> Remove OOD / composite
/ orbit) inside inference mode as ComfyUI runs it, and the error texts."""
import math

import pytest
import torch

from tame.kernels.rays import fov_to_focal, orbit_cam2world
from tame.models.edit.generator import Generator
from tame.models.triplane.camera import Cameras
from tame.models.triplane.decoders import OSGDecoder
from tame.models.triplane.eg3d import TriplaneGenerator
from tame.models.triplane.renderer import RenderSettings, TriplaneField
from tame.nodes.triplane_nodes import (
    NO_GENERATOR,
    TameCamera,
    TameFitOOD,
    TameFitTriplane,
    TameLoadTriplaneGenerator,
    TameProceduralHead,
    TameRemoveOOD,
    TameRenderOrbit,
    TameRenderTriplane,
    TameTriplaneFromLatent,
    TriplaneRecord,
)

SIZE = 16
TINY_EG3D = dict(z_dim=8, c_dim=25, w_dim=16, img_resolution=32, plane_resolution=16, plane_channels=8,
                 channel_base=128, channel_max=16, mapping_kwargs={"num_layers": 2},
                 sr_kwargs={"input_resolution": 8, "block_channels": [8, 8]}, neural_rendering_resolution=8,
                 rendering_kwargs={"depth_resolution": 6, "depth_resolution_importance": 6})
CAMERA_DEFAULTS = dict(mode="orbit", yaw=90.0, pitch=90.0, radius=2.7, fov=18.84, frames=1, yaw_end=90.0,
                       pitch_end=90.0, target_x=0.0, target_y=0.0, target_z=0.0, position_x=0.0, position_y=0.0,
                       position_z=2.7, image_size=64, load3d_fov=35.0)


pytestmark = pytest.mark.usefixtures("cpu_without_model_files")


def camera(**changes):
    return TameCamera().make(**{**CAMERA_DEFAULTS, **changes})


def tiny_record(seed=0):
    torch.manual_seed(seed)
    return TriplaneRecord(TriplaneField(torch.randn(1, 3, 8, 8, 8), OSGDecoder(features=8)),
                          RenderSettings(coarse=6, fine=6))


# ------------------------------------------------------------------------------------- cameras
def test_orbit_camera_is_eg3d_frontal_and_a_path():
    cameras, load3d, extrinsics, intrinsics = camera(frames=5, yaw=60.0, yaw_end=120.0)
    assert len(cameras) == 5 and extrinsics.shape == (5, 3, 4) and intrinsics.shape == (5, 3, 3)
    frontal = orbit_cam2world(math.pi / 2, math.pi / 2, 2.7)[0]
    assert torch.allclose(cameras.cam2world[2], frontal, atol=1e-5)
    assert cameras.cam2world[0, 0, 3] < 0 < cameras.cam2world[4, 0, 3]  # yaw < 90 puts the camera at -x
    assert torch.allclose(intrinsics[:, 0, 0], torch.full((5,), 64 * fov_to_focal(18.84)))
    assert torch.allclose(intrinsics[:, :2, 2], torch.full((5, 2), 32.0))
    assert load3d["cameraType"] == "perspective" and load3d["target"] == {"x": 0.0, "y": 0.0, "z": 0.0}


def test_round_trip_through_load3d_camera():
    cameras, load3d, _, _ = camera(yaw=70.0, pitch=80.0, fov=25.0, target_y=0.1)
    again = camera(load3d_camera=load3d)[0]
    assert torch.allclose(again.cam2world, cameras.cam2world, atol=1e-5)
    assert torch.allclose(again.intrinsics, cameras.intrinsics, atol=1e-5)
    assert torch.allclose(again.targets, cameras.targets, atol=1e-6)


def test_load3d_zoom_narrows_the_three_js_field_of_view():
    base = {"position": {"x": 0.0, "y": 0.0, "z": 2.7}, "target": {"x": 0, "y": 0, "z": 0},
            "zoom": 1, "cameraType": "perspective"}
    wide = camera(load3d_camera=base, load3d_fov=40.0)[0]
    zoomed = camera(load3d_camera={**base, "zoom": 2.0}, load3d_fov=40.0)[0]
    assert math.isclose(float(wide.intrinsics[0, 1, 1]), 0.5 / math.tan(math.radians(20.0)), rel_tol=1e-5)
    assert math.isclose(float(zoomed.intrinsics[0, 1, 1]), 2 * float(wide.intrinsics[0, 1, 1]), rel_tol=1e-5)
    assert torch.allclose(wide.cam2world, orbit_cam2world(math.pi / 2, math.pi / 2, 2.7), atol=1e-5)
    with pytest.raises(ValueError, match="orthographic"):
        camera(load3d_camera={**base, "cameraType": "orthographic"})
    with pytest.raises(ValueError, match="position"):
        camera(load3d_camera={**base, "position": {"x": 1.0}})


def test_round_trip_through_extrinsics_and_intrinsics():
    cameras, _, extrinsics, intrinsics = camera(frames=4, yaw=70.0, yaw_end=110.0, pitch=80.0, pitch_end=95.0,
                                                image_size=48)
    again, _, extrinsics_again, intrinsics_again = camera(extrinsics=extrinsics, intrinsics=intrinsics, image_size=48)
    assert torch.allclose(again.cam2world, cameras.cam2world, atol=1e-5)
    assert torch.allclose(again.intrinsics, cameras.intrinsics, atol=1e-6)
    assert torch.allclose(again.targets, cameras.targets, atol=1e-4)  # the axis point nearest the origin
    assert torch.allclose(extrinsics_again, extrinsics, atol=1e-5)
    assert torch.allclose(intrinsics_again, intrinsics, atol=1e-4)
    square = torch.eye(4).repeat(4, 1, 1)
    square[:, :3] = extrinsics
    assert torch.allclose(camera(extrinsics=square, intrinsics=intrinsics, image_size=48)[0].cam2world,
                          cameras.cam2world, atol=1e-5)
    narrow = camera(intrinsics=intrinsics[:1] * torch.tensor([[2.0], [2.0], [1.0]]), image_size=48)[0]
    assert torch.allclose(narrow.intrinsics[0, 0, 0], 2 * cameras.intrinsics[0, 0, 0])  # poses from the widgets


def test_bad_camera_matrices_are_refused():
    _, _, extrinsics, intrinsics = camera(frames=2, image_size=64)
    with pytest.raises(ValueError, match="square pixels"):
        Cameras.from_matrices(extrinsics, intrinsics, 64, 32)
    with pytest.raises(ValueError, match="square pixels"):
        camera(extrinsics=extrinsics, intrinsics=intrinsics * torch.tensor([[1.0], [0.5], [1.0]]))
    mirrored = extrinsics.clone()
    mirrored[:, 0, :3] *= -1
    with pytest.raises(ValueError, match="proper rotation"):
        camera(extrinsics=mirrored, intrinsics=intrinsics)
    with pytest.raises(ValueError, match="NaN"):
        camera(extrinsics=extrinsics * float("nan"), intrinsics=intrinsics)
    with pytest.raises(ValueError, match="one per extrinsics"):
        camera(extrinsics=extrinsics, intrinsics=intrinsics.repeat(2, 1, 1))


def test_look_at_mode_copies_one_camera():
    cameras = camera(mode="look-at", frames=3, position_x=1.0, position_z=2.5, target_y=0.1)[0]
    assert len(cameras) == 3 and torch.equal(cameras.cam2world[0], cameras.cam2world[2])
    assert torch.allclose(cameras.cam2world[0, :3, 3], torch.tensor([1.0, 0.0, 2.5]))
    forward = cameras.cam2world[0, :3, 2]
    assert torch.allclose(forward, torch.nn.functional.normalize(torch.tensor([-1.0, 0.1, -2.5]), dim=0), atol=1e-6)


# ------------------------------------------------------------------------------------- scene
def test_procedural_head_modes():
    images, occluder, head, cameras = TameProceduralHead().render("views", SIZE, 3, False, 0)
    assert images.shape == (3, SIZE, SIZE, 3) and len(cameras) == 3
    assert occluder.sum() == 0 and 0.1 < head.mean() < 0.9
    images, occluder, head, cameras = TameProceduralHead().render("observed video", SIZE, 4, True, 1)
    assert images.shape == (4, SIZE, SIZE, 3) and occluder.shape == head.shape == (4, SIZE, SIZE)
    assert occluder.sum() > 0 and len(cameras) == 4
    given = camera(frames=2, yaw=80.0, yaw_end=100.0)[0]
    assert torch.equal(TameProceduralHead().render("views", SIZE, 7, True, 0, given)[3].cam2world, given.cam2world)
    with pytest.raises(ValueError, match="observed video"):
        TameProceduralHead().render("observed video", SIZE, 2, True, 0, given)


# ------------------------------------------------------------------------------------- rendering
def test_render_node_shapes_and_ranges():
    cameras = camera(frames=2, yaw=80.0, yaw_end=100.0)[0]
    images, depth, opacity = TameRenderTriplane().render(tiny_record(), cameras, 8)
    assert images.shape == depth.shape == (2, 8, 8, 3) and opacity.shape == (2, 8, 8)
    for value in (images, depth, opacity):
        assert value.dtype == torch.float32 and 0 <= value.min() and value.max() <= 1
    assert torch.equal(depth[..., 0], depth[..., 2])
    video, video_depth = TameRenderOrbit().render(tiny_record(), 3, 2.7, 90.0, 20.0, 18.84, 8)
    assert video.shape == video_depth.shape == (3, 8, 8, 3)


def test_nan_planes_and_wrong_records_are_refused():
    record = tiny_record()
    record.field.planes[0, 0, 0, 0, 0] = float("nan")
    cameras = camera()[0]
    with pytest.raises(ValueError, match="NaN"):
        TameRenderTriplane().render(record, cameras, 8)
    with pytest.raises(ValueError, match="TAME_CAMERA"):
        TameRenderTriplane().render(tiny_record(), "camera", 8)
    with pytest.raises(ValueError, match="TAME_OOD_FIELD"):
        TameRemoveOOD().remove(tiny_record(), cameras, 8, -1)


def test_fit_inputs_must_match_the_cameras():
    images = torch.rand(3, SIZE, SIZE, 3)
    with pytest.raises(ValueError, match="3 frames but the camera has 2"):
        TameFitTriplane().fit(images, camera(frames=2)[0], 1, 8, 0.02, 0)
    with pytest.raises(ValueError, match="square"):
        TameFitTriplane().fit(torch.rand(3, SIZE, SIZE + 2, 3), camera(frames=3)[0], 1, 8, 0.02, 0)
    with pytest.raises(ValueError, match="one mask per frame"):
        TameFitOOD().fit(images, camera(frames=3)[0], tiny_record(), 1, 0.0, 0, mask=torch.ones(2, SIZE, SIZE))


def test_tiny_fit_pipeline_in_inference_mode():
    views, _, _, view_cameras = TameProceduralHead().render("views", SIZE, 4, False, 0)
    frames, occluder, _, frame_cameras = TameProceduralHead().render("observed video", SIZE, 3, True, 0)
    with torch.inference_mode():
        triplane, = TameFitTriplane().fit(views, view_cameras, 3, 8, 0.02, 0)
        ood, = TameFitOOD().fit(frames, frame_cameras, triplane, 2, 0.1, 0, mask=occluder)
        composite, depth, opacity = TameRenderTriplane().render(triplane, frame_cameras, SIZE, ood)
        removed, ood_only, blend = TameRemoveOOD().remove(ood, frame_cameras, SIZE, -1)
        orbit, _ = TameRenderOrbit().render(triplane, 2, 2.7, 90.0, 20.0, 18.84, SIZE, ood, 1)
    assert composite.shape == removed.shape == ood_only.shape == (3, SIZE, SIZE, 3) and orbit.shape[0] == 2
    assert blend.shape == opacity.shape == (3, SIZE, SIZE) and 0 <= blend.min() and blend.max() <= 1
    assert not torch.equal(ood.fit.ind.planes, triplane.field.planes)  # ind_lr_scale > 0 refines a copy
    with pytest.raises(ValueError, match="frame_code"):
        TameRenderTriplane().render(triplane, view_cameras, SIZE, ood)
    with pytest.raises(ValueError, match="out of range"):
        TameRemoveOOD().remove(ood, view_cameras, SIZE, 3)
    with pytest.raises(ValueError, match="another tri-plane"):
        TameRenderTriplane().render(tiny_record(), frame_cameras, SIZE, ood)


# ------------------------------------------------------------------------------------- generator
def test_generator_loader_empty_folder_safetensors_and_corrupt_pickle(tmp_path):
    choices = TameLoadTriplaneGenerator.INPUT_TYPES()["required"]["model"][0]
    assert choices == [NO_GENERATOR]
    with pytest.raises(FileNotFoundError, match="triplane"):
        TameLoadTriplaneGenerator().load(NO_GENERATOR, "raw")
    folder = tmp_path / "models" / "triplane"
    folder.mkdir(parents=True)
    torch.manual_seed(0)
    TriplaneGenerator(**TINY_EG3D).save_safetensors(folder / "tiny.safetensors")
    (folder / "broken.pkl").write_bytes(b"\x80\x04not a pickle at all")
    assert TameLoadTriplaneGenerator.INPUT_TYPES()["required"]["model"][0] == ["broken.pkl", "tiny.safetensors"]
    with pytest.raises(ValueError, match="broken.pkl"):
        TameLoadTriplaneGenerator().load("broken.pkl", "raw")
    with pytest.raises(FileNotFoundError, match="missing.pkl"):
        TameLoadTriplaneGenerator().load("missing.pkl", "raw")
    with torch.inference_mode():
        model, generator = TameLoadTriplaneGenerator().load("tiny.safetensors", "raw")
        triplane, = TameTriplaneFromLatent().synthesise(model, 3, 0.7)
        again, = TameTriplaneFromLatent().synthesise(model, 3, 0.7, {"samples": triplane.ws.transpose(1, 2)[..., None]})
        images, _, _ = TameRenderTriplane().render(triplane, camera()[0], 8)
    assert isinstance(generator, Generator)
    assert triplane.field.planes.shape == (1, 3, 8, 16, 16) and triplane.ws.shape == (1, model.num_ws, 16)
    assert torch.allclose(again.field.planes, triplane.field.planes, atol=1e-5)
    assert images.shape == (1, 8, 8, 3)
    with pytest.raises(ValueError, match="W\\+ codes"):
        TameTriplaneFromLatent().synthesise(model, 0, 0.7, {"samples": torch.zeros(1, 4, 8, 8)})
