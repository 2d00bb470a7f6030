"""Headless runner and `tame run`: ComfyUI's execution contract checked with small fake nodes.

The fakes compute with plain numbers so every expected result is worked out by hand.
"""
import json
import os
import signal

import pytest
import torch

import tame.nodes
from tame.headless import cli
from tame.headless.runner import (
    NodeExecutionError,
    WorkflowError,
    load_workflow,
    run_prompt,
    types_match,
    validate_prompt,
)
from tame.nodes import host

CALLS = []


def tip(text="fake input"):
    return {"tooltip": text}


class FakeNumber:
    """Source: value + 1000 * seed (so a shifted widget mapping shows in the result)."""
    RETURN_TYPES = ("TAME_NUMBER",)
    FUNCTION = "make"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "seed": ("INT", {"default": 0, "min": 0, "max": 1000, **tip()}),
            "value": ("FLOAT", {"default": 1.0, "min": -10.0, "max": 10.0, "step": 0.5, **tip()})}}

    def make(self, seed, value):
        CALLS.append(("FakeNumber", seed, value))
        return (value + 1000 * seed,)


class FakeMath:
    RETURN_TYPES = ("TAME_NUMBER",)
    FUNCTION = "apply"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"a": ("TAME_NUMBER", tip()),
                             "op": (["add", "mul"], {"default": "add", **tip()}),
                             "b": ("FLOAT", {"default": 2.0, "min": -100.0, "max": 100.0, **tip()})},
                "optional": {"bias": ("FLOAT", {"default": 0.0, "min": -100.0, "max": 100.0, **tip()})}}

    def apply(self, a, op, b, bias=0.0):
        CALLS.append(("FakeMath", a, op, b, bias))
        return ((a + b if op == "add" else a * b) + bias,)


class FakeShow:
    OUTPUT_NODE = True
    RETURN_TYPES = ("STRING",)
    FUNCTION = "show"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"number": ("TAME_NUMBER", tip())},
                "optional": {"prefix": ("STRING", {"default": "n", **tip()})}}

    def show(self, number, prefix="n"):
        CALLS.append(("FakeShow", number, prefix))
        text = f"{prefix}={number}"
        return {"ui": {"text": [text]}, "result": (text,)}


class FakeFloat:
    RETURN_TYPES = ("FLOAT",)
    FUNCTION = "make"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"value": ("FLOAT", {"default": 0.0, **tip()})}}

    def make(self, value):
        return (value,)


class FakeSplit:
    """OUTPUT_IS_LIST: value, value + 1, ... (`parts` numbers; parts must be odd: min 1, step 2)."""
    RETURN_TYPES = ("TAME_NUMBER", "FLOAT")
    OUTPUT_IS_LIST = (True, True)
    FUNCTION = "split"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"value": ("TAME_NUMBER", tip()),
                             "parts": ("INT", {"default": 3, "min": 1, "max": 9, "step": 2, **tip()})}}

    def split(self, value, parts):
        return [value + i for i in range(parts)], [10.0 * i for i in range(parts - 1)]


class FakeSum:
    INPUT_IS_LIST = True
    OUTPUT_NODE = True
    RETURN_TYPES = ("TAME_NUMBER",)
    FUNCTION = "total"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"numbers": ("TAME_NUMBER", tip())}}

    def total(self, numbers):
        CALLS.append(("FakeSum", list(numbers)))
        return (sum(numbers),)


class FakeImage:
    RETURN_TYPES = ("IMAGE",)
    FUNCTION = "make"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {}}

    def make(self):
        return (torch.zeros(1, 4, 4, 3),)


class FakeUnused:
    RETURN_TYPES = ("TAME_NUMBER",)
    FUNCTION = "make"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"value": ("FLOAT", {"default": 0.0, "min": 0.0, "max": 1.0, **tip()})}}

    def make(self, value):
        CALLS.append(("FakeUnused", value))
        return (value,)


class FakeSeeded:
    """INT inputs: `noise_seed` (companion by name), `frame` (declared companion), `count` (forceInput)."""
    RETURN_TYPES = ("TAME_NUMBER",)
    FUNCTION = "make"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "noise_seed": ("INT", {"default": 0, "min": 0, "max": 99, **tip()}),
            "count": ("INT", {"default": 1, "min": 0, "max": 99, "forceInput": True, **tip()}),
            "frame": ("INT", {"default": 0, "min": 0, "max": 99, "control_after_generate": True, **tip()}),
            "label": ("STRING", {"default": "x", **tip()})}}

    def make(self, noise_seed, count, frame, label):
        return (noise_seed * 10000 + count * 100 + frame,)


