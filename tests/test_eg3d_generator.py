"""StyleGAN2 / EG3D generator: shapes, num_ws bookkeeping, resampling and modulated convolution
against closed forms and plain convolutions, the code-free EG3D pickle loader (a persistence-format
pickle built here), safetensors round trip, and the W+ adapter of the edit optimisation."""
import collections
import math
import os
import pickle
import sys
import types

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from tame.kernels.rays import normalized_intrinsics, orbit_cam2world
from tame.models.edit.optimize import ConsistencySettings, make_consistent
from tame.models.edit.wplus_generator import StyleGANWPlusGenerator, codes_to_wplus, wplus_to_codes
from tame.models.flow.builtin import BuiltinFlow
from tame.models.io.eg3d_pickle import load_eg3d_pickle
from tame.models.triplane.eg3d import TriplaneGenerator, camera_label
from tame.models.triplane.stylegan2 import (
    StyleGAN2Generator, SynthesisNetwork, fir_filter, modulated_conv2d, upsample2d,
)

TINY_EG3D = dict(z_dim=8, c_dim=25, w_dim=16, img_resolution=32, plane_resolution=16, plane_channels=8,
                 channel_base=128, channel_max=16, mapping_kwargs={"num_layers": 2},
                 sr_kwargs={"input_resolution": 8, "block_channels": [8, 8]}, neural_rendering_resolution=8,
                 rendering_kwargs={"depth_resolution": 6, "depth_resolution_importance": 6})


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def tiny_eg3d(seed=0):
    torch.manual_seed(seed)
    model = TriplaneGenerator(**TINY_EG3D).eval().requires_grad_(False)
    with torch.no_grad():  # non-zero noise strengths and biases so every tensor matters in comparisons
        for name, parameter in model.named_parameters():
            if name.endswith(("noise_strength", "bias")) and "affine" not in name:
                parameter.normal_(0, 0.1)
    return model


def frontal(count=1):
    return orbit_cam2world(math.pi / 2, math.pi / 2, 2.7).expand(count, 4, 4), normalized_intrinsics(4.2647, count)


def render_all(model, ws):
    cam2world, intrinsics = frontal(ws.shape[0])
    return model.synthesis(ws, cam2world, intrinsics)


# ------------------------------------------------------------------------------ architecture
def test_num_ws_and_state_dict_names_follow_eg3d():
    assert SynthesisNetwork(4, 256, 96, channel_base=256, channel_max=1).num_ws == 14  # EG3D: 1 + 6*2 + 1
    model = StyleGAN2Generator(8, 25, 16, 32, 3, channel_base=256, channel_max=32, mapping_kwargs={"num_layers": 2})
    assert model.num_ws == 8
    names = set(model.state_dict())
    for name in ("mapping.fc0.weight", "mapping.fc1.bias", "mapping.embed.weight", "mapping.w_avg",
                 "synthesis.b4.const", "synthesis.b4.conv1.affine.weight", "synthesis.b8.conv0.weight",
                 "synthesis.b8.conv0.noise_const", "synthesis.b8.conv1.noise_strength",
                 "synthesis.b8.resample_filter", "synthesis.b8.conv0.resample_filter", "synthesis.b32.torgb.weight"):
        assert name in names, name
    assert "synthesis.b4.conv0.weight" not in names and "mapping.fc2.weight" not in names
    assert model.state_dict()["synthesis.b8.resample_filter"].shape == (4, 4)


def test_each_layer_reads_the_w_of_eg3d_bookkeeping():
    model = StyleGAN2Generator(8, 0, 16, 16, 3, channel_base=128, channel_max=16, mapping_kwargs={"num_layers": 1})
    ws = torch.randn(1, model.num_ws, 16)
    used = {}
    for name, module in model.synthesis.named_modules():
        if name.endswith("affine"):
            module.register_forward_pre_hook(
                lambda mod, args, name=name: used.__setitem__(name[:-7], int((args[0] - ws[0]).abs().sum(-1).argmin())))
    model.synthesis(ws)
    assert used == {"b4.conv1": 0, "b4.torgb": 1, "b8.conv0": 1, "b8.conv1": 2, "b8.torgb": 3,
                    "b16.conv0": 3, "b16.conv1": 4, "b16.torgb": 5}


