"""The one module that talks to ComfyUI.

Progress and cancellation, the torch device, model folders, input/output folders and safe weight
loading. When ComfyUI is not importable (tests, the `tame` command line) every function degrades to
plain behaviour: progress goes to a handler the caller installs, cancellation to `request_cancel()`,
folders to environment variables or the working directory.
"""
import os
import re
import threading
from pathlib import Path

import torch

from ..models.io.weights import PICKLE_SUFFIXES, SAFE_SUFFIXES

try:  # ComfyUI present
    import comfy.model_management as _mm
    import comfy.utils as _cu
    import folder_paths
except ImportError:  # headless: tests, command line
    folder_paths = None
    _mm = None
    _cu = None

MODEL_KINDS = ("flow", "vsr", "generator", "lpips", "triplane")

_cancel = threading.Event()
_progress_handler = None


class Cancelled(RuntimeError):
    """Raised inside a long loop when the user asked to stop (headless mode)."""


def in_comfyui():
    return folder_paths is not None


# ---------------------------------------------------------------- progress and cancellation
def request_cancel():
    """Ask every running loop to stop at its next progress report (headless mode)."""
    _cancel.set()


def clear_cancel():
    _cancel.clear()


def set_progress_handler(handler):
    """Install `handler(label, done, total)` for headless progress (None removes it)."""
    global _progress_handler
    _progress_handler = handler


def check_cancelled():
    """Raise if the user interrupted: ComfyUI's interrupt exception, or `Cancelled` headless."""
    if _mm is not None:
        _mm.throw_exception_if_processing_interrupted()
    if _cancel.is_set():
        raise Cancelled("cancelled by the user")


def progress(total, label="Tame"):
    """Return `report(done, total=None)` for a loop of `total` steps.

    Each call updates ComfyUI's progress bar (whose hook is also the cancel point) or the headless
    handler, then raises if the user cancelled. Models take this callable as their `progress`.
    """
    bar = _cu.ProgressBar(total) if _cu is not None else None

    def report(done, new_total=None):
        steps = new_total or total
        if bar is not None:
            bar.update_absolute(done, steps)
        elif _progress_handler is not None:
            _progress_handler(label, done, steps)
        check_cancelled()

    return report


# ---------------------------------------------------------------- device
def compute_device():
    """The torch device for heavy work: ComfyUI's choice, else $TAME_DEVICE, else CUDA/MPS/CPU."""
    if _mm is not None:
        return _mm.get_torch_device()
    if os.environ.get("TAME_DEVICE"):
        return torch.device(os.environ["TAME_DEVICE"])
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def free_device_cache():
    if _mm is not None:
        _mm.soft_empty_cache()
    elif torch.cuda.is_available():
        torch.cuda.empty_cache()


# ---------------------------------------------------------------- folders
def _headless_root(env, default):
    return Path(os.environ.get(env, default)).expanduser().resolve()


def model_folders(kind):
    """Folders searched for weights of `kind` (ComfyUI: models/tame/<kind> and extra paths)."""
    if folder_paths is not None:
        return [Path(p) for p in folder_paths.get_folder_paths(f"tame_{kind}")]
    return [_headless_root("TAME_MODELS_DIR", "models/tame") / kind]


def register_model_folders():
    """Register ComfyUI's models/tame/<kind> folders (no-op headless)."""
    if folder_paths is None:
        return
    for kind in MODEL_KINDS:
        path = os.path.join(folder_paths.models_dir, "tame", kind)
        folder_paths.add_model_folder_path(f"tame_{kind}", path, is_default=True)


def list_models(kind):
    """Weight files of `kind` in the model folders, sorted (names relative to their folder)."""
    names = set()
    for folder in model_folders(kind):
        if folder.is_dir():
            for path in folder.rglob("*"):
                if path.suffix.lower() in SAFE_SUFFIXES + PICKLE_SUFFIXES:
                    names.add(path.relative_to(folder).as_posix())
    return sorted(names)


def model_path(kind, name):
    """Absolute path of weight file `name`; a clear error naming the file and folders if missing."""
    for folder in model_folders(kind):
        candidate = folder / name
        if candidate.is_file():
            return candidate
    folders = ", ".join(str(f) for f in model_folders(kind))
    raise FileNotFoundError(
        f"Model file '{name}' was not found in {folders}. Put the file there (see the README section "
        f"'Model files'); Tame never downloads weights.")


def input_dir():
    if folder_paths is not None:
        return Path(folder_paths.get_input_directory())
    return _headless_root("TAME_INPUT_DIR", "input")


def output_dir():
    if folder_paths is not None:
        return Path(folder_paths.get_output_directory())
    return _headless_root("TAME_OUTPUT_DIR", "output")


def resolve_input_file(name):
    """An absolute path, or a file name relative to the input folder; error if it does not exist."""
    path = Path(name).expanduser()
    if not path.is_absolute():
        path = input_dir() / path
    if not path.is_file():
        raise FileNotFoundError(
            f"Input file '{name}' does not exist (looked at {path}). Give an absolute path or put the "
            f"file into the input folder {input_dir()}.")
    return path


# ---------------------------------------------------------------- weights

def numbered_output_path(filename_prefix, extension):
    """(path, subfolder) of `<prefix>_NNNNN<extension>` in the output folder, NNNNN one past the
    highest number already used with that prefix (ComfyUI's naming). Refuses to leave the folder."""
    root = output_dir().resolve()
    prefix = filename_prefix.strip().replace("\\", "/")
    if not prefix or prefix.endswith("/"):
        raise ValueError(
            f"filename_prefix {filename_prefix!r} has no file name part; use e.g. 'tame/video'.")
    folder = (root / prefix).parent.resolve()
    if folder != root and root not in folder.parents:
        raise ValueError(
            f"filename_prefix {filename_prefix!r} points outside the output folder {root}; use a "
            f"relative name without '..'.")
    folder.mkdir(parents=True, exist_ok=True)
    base = Path(prefix).name
    numbered = re.compile(rf"^{re.escape(base)}_(\d{{5,}})(\..*)?$")
    used = [int(match.group(1)) for match in map(numbered.match, (p.name for p in folder.iterdir()))
            if match]
    target = folder / f"{base}_{max(used, default=0) + 1:05d}{extension}"
    subfolder = "" if folder == root else folder.relative_to(root).as_posix()
    return target, subfolder
