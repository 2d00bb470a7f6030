"""Contract every registered node keeps (ComfyUI's classic node API plus the pack's own rules)."""
import inspect

import pytest

import tame
from tame.headless import cli

NODE_IDS = list(tame.NODE_CLASS_MAPPINGS)
CORE_TYPES = {"IMAGE", "MASK", "LATENT", "INT", "FLOAT", "STRING", "BOOLEAN", "UPSCALE_MODEL", "VAE",
              "OPTICAL_FLOW", "COMBO", "*", "NOISE", "POSE_KEYPOINT", "LOAD3D_CAMERA", "EXTRINSICS", "INTRINSICS"}
INTEROP_TYPE, OWN_FLOW_TYPE = "OPTICAL_FLOW", "TAME_FLOW"
INPUT_SECTIONS = {"required", "optional", "hidden"}


def node_class(node_id):
    return tame.NODE_CLASS_MAPPINGS[node_id]


def declared_inputs(cls):
    """[(section, name, spec)] for the required and optional inputs."""
    declared = cls.INPUT_TYPES()
    return [(section, name, spec) for section in ("required", "optional")
            for name, spec in (declared.get(section) or {}).items()]


def spec_parts(spec):
    return spec[0], (spec[1] if len(spec) > 1 else {})


def type_names(kind):
    """Single type names in a type declaration ('A,B' unions split; combo lists have none)."""
    return [] if isinstance(kind, list) else [part.strip() for part in kind.split(",")]


def all_types(cls):
    kinds = [spec_parts(spec)[0] for _, _, spec in declared_inputs(cls)] + list(cls.RETURN_TYPES)
    return {name for kind in kinds for name in type_names(kind)}


def test_the_pack_registers_nodes():
    assert NODE_IDS, "tame.NODE_CLASS_MAPPINGS is empty"
    assert set(tame.NODE_DISPLAY_NAME_MAPPINGS) == set(NODE_IDS)


@pytest.mark.parametrize("node_id", NODE_IDS)
def test_identity(node_id):
    cls = node_class(node_id)
    assert node_id.startswith("Tame"), f"node id {node_id} must start with 'Tame'"
    display = tame.NODE_DISPLAY_NAME_MAPPINGS.get(node_id)
    assert isinstance(display, str) and display.strip(), f"{node_id} has no display name"
    assert isinstance(cls.CATEGORY, str) and cls.CATEGORY.startswith("Tame/"), cls.CATEGORY
    assert isinstance(cls.DESCRIPTION, str) and len(cls.DESCRIPTION.strip()) >= 20, "DESCRIPTION too short"
    assert isinstance(getattr(cls, "OUTPUT_NODE", False), bool)


@pytest.mark.parametrize("node_id", NODE_IDS)
def test_function_exists_and_accepts_the_inputs(node_id):
    cls = node_class(node_id)
    function = getattr(cls, cls.FUNCTION, None)
    assert callable(function), f"FUNCTION {cls.FUNCTION!r} is not a method of {node_id}"
    parameters = inspect.signature(function).parameters
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values())
    declared = {name: section for section, name, _ in declared_inputs(cls)}
    declared.update({name: "hidden" for name in cls.INPUT_TYPES().get("hidden") or {}})
    for name, section in declared.items():
        assert takes_any or name in parameters, f"{cls.FUNCTION}() does not take the input {name!r}"
        if section != "required" and name in parameters:
            assert parameters[name].default is not inspect.Parameter.empty, \
                f"optional input {name!r} needs a default in {cls.FUNCTION}()"
    for name, parameter in parameters.items():
        if name != "self" and parameter.default is inspect.Parameter.empty and \
                parameter.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY):
            assert declared.get(name) in ("required", "hidden"), \
                f"{cls.FUNCTION}() requires {name!r}, which is not a required input"
    validator = getattr(cls, "VALIDATE_INPUTS", None)
    assert validator is None or inspect.ismethod(validator) or isinstance(
        inspect.getattr_static(cls, "VALIDATE_INPUTS"), staticmethod), "VALIDATE_INPUTS must be a classmethod"


