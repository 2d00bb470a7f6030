"""The `tame` command line: run saved workflows headlessly, list the nodes, run the demo (training commands:
train_commands.py).

Subcommands are registered with `register_subcommand(name, help, add_arguments, handler)`;
a handler takes the parsed arguments and returns the exit code.
Exit codes of `run` and `demo`: 0 done, 1 a node failed, 2 the workflow is invalid, 130 cancelled.
"""
import argparse
import contextlib
import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Callable, NamedTuple

from ..nodes import host
from . import runner

WORKFLOWS_DIR = Path(__file__).resolve().parents[1] / "workflows"
DEMO_WORKFLOW = "flow_estimate.json"
DEMO_VIDEO_NODE = "TameLoadVideo"  # class (or title) of the demo workflow's video loader
DEMO_VIDEO_INPUT = "video"
DEMO_VIDEO_FILE = "tame_demo_clip.mp4"
DEMO_FRAMES, DEMO_WIDTH, DEMO_HEIGHT = 24, 320, 240
PROGRESS_INTERVAL_S = 0.5
EXIT_OK, EXIT_FAILED, EXIT_INVALID, EXIT_CANCELLED = 0, 1, 2, 130
MAX_LISTED_CHOICES = 8


class Subcommand(NamedTuple):
    help: str
    add_arguments: Callable
    handler: Callable


SUBCOMMANDS = {}


def register_subcommand(name, help, add_arguments, handler):
    """Add `tame NAME`: `add_arguments(parser)` declares its options, `handler(args)` -> exit code."""
    SUBCOMMANDS[name] = Subcommand(help, add_arguments, handler)