class FakeAny:
    OUTPUT_NODE = True
    RETURN_TYPES = ()
    FUNCTION = "take"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"anything": ("*", tip())}}

    def take(self, anything):
        CALLS.append(("FakeAny", type(anything).__name__, torch.is_inference_mode_enabled()))
        return {"ui": {"seen": [type(anything).__name__]}}


class FakeChecked:
    """VALIDATE_INPUTS owns the check of `level`: its max is then not enforced by the runner."""
    OUTPUT_NODE = True
    RETURN_TYPES = ()
    FUNCTION = "take"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"level": ("INT", {"default": 1, "min": 0, "max": 5, **tip()}),
                             "number": ("TAME_NUMBER", tip())}}

    @classmethod
    def VALIDATE_INPUTS(cls, level, number):
        assert number is None  # linked inputs are not known yet at validation time
        return True if level % 2 else f"level must be odd, got {level}"

    def take(self, level, number):
        CALLS.append(("FakeChecked", level, number))
        return {}


class FakeFailing:
    OUTPUT_NODE = True
    RETURN_TYPES = ()
    FUNCTION = "explode"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"number": ("TAME_NUMBER", tip())}}

    def explode(self, number):
        raise ValueError("fake node failed on purpose")


class FakeSlow:
    """Reports 200 progress steps; at step `interrupt_at` it sends itself SIGINT (a Ctrl-C)."""
    OUTPUT_NODE = True
    RETURN_TYPES = ()
    FUNCTION = "work"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"number": ("TAME_NUMBER", tip()),
                             "interrupt_at": ("INT", {"default": -1, "min": -1, "max": 1000, **tip()})}}

    def work(self, number, interrupt_at):
        report = host.progress(200, "Fake work")
        for step in range(1, 201):
            if step == interrupt_at:
                os.kill(os.getpid(), signal.SIGINT)
            report(step)
        CALLS.append(("FakeSlow", step))
        return {}


class FakeSaveText:
    OUTPUT_NODE = True
    RETURN_TYPES = ()
    FUNCTION = "save"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"number": ("TAME_NUMBER", tip())}}

    def save(self, number):
        folder = host.output_dir() / "fake"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "number.txt").write_text(str(number))
        return {"ui": {"files": [{"filename": "number.txt", "subfolder": "fake", "type": "output"}]}}


CLASSES = {cls.__name__: cls for cls in (
    FakeNumber, FakeMath, FakeShow, FakeFloat, FakeSplit, FakeSum, FakeImage, FakeUnused, FakeSeeded,
    FakeAny, FakeChecked, FakeFailing, FakeSlow, FakeSaveText)}


@pytest.fixture(autouse=True)
def clear_calls():
    CALLS.clear()
    yield
    CALLS.clear()


def run(prompt, **kwargs):
    return run_prompt(prompt, node_classes=CLASSES, **kwargs)


def api(*nodes):
    """API prompt from (id, class, inputs) triples."""
    return {node_id: {"class_type": kind, "inputs": inputs} for node_id, kind, inputs in nodes}


def problems_of(prompt, **kwargs):
    with pytest.raises(WorkflowError) as caught:
        run(prompt, **kwargs)
    return [str(problem) for problem in caught.value.problems]


