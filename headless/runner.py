"""Run saved workflows without ComfyUI, with the same node classes (ComfyUI's execution contract).

Two steps, as in ComfyUI:
- `load_workflow` turns what a user saved into an API prompt `{id: {"class_type", "inputs"}}`. A UI
  file (`nodes` + `links`, what the editor saves) is converted the way the editor's Queue button does:
  `widgets_values` go to the widget inputs in INPUT_TYPES order (skipping the editor-only companion
  widgets), links are followed through Reroute, PrimitiveNode values are copied into their targets,
  muted nodes are dropped and bypassed nodes are bridged by type.
- `run_prompt` applies `--set` overrides, validates the whole prompt (every problem is collected into
  one `WorkflowError`), then executes, from the output nodes back, only the nodes they need. A node
  given lists runs once per element, like ComfyUI's `map_node_over_list`.

A link is `[node_id, output_index]`; a constant list value is written `{"__value__": [...]}`.
"""
import copy
import inspect
import json
import math
from pathlib import Path
from typing import NamedTuple

import torch

from ..nodes import host

WIDGET_TYPES = ("INT", "FLOAT", "STRING", "BOOLEAN", "COMBO")
SEED_INPUT_NAMES = ("seed", "noise_seed")
UPLOAD_FLAGS = ("image_upload", "video_upload", "audio_upload", "animated_image_upload")
UI_ONLY_TYPES = ("Note", "MarkdownNote", "Reroute", "PrimitiveNode")
MUTED, BYPASSED = 2, 4
ANY_TYPE = "*"
MAX_LINK_HOPS = 256
MAX_LISTED_CHOICES = 20


class Problem(NamedTuple):
    """One reason a workflow cannot run, located by node and input."""
    node_id: object
    class_type: object
    input_name: object
    message: str

    def __str__(self):
        if self.node_id is None:
            return self.message
        where = f"node {self.node_id} ({self.class_type})"
        if self.input_name is not None:
            where += f", input '{self.input_name}'"
        return f"{where}: {self.message}"


class WorkflowError(ValueError):
    """The workflow cannot run; `problems` lists every reason found (nothing was executed)."""

    def __init__(self, problems):
        self.problems = list(problems)
        count = len(self.problems)
        lines = "\n".join(f"  - {problem}" for problem in self.problems)
        super().__init__(f"The workflow cannot run ({count} problem{'s' if count != 1 else ''}):\n{lines}")


class NodeExecutionError(RuntimeError):
    """A node raised while executing; the original exception is the `__cause__`."""

    def __init__(self, node_id, class_type, error):
        self.node_id, self.class_type = node_id, class_type
        super().__init__(f"node {node_id} ({class_type}) failed: {type(error).__name__}: {error}")


# ---------------------------------------------------------------- input declarations
NO_DEFAULT = object()


class InputSpec(NamedTuple):
    """One declared input: `kind` is the type string or the list of combo choices."""
    name: str
    kind: object
    options: dict
    required: bool

    @property
    def choices(self):
        if isinstance(self.kind, list):
            return self.kind
        return self.options.get("options") if self.kind == "COMBO" else None

    @property
    def is_widget(self):
        """True when the editor shows a widget for it (and saves a value in `widgets_values`)."""
        return not self.options.get("forceInput") and (
            isinstance(self.kind, list) or self.kind in WIDGET_TYPES)

    @property
    def companion_widgets(self):
        """How many editor-only widgets (seed control, upload button) follow this one."""
        if self.kind == "INT":
            control = self.options.get("control_after_generate", self.name in SEED_INPUT_NAMES)
        else:
            control = self.options.get("control_after_generate", False)
        upload = any(self.options.get(flag) for flag in UPLOAD_FLAGS)
        return int(bool(control)) + int(upload)

    def default(self):
        if "default" in self.options:
            return self.options["default"]
        if self.choices:
            return self.choices[0]
        return NO_DEFAULT


def input_specs(node_class):
    """Declared inputs of a node class, required then optional, in INPUT_TYPES order.

    Returns {name: InputSpec}.
    """
    declared = node_class.INPUT_TYPES()
    specs = {}
    for section in ("required", "optional"):
        for name, spec in (declared.get(section) or {}).items():
            spec = tuple(spec) if isinstance(spec, (list, tuple)) else (spec,)
            options = spec[1] if len(spec) > 1 and isinstance(spec[1], dict) else {}
            specs[name] = InputSpec(name, spec[0], options, section == "required")
    return specs


