"""Safe weight I/O: state dicts from safetensors (or pickles read with `weights_only=True`), the metadata
of a safetensors file, and atomic safetensors writes (no half-written file on failure)."""
import os
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file

SAFE_SUFFIXES = (".safetensors", ".sft")
PICKLE_SUFFIXES = (".pth", ".pt", ".ckpt", ".bin")


def load_state_dict(path):
    """Load a state dict on the CPU: safetensors, or a pickle checkpoint with `weights_only=True`."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"Weight file {path.name} not found in {path.parent}.")
    suffix = path.suffix.lower()
    if suffix in SAFE_SUFFIXES:
        try:
            return load_file(str(path), device="cpu")
        except (SafetensorError, OSError) as err:
            raise ValueError(f"'{path.name}' is not a readable safetensors file ({err}).") from err
    if suffix in PICKLE_SUFFIXES:
        try:
            return torch.load(str(path), map_location="cpu", weights_only=True)
        except Exception as err:  # torch raises UnpicklingError and others for unsafe files
            raise ValueError(
                f"{path.name} could not be loaded safely (weights_only=True): {err}. Convert it to "
                f".safetensors with `tame convert-weights {path.name}`.") from err
    raise ValueError(
        f"{path.name}: unsupported weight format '{suffix}'. Use .safetensors (preferred) or .pth/.pt.")


def read_safetensors_metadata(path):
    """The metadata `{str: str}` of a .safetensors file (header only); {} for other formats."""
    path = Path(path)
    if path.suffix.lower() not in SAFE_SUFFIXES:
        return {}
    try:
        with safe_open(str(path), framework="pt") as handle:
            return dict(handle.metadata() or {})
    except (SafetensorError, OSError) as err:
        raise ValueError(f"'{path.name}' is not a readable safetensors file ({err}).") from err


def replace_atomically(write, path):
    """Run `write(tmp_path)` then move the result onto `path`; no partial file on failure -> Path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.partial")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


def save_safetensors(tensors, path, metadata=None):
    """Write `{name: tensor}` (moved to the CPU, contiguous) and `{str: str}` metadata atomically -> Path."""
    tensors = {name: value.detach().cpu().contiguous() for name, value in tensors.items()}
    return replace_atomically(lambda tmp: save_file(tensors, str(tmp), metadata=metadata), path)