# A UI workflow as ComfyUI's editor saves it: FakeNumber (seed 2 with its "randomize" companion,
# value 1.5) -> FakeMath (mul, b = 2.0; bias converted to an input fed by a PrimitiveNode, its
# widget slot kept) -> Reroute -> FakeShow (prefix "r"), plus a Note.
UI_WORKFLOW = json.loads("""
{
  "id": "6d3c1f52-94a4-4c53-9a1e-2f0e8f0c1a77",
  "revision": 0,
  "last_node_id": 6,
  "last_link_id": 4,
  "nodes": [
    {"id": 1, "type": "FakeNumber", "pos": [0, 0], "size": [270, 106], "flags": {}, "order": 0, "mode": 0,
     "inputs": [{"name": "seed", "type": "INT", "widget": {"name": "seed"}, "link": null},
                {"name": "value", "type": "FLOAT", "widget": {"name": "value"}, "link": null}],
     "outputs": [{"name": "TAME_NUMBER", "type": "TAME_NUMBER", "links": [1], "slot_index": 0}],
     "properties": {"Node name for S&R": "FakeNumber"}, "widgets_values": [2, "randomize", 1.5]},
    {"id": 2, "type": "FakeMath", "pos": [320, 0], "size": [270, 130], "flags": {}, "order": 2, "mode": 0,
     "inputs": [{"name": "a", "type": "TAME_NUMBER", "link": 1},
                {"name": "op", "type": "COMBO", "widget": {"name": "op"}, "link": null},
                {"name": "b", "type": "FLOAT", "widget": {"name": "b"}, "link": null},
                {"name": "bias", "shape": 7, "type": "FLOAT", "widget": {"name": "bias"}, "link": 4}],
     "outputs": [{"name": "TAME_NUMBER", "type": "TAME_NUMBER", "links": [2], "slot_index": 0}],
     "properties": {"Node name for S&R": "FakeMath"}, "widgets_values": ["mul", 2.0, 55.0]},
    {"id": 3, "type": "Reroute", "pos": [640, 0], "size": [75, 26], "flags": {}, "order": 3, "mode": 0,
     "inputs": [{"name": "", "type": "*", "link": 2}],
     "outputs": [{"name": "", "type": "TAME_NUMBER", "links": [3], "slot_index": 0}],
     "properties": {"showOutputText": false, "horizontal": false}},
    {"id": 4, "type": "FakeShow", "title": "Show the number", "pos": [760, 0], "size": [270, 80], "flags": {},
     "order": 4, "mode": 0,
     "inputs": [{"name": "number", "type": "TAME_NUMBER", "link": 3},
                {"name": "prefix", "shape": 7, "type": "STRING", "widget": {"name": "prefix"}, "link": null}],
     "outputs": [{"name": "STRING", "type": "STRING", "links": null}],
     "properties": {"Node name for S&R": "FakeShow"}, "widgets_values": ["r"]},
    {"id": 5, "type": "PrimitiveNode", "pos": [0, 200], "size": [210, 82], "flags": {}, "order": 1, "mode": 0,
     "inputs": [], "outputs": [{"name": "FLOAT", "type": "FLOAT", "widget": {"name": "bias"}, "links": [4]}],
     "title": "bias", "properties": {"Run widget replace on values": false},
     "widgets_values": [0.5, "fixed"]},
    {"id": 6, "type": "Note", "pos": [0, 320], "size": [300, 80], "flags": {}, "order": 5, "mode": 0,
     "inputs": [], "outputs": [], "properties": {},
     "widgets_values": ["seed 2, value 1.5 -> times 2 -> + 0.5"]}
  ],
  "links": [
    [1, 1, 0, 2, 0, "TAME_NUMBER"],
    [2, 2, 0, 3, 0, "*"],
    [3, 3, 0, 4, 0, "TAME_NUMBER"],
    [4, 5, 0, 2, 3, "FLOAT"]
  ],
  "groups": [],
  "config": {},
  "extra": {"ds": {"scale": 1, "offset": [0, 0]}, "frontendVersion": "1.30.6"},
  "version": 0.4
}
""")

# What the editor's Queue button sends for UI_WORKFLOW.
API_WORKFLOW = {
    "1": {"inputs": {"seed": 2, "value": 1.5}, "class_type": "FakeNumber", "_meta": {"title": "FakeNumber"}},
    "2": {"inputs": {"op": "mul", "b": 2.0, "bias": 0.5, "a": ["1", 0]}, "class_type": "FakeMath",
          "_meta": {"title": "FakeMath"}},
    "4": {"inputs": {"prefix": "r", "number": ["2", 0]}, "class_type": "FakeShow",
          "_meta": {"title": "Show the number"}},
}
EXPECTED_TEXT = "r=4003.5"  # (1.5 + 1000 * 2) * 2 + 0.5


def ui_node(node_id, kind, inputs=(), widgets=(), mode=0, title=None, outputs=("TAME_NUMBER",)):
    """A UI node; `inputs` are (name, type, link id or None)."""
    node = {"id": node_id, "type": kind, "pos": [0, 0], "size": [200, 100], "flags": {}, "order": node_id,
            "mode": mode, "inputs": [{"name": n, "type": t, "link": link} for n, t, link in inputs],
            "outputs": [{"name": t, "type": t, "links": []} for t in outputs],
            "properties": {"Node name for S&R": kind}, "widgets_values": list(widgets)}
    if title:
        node["title"] = title
    return node


def ui_workflow(nodes, links):
    return {"last_node_id": max(n["id"] for n in nodes), "last_link_id": len(links), "nodes": nodes,
            "links": [list(link) for link in links], "groups": [], "config": {}, "extra": {}, "version": 0.4}


# ---------------------------------------------------------------- formats
def test_ui_workflow_converts_to_the_prompt_the_editor_sends():
    prompt = load_workflow(UI_WORKFLOW, node_classes=CLASSES)
    assert {k: (v["class_type"], v["inputs"]) for k, v in prompt.items()} == \
        {k: (v["class_type"], v["inputs"]) for k, v in API_WORKFLOW.items()}
    assert prompt["4"]["_meta"]["title"] == "Show the number"


