"""Flow files: FlowSet <-> safetensors, single fields <-> Middlebury `.flo`."""
import json
from pathlib import Path

import numpy as np
import torch
from safetensors import SafetensorError, safe_open

from ..flow.field import FlowSet
from .weights import replace_atomically, save_safetensors

FLO_MAGIC = 202021.25


def _check_finite(flow, what):
    if not torch.isfinite(flow).all():
        raise ValueError(f"{what} contains NaN or Inf values; refusing to save a corrupt flow file.")


def save_flowset(path, flows):
    """Write a FlowSet to `path` (.safetensors): fields as float32, pairs and frame count as metadata."""
    _check_finite(flows.forward, "forward flow")
    tensors = {"forward": flows.forward.float().contiguous()}
    if flows.backward is not None:
        _check_finite(flows.backward, "backward flow")
        tensors["backward"] = flows.backward.float().contiguous()
    metadata = {"format": "tame_flow", "pairs": json.dumps(flows.pairs),
                "num_frames": str(flows.num_frames), "source_size": json.dumps(list(flows.source_size))}
    return save_safetensors(tensors, path, metadata)


def load_flowset(path):
    """Read a FlowSet written by `save_flowset`."""
    path = Path(path)
    try:
        with safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata() or {}
            keys = set(handle.keys())
            if metadata.get("format") != "tame_flow" or "forward" not in keys:
                raise ValueError(
                    f"{path.name} is a safetensors file but not a Tame flow file (no 'forward' field "
                    f"with tame_flow metadata). Save flows with the TameSaveFlow node.")
            forward = handle.get_tensor("forward")
            backward = handle.get_tensor("backward") if "backward" in keys else None
    except (OSError, RuntimeError, SafetensorError) as err:
        raise ValueError(f"{path.name} is not a readable safetensors file: {err}") from err
    pairs = [tuple(p) for p in json.loads(metadata["pairs"])]
    source_size = json.loads(metadata["source_size"]) if "source_size" in metadata else None
    return FlowSet(forward, backward, pairs, int(metadata["num_frames"]), source_size)


def write_flo(path, flow):
    """Write one field `[2,H,W]` (pixels) as a Middlebury .flo file."""
    if flow.ndim != 3 or flow.shape[0] != 2:
        raise ValueError(f".flo holds one field [2,H,W], got {tuple(flow.shape)}")
    _check_finite(flow, "flow")
    height, width = flow.shape[1:]
    data = flow.detach().float().cpu().permute(1, 2, 0).numpy().astype("<f4")

    def write(tmp):
        with open(tmp, "wb") as handle:
            np.array([FLO_MAGIC], "<f4").tofile(handle)
            np.array([width, height], "<i4").tofile(handle)
            data.tofile(handle)

    return replace_atomically(write, path)


def read_flo(path):
    """Read a Middlebury .flo file -> `[2,H,W]` float32 pixels."""
    path = Path(path)
    raw = path.read_bytes()
    if len(raw) < 12:
        raise ValueError(f"{path.name} is too short ({len(raw)} bytes) to be a .flo file; it is truncated.")
    if np.frombuffer(raw[:4], "<f4")[0] != FLO_MAGIC:
        raise ValueError(f"{path.name} is not a .flo file (missing the 'PIEH' magic number).")
    width, height = np.frombuffer(raw[4:12], "<i4")
    expected = 12 + int(width) * int(height) * 8
    if width <= 0 or height <= 0 or len(raw) != expected:
        raise ValueError(
            f"{path.name}: header says {width}x{height} but the file has {len(raw)} bytes "
            f"(expected {expected}); the file is truncated or corrupt.")
    data = np.frombuffer(raw[12:], "<f4").reshape(int(height), int(width), 2)
    return torch.from_numpy(data.copy()).permute(2, 0, 1)


def save_flo_sequence(folder, flows):
    """Write each pair's forward (and backward) field as `pair_00000_forward.flo` etc. into `folder`."""
    folder = Path(folder)
    written = []
    for i in range(flows.forward.shape[0]):
        written.append(write_flo(folder / f"pair_{i:05d}_forward.flo", flows.forward[i]))
        if flows.backward is not None:
            written.append(write_flo(folder / f"pair_{i:05d}_backward.flo", flows.backward[i]))
    return written


def load_flo_sequence(path):
    """A .flo file, or a folder of them (sorted; `*_backward.flo` paired with `*_forward.flo`)
    -> FlowSet of consecutive pairs."""
    path = Path(path)
    if path.is_file():
        return FlowSet(read_flo(path)[None])
    forward_files = sorted(p for p in path.glob("*.flo") if not p.stem.endswith("_backward"))
    if not forward_files:
        raise ValueError(f"No .flo files in folder {path}.")
    forward = torch.stack([read_flo(p) for p in forward_files])
    backward_files = [p.with_name(p.name.replace("_forward.flo", "_backward.flo")) for p in forward_files]
    backward = None
    if all(p.is_file() and p.name.endswith("_backward.flo") for p in backward_files):
        backward = torch.stack([read_flo(p) for p in backward_files])
    return FlowSet(forward, backward)