def _hidden_inputs(node_class):
    return dict(node_class.INPUT_TYPES().get("hidden") or {})


def _is_link(value):
    return (isinstance(value, list) and len(value) == 2 and isinstance(value[0], (str, int))
            and not isinstance(value[0], bool) and isinstance(value[1], int))


def _wrap_constant(value):
    """Lists are links in a prompt, so a list-valued constant travels as {"__value__": list}."""
    return {"__value__": value} if isinstance(value, list) else value


def _pack_node_classes():
    from ..nodes import NODE_CLASS_MAPPINGS
    return NODE_CLASS_MAPPINGS


def _id_sort_key(node_id):
    """Numeric ids in numeric order, then other ids; None (no node) first."""
    if node_id is None:
        return (-1, 0, "")
    return (0, int(node_id), "") if str(node_id).isdigit() else (1, 0, str(node_id))


# ---------------------------------------------------------------- loading
def load_workflow(source, node_classes=None):
    """An API prompt `{id: {"class_type", "inputs", "_meta"}}` from a workflow file or dict.

    `source`: a path, or an already parsed dict in one of three formats: UI (`nodes`/`links`, what
    the editor saves), API (`{id: {"class_type", "inputs"}}`) or a saved POST body
    (`{"prompt": {...}}`). `node_classes` (default: the pack's) tells which UI inputs are widgets.
    Problems are not raised here: `run_prompt` reports them all at once.
    """
    data = _read_workflow_file(source) if isinstance(source, (str, Path)) else source
    classes = node_classes if node_classes is not None else _pack_node_classes()
    if isinstance(data, dict) and isinstance(data.get("nodes"), list):
        try:
            return _UiConverter(data, classes).convert()
        except (KeyError, TypeError, AttributeError, IndexError) as err:
            raise ValueError(f"Malformed UI workflow ({type(err).__name__}: {err}). Open it in the "
                             f"editor and save it again.") from err
    if isinstance(data, dict) and isinstance(data.get("prompt"), dict):
        data = data["prompt"]
    if isinstance(data, dict) and data and all(isinstance(node, dict) for node in data.values()):
        return _normalise_api_prompt(data)
    raise ValueError(
        "Not a ComfyUI workflow: expected a UI workflow (with 'nodes' and 'links', as saved by the "
        "editor), an API prompt ({id: {'class_type': ..., 'inputs': {...}}}) or {'prompt': {...}}.")


def _read_workflow_file(path):
    path = Path(path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"Workflow file {path} does not exist.")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise ValueError(f"Workflow file {path} is not valid JSON: {err}. Save it again from the "
                         f"editor (Workflow > Save or Export (API)).") from err


def _normalise_api_prompt(prompt):
    """Copy with string node ids everywhere (hand-written prompts often use numbers)."""
    normalised = {}
    for node_id, node in prompt.items():
        node = copy.deepcopy(node)
        inputs = node.setdefault("inputs", {})
        for name, value in inputs.items():
            if _is_link(value):
                inputs[name] = [str(value[0]), value[1]]
        normalised[str(node_id)] = node
    return normalised