def test_tiny_triplane_generator_shapes():
    model = tiny_eg3d()
    cam2world, intrinsics = frontal(2)
    ws = model.mapping(torch.randn(2, 8), camera_label(cam2world, intrinsics), truncation_psi=0.7)
    assert ws.shape == (2, model.num_ws, 16) and model.num_ws == 6
    assert model.planes(ws).shape == (2, 3, 8, 16, 16)
    out = model.synthesis(ws, cam2world, intrinsics)
    assert out["image"].shape == (2, 3, 32, 32) and out["image_raw"].shape == (2, 3, 8, 8)
    assert out["image_depth"].shape == (2, 1, 8, 8)
    assert torch.equal(model.synthesis(ws, cam2world, intrinsics)["image"], out["image"])  # 'const' noise
    names = set(model.state_dict())
    assert {"backbone.mapping.fc1.weight", "backbone.synthesis.b16.torgb.weight", "decoder.net.0.weight",
            "decoder.net.2.bias", "superresolution.block1.conv1.affine.weight",
            "superresolution.block0.conv0.noise_const"} <= names


def test_truncation_pulls_towards_w_avg():
    model = tiny_eg3d()
    model.backbone.mapping.w_avg.normal_()
    z, c = torch.randn(1, 8), torch.randn(1, 25)
    full = model.mapping(z, c)
    half = model.mapping(z, c, truncation_psi=0.5, truncation_cutoff=3)
    w_avg = model.backbone.mapping.w_avg
    assert torch.allclose(half[:, :3], w_avg + 0.5 * (full[:, :3] - w_avg), atol=1e-6)
    assert torch.equal(half[:, 3:], full[:, 3:])


# ------------------------------------------------------------------------------ resampling and convolution
def test_fir_upsampling_keeps_constants_and_linear_ramps():
    kernel = fir_filter()
    constant = upsample2d(torch.full((1, 2, 8, 8), 3.0), kernel)
    assert constant.shape == (1, 2, 16, 16)
    assert torch.allclose(constant[..., 2:-2, 2:-2], torch.tensor(3.0), atol=1e-6)
    ramp = torch.arange(8.0).expand(1, 1, 8, 8)
    up = upsample2d(ramp, kernel)
    expected = (torch.arange(16.0) + 0.5) / 2 - 0.5  # pixel centres of the output in input pixels
    assert torch.allclose(up[0, 0, 2:-2, 2:-2], expected[2:-2].expand(12, 12), atol=1e-5)
    assert torch.allclose(upsample2d(ramp.transpose(2, 3), kernel)[0, 0, 2:-2, 2:-2],
                          expected[2:-2, None].expand(12, 12), atol=1e-5)


def test_modulated_conv_against_plain_convolutions():
    gen = torch.Generator().manual_seed(0)
    x, weight = torch.randn(2, 4, 6, 6, generator=gen), torch.randn(5, 4, 3, 3, generator=gen)
    ones = torch.ones(2, 4)
    assert torch.allclose(modulated_conv2d(x, weight, ones, demodulate=False), F.conv2d(x, weight, padding=1),
                          atol=1e-5)
    styles = torch.rand(2, 4, generator=gen) + 0.5
    for n in range(2):
        w = weight * styles[n, None, :, None, None]
        w = w / w.square().sum(dim=(1, 2, 3), keepdim=True).sqrt()
        assert torch.allclose(modulated_conv2d(x, weight, styles)[n], F.conv2d(x[n:n + 1], w, padding=1)[0],
                              atol=1e-5)
    # up=2 is a true convolution of the FIR-upsampled input (EG3D's up layers flip the kernel)
    up = modulated_conv2d(x, weight, ones, demodulate=False, up=2, kernel=fir_filter())
    reference = F.conv2d(upsample2d(x, fir_filter()), weight.flip(2, 3), padding=1)
    assert up.shape == (2, 5, 12, 12)
    assert torch.allclose(up[..., 3:-3, 3:-3], reference[..., 3:-3, 3:-3], atol=1e-5)