@pytest.mark.parametrize("form", ["ui", "api", "post_body", "ui_file", "api_file"])
def test_every_format_gives_the_same_result(form, tmp_path):
    source = {"ui": UI_WORKFLOW, "api": API_WORKFLOW, "post_body": {"prompt": API_WORKFLOW},
              "ui_file": UI_WORKFLOW, "api_file": API_WORKFLOW}[form]
    if form.endswith("_file"):
        path = tmp_path / "workflow.json"
        path.write_text(json.dumps(source))
        source = str(path)
    results = run(load_workflow(source, node_classes=CLASSES))
    assert results["4"]["outputs"] == [[EXPECTED_TEXT]]
    assert results["4"]["ui"] == {"text": [EXPECTED_TEXT]}
    assert CALLS[0] == ("FakeNumber", 2, 1.5)


def test_not_a_workflow_and_bad_json_are_clear_errors(tmp_path):
    with pytest.raises(ValueError, match="Not a ComfyUI workflow"):
        load_workflow({"hello": 1}, node_classes=CLASSES)
    bad = tmp_path / "bad.json"
    bad.write_text("{nodes: [")
    with pytest.raises(ValueError, match="not valid JSON"):
        load_workflow(str(bad), node_classes=CLASSES)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_workflow(str(tmp_path / "missing.json"), node_classes=CLASSES)
    with pytest.raises(ValueError, match=r"Malformed UI workflow \(KeyError: 'id'\)"):
        load_workflow({"nodes": [{"type": "FakeNumber"}], "links": []}, node_classes=CLASSES)


# ---------------------------------------------------------------- widget mapping
def test_seed_companions_are_skipped_and_force_input_is_not_a_widget():
    # noise_seed 7 + companion, frame 3 + companion (declared), label; count (forceInput) has no slot
    nodes = [ui_node(1, "FakeSeeded", [("count", "INT", 1)], [7, "increment", 3, "fixed", "hello"]),
             ui_node(2, "FakeFloat", widgets=[5.0], outputs=("FLOAT",))]
    prompt = load_workflow(ui_workflow(nodes, [(1, 2, 0, 1, 0, "INT")]), node_classes=CLASSES)
    assert prompt["1"]["inputs"] == {"noise_seed": 7, "frame": 3, "label": "hello", "count": ["2", 0]}


def test_files_saved_before_companion_widgets_map_without_them():
    nodes = [ui_node(1, "FakeNumber", widgets=[4, 2.5]),
             ui_node(2, "FakeShow", [("number", "TAME_NUMBER", 1)])]
    prompt = load_workflow(ui_workflow(nodes, [(1, 1, 0, 2, 0, "TAME_NUMBER")]), node_classes=CLASSES)
    assert prompt["1"]["inputs"] == {"seed": 4, "value": 2.5}


def test_dict_shaped_widgets_values_map_by_name():
    nodes = [ui_node(1, "FakeNumber"), ui_node(2, "FakeShow", [("number", "TAME_NUMBER", 1)])]
    nodes[0]["widgets_values"] = {"value": 3.0, "seed": 1, "not_an_input": 9}
    prompt = load_workflow(ui_workflow(nodes, [(1, 1, 0, 2, 0, "TAME_NUMBER")]), node_classes=CLASSES)
    assert prompt["1"]["inputs"] == {"value": 3.0, "seed": 1}


def test_missing_widget_values_and_inputs_get_defaults():
    nodes = [ui_node(1, "FakeNumber", widgets=[]),  # seed 0, value 1.0
             ui_node(2, "FakeMath", [("a", "TAME_NUMBER", 1)], widgets=["mul"]),  # b 2.0, bias 0.0
             ui_node(3, "FakeShow", [("number", "TAME_NUMBER", 2)])]  # prefix "n"
    links = [(1, 1, 0, 2, 0, "TAME_NUMBER"), (2, 2, 0, 3, 0, "TAME_NUMBER")]
    results = run(load_workflow(ui_workflow(nodes, links), node_classes=CLASSES))
    assert results["3"]["outputs"] == [["n=2.0"]]
    assert ("FakeMath", 1.0, "mul", 2.0, 0.0) in CALLS
    results = run(api(("1", "FakeNumber", {"seed": 1}), ("2", "FakeShow", {"number": ["1", 0]})))
    assert results["2"]["outputs"] == [["n=1001.0"]]