class _UiConverter:
    """UI workflow (editor graph) -> API prompt, following the editor's graphToPrompt rules."""

    def __init__(self, workflow, classes):
        self.classes = classes
        self.nodes = {node["id"]: node for node in workflow["nodes"]}
        self.links = _link_table(workflow.get("links"))
        subgraphs = (workflow.get("definitions") or {}).get("subgraphs") or []
        self.subgraph_ids = {subgraph.get("id") for subgraph in subgraphs}

    def convert(self):
        prompt = {}
        for node_id, node in self.nodes.items():
            kind, mode = node.get("type"), node.get("mode", 0)
            if mode in (MUTED, BYPASSED) or kind in UI_ONLY_TYPES:
                continue
            if kind not in self.classes and not (node.get("inputs") or node.get("outputs")):
                continue  # a socketless editor-only node (labels and the like)
            prompt[str(node_id)] = self._convert_node(node)
        return prompt

    def _convert_node(self, node):
        kind = node.get("type")
        meta = {"title": node.get("title") or kind}
        if kind in self.subgraph_ids:
            meta["subgraph"] = True
        inputs = {}
        if kind in self.classes:
            specs = input_specs(self.classes[kind])
            inputs = _map_widget_values(node.get("widgets_values"), specs)
        problems = []
        for ui_input in node.get("inputs") or []:
            link_id = ui_input.get("link")
            if link_id is None:
                continue
            name = (ui_input.get("widget") or {}).get("name") or ui_input.get("name")
            resolved = self._resolve(link_id, ui_input.get("type"))
            if isinstance(resolved, Problem):
                problems.append([name, resolved.message])
            elif resolved is not None:  # a cut link (muted source) leaves the widget value in place
                inputs[name] = resolved
        if problems:
            meta["problems"] = problems
        return {"class_type": kind, "inputs": inputs, "_meta": meta}

    def _resolve(self, link_id, wanted_type):
        """Where a link really comes from: a link [id, slot], a constant, None (cut) or a Problem."""
        for _ in range(MAX_LINK_HOPS):
            link = self.links.get(link_id)
            if link is None:
                return Problem(None, None, None,
                               f"link {link_id} is missing from the workflow's link list (dangling link)")
            origin_id, origin_slot = link
            origin = self.nodes.get(origin_id)
            if origin is None:
                return [str(origin_id), origin_slot]  # validation reports the missing node
            kind, mode = origin.get("type"), origin.get("mode", 0)
            if kind == "PrimitiveNode":
                values = origin.get("widgets_values") or []
                return _wrap_constant(values[0]) if values else None
            if kind == "Reroute":
                link_id = ((origin.get("inputs") or [{}])[0]).get("link")
            elif mode == MUTED:
                return None
            elif mode == BYPASSED:
                link_id = _bypass_input_link(origin, origin_slot, wanted_type)
            else:
                return [str(origin_id), origin_slot]
            if link_id is None:
                return None
        return Problem(None, None, None, "the link runs through a loop of Reroute or bypassed nodes")


def _link_table(raw_links):
    """{link_id: (origin_id, origin_slot)} from list-style or object-style links."""
    table = {}
    for link in raw_links or []:
        if isinstance(link, dict):
            table[link["id"]] = (link["origin_id"], link["origin_slot"])
        elif isinstance(link, list) and len(link) >= 5:
            table[link[0]] = (link[1], link[2])
    return table


def _bypass_input_link(node, output_slot, wanted_type):
    """The input link a bypassed node passes through: same type, its own slot index tried first."""
    inputs = node.get("inputs") or []
    for index in [output_slot, *range(len(inputs))]:
        if index < len(inputs) and inputs[index].get("type") == wanted_type:
            return inputs[index].get("link")
    return None


def _map_widget_values(values, specs):
    """Widget input values from a node's saved `widgets_values` (list in editor order, or dict)."""
    widgets = [spec for spec in specs.values() if spec.is_widget]
    if isinstance(values, dict):
        return {spec.name: _wrap_constant(values[spec.name]) for spec in widgets if spec.name in values}
    values = list(values or [])
    layout = []
    for spec in widgets:
        layout += [spec.name] + [None] * spec.companion_widgets
    plain = [name for name in layout if name is not None]
    if len(values) == len(plain) != len(layout):
        layout = plain  # saved before the editor added companion widgets: no companion values
    return {name: _wrap_constant(value) for name, value in zip(layout, values) if name is not None}


# ---------------------------------------------------------------- overrides
def apply_overrides(prompt, overrides, node_classes):
    """Set input values in `prompt` in place; return the list of Problems.

    `overrides`: strings "NODE.INPUT=VALUE" (VALUE parsed as JSON when it parses, else kept as text)
    or a mapping {"NODE.INPUT": value}. NODE is a node id, or a title or class name that names
    exactly one node.
    """
    problems = []
    for key, value, is_text in _override_items(overrides, problems):
        node_ref, _, input_name = key.rpartition(".")
        if not node_ref or not input_name:
            problems.append(_malformed_override(key))
            continue
        node_id = _find_node(prompt, node_ref, problems)
        if node_id is None:
            continue
        node = prompt[node_id]
        node_class = node_classes.get(node.get("class_type"))
        if node_class is None:
            continue  # validation reports the unknown type
        spec = input_specs(node_class).get(input_name)
        if spec is None:
            names = ", ".join(input_specs(node_class)) or "none"
            problems.append(Problem(node_id, node["class_type"], input_name,
                                    f"--set: this node has no such input (its inputs: {names})"))
            continue
        node.setdefault("inputs", {})[input_name] = _parse_override(value, spec) if is_text else value
    return problems


