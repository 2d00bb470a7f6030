"""The `tame` command line: run saved workflows headlessly, list the nodes, run the demo.

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

from ..models.io.weights import load_state_dict
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
        with _ctrl_c_requests_cancel(err), _progress_lines(err):
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
def _ctrl_c_requests_cancel(err):
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


def _train_vsr_arguments(parser):
    from ..models.vsr.loop import SCHEDULES, TrainConfig
    defaults = TrainConfig()
    parser.add_argument("output", help="folder for the training state, the weights (vsr_x{scale}.safetensors) "
                                       "and train_log.jsonl")
    data = parser.add_argument_group("data")
    data.add_argument("--data", metavar="DIR",
                      help="videos, image-sequence subfolders and/or still images (moved by synthetic motion); "
                           "default: the pack's procedural textures under synthetic motion")
    data.add_argument("--val-data", metavar="DIR", help="validation clips from this folder (default: --data, "
                                                        "other random clips)")
    data.add_argument("--max-side", type=int, default=0,
                      help="downscale videos/sequences whose longer side exceeds this (default 0 = native)")
    data.add_argument("--degradation", choices=["BI", "BD"], default=defaults.degradation,
                      help="BI: antialiased bicubic; BD: Gaussian blur sigma 1.6 then subsampling (default BI)")
    data.add_argument("--scale", type=int, choices=[2, 4, 8], default=defaults.scale, help="default 4")
    data.add_argument("--frames", type=int, default=defaults.num_frames, help="frames per training clip (default 7)")
    data.add_argument("--crop", type=int, default=defaults.crop, help="LR crop side in pixels (default 48)")
    data.add_argument("--batch", type=int, default=defaults.batch_size, help="clips per step (default 4)")
    data.add_argument("--pool-clips", type=int, default=defaults.pool_clips,
                      help="clips kept in memory; one is replaced per step (default 32)")
    data.add_argument("--flow", choices=["fast", "medium", "high", "none"], default="fast",
                      help="built-in flow quality for clips without known motion and for the validation's "
                           "E_warp/RWE; none: exact synthetic flow only, no RWE (default fast)")
    data.add_argument("--flow-weights", metavar="FILE", help="use these RAFT/SpyNet weights from models/tame/flow "
                                                             "instead of the built-in flow")
    optimisation = parser.add_argument_group("optimisation")
    optimisation.add_argument("--steps", type=int, default=defaults.steps, help="total steps (default 10000)")
    optimisation.add_argument("--lr", type=float, default=defaults.lr, help="Adam learning rate (default 5e-5)")
    optimisation.add_argument("--schedule", choices=SCHEDULES, default=defaults.schedule,
                              help="cosine decay to 1%% of --lr, or constant (default cosine)")
    optimisation.add_argument("--charbonnier-weight", type=float, default=defaults.charbonnier_weight)
    optimisation.add_argument("--lpips-weight", type=float, default=defaults.lpips_weight,
                              help="used when LPIPS weights are in models/tame/lpips (default 5)")
    optimisation.add_argument("--temporal-weight", type=float, default=defaults.temporal_weight,
                              help="weight of the optional flicker term (frame-to-frame changes of output vs "
                                   "truth along the exact flow; synthetic motion only); default 0 = the seed's loss")
    optimisation.add_argument("--gan", action="store_true", help="add the temporal discriminator (GAN + R1)")
    optimisation.add_argument("--gan-weight", type=float, default=defaults.gan_weight)
    optimisation.add_argument("--r1-weight", type=float, default=defaults.r1_weight)
    optimisation.add_argument("--seed", type=int, default=defaults.seed)
    optimisation.add_argument("--resume", action="store_true",
                              help="continue the run in OUTPUT up to --steps (same network options)")
    optimisation.add_argument("--device", help="torch device (default: CUDA, MPS or CPU; $TAME_DEVICE)")
    optimisation.add_argument("--threads", type=int, help="CPU threads for torch")
    reports = parser.add_argument_group("reports")
    reports.add_argument("--log-every", type=int, default=defaults.log_every)
    reports.add_argument("--val-every", type=int, default=defaults.val_every)
    reports.add_argument("--checkpoint-every", type=int, default=defaults.checkpoint_every)
    reports.add_argument("--val-clips", type=int, default=defaults.val_clips)
    reports.add_argument("--val-frames", type=int, default=defaults.val_frames)
    reports.add_argument("--val-size", type=int, default=defaults.val_size, help="HR side of validation clips")
    network = parser.add_argument_group("network (the ablation switches)")
    network.add_argument("--channels", type=int, default=16, help="LR feature width (default 16)")
    for switch, name in (("propagation", "flow-guided propagation"), ("temporal", "temporal conv/attention"),
                         ("blurpool", "anti-aliased downsampling"), ("hf-shuttle", "high-frequency shuttle"),
                         ("spatial-attention", "spatial self-attention")):
        network.add_argument(f"--no-{switch}", action="store_true", help=f"switch off the {name}")
    network.add_argument("--noise", action="store_true", help="add per-block noise layers")


def _train_vsr_config(args):
    from ..models.vsr.loop import TrainConfig
    net = {"channels": args.channels, "use_noise": args.noise}
    for switch in ("propagation", "temporal", "blurpool", "hf_shuttle", "spatial_attention"):
        net[f"use_{switch}"] = not getattr(args, f"no_{switch}")
    return TrainConfig(
        scale=args.scale, degradation=args.degradation, steps=args.steps, batch_size=args.batch,
        num_frames=args.frames, crop=args.crop, lr=args.lr, schedule=args.schedule,
        charbonnier_weight=args.charbonnier_weight, lpips_weight=args.lpips_weight,
        temporal_weight=args.temporal_weight, gan=args.gan,
        gan_weight=args.gan_weight, r1_weight=args.r1_weight, pool_clips=args.pool_clips,
        log_every=args.log_every, val_every=args.val_every, checkpoint_every=args.checkpoint_every,
        val_clips=args.val_clips, val_frames=args.val_frames, val_size=args.val_size, seed=args.seed, net=net)


def _train_vsr_source(folder, config, max_side):
    from ..models.data.vsr_sources import FolderSource, ProceduralSource
    return FolderSource(folder, max(config.num_frames, config.val_frames), max_side) if folder \
        else ProceduralSource()


def _train_vsr_lpips(weight, device):
    """The LPIPS network from every file in models/tame/lpips merged, or None when there is none."""
    names = host.list_models("lpips") if weight > 0 else []
    if not names:
        return None
    from ..models.edit.lpips import lpips_from_state_dict
    merged = {}
    for name in names:
        merged.update(load_state_dict(host.model_path("lpips", name)))
    return lpips_from_state_dict(merged).to(device)


def _train_vsr_command(args):
    import torch

    from ..models.vsr.loop import train
    from ..nodes import flow_nodes
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device) if args.device else host.compute_device()
    try:
        config = _train_vsr_config(args)
        source = _train_vsr_source(args.data, config, args.max_side)
        val_source = _train_vsr_source(args.val_data, config, args.max_side) if args.val_data else None
        estimator = None
        if args.flow_weights or args.flow != "none":
            model = args.flow_weights or flow_nodes.BUILTIN
            estimator = flow_nodes.TameLoadFlowModel().load(model, args.flow if args.flow != "none" else "fast",
                                                            12)[0]
        lpips = _train_vsr_lpips(args.lpips_weight, device)
        print_line = lambda text: print(f"tame: {text}", file=sys.stderr, flush=True)
        with _ctrl_c_requests_cancel(sys.stderr):
            result = train(config, source, args.output, estimator=estimator, lpips=lpips, val_source=val_source,
                           resume=args.resume, device=device, progress=host.progress(config.steps, "Train VSR"),
                           log=print_line)
    except (OSError, ValueError) as err:
        print(f"tame: {err}", file=sys.stderr)
        return EXIT_INVALID
    except (host.Cancelled, KeyboardInterrupt):
        print("tame: cancelled", file=sys.stderr)
        return EXIT_CANCELLED
    print(f"wrote {result.weights_path}; put it into ComfyUI's models/tame/vsr/ folder")
    return EXIT_OK


register_subcommand("train-vsr", "train the Tame video super-resolution network (checkpoints, resume, "
                                 "validation report)", _train_vsr_arguments, _train_vsr_command)


def _train_autoencoder_arguments(parser):
    parser.add_argument("--images", required=True, metavar="DIR",
                        help="folder of training photos (.png/.jpg); bench/edit/export_ae_images.py writes "
                             "the scikit-image photos the shipped weights were trained on")
    parser.add_argument("--steps", type=int, default=500, help="Adam steps (default 500, as the shipped weights)")
    parser.add_argument("--out", required=True, metavar="PATH", help="where to write the .safetensors weights")
    parser.add_argument("--crop", type=int, default=64, help="crop side in pixels, multiple of 4 (default 64)")
    parser.add_argument("--batch", type=int, default=12, help="crops per step (default 12)")
    parser.add_argument("--seed", type=int, default=0, help="seed of initialisation and data order (default 0)")
    parser.add_argument("--heldout", metavar="DIR",
                        help="folder of photos not used in training: print the reconstruction PSNR of each")


def _train_autoencoder_command(args):
    from ..models.edit.train_autoencoder import reconstruction_psnr, save_autoencoder, train_autoencoder
    from ..models.io.images import image_files, read_image
    started = time.monotonic()
    every = max(1, args.steps // 20)

    def report(done, total):
        if done % every == 0 or done == total:
            print(f"    step {done}/{total} ({time.monotonic() - started:.0f} s)", file=sys.stderr, flush=True)

    try:
        heldout = {path.name: read_image(path) for path in image_files(args.heldout)} if args.heldout else {}
        model = train_autoencoder(args.images, steps=args.steps, crop=args.crop, batch=args.batch,
                                  seed=args.seed, progress=report)
        path = save_autoencoder(model, args.out)
    except (OSError, ValueError) as err:
        print(f"tame: {err}", file=sys.stderr)
        return EXIT_INVALID
    except KeyboardInterrupt:
        print("tame: cancelled", file=sys.stderr)
        return EXIT_CANCELLED
    print(f"wrote {path} after {args.steps} steps in {time.monotonic() - started:.0f} s")
    for name, image in heldout.items():
        print(f"held-out {name}: reconstruction PSNR {reconstruction_psnr(model, image):.2f} dB")
    return EXIT_OK


register_subcommand("train-autoencoder", "train the built-in autoencoder of the editing nodes on a folder of photos",
                    _train_autoencoder_arguments, _train_autoencoder_command)