def build_parser():
    parser = argparse.ArgumentParser(
        prog="tame", description="Tame: run the pack's ComfyUI workflows without the editor.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, command in SUBCOMMANDS.items():
        sub = commands.add_parser(name, help=command.help, description=command.help)
        command.add_arguments(sub)
        sub.set_defaults(handler=command.handler)
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    return args.handler(args)


# ---------------------------------------------------------------- tame run
def _run_arguments(parser):
    parser.add_argument("workflow", help="workflow .json (UI format as saved by the editor, or API format)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="NODE.INPUT=VALUE",
                        help="override an input; NODE is a node id, title or class name; VALUE is JSON "
                             "or text (repeatable)")
    _output_dir_argument(parser)


def _output_dir_argument(parser):
    parser.add_argument("--output-dir", metavar="DIR",
                        help="where saving nodes write their files (default: $TAME_OUTPUT_DIR or ./output)")


def _run_command(args):
    with _output_dir(args.output_dir):
        return run_workflow(args.workflow, args.overrides)


def run_workflow(source, overrides=None, out=None, err=None):
    """Load, validate and run a workflow, reporting on `err` (progress) and `out` (results).

    Returns the exit code.
    """
    out, err = out or sys.stdout, err or sys.stderr
    try:
        prompt = runner.load_workflow(source)
    except (OSError, ValueError) as error:
        print(f"tame: {error}", file=err)
        return EXIT_INVALID
    started = time.monotonic()
    try:
        with ctrl_c_requests_cancel(err), _progress_lines(err):
            results = runner.run_prompt(prompt, overrides=overrides, progress=_node_line_printer(err))
    except runner.WorkflowError as error:
        print(f"tame: {error}", file=err)
        return EXIT_INVALID
    except (host.Cancelled, KeyboardInterrupt):
        print("tame: cancelled", file=err)
        return EXIT_CANCELLED
    except runner.NodeExecutionError as error:
        print(f"tame: {error}", file=err)
        return EXIT_FAILED
    print(f"tame: done in {time.monotonic() - started:.1f} s", file=err)
    _print_results(results, out)
    return EXIT_OK


@contextlib.contextmanager
def _output_dir(directory):
    """Point host.output_dir() at `directory` (if given) for the duration."""
    previous = os.environ.get("TAME_OUTPUT_DIR")
    if directory:
        os.environ["TAME_OUTPUT_DIR"] = str(Path(directory).expanduser().resolve())
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop("TAME_OUTPUT_DIR", None)
        else:
            os.environ["TAME_OUTPUT_DIR"] = previous


@contextlib.contextmanager
def ctrl_c_requests_cancel(err):
    """First Ctrl-C: ask the running loop to stop at its next progress report; second: abort now."""
    host.clear_cancel()
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    pressed = []

    def on_interrupt(signum, frame):
        if pressed:
            raise KeyboardInterrupt
        pressed.append(signum)
        host.request_cancel()
        print("tame: stopping at the next progress report (Ctrl-C again to abort at once)", file=err)

    previous = signal.signal(signal.SIGINT, on_interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
        host.clear_cancel()


@contextlib.contextmanager
def _progress_lines(err):
    """Print host.progress reports as compact lines, at most one per label every PROGRESS_INTERVAL_S."""
    last = {"label": None, "time": 0.0}

    def report(label, done, total):
        now = time.monotonic()
        if done < total and label == last["label"] and now - last["time"] < PROGRESS_INTERVAL_S:
            return
        last.update(label=label, time=now)
        print(f"    {label}: {done}/{total}", file=err, flush=True)

    host.set_progress_handler(report)
    try:
        yield
    finally:
        host.set_progress_handler(None)


def _node_line_printer(err):
    def report(node_id, class_type, index, total):
        print(f"[{index + 1}/{total}] node {node_id} {class_type}", file=err, flush=True)
    return report


def _print_results(results, out):
    """Saved files (from each node's `ui`) and the text outputs of the output nodes."""
    for node_id, result in results.items():
        lines = [f"  {path}" for path in saved_files(result["ui"])]
        texts = [text for text in result["ui"].get("text", []) if isinstance(text, str)]
        if result["output_node"]:
            texts += [value for values in result["outputs"] for value in values if isinstance(value, str)]
        lines += [f"  {line}" for text in texts for line in text.splitlines()]
        if lines:
            print(f"node {node_id} {result['class_type']}:", file=out)
            print("\n".join(dict.fromkeys(lines)), file=out)


def saved_files(ui):
    """Paths of the files a node reported in its `ui` ({"filename", "subfolder", "type"} entries)."""
    paths = []
    for entries in ui.values():
        for entry in entries:
            if isinstance(entry, dict) and "filename" in entry:
                folder = host.output_dir() if entry.get("type", "output") == "output" else Path(entry["type"])
                paths.append(folder / entry.get("subfolder", "") / entry["filename"])
    return paths


# ---------------------------------------------------------------- tame nodes
def _nodes_command(args):
    from ..nodes import NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS
    for node_id, node_class in NODE_CLASS_MAPPINGS.items():
        print(describe_node(node_id, node_class, NODE_DISPLAY_NAME_MAPPINGS.get(node_id, node_id)))
    return EXIT_OK


def describe_node(node_id, node_class, display_name):
    """A few lines: id, name, category, then one line per input and output."""
    flags = " (output node)" if getattr(node_class, "OUTPUT_NODE", False) is True else ""
    lines = [f"{node_id} - {display_name} [{node_class.CATEGORY}]{flags}"]
    for spec in runner.input_specs(node_class).values():
        marker = "in " if spec.required else "in?"
        lines.append(f"  {marker} {spec.name}: {_describe_input(spec)}")
    is_list = getattr(node_class, "OUTPUT_IS_LIST", None) or [False] * len(node_class.RETURN_TYPES)
    names = getattr(node_class, "RETURN_NAMES", None) or node_class.RETURN_TYPES
    for name, kind, listed in zip(names, node_class.RETURN_TYPES, is_list):
        lines.append(f"  out {name}: {runner.type_name(kind)}{' (list)' if listed else ''}")
    return "\n".join(lines)


def _describe_input(spec):
    if spec.choices is not None:
        shown = " | ".join(map(str, spec.choices[:MAX_LISTED_CHOICES]))
        more = f" | ... ({len(spec.choices)} choices)" if len(spec.choices) > MAX_LISTED_CHOICES else ""
        text = f"one of {shown}{more}"
    else:
        text = str(spec.kind)
    default = spec.default() if spec.is_widget else None
    if default is not None and default is not runner.NO_DEFAULT:
        text += f" = {default!r}"
    limits = [f"{key} {spec.options[key]}" for key in ("min", "max", "step") if key in spec.options]
    if limits:
        text += f" ({', '.join(limits)})"
    return text


# ---------------------------------------------------------------- tame demo
def _demo_command(args):
    from ..models.data.scenes import make_demo_video
    with _output_dir(args.output_dir):
        folder = host.output_dir()
        folder.mkdir(parents=True, exist_ok=True)
        video = folder / DEMO_VIDEO_FILE
        make_demo_video(video, DEMO_FRAMES, DEMO_HEIGHT, DEMO_WIDTH)
        print(f"tame: sample clip written to {video}", file=sys.stderr)
        code = run_workflow(WORKFLOWS_DIR / DEMO_WORKFLOW,
                            {f"{DEMO_VIDEO_NODE}.{DEMO_VIDEO_INPUT}": str(video)})
        if code == EXIT_OK:
            print(f"results are in {folder}")
        return code


register_subcommand("run", "run a workflow .json headlessly", _run_arguments, _run_command)
register_subcommand("nodes", "list the pack's nodes with their inputs and outputs",
                    lambda parser: None, _nodes_command)
register_subcommand("demo", f"make a sample clip and run workflows/{DEMO_WORKFLOW} on it",
                    _output_dir_argument, _demo_command)


def _convert_arguments(parser):
    parser.add_argument("source", help="checkpoint to convert (.pth/.pt, read with weights_only=True)")
    parser.add_argument("destination", nargs="?",
                        help="where to write the .safetensors (default: next to the source)")


def _convert_command(args):
    from ..models.flow.checkpoints import convert_to_safetensors
    try:
        path = convert_to_safetensors(args.source, args.destination)
    except (OSError, ValueError) as err:
        print(f"tame: {err}", file=sys.stderr)
        return 2
    print(f"wrote {path}; put it into ComfyUI's models/tame/flow/ folder")
    return 0


def _sample_arguments(parser):
    parser.add_argument("path", nargs="?",
                        help="where to write the clip (default: tame_sample.mp4 in the input folder, "
                             "$TAME_INPUT_DIR or ./input)")
    parser.add_argument("--frames", type=int, default=24, help="number of frames (default 24)")


def _sample_command(args):
    from ..models.data.scenes import make_demo_video
    path = Path(args.path) if args.path else host.input_dir() / "tame_sample.mp4"
    path.parent.mkdir(parents=True, exist_ok=True)
    make_demo_video(path, num_frames=args.frames)
    print(f"wrote {path.resolve()}")
    return 0


register_subcommand("convert-weights", "convert a RAFT/SpyNet .pth checkpoint to .safetensors",
                    _convert_arguments, _convert_command)
register_subcommand("sample", "write the built-in synthetic sample clip (for the example workflows)",
                    _sample_arguments, _sample_command)


from . import train_commands  # noqa: E402,F401  (registers train-vsr and train-autoencoder)