# ------------------------------------------------------------------------------ EG3D pickles
class _Persistent:
    """Stand-in for an EG3D @persistent_class object: reduces to _reconstruct_persistent_obj(meta)."""

    def __init__(self, reconstruct, class_name, state):
        self.reconstruct, self.class_name, self.state = reconstruct, class_name, state

    def __reduce__(self):
        meta = dict(type="class", version=6, module_src='raise SystemExit("executed!")',
                    class_name=self.class_name, state=self.state)
        return self.reconstruct, (meta,)


class _Unreachable:
    def __reduce__(self):
        return os.system, ("echo executed > eg3d_pickle_marker",)


def _module_state(module, children, **extra):
    return {"training": False, "_parameters": collections.OrderedDict(module._parameters),
            "_buffers": collections.OrderedDict(module._buffers), "_non_persistent_buffers_set": set(),
            "_modules": collections.OrderedDict(children), **extra}


@pytest.fixture
def eg3d_code(monkeypatch):
    """Fake `torch_utils.persistence`, `dnnlib.util`, `training.triplane` modules (only while pickling)."""
    persistence = types.ModuleType("torch_utils.persistence")

    def reconstruct(meta):
        raise AssertionError("never called: only pickled by name")
    reconstruct.__module__, reconstruct.__qualname__ = "torch_utils.persistence", "_reconstruct_persistent_obj"
    persistence._reconstruct_persistent_obj = reconstruct
    util = types.ModuleType("dnnlib.util")
    util.EasyDict = type("EasyDict", (dict,), {"__module__": "dnnlib.util"})
    triplane = types.ModuleType("training.triplane")
    triplane.OSGDecoder = type("OSGDecoder", (), {"__module__": "training.triplane",
                                                  "__getstate__": lambda self: self.state})
    for name, module in (("torch_utils", types.ModuleType("torch_utils")), ("torch_utils.persistence", persistence),
                         ("dnnlib", types.ModuleType("dnnlib")), ("dnnlib.util", util),
                         ("training", types.ModuleType("training")), ("training.triplane", triplane)):
        monkeypatch.setitem(sys.modules, name, module)
    return types.SimpleNamespace(reconstruct=reconstruct, EasyDict=util.EasyDict, OSGDecoder=triplane.OSGDecoder)


def _as_pickled_tree(module, code, class_name):
    """A module tree as EG3D pickles it: persistent stand-ins, the OSG decoder by import path, torch
    Sequential/Softplus as real (stubbed on load) modules."""
    if isinstance(module, nn.Sequential):
        sequential = nn.Sequential()
        for name, child in module._modules.items():
            sequential._modules[name] = child if isinstance(child, nn.Softplus) else \
                _as_pickled_tree(child, code, "training.networks_stylegan2.FullyConnectedLayer")
        return sequential
    children = {name: _as_pickled_tree(child, code, f"training.networks_stylegan2.{type(child).__name__}")
                for name, child in module._modules.items()}
    if class_name == "training.triplane.OSGDecoder":
        decoder = code.OSGDecoder()
        decoder.state = _module_state(module, children)
        return decoder
    return _Persistent(code.reconstruct, class_name, _module_state(module, children))


def _network_pickle(path, code, class_name, init_kwargs, g_ema, g):
    """Write `{'G', 'D', 'G_ema', ...}` as EG3D's training loop does, modules as persistent objects."""
    def generator(source):
        tree = {name: _as_pickled_tree(child, code, "training.triplane.OSGDecoder" if name == "decoder"
                                       else f"training.x.{type(child).__name__}")
                for name, child in source._modules.items()}
        extra = {"rendering_kwargs": code.EasyDict(source.rendering_kwargs),
                 "neural_rendering_resolution": source.neural_rendering_resolution} \
            if isinstance(source, TriplaneGenerator) else {}
        state = _module_state(source, tree, _init_args=(), _init_kwargs=init_kwargs, **extra)
        return _Persistent(code.reconstruct, class_name, state)

    data = {"G": generator(g), "D": _Persistent(code.reconstruct, "training.dual_discriminator.DualDiscriminator",
                                                _module_state(nn.Module(), {})),
            "G_ema": generator(g_ema), "augment_pipe": None,
            "training_set_kwargs": code.EasyDict(path="ffhq.zip", resolution=512)}
    path.write_bytes(pickle.dumps(data))
    return path