def _override_items(overrides, problems):
    """(key, value, value_is_text) triples from a mapping or from NODE.INPUT=VALUE strings."""
    if isinstance(overrides, dict):
        return [(key, value, False) for key, value in overrides.items()]
    items = []
    for text in overrides or []:
        key, equals, value = text.partition("=")
        if equals:
            items.append((key, value, True))
        else:
            problems.append(_malformed_override(text))
    return items


def _malformed_override(text):
    return Problem(None, None, None, f"--set {text!r}: expected NODE.INPUT=VALUE, e.g. 3.strength=0.5")


def _find_node(prompt, ref, problems):
    """The id of the node `ref` names (id, else unique title, else unique class), or None."""
    if ref in prompt:
        return ref
    by_title = [node_id for node_id, node in prompt.items() if node.get("_meta", {}).get("title") == ref]
    by_class = [node_id for node_id, node in prompt.items() if node.get("class_type") == ref]
    for matches in (by_title, by_class):
        if len(matches) == 1:
            return matches[0]
        if len(matches) > 1:
            ids = ", ".join(sorted(matches, key=_id_sort_key))
            problems.append(Problem(None, None, None,
                                    f"--set: '{ref}' names {len(matches)} nodes (ids {ids}); use a node id"))
            return None
    listing = ", ".join(f"{node_id} {prompt[node_id].get('class_type')}"
                        for node_id in sorted(prompt, key=_id_sort_key))
    problems.append(Problem(None, None, None,
                            f"--set: no node has the id, title or class '{ref}' (nodes: {listing})"))
    return None


def _parse_override(text, spec):
    try:
        value = json.loads(text)
    except ValueError:
        return text
    if (spec.kind == "STRING" or spec.choices) and not isinstance(value, str):
        return text  # `--set prefix=123` means the text "123"
    return _wrap_constant(value) if isinstance(value, list) and not _is_link(value) else value


# ---------------------------------------------------------------- validation
def validate_prompt(prompt, node_classes=None):
    """Check `prompt` in place (coercing values, filling defaults); return the execution order.

    Raises WorkflowError listing every problem. Like ComfyUI, only nodes that an output node
    (OUTPUT_NODE = True) needs are validated and run; unknown node types are reported anywhere.
    """
    classes = node_classes if node_classes is not None else _pack_node_classes()
    order, problems = _validate(prompt, classes)
    if problems:
        raise WorkflowError(problems)
    return order


def _validate(prompt, classes):
    problems = _check_node_types(prompt, classes)
    outputs = sorted((node_id for node_id, node in prompt.items()
                      if getattr(classes.get(node.get("class_type")), "OUTPUT_NODE", False) is True),
                     key=_id_sort_key)
    if not outputs and not problems:
        problems.append(Problem(None, None, None,
                                "the workflow has no output node (a node with OUTPUT_NODE = True, such as "
                                "a save or preview node), so nothing would run"))
    order, state = [], {}
    for node_id in outputs:
        _visit(node_id, prompt, classes, state, order, problems)
    problems.sort(key=lambda problem: _id_sort_key(problem.node_id))  # stable: input order kept
    return order, problems


def _check_node_types(prompt, classes):
    problems = []
    for node_id in sorted(prompt, key=_id_sort_key):
        node = prompt[node_id]
        kind = node.get("class_type")
        if kind is None:
            problems.append(Problem(node_id, None, None, "the node has no 'class_type'"))
        elif node.get("_meta", {}).get("subgraph"):
            problems.append(Problem(node_id, kind, None,
                                    "is a subgraph, which the command line does not expand: unpack it in "
                                    "the editor (right-click > Unpack Subgraph) and save again"))
        elif kind not in classes:
            problems.append(Problem(node_id, kind, None,
                                    "unknown node type: the command line runs only this pack's nodes "
                                    "(`tame nodes` lists them)"))
    return problems