# ---------------------------------------------------------------- validation
def test_all_problems_are_reported_together():
    prompt = api(
        ("1", "FakeNumber", {"seed": 5000, "value": 1.25}),  # above max; off the 0.1 grid of step 0.5
        ("2", "FakeMath", {"a": ["1", 0], "op": "pow", "b": "abc"}),  # bad combo, not a number
        ("3", "FakeShow", {"number": ["2", 0]}),
        ("4", "FakeShow", {"number": ["99", 0]}),  # dangling
        ("5", "FakeShow", {}),  # required link missing
        ("6", "FakeImage", {}),
        ("7", "FakeShow", {"number": ["6", 0]}),  # IMAGE into TAME_NUMBER
        ("8", "FakeSplitter", {"value": ["1", 0]}),  # unknown type
        ("9", "FakeSplit", {"value": ["1", 0], "parts": 4}),  # off the INT grid 1 + 2k
        ("10", "FakeSum", {"numbers": ["9", 0]}),
        ("11", "FakeShow", {"number": ["1", 3]}))  # output index out of range
    problems = problems_of(prompt)
    assert problems == [
        "node 1 (FakeNumber), input 'seed': 5000 is above the maximum 1000",
        "node 1 (FakeNumber), input 'value': 1.25 is not on the editor's step grid (a multiple of 0.1)",
        "node 2 (FakeMath), input 'op': 'pow' is not one of the choices: add, mul",
        "node 2 (FakeMath), input 'b': expects a number, got 'abc'",
        "node 4 (FakeShow), input 'number': linked to node 99, which is not in the workflow (dangling link)",
        "node 5 (FakeShow), input 'number': required input (TAME_NUMBER) is not connected",
        "node 7 (FakeShow), input 'number': expects TAME_NUMBER but is linked to output 0 (IMAGE) of "
        "node 6 (FakeImage)",
        "node 8 (FakeSplitter): unknown node type: the command line runs only this pack's nodes "
        "(`tame nodes` lists them)",
        "node 9 (FakeSplit), input 'parts': 4 is not on the editor's step grid (1 + k * 2)",
        "node 11 (FakeShow), input 'number': linked to output 3 of node 1 (FakeNumber), which has "
        "1 output(s)",
    ]
    assert CALLS == []  # nothing ran


def test_error_message_lists_every_problem_on_its_own_line():
    with pytest.raises(WorkflowError) as caught:
        run(api(("1", "FakeNumber", {"seed": -1, "value": 11}), ("2", "FakeShow", {"number": ["1", 0]})))
    assert str(caught.value) == (
        "The workflow cannot run (2 problems):\n"
        "  - node 1 (FakeNumber), input 'seed': -1 is below the minimum 0\n"
        "  - node 1 (FakeNumber), input 'value': 11.0 is above the maximum 10.0")
    assert isinstance(caught.value, ValueError)


def test_values_are_coerced_to_their_declared_types():
    prompt = api(("1", "FakeNumber", {"seed": "3", "value": 2}),
                 ("2", "FakeShow", {"number": ["1", 0], "prefix": 7}))
    order = validate_prompt(prompt, node_classes=CLASSES)
    assert order == ["1", "2"]
    assert prompt["1"]["inputs"] == {"seed": 3, "value": 2.0}
    assert prompt["2"]["inputs"]["prefix"] == "7"
    assert problems_of(api(("1", "FakeNumber", {"seed": 1.5}), ("2", "FakeShow", {"number": ["1", 0]}))) == [
        "node 1 (FakeNumber), input 'seed': expects an integer, got 1.5"]


def test_constants_for_link_types_and_malformed_links_are_rejected():
    assert problems_of(api(("1", "FakeShow", {"number": 5.0}))) == [
        "node 1 (FakeShow), input 'number': TAME_NUMBER must come from a link to another node's output, "
        "got the constant 5.0"]
    assert problems_of(api(("1", "FakeShow", {"number": ["1", 0, 2]}))) == [
        "node 1 (FakeShow), input 'number': a link must be [node_id, output_index], got ['1', 0, 2]"]


def test_the_source_of_a_mismatched_link_is_still_checked():
    assert problems_of(api(("1", "FakeFloat", {"value": "abc"}), ("2", "FakeShow", {"number": ["1", 0]}))) == [
        "node 1 (FakeFloat), input 'value': expects a number, got 'abc'",
        "node 2 (FakeShow), input 'number': expects TAME_NUMBER but is linked to output 0 (FLOAT) of "
        "node 1 (FakeFloat)"]


def test_workflow_without_output_node_or_with_a_cycle():
    assert problems_of(api(("1", "FakeNumber", {}))) == [
        "the workflow has no output node (a node with OUTPUT_NODE = True, such as a save or preview node), "
        "so nothing would run"]
    cycle = api(("1", "FakeMath", {"a": ["2", 0]}), ("2", "FakeMath", {"a": ["1", 0]}),
                ("3", "FakeShow", {"number": ["2", 0]}))
    assert problems_of(cycle) == [
        "node 2 (FakeMath): the node is part of a cycle (its output feeds back into its inputs)"]


