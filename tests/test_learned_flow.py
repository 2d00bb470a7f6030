"""RAFT and SpyNet: reference state-dict layouts, equivalence with the reference implementations, loading.

The fixtures (tests/fixtures/flow_reference_*) were produced by torchvision's RAFT and by BasicSR's and
MMagic's SpyNet with the stand-in weights of flow_fixture_recipe.py; make_flow_fixtures.py says how.
"""
import argparse
import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from safetensors import safe_open
from safetensors.torch import load_file

from tame.models.flow.checkpoints import build_from_state_dict, convert_to_safetensors, detect_flow_network
from tame.models.flow.raft import raft_large, raft_small
from tame.models.flow.spynet import SpyNet
from tame.tests.flow_fixture_recipe import layout_from_json, recipe_checksums, recipe_state_dict

FIXTURES = Path(__file__).parent / "fixtures"
FACTORIES = {"raft_large": raft_large, "raft_small": raft_small, "spynet_basicsr": SpyNet}
REFERENCE_KIND = {"raft_large": "raft_large", "raft_small": "raft_small",
                  "spynet_basicsr": "spynet", "spynet_mmagic": "spynet"}
RAFT_ITERS = 3
RELATIVE_TOLERANCE = 1e-4  # of the largest reference flow component


@pytest.fixture(scope="module")
def reference_keys():
    return json.loads((FIXTURES / "flow_reference_keys.json").read_text())


@pytest.fixture(scope="module")
def reference_outputs():
    return load_file(str(FIXTURES / "flow_reference_outputs.safetensors"))


def recipe_weights(reference_keys, name):
    return recipe_state_dict(layout_from_json(reference_keys[name]))


def image_pair(reference_outputs, prefix):
    return (reference_outputs[f"{prefix}_image1"].float() / 255,
            reference_outputs[f"{prefix}_image2"].float() / 255)


