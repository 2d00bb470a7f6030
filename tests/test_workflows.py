"""The saved workflows: up to date with workflows/build_workflows.py and valid for the runner."""
import importlib.util
import json
from pathlib import Path

import pytest

from tame import NODE_CLASS_MAPPINGS
from tame.headless.runner import load_workflow, validate_prompt

WORKFLOWS = Path(__file__).resolve().parents[1] / "workflows"


def _builder():
    spec = importlib.util.spec_from_file_location("build_workflows", WORKFLOWS / "build_workflows.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


BUILDER = _builder()
CLASSES = {**BUILDER.CORE_NODES, **NODE_CLASS_MAPPINGS}


def test_every_workflow_file_is_built_by_the_builder():
    assert sorted(p.stem for p in WORKFLOWS.glob("*.json")) == sorted(BUILDER.WORKFLOWS)


@pytest.mark.parametrize("name", sorted(BUILDER.WORKFLOWS))
def test_workflow_is_current_and_valid(name):
    description, nodes, links = BUILDER.WORKFLOWS[name]
    saved = json.loads((WORKFLOWS / f"{name}.json").read_text())
    assert saved == BUILDER.build(name, description, nodes, links, CLASSES), \
        f"workflows/{name}.json is stale: run python workflows/build_workflows.py"
    prompt = load_workflow(saved, CLASSES)
    order = validate_prompt(prompt, CLASSES)
    assert {prompt[node]["class_type"] for node in order} == {n[1] for n in nodes}