def test_validate_inputs_hook_runs_and_owns_its_inputs():
    source = ("1", "FakeNumber", {})
    assert problems_of(api(source, ("2", "FakeChecked", {"level": 4, "number": ["1", 0]}))) == [
        "node 2 (FakeChecked): rejected by the node's own check: level must be odd, got 4"]
    run(api(source, ("2", "FakeChecked", {"level": 7, "number": ["1", 0]})))  # above max 5: the hook decides
    assert ("FakeChecked", 7, 1.0) in CALLS


def test_any_type_accepts_everything_and_nodes_run_in_inference_mode():
    results = run(api(("1", "FakeImage", {}), ("2", "FakeAny", {"anything": ["1", 0]})))
    assert results["2"]["ui"] == {"seen": ["Tensor"]}
    assert CALLS == [("FakeAny", "Tensor", True)]
    assert types_match("*", "IMAGE") and types_match("IMAGE,MASK", "MASK")
    assert not types_match("IMAGE", "MASK")


# ---------------------------------------------------------------- UI-only nodes, mute, bypass
def test_bypassed_node_is_bridged_by_type_and_muted_node_is_dropped():
    nodes = [ui_node(1, "FakeNumber", widgets=[0, "fixed", 3.0]),
             ui_node(2, "FakeMath", [("a", "TAME_NUMBER", 1)], widgets=["mul", 10.0, 0.0], mode=4),
             ui_node(3, "FakeShow", [("number", "TAME_NUMBER", 2)], widgets=["bypassed"]),
             ui_node(4, "FakeShow", [("number", "TAME_NUMBER", 3)], widgets=["muted"], mode=2),
             ui_node(5, "NoSuchNode", [("number", "TAME_NUMBER", 4)], mode=2)]  # muted: unknown is fine
    links = [(1, 1, 0, 2, 0, "TAME_NUMBER"), (2, 2, 0, 3, 0, "TAME_NUMBER"), (3, 1, 0, 4, 0, "TAME_NUMBER"),
             (4, 1, 0, 5, 0, "TAME_NUMBER")]
    prompt = load_workflow(ui_workflow(nodes, links), node_classes=CLASSES)
    assert sorted(prompt) == ["1", "3"]
    assert prompt["3"]["inputs"]["number"] == ["1", 0]
    results = run(prompt)
    assert results["3"]["outputs"] == [["bypassed=3.0"]]
    assert [call[0] for call in CALLS] == ["FakeNumber", "FakeShow"]


def test_reroute_chain_and_primitive_node_feed_their_targets():
    nodes = [ui_node(1, "FakeNumber", widgets=[0, "fixed", 2.0]),
             ui_node(2, "Reroute", [("", "*", 1)]), ui_node(3, "Reroute", [("", "*", 2)]),
             ui_node(4, "FakeShow", [("number", "TAME_NUMBER", 3), ("prefix", "STRING", 4)], widgets=["old"]),
             ui_node(5, "PrimitiveNode", widgets=["from primitive"], outputs=("STRING",))]
    nodes[3]["inputs"][1]["widget"] = {"name": "prefix"}
    links = [(1, 1, 0, 2, 0, "TAME_NUMBER"), (2, 2, 0, 3, 0, "*"), (3, 3, 0, 4, 0, "TAME_NUMBER"),
             (4, 5, 0, 4, 1, "STRING")]
    results = run(load_workflow(ui_workflow(nodes, links), node_classes=CLASSES))
    assert results["4"]["outputs"] == [["from primitive=2.0"]]


def test_dangling_ui_links_and_unknown_types_are_reported_together():
    nodes = [ui_node(1, "FakeNumber", widgets=[0, "fixed", 1.0]),
             ui_node(2, "FakeShow", [("number", "TAME_NUMBER", 42)]),  # link 42 is not in the table
             ui_node(3, "FakeShow", [("number", "TAME_NUMBER", 2)]),  # link 2 comes from deleted node 9
             ui_node(4, "SomeOtherPackNode", [("number", "TAME_NUMBER", 1)])]
    links = [(1, 1, 0, 4, 0, "TAME_NUMBER"), (2, 9, 0, 3, 0, "TAME_NUMBER")]
    assert problems_of(load_workflow(ui_workflow(nodes, links), node_classes=CLASSES)) == [
        "node 2 (FakeShow), input 'number': link 42 is missing from the workflow's link list (dangling link)",
        "node 2 (FakeShow), input 'number': required input (TAME_NUMBER) is not connected",
        "node 3 (FakeShow), input 'number': linked to node 9, which is not in the workflow (dangling link)",
        "node 4 (SomeOtherPackNode): unknown node type: the command line runs only this pack's nodes "
        "(`tame nodes` lists them)",
    ]