def _visit(node_id, prompt, classes, state, order, problems):
    """Depth-first: validate a node's inputs, its sources first; append to `order` when done."""
    if state.get(node_id) == "done":
        return
    node = prompt[node_id]
    if state.get(node_id) == "active":
        problems.append(Problem(node_id, node.get("class_type"), None,
                                "the node is part of a cycle (its output feeds back into its inputs)"))
        return
    state[node_id] = "active"
    node_class = classes.get(node.get("class_type"))
    for name, message in node.get("_meta", {}).get("problems", []):
        problems.append(Problem(node_id, node.get("class_type"), name, message))
    if node_class is not None:
        sources = _check_inputs(node_id, node, node_class, prompt, classes, problems)
        for source_id in sources:
            _visit(source_id, prompt, classes, state, order, problems)
        order.append(node_id)
    state[node_id] = "done"


def _check_inputs(node_id, node, node_class, prompt, classes, problems):
    """Validate and coerce one node's inputs in place; return the ids of the nodes it links to."""
    kind = node["class_type"]
    inputs = node.setdefault("inputs", {})
    validator = getattr(node_class, "VALIDATE_INPUTS", None)
    checked_by_node = _validator_arguments(validator)
    found = []

    def report(name, message):
        found.append(Problem(node_id, kind, name, message))

    sources, received_types = [], {}
    for spec in input_specs(node_class).values():
        if spec.name not in inputs:
            default = spec.default() if spec.is_widget else NO_DEFAULT
            if default is not NO_DEFAULT:
                inputs[spec.name] = default
            elif spec.required:
                report(spec.name, "required input is missing and has no default" if spec.is_widget
                       else f"required input ({type_name(spec.kind)}) is not connected")
            continue
        value = inputs[spec.name]
        if _is_link(value):
            received = _check_link(value, spec, prompt, classes, "input_types" in checked_by_node, report)
            if received is not None:
                received_types[spec.name] = received
                sources.append(str(value[0]))
        elif isinstance(value, list):
            report(spec.name, f"a link must be [node_id, output_index], got {value!r}")
        else:
            skip_limits = spec.name in checked_by_node or "**" in checked_by_node
            _check_constant(spec, value, inputs, skip_limits, report)
    if validator is not None and not found:
        _run_validator(node_class, validator, checked_by_node, inputs, received_types, report)
    problems.extend(found)
    return sources


def _validator_arguments(validator):
    if validator is None:
        return set()
    spec = inspect.getfullargspec(validator)
    return set(spec.args) | ({"**"} if spec.varkw else set())


def type_name(kind):
    """Printable type: combo choice lists show as COMBO."""
    return "COMBO" if isinstance(kind, list) else kind


def _check_link(link, spec, prompt, classes, types_checked_by_node, report):
    """The type a link delivers (a mismatch is reported), or None if it reaches no node output."""
    source_id, slot = str(link[0]), link[1]
    source = prompt.get(source_id)
    if source is None:
        report(spec.name, f"linked to node {source_id}, which is not in the workflow (dangling link)")
        return None
    source_class = classes.get(source.get("class_type"))
    if source_class is None:
        return None  # reported as an unknown node type
    return_types = source_class.RETURN_TYPES
    if not 0 <= slot < len(return_types):
        report(spec.name, f"linked to output {slot} of node {source_id} ({source['class_type']}), "
                          f"which has {len(return_types)} output(s)")
        return None
    received = return_types[slot]
    if not types_checked_by_node and not types_match(received, spec.kind):
        report(spec.name, f"expects {type_name(spec.kind)} but is linked to output {slot} "
                          f"({type_name(received)}) of node {source_id} ({source['class_type']})")
    return received


def types_match(received, expected):
    """ComfyUI's link type rule: equal, '*' on either side, or overlapping 'A,B' unions."""
    if received == expected or ANY_TYPE in (received, expected):
        return True
    if isinstance(received, list) and expected == "COMBO":
        return True
    if not isinstance(received, str) or not isinstance(expected, str):
        return False
    received_set = {part.strip() for part in received.split(",")}
    expected_set = {part.strip() for part in expected.split(",")}
    return ANY_TYPE in received_set | expected_set or bool(received_set & expected_set)