def mmagic_names(weights):
    """BasicSR SpyNet names -> MMagic names: conv K of the Sequential (K = 0, 2, .., 8) is ConvModule K/2."""
    renamed = {}
    for name, tensor in weights.items():
        parts = name.split(".")
        if len(parts) == 5:
            parts = parts[:3] + [str(int(parts[3]) // 2), "conv", parts[4]]
        renamed[".".join(parts)] = tensor
    return renamed


def assert_matches_reference(ours, reference):
    scale = reference.abs().max()
    assert scale > 1.0, "the reference flow is too small to be a meaningful comparison"
    assert ours.shape == reference.shape
    assert (ours - reference).abs().max() <= RELATIVE_TOLERANCE * scale


# ------------------------------------------------------------------ layout
@pytest.mark.parametrize("name", list(FACTORIES))
def test_state_dict_layout_matches_reference(reference_keys, name):
    ours = {k: {"shape": list(v.shape), "dtype": str(v.dtype).removeprefix("torch.")}
            for k, v in FACTORIES[name]().state_dict().items()}
    assert set(ours) == set(reference_keys[name])
    assert ours == reference_keys[name]


def test_mmagic_key_names_are_basicsr_names_renamed(reference_keys):
    basicsr = reference_keys["spynet_basicsr"]
    assert mmagic_names(basicsr) == reference_keys["spynet_mmagic"]


@pytest.mark.parametrize("name", list(REFERENCE_KIND))
def test_detects_each_reference_layout(reference_keys, name):
    zeros = {k: torch.zeros(layout[0], dtype=layout[1])
             for k, layout in layout_from_json(reference_keys[name]).items()}
    kind, prefix, _ = detect_flow_network(zeros)
    assert (kind, prefix) == (REFERENCE_KIND[name], "")


@pytest.mark.parametrize("name, checksums", [("raft_large", "raft_large"), ("raft_small", "raft_small"),
                                             ("spynet_basicsr", "spynet")])
def test_recipe_reproduces_the_fixture_weights(reference_keys, reference_outputs, name, checksums):
    sums = recipe_checksums(recipe_weights(reference_keys, name))
    torch.testing.assert_close(sums, reference_outputs[f"{checksums}_recipe_checksums"], rtol=1e-12, atol=1e-12)


# ------------------------------------------------------------------ numerical equivalence
@pytest.mark.parametrize("name, factory", [("raft_large", raft_large), ("raft_small", raft_small)])
def test_raft_matches_torchvision(reference_keys, reference_outputs, name, factory):
    model = factory().eval()
    model.load_state_dict(recipe_weights(reference_keys, name), strict=True)
    with torch.no_grad():
        flow = model(*image_pair(reference_outputs, "raft"), num_iters=RAFT_ITERS)
    assert_matches_reference(flow, reference_outputs[f"{name}_flow"])


def test_spynet_matches_basicsr(reference_keys, reference_outputs):
    model = SpyNet().eval()
    model.load_state_dict(recipe_weights(reference_keys, "spynet_basicsr"), strict=True)
    with torch.no_grad():
        flow = model(*image_pair(reference_outputs, "spynet"))
    assert_matches_reference(flow, reference_outputs["spynet_basicsr_flow"])


def test_spynet_from_mmagic_checkpoint_matches_mmagic(reference_keys, reference_outputs):
    weights = mmagic_names(recipe_weights(reference_keys, "spynet_basicsr"))
    model, kind = build_from_state_dict({"state_dict": {f"generator.spynet.{k}": v for k, v in weights.items()}})
    with torch.no_grad():
        flow = model(*image_pair(reference_outputs, "spynet"))
    assert kind == "spynet"
    assert_matches_reference(flow, reference_outputs["spynet_mmagic_flow"])


# ------------------------------------------------------------------ loading
def _prefixed(weights, prefix):
    return {prefix + k: v for k, v in weights.items()}


SPYNET_WRAPPERS = {
    "bare": lambda w: w,
    "params": lambda w: {"params": w},
    "params_ema first": lambda w: {"params": {k: torch.zeros_like(v) for k, v in w.items()}, "params_ema": w},
    "module prefix": lambda w: {"state_dict": _prefixed(w, "module.")},
    "BasicVSR net": lambda w: {"params": {**_prefixed(w, "spynet."), "fusion.weight": torch.zeros(3, 3)}},
    "no mean/std": lambda w: {k: v for k, v in w.items() if k not in ("mean", "std")},
}


@pytest.mark.parametrize("wrap", list(SPYNET_WRAPPERS))
def test_spynet_loads_through_wrappers(reference_keys, wrap):
    weights = recipe_weights(reference_keys, "spynet_basicsr")
    model, kind = build_from_state_dict(SPYNET_WRAPPERS[wrap](dict(weights)))
    assert kind == "spynet" and not model.training
    for key, value in model.state_dict().items():
        torch.testing.assert_close(value, weights[key], rtol=0, atol=0)


def test_raft_loads_with_module_prefix_and_checks_the_requested_kind(reference_keys):
    weights = recipe_weights(reference_keys, "raft_small")
    model, kind = build_from_state_dict({"model": _prefixed(weights, "module.")}, kind="raft_small")
    assert kind == "raft_small"
    torch.testing.assert_close(model.state_dict()["update_block.flow_head.conv2.bias"],
                               weights["update_block.flow_head.conv2.bias"], rtol=0, atol=0)
    with pytest.raises(ValueError, match="holds raft_small weights, but raft_large was requested"):
        build_from_state_dict(weights, kind="raft_large")


def test_wrong_checkpoints_name_the_offending_keys(reference_keys):
    spynet = recipe_weights(reference_keys, "spynet_basicsr")
    missing = {k: v for k, v in spynet.items() if k != "basic_module.3.basic_module.4.bias"}
    with pytest.raises(ValueError, match=r"1 missing keys: basic_module\.3\.basic_module\.4\.bias"):
        build_from_state_dict(missing)
    extra = {**spynet, "basic_module.6.basic_module.0.weight": torch.zeros(32, 8, 7, 7)}
    with pytest.raises(ValueError, match=r"1 unexpected keys: basic_module\.6\.basic_module\.0\.weight"):
        build_from_state_dict(extra)
    raft = recipe_weights(reference_keys, "raft_small")
    raft["update_block.flow_head.conv1.weight"] = torch.zeros(64, 96, 3, 3)
    with pytest.raises(ValueError, match=r"shape mismatches: update_block\.flow_head\.conv1\.weight "
                                         r"\(file \[64, 96, 3, 3\], model \[128, 96, 3, 3\]\)"):
        build_from_state_dict(raft)


def test_unknown_checkpoints_are_explained():
    with pytest.raises(ValueError, match="Not a RAFT or SpyNet checkpoint.*conv_first.weight"):
        build_from_state_dict({"conv_first.weight": torch.zeros(1), "conv_last.weight": torch.zeros(1)})
    with pytest.raises(ValueError, match="princeton-vl"):
        build_from_state_dict({"module.fnet.conv1.weight": torch.zeros(64, 3, 7, 7)})
    with pytest.raises(ValueError, match="not a known RAFT"):
        build_from_state_dict({"feature_encoder.convnormrelu.0.weight": torch.zeros(48, 3, 7, 7)})
    with pytest.raises(ValueError, match="holds no tensors"):
        build_from_state_dict({"meta": {"iter": 3}})


# ------------------------------------------------------------------ conversion
def test_pth_to_safetensors_round_trip(reference_keys, tmp_path):
    weights = recipe_weights(reference_keys, "spynet_basicsr")
    src = tmp_path / "spynet_sintel_final.pth"
    torch.save({"params": weights, "meta": {"iter": 300000}}, src)
    dst = convert_to_safetensors(src)
    assert dst == tmp_path / "spynet_sintel_final.safetensors"
    loaded = load_file(str(dst))
    assert set(loaded) == set(weights)
    for key, value in weights.items():
        assert torch.equal(loaded[key], value)
    with safe_open(str(dst), framework="pt") as handle:
        metadata = handle.metadata()
    assert metadata == {"format": "pt", "source": src.name, "container": "params", "architecture": "spynet"}
    assert build_from_state_dict(loaded)[1] == "spynet"
    with pytest.raises(FileExistsError):
        convert_to_safetensors(src, dst)
    assert convert_to_safetensors(src, dst, overwrite=True) == dst


def test_conversion_keeps_shared_tensors_and_refuses_unsafe_pickles(tmp_path):
    base = torch.arange(12.0).view(3, 4)
    src = tmp_path / "tied.pt"
    torch.save({"embed.weight": base, "head.weight": base, "row": base[1]}, src)
    loaded = load_file(str(convert_to_safetensors(src, tmp_path / "out" / "tied.safetensors")))
    assert torch.equal(loaded["head.weight"], base) and torch.equal(loaded["row"], base[1])
    unsafe = tmp_path / "unsafe.pth"
    torch.save({"params": {"w": torch.zeros(1)}, "args": argparse.Namespace(lr=1)}, unsafe)
    with pytest.raises(ValueError, match="weights_only=True"):
        convert_to_safetensors(unsafe)
    with pytest.raises(FileNotFoundError, match="absent.pth"):
        convert_to_safetensors(tmp_path / "absent.pth")


# ------------------------------------------------------------------ any size, options, bad input
@pytest.fixture(scope="module")
def recipe_raft_small(reference_keys):
    return build_from_state_dict(recipe_weights(reference_keys, "raft_small"))[0]


@pytest.mark.parametrize("size", [(37, 53), (130, 141)])
def test_raft_any_size_is_padded_centred_and_cropped(recipe_raft_small, size):
    height, width = size
    image1, image2 = torch.rand(2, 1, 3, height, width, generator=torch.Generator().manual_seed(3))
    # expected padding: up to a multiple of 8 and at least 128, split evenly (extra pixel after)
    target_h, target_w = max(128, -(-height // 8) * 8), max(128, -(-width // 8) * 8)
    top, left = (target_h - height) // 2, (target_w - width) // 2
    pad = (left, target_w - width - left, top, target_h - height - top)
    with torch.no_grad():
        flow = recipe_raft_small(image1, image2, num_iters=2)
        padded = recipe_raft_small(F.pad(image1, pad, mode="replicate"), F.pad(image2, pad, mode="replicate"),
                                   num_iters=2)
    assert flow.shape == (1, 2, height, width) and torch.isfinite(flow).all()
    torch.testing.assert_close(flow, padded[..., top:top + height, left:left + width])


def test_raft_returns_every_iteration(recipe_raft_small):
    image1, image2 = torch.rand(2, 2, 3, 64, 72, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        steps = recipe_raft_small(image1, image2, num_iters=3, return_all=True)
        final = recipe_raft_small(image1, image2, num_iters=3)
    assert len(steps) == 3 and all(s.shape == (2, 2, 64, 72) for s in steps)
    torch.testing.assert_close(steps[-1], final, rtol=0, atol=0)
    assert not torch.equal(steps[0], steps[-1])


@pytest.mark.parametrize("size", [(33, 47), (70, 31)])
def test_spynet_any_size(reference_keys, size):
    model = build_from_state_dict(recipe_weights(reference_keys, "spynet_basicsr"))[0]
    image1, image2 = torch.rand(2, 2, 3, *size, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        flow = model(image1, image2)
    assert flow.shape == (2, 2, *size) and torch.isfinite(flow).all()


def test_bad_inputs_are_rejected(recipe_raft_small):
    with pytest.raises(ValueError, match="same shape"):
        recipe_raft_small(torch.rand(1, 3, 64, 64), torch.rand(1, 3, 64, 72))
    with pytest.raises(ValueError, match=r"\[N,3,H,W\]"):
        recipe_raft_small(torch.rand(1, 1, 64, 64), torch.rand(1, 1, 64, 64))
    with pytest.raises(ValueError, match="num_iters"):
        recipe_raft_small(torch.rand(1, 3, 64, 64), torch.rand(1, 3, 64, 64), num_iters=0)
    with pytest.raises(ValueError, match="same shape"):
        SpyNet()(torch.rand(1, 3, 64, 64), torch.rand(2, 3, 64, 64))