def _eg3d_pickle(model, code, path, other):
    init_kwargs = code.EasyDict(z_dim=8, w_dim=16, c_dim=25, img_resolution=32, img_channels=3,
                                mapping_kwargs=code.EasyDict(num_layers=2), channel_base=128, channel_max=16,
                                fused_modconv_default="inference_only", num_fp16_res=0, sr_num_fp16_res=0,
                                conv_clamp=None, plane_resolution=16, plane_channels=8,
                                sr_kwargs=code.EasyDict(channel_base=128, channel_max=16, input_resolution=8,
                                                        block_channels=[8, 8], fused_modconv_default="inference_only"),
                                rendering_kwargs=code.EasyDict(model.rendering_kwargs))
    return _network_pickle(path, code, "training.triplane.TriPlaneGenerator", init_kwargs, model, other)


def test_eg3d_pickle_loads_without_running_its_code(tmp_path, eg3d_code):
    model, other = tiny_eg3d(0), tiny_eg3d(1)
    path = _eg3d_pickle(model, eg3d_code, tmp_path / "tiny-eg3d.pkl", other)
    for name in ("torch_utils", "torch_utils.persistence", "dnnlib", "dnnlib.util", "training", "training.triplane"):
        del sys.modules[name]  # the loader must not need EG3D's code
    config, state_dict = load_eg3d_pickle(path)
    assert config["class_name"] == "training.triplane.TriPlaneGenerator"
    assert config["neural_rendering_resolution"] == 8 and config["rendering_kwargs"]["depth_resolution"] == 6
    assert set(state_dict) == set(model.state_dict())
    loaded = TriplaneGenerator.from_pickle(path)
    ws = model.mapping(torch.randn(2, 8), torch.randn(2, 25))
    assert torch.equal(loaded.mapping(torch.zeros(1, 8), torch.zeros(1, 25)),
                       model.mapping(torch.zeros(1, 8), torch.zeros(1, 25)))  # G_ema, not G
    expected, actual = render_all(model, ws), render_all(loaded, ws)
    assert all(torch.equal(expected[key], actual[key]) for key in expected)


def test_forbidden_globals_corrupt_and_missing_files(tmp_path, eg3d_code, monkeypatch):
    monkeypatch.chdir(tmp_path)
    evil = tmp_path / "evil.pkl"
    evil.write_bytes(pickle.dumps({"G_ema": _Unreachable()}))
    with pytest.raises(ValueError, match=r"refuses to load class posix\.system.*not an EG3D checkpoint"):
        load_eg3d_pickle(evil)
    assert not (tmp_path / "eg3d_pickle_marker").exists()
    good = _eg3d_pickle(tiny_eg3d(), eg3d_code, tmp_path / "good.pkl", tiny_eg3d())
    truncated = tmp_path / "truncated.pkl"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(ValueError, match="truncated.pkl .*truncated or corrupt"):
        load_eg3d_pickle(truncated)
    with pytest.raises(FileNotFoundError, match=f"absent.pkl not found in {tmp_path}"):
        TriplaneGenerator.from_pickle(tmp_path / "absent.pkl")
    config, state_dict = load_eg3d_pickle(good)
    state_dict.pop("decoder.net.2.bias")
    state_dict["superresolution.extra"] = torch.zeros(1)
    with pytest.raises(ValueError, match=r"missing \(1\): decoder\.net\.2\.bias; unexpected \(1\): superres"):
        TriplaneGenerator.from_state_dict(config, state_dict)
    with pytest.raises(ValueError, match="unknown tri-plane generator options"):
        TriplaneGenerator.from_config({**config, "architecture": "resnet"})
    sr_fp16 = {**config, "sr_num_fp16_res": 4}
    assert TriplaneGenerator.from_config(sr_fp16).superresolution.block0.conv1.conv_clamp == 256