def _check_constant(spec, value, inputs, skip_limits, report):
    """Coerce a constant to its declared type and check range, step and choices."""
    if isinstance(value, dict) and "__value__" in value:
        value = inputs[spec.name] = value["__value__"]
    if not spec.is_widget and spec.kind not in ("INT", "FLOAT", "STRING", "BOOLEAN", ANY_TYPE):
        report(spec.name, f"{spec.kind} must come from a link to another node's output, got the "
                          f"constant {value!r}")
        return
    try:
        value = inputs[spec.name] = _coerce(spec.kind, value)
    except ValueError as err:
        report(spec.name, str(err))
        return
    if skip_limits:
        return
    message = _limit_violation(spec, value)
    if message:
        report(spec.name, message)


def _coerce(kind, value):
    if kind == "INT":
        if isinstance(value, bool) or not isinstance(value, (int, float, str)):
            raise ValueError(f"expects an integer, got {value!r}")
        if isinstance(value, float) and not value.is_integer():
            raise ValueError(f"expects an integer, got {value!r}")
        try:
            return int(value)
        except ValueError:
            raise ValueError(f"expects an integer, got {value!r}") from None
    if kind == "FLOAT":
        if isinstance(value, bool) or not isinstance(value, (int, float, str)):
            raise ValueError(f"expects a number, got {value!r}")
        try:
            return float(value)
        except ValueError:
            raise ValueError(f"expects a number, got {value!r}") from None
    if kind == "STRING":
        return str(value)
    if kind == "BOOLEAN":
        if isinstance(value, bool):
            return value
        if value in (0, 1) and not isinstance(value, str):
            return bool(value)
        if isinstance(value, str) and value.strip().lower() in ("true", "false"):
            return value.strip().lower() == "true"
        raise ValueError(f"expects true or false, got {value!r}")
    return value


def _limit_violation(spec, value):
    """Why `value` breaks the declared min/max/step/choices, or None."""
    options = spec.options
    if spec.choices is not None:
        if value in spec.choices:
            return None
        if len(spec.choices) > MAX_LISTED_CHOICES:
            return f"'{value}' is not one of the {len(spec.choices)} choices (`tame nodes` lists them)"
        return f"'{value}' is not one of the choices: {', '.join(map(str, spec.choices))}"
    if spec.kind not in ("INT", "FLOAT"):
        return None
    if "min" in options and value < options["min"]:
        return f"{value} is below the minimum {options['min']}"
    if "max" in options and value > options["max"]:
        return f"{value} is above the maximum {options['max']}"
    if value in (options.get("min"), options.get("max")):
        return None
    unit, offset = _value_grid(spec)
    if unit and not _on_grid(value - offset, unit):
        where = f"{offset} + k * {unit}" if offset else f"a multiple of {unit}"
        return f"{value} is not on the editor's step grid ({where})"
    return None


def _value_grid(spec):
    """(unit, offset) of the values the editor's widget can hold; unit None means any value.

    INT widgets snap to min + k * step. FLOAT widgets round to `round` if declared, else to
    10^-precision with precision = max(0, -floor(log10(step))) (step 0.25 -> 0.1, step 1 -> any).
    """
    options = spec.options
    if spec.kind == "INT":
        step = options.get("step", 1)
        return (step, options.get("min", 0) % step) if step and step != 1 else (None, 0)
    if "round" in options:
        return (options["round"] or None), 0
    step = options.get("step")
    if step is None:
        return None, 0  # no declared step: ComfyUI's server accepts any value, and so do we
    precision = max(0, -math.floor(math.log10(step))) if step > 0 else 0
    return (10.0 ** -precision if precision else None), 0


def _on_grid(value, unit):
    steps = value / unit
    return abs(steps - round(steps)) <= 1e-6 * max(1.0, abs(steps))


def _run_validator(node_class, validator, arguments, inputs, received_types, report):
    """Call the node's VALIDATE_INPUTS like ComfyUI: constants by value, linked inputs as None."""
    if "**" in arguments:
        kwargs = {name: (None if _is_link(value) else value) for name, value in inputs.items()}
    else:
        kwargs = {name: (None if _is_link(inputs[name]) else inputs[name])
                  for name in arguments if name in inputs}
    if "input_types" in arguments:
        kwargs["input_types"] = received_types
    try:
        verdict = validator(**kwargs)
    except Exception as err:  # the node's own check crashed: report it, do not run
        report(None, f"VALIDATE_INPUTS raised {type(err).__name__}: {err}")
        return
    if verdict is not True:
        report(None, f"rejected by the node's own check: {verdict}")