# ---------------------------------------------------------------- lists and execution order
def test_list_outputs_map_over_downstream_nodes():
    prompt = api(("1", "FakeNumber", {"value": 1.0}),
                 ("2", "FakeSplit", {"value": ["1", 0], "parts": 3}),  # [1, 2, 3] and [0.0, 10.0]
                 ("3", "FakeMath", {"a": ["2", 0], "op": "add", "b": 100.0, "bias": ["2", 1]}),
                 ("4", "FakeShow", {"number": ["3", 0]}),
                 ("5", "FakeSum", {"numbers": ["3", 0]}))
    results = run(prompt)
    # the shorter list (bias) repeats its last element for the third call
    assert [c[1:] for c in CALLS if c[0] == "FakeMath"] == [
        (1.0, "add", 100.0, 0.0), (2.0, "add", 100.0, 10.0), (3.0, "add", 100.0, 10.0)]
    assert results["3"]["outputs"] == [[101.0, 112.0, 113.0]]
    assert results["4"]["ui"] == {"text": ["n=101.0", "n=112.0", "n=113.0"]}
    assert [c for c in CALLS if c[0] == "FakeSum"] == [("FakeSum", [101.0, 112.0, 113.0])]  # one call
    assert results["5"]["outputs"] == [[326.0]]


def test_only_nodes_the_outputs_need_are_validated_and_run():
    prompt = api(("1", "FakeNumber", {}), ("2", "FakeShow", {"number": ["1", 0]}),
                 ("3", "FakeUnused", {"value": 50.0}),  # out of range, but nothing needs it
                 ("4", "FakeMath", {"a": ["3", 0]}))
    results = run(prompt)
    assert sorted(results) == ["1", "2"]
    assert [call[0] for call in CALLS] == ["FakeNumber", "FakeShow"]


def test_node_failure_names_the_node_and_keeps_the_cause():
    with pytest.raises(NodeExecutionError) as caught:
        run(api(("1", "FakeNumber", {}), ("2", "FakeFailing", {"number": ["1", 0]})))
    assert str(caught.value) == "node 2 (FakeFailing) failed: ValueError: fake node failed on purpose"
    assert isinstance(caught.value.__cause__, ValueError)


def test_cancel_request_stops_at_the_next_progress_report():
    host.clear_cancel()
    progress_calls = []
    try:
        host.request_cancel()
        with pytest.raises(host.Cancelled):
            run(api(("1", "FakeNumber", {}), ("2", "FakeShow", {"number": ["1", 0]})),
                progress=lambda *args: progress_calls.append(args))
    finally:
        host.clear_cancel()
    assert CALLS == [] and progress_calls == []


# ---------------------------------------------------------------- overrides
def test_overrides_by_id_title_and_class():
    results = run(API_WORKFLOW, overrides=["1.seed=0", "Show the number.prefix=42", "FakeMath.op=\"add\""])
    assert results["4"]["outputs"] == [["42=4.0"]]  # (1.5 + 0) + 2 + 0.5, prefix kept as text
    results = run(API_WORKFLOW, overrides={"1.value": 3.0})
    assert results["4"]["outputs"] == [["r=4006.5"]]


def test_bad_overrides_are_reported_with_validation_problems():
    prompt = api(("1", "FakeNumber", {}), ("2", "FakeNumber", {}), ("3", "FakeMath", {"a": ["1", 0]}),
                 ("4", "FakeShow", {"number": ["3", 0]}))
    assert problems_of(prompt, overrides=["3.strength=1", "FakeNumber.value=2", "nobody.x=1", "3.b",
                                          "3.b=1000"]) == [
        "--set '3.b': expected NODE.INPUT=VALUE, e.g. 3.strength=0.5",
        "node 3 (FakeMath), input 'strength': --set: this node has no such input "
        "(its inputs: a, op, b, bias)",
        "--set: 'FakeNumber' names 2 nodes (ids 1, 2); use a node id",
        "--set: no node has the id, title or class 'nobody' (nodes: 1 FakeNumber, 2 FakeNumber, 3 FakeMath, "
        "4 FakeShow)",
        "node 3 (FakeMath), input 'b': 1000.0 is above the maximum 100.0",
    ]


# ---------------------------------------------------------------- tame run
@pytest.fixture
def fake_pack(monkeypatch):
    for name, cls in CLASSES.items():
        monkeypatch.setitem(tame.nodes.NODE_CLASS_MAPPINGS, name, cls)


def write_json(path, data):
    path.write_text(json.dumps(data))
    return str(path)