@pytest.mark.parametrize("node_id", NODE_IDS)
def test_return_types_and_names(node_id):
    cls = node_class(node_id)
    types, names = cls.RETURN_TYPES, getattr(cls, "RETURN_NAMES", None)
    assert isinstance(types, tuple), "RETURN_TYPES must be a tuple"
    assert isinstance(names, tuple) and len(names) == len(types), "RETURN_NAMES must match RETURN_TYPES"
    assert all(isinstance(name, str) and name for name in names)
    assert len(set(names)) == len(names), "RETURN_NAMES must be unique"
    assert all(isinstance(kind, (str, list)) for kind in types)
    output_is_list = getattr(cls, "OUTPUT_IS_LIST", None)
    assert output_is_list is None or (len(output_is_list) == len(types)
                                      and all(isinstance(flag, bool) for flag in output_is_list))
    tooltips = getattr(cls, "OUTPUT_TOOLTIPS", None)
    assert isinstance(tooltips, tuple) and len(tooltips) == len(types), "every output needs an OUTPUT_TOOLTIPS entry"
    assert all(isinstance(tip, str) and len(tip.strip()) >= 10 for tip in tooltips), "OUTPUT_TOOLTIPS too short"


@pytest.mark.parametrize("node_id", NODE_IDS)
def test_input_types_are_well_formed(node_id):
    declared = node_class(node_id).INPUT_TYPES()
    assert isinstance(declared, dict) and set(declared) <= INPUT_SECTIONS, set(declared) - INPUT_SECTIONS
    assert "required" in declared
    for section, name, spec in declared_inputs(node_class(node_id)):
        assert isinstance(spec, tuple) and 1 <= len(spec) <= 2, \
            f"{name}: spec must be (type,) or (type, options)"
        kind, options = spec_parts(spec)
        assert isinstance(options, dict), f"{name}: options must be a dict"
        assert isinstance(kind, (str, list)), f"{name}: type must be a string or a list of choices"
        tooltip = options.get("tooltip")
        assert isinstance(tooltip, str) and tooltip.strip(), f"input {name!r} has no tooltip"
        check_default(name, kind, options)


def check_default(name, kind, options):
    if isinstance(kind, list):
        assert kind, f"{name}: the combo has no choices"
        assert all(isinstance(choice, (str, int, float)) for choice in kind)
        assert "default" not in options or options["default"] in kind, f"{name}: default is not a choice"
        return
    if "min" in options and "max" in options:
        assert options["min"] <= options["max"], f"{name}: min > max"
    if "default" not in options:
        return
    default = options["default"]
    expected = {"INT": int, "FLOAT": (int, float), "STRING": str, "BOOLEAN": bool}.get(kind)
    if expected is not None:
        assert isinstance(default, expected) and not (kind != "BOOLEAN" and isinstance(default, bool)), \
            f"{name}: default {default!r} is not a {kind}"
    if "min" in options:
        assert default >= options["min"], f"{name}: default {default} below min {options['min']}"
    if "max" in options:
        assert default <= options["max"], f"{name}: default {default} above max {options['max']}"


@pytest.mark.parametrize("node_id", NODE_IDS)
def test_custom_types_are_prefixed(node_id):
    for name in all_types(node_class(node_id)):
        assert name in CORE_TYPES or name.startswith("TAME_"), \
            f"custom type {name!r} must start with TAME_ (bare names clash with other packs)"


@pytest.mark.parametrize("node_id", NODE_IDS)
def test_optical_flow_only_in_converters(node_id):
    names = all_types(node_class(node_id))
    if INTEROP_TYPE in names:
        assert OWN_FLOW_TYPE in names, \
            f"{INTEROP_TYPE} is only for converters to/from {OWN_FLOW_TYPE}; use {OWN_FLOW_TYPE} elsewhere"


def test_tame_nodes_lists_every_node(capsys):
    assert cli.main(["nodes"]) == 0
    lines = capsys.readouterr().out.splitlines()
    listed = {line.split(" - ")[0] for line in lines if not line.startswith(" ")}
    assert listed == set(NODE_IDS)