# ---------------------------------------------------------------- execution
def run_prompt(prompt, node_classes=None, overrides=None, progress=None):
    """Validate and run an API prompt; return {node_id: result} for every executed node.

    A result is {"class_type", "title", "output_node": bool, "outputs": [one list per output,
    holding one value per call], "ui": {key: list}}. `overrides`: see `apply_overrides`.
    `progress(node_id, class_type, index, total)` is called before each node runs.
    Raises WorkflowError (nothing ran), NodeExecutionError, or host.Cancelled.
    """
    classes = node_classes if node_classes is not None else _pack_node_classes()
    prompt = _normalise_api_prompt(prompt)
    problems = apply_overrides(prompt, overrides, classes)
    order, validation_problems = _validate(prompt, classes)
    problems += validation_problems
    if problems:
        raise WorkflowError(problems)
    return _execute(prompt, order, classes, progress)


def _execute(prompt, order, classes, progress):
    results = {}
    with torch.inference_mode():
        for index, node_id in enumerate(order):
            host.check_cancelled()
            node = prompt[node_id]
            node_class = classes[node["class_type"]]
            if progress is not None:
                progress(node_id, node["class_type"], index, len(order))
            arguments = _gather_arguments(node_id, node, node_class, prompt, results)
            try:
                outputs, ui = _call_node(node_class, arguments)
            except host.Cancelled:
                raise
            except Exception as err:
                raise NodeExecutionError(node_id, node["class_type"], err) from err
            results[node_id] = {
                "class_type": node["class_type"],
                "title": node.get("_meta", {}).get("title") or node["class_type"],
                "output_node": getattr(node_class, "OUTPUT_NODE", False) is True,
                "outputs": outputs,
                "ui": ui,
            }
    return results


def _gather_arguments(node_id, node, node_class, prompt, results):
    """{input name: list of values}: a linked output's list, or a one-element list for a constant."""
    specs = input_specs(node_class)
    arguments = {}
    for name, value in node["inputs"].items():
        if name not in specs:
            continue
        arguments[name] = results[str(value[0])]["outputs"][value[1]] if _is_link(value) else [value]
    hidden_values = {"UNIQUE_ID": node_id, "PROMPT": prompt, "EXTRA_PNGINFO": None, "DYNPROMPT": None}
    for name, kind in _hidden_inputs(node_class).items():
        if kind in hidden_values:
            arguments[name] = [hidden_values[kind]]
    return arguments


def _call_node(node_class, arguments):
    """Run FUNCTION once (INPUT_IS_LIST) or once per element of the longest input list.

    Shorter lists repeat their last element. Returns (outputs, ui) merged over the calls.
    """
    function = getattr(node_class(), node_class.FUNCTION)
    if getattr(node_class, "INPUT_IS_LIST", False):
        return _merge_returns([function(**arguments)], node_class)
    for name, values in arguments.items():
        if len(values) == 0:
            raise ValueError(f"input '{name}' received an empty list, so there is nothing to process")
    count = max((len(values) for values in arguments.values()), default=1)
    returns = [function(**{name: values[min(index, len(values) - 1)] for name, values in arguments.items()})
               for index in range(count)]
    return _merge_returns(returns, node_class)


def _merge_returns(returns, node_class):
    """Outputs as lists over the calls (OUTPUT_IS_LIST outputs concatenated) and merged ui dicts."""
    output_count = len(node_class.RETURN_TYPES)
    results, uis = [], []
    for returned in returns:
        if isinstance(returned, dict):
            if "expand" in returned:
                raise ValueError("the node returned a graph expansion, which the command line cannot run")
            if "ui" in returned:
                uis.append(returned["ui"])
            if "result" in returned:
                results.append(returned["result"])
        else:
            results.append(returned)
    for result in results:
        if not isinstance(result, (tuple, list)) or len(result) != output_count:
            raise ValueError(f"the node returned {result!r:.80} where RETURN_TYPES declares "
                             f"{output_count} output(s); a node returns a tuple with one value per output")
    is_list = list(getattr(node_class, "OUTPUT_IS_LIST", None) or [False] * output_count)
    outputs = [[item for result in results for item in result[index]] if is_list[index]
               else [result[index] for result in results] for index in range(output_count)]
    ui = {}
    for entry in uis:
        for key, value in entry.items():
            ui.setdefault(key, []).extend(value if isinstance(value, (list, tuple)) else [value])
    return outputs, ui