def test_tame_run_prints_progress_and_results(fake_pack, tmp_path, capsys):
    workflow = write_json(tmp_path / "wf.json", UI_WORKFLOW)
    before = os.environ.get("TAME_OUTPUT_DIR")
    assert cli.main(["run", workflow, "--set", "1.seed=1", "--output-dir", str(tmp_path / "out")]) == 0
    captured = capsys.readouterr()
    assert "[1/3] node 1 FakeNumber" in captured.err and "[3/3] node 4 FakeShow" in captured.err
    assert "r=2003.5" in captured.out  # (1.5 + 1000) * 2 + 0.5
    assert os.environ.get("TAME_OUTPUT_DIR") == before


def test_tame_run_prints_saved_files_under_the_output_dir(fake_pack, tmp_path, capsys):
    workflow = write_json(tmp_path / "wf.json", api(("1", "FakeNumber", {"value": 4.0}),
                                                    ("2", "FakeSaveText", {"number": ["1", 0]})))
    assert cli.main(["run", workflow, "--output-dir", str(tmp_path / "out")]) == 0
    saved = tmp_path / "out" / "fake" / "number.txt"
    assert saved.read_text() == "4.0"
    assert str(saved.resolve()) in capsys.readouterr().out


def test_tame_run_exit_codes(fake_pack, tmp_path, capsys):
    invalid = write_json(tmp_path / "bad.json", api(("1", "FakeNumber", {"seed": -3}),
                                                    ("2", "FakeShow", {"number": ["1", 0]})))
    assert cli.main(["run", invalid]) == 2
    assert "node 1 (FakeNumber), input 'seed': -3 is below the minimum 0" in capsys.readouterr().err
    assert cli.main(["run", str(tmp_path / "missing.json")]) == 2
    assert "does not exist" in capsys.readouterr().err
    failing = write_json(tmp_path / "fail.json", api(("1", "FakeNumber", {}),
                                                     ("2", "FakeFailing", {"number": ["1", 0]})))
    assert cli.main(["run", failing]) == 1
    assert "node 2 (FakeFailing) failed: ValueError: fake node failed on purpose" in capsys.readouterr().err


def test_tame_run_progress_lines_are_rate_limited(fake_pack, tmp_path, capsys):
    workflow = write_json(tmp_path / "slow.json", api(("1", "FakeNumber", {}),
                                                      ("2", "FakeSlow", {"number": ["1", 0]})))
    assert cli.main(["run", workflow]) == 0
    lines = [line for line in capsys.readouterr().err.splitlines() if "Fake work" in line]
    assert 1 <= len(lines) <= 5 and lines[-1].strip() == "Fake work: 200/200"


def test_ctrl_c_cancels_at_the_next_progress_report_with_exit_130(fake_pack, tmp_path, capsys):
    slow = ("2", "FakeSlow", {"number": ["1", 0], "interrupt_at": 50})
    workflow = write_json(tmp_path / "slow.json", api(("1", "FakeNumber", {}), slow))
    previous_handler = signal.getsignal(signal.SIGINT)
    assert cli.main(["run", workflow]) == 130
    err = capsys.readouterr().err
    assert "Ctrl-C again to abort" in err and "tame: cancelled" in err
    assert not any(call[0] == "FakeSlow" for call in CALLS)  # stopped inside the loop
    assert signal.getsignal(signal.SIGINT) is previous_handler
    host.check_cancelled()  # the cancel request was cleared


def test_tame_demo_makes_a_clip_and_runs_the_demo_workflow_on_it(tmp_path, monkeypatch, capsys):
    """The demo wiring with a stand-in workflow (load the clip, save it again) and a small clip."""
    workflows = tmp_path / "workflows"
    workflows.mkdir()
    write_json(workflows / cli.DEMO_WORKFLOW, api(
        ("1", cli.DEMO_VIDEO_NODE, {cli.DEMO_VIDEO_INPUT: "replaced by the demo"}),
        ("2", "TameSaveVideo", {"images": ["1", 0], "filename_prefix": "demo/copy"})))
    monkeypatch.setattr(cli, "WORKFLOWS_DIR", workflows)
    monkeypatch.setattr(cli, "DEMO_FRAMES", 4)
    monkeypatch.setattr(cli, "DEMO_WIDTH", 64)
    monkeypatch.setattr(cli, "DEMO_HEIGHT", 48)
    out = tmp_path / "out"
    assert cli.main(["demo", "--output-dir", str(out)]) == 0
    assert (out / cli.DEMO_VIDEO_FILE).is_file()
    saved = out / "demo" / "copy_00001.mp4"
    assert saved.is_file()
    printed = capsys.readouterr().out
    assert str(saved.resolve()) in printed and f"results are in {out.resolve()}" in printed