def test_constant_fir_buffers_may_be_absent_or_extra_but_weights_may_not(tmp_path, eg3d_code):
    config, state_dict = load_eg3d_pickle(_eg3d_pickle(tiny_eg3d(), eg3d_code, tmp_path / "g.pkl", tiny_eg3d()))
    state_dict.pop("backbone.synthesis.b8.resample_filter")
    state_dict["superresolution.resample_filter"] = fir_filter()
    TriplaneGenerator.from_state_dict(config, state_dict)
    state_dict["superresolution.resample_filter"] = 2 * fir_filter()
    with pytest.raises(ValueError, match=r"unexpected \(1\): superresolution\.resample_filter"):
        TriplaneGenerator.from_state_dict(config, state_dict)


def test_stylegan2_ada_style_pickle_round_trip(tmp_path, eg3d_code):
    torch.manual_seed(0)
    model = StyleGAN2Generator(8, 0, 16, 16, 3, channel_base=128, channel_max=16, mapping_kwargs={"num_layers": 2})
    init_kwargs = eg3d_code.EasyDict(
        z_dim=8, c_dim=0, w_dim=16, img_resolution=16, img_channels=3,
        mapping_kwargs=eg3d_code.EasyDict(num_layers=2),
        synthesis_kwargs=eg3d_code.EasyDict(channel_base=128, channel_max=16, num_fp16_res=4, conv_clamp=None,
                                            architecture="skip"))
    path = _network_pickle(tmp_path / "sg2.pkl", eg3d_code, "training.networks.Generator", init_kwargs, model, model)
    loaded = StyleGAN2Generator.from_pickle(path)
    z = torch.randn(2, 8)
    assert torch.equal(loaded(z), model(z))
    path = _eg3d_pickle(tiny_eg3d(), eg3d_code, tmp_path / "eg3d.pkl", tiny_eg3d())
    with pytest.raises(ValueError, match="eg3d.pkl .*not a StyleGAN2 generator"):
        StyleGAN2Generator.from_pickle(path)


def test_safetensors_round_trip(tmp_path):
    model = tiny_eg3d()
    loaded = TriplaneGenerator.from_file(model.save_safetensors(tmp_path / "tiny.safetensors"))
    ws = torch.randn(1, model.num_ws, 16)
    assert torch.equal(render_all(model, ws)["image"], render_all(loaded, ws)["image"])


# ------------------------------------------------------------------------------ W+ adapter
def test_wplus_adapter_decodes_differentiably_and_copies_independently():
    model = tiny_eg3d()
    generator = StyleGANWPlusGenerator(model, output="super-resolved")
    like = torch.zeros(2, 16, model.num_ws, 1)
    codes = generator.sample_prior_code(like, torch.Generator().manual_seed(0))
    assert codes.shape == like.shape and torch.equal(wplus_to_codes(codes_to_wplus(codes)), codes)
    codes.requires_grad_(True)
    frames = generator.decode(codes)
    assert frames.shape == (2, 3, 32, 32) and generator.frame_size((8, 1)) == (32, 32)
    assert 0 <= float(frames.detach().min()) and float(frames.detach().max()) <= 1
    frames.mean().backward()
    assert codes.grad.abs().sum() > 0
    duplicate = generator.copy()
    with torch.no_grad():
        next(duplicate.decoder.parameters()).add_(1.0)
        assert torch.equal(generator.decode(codes), frames)
        assert not torch.equal(duplicate.decode(codes), frames)
    with pytest.raises(ValueError, match=r"W\+ codes \[frames,16,6,1\]"):
        generator.decode(torch.zeros(1, 16, 4, 2))


def test_edit_optimisation_runs_through_a_2d_stylegan2():
    torch.manual_seed(0)
    model = StyleGAN2Generator(8, 0, 16, 32, 3, channel_base=256, channel_max=16, mapping_kwargs={"num_layers": 2})
    generator = StyleGANWPlusGenerator(model)
    codes = generator.sample_codes(2, torch.Generator().manual_seed(1))
    settings = ConsistencySettings.for_mode("out-of-domain", phase1_epochs=1, phase2_epochs=1, phase2_lr=1e-2)
    result = make_consistent(generator, codes, BuiltinFlow(quality="fast"), settings=settings)
    assert result.frames.shape == (2, 3, 32, 32) and result.latents.shape == codes.shape
    assert len(result.losses["phase1"]) == 1 and len(result.losses["phase2"]) == 1
    assert not torch.equal(result.latents, codes)
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), generator.decoder.state_dict().values()))
