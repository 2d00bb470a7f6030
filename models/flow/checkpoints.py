"""Build RAFT / SpyNet from published checkpoints, and convert `.pth` checkpoints to safetensors.

Accepted layouts (detected from the keys, whatever the file is called):
- `raft_large`, `raft_small`: torchvision's `raft_large` / `raft_small` state dicts, e.g.
  raft_large_C_T_SKHT_V2-ff5fadd5.pth, raft_small_C_T_V2-01064c6d.pth.
- `spynet`: BasicSR's SpyNet (`basic_module.N.basic_module.K.weight`, e.g. spynet_sintel_final-3d2a1287.pth)
  or MMagic's SPyNet (`basic_module.N.basic_module.J.conv.weight`, e.g. spynet_20210409-c6c1bd09.pth).
  A whole BasicVSR / BasicVSR++ / IconVSR checkpoint also works: its `spynet.` part is used.
  (TOFlow's SPyNet in MMagic, 4 levels with batch norm, is a different network and is refused.)

Wrappers are removed first: a container entry ('params_ema' preferred, then 'params', 'state_dict',
'model') and any key prefix in front of the network ('module.', 'generator.spynet.', 'spynet.', ...).
The original princeton-vl RAFT files (`fnet.*`, `cnet.*` keys) are a different layout; use torchvision's.

Typical use (the nodes layer reads the file with `host.load_state_dict`):

    module, kind = build_from_state_dict(load_state_dict(path))

Conversion (exposed on the command line as `tame convert-weights SRC [DST]`):

    convert_to_safetensors("raft_large_C_T_SKHT_V2-ff5fadd5.pth")  # writes ...-ff5fadd5.safetensors
"""
from collections.abc import Mapping
from pathlib import Path

import torch

from ..io.weights import save_safetensors
from .raft import raft_large, raft_small
from .spynet import SpyNet

BUILDERS = {"raft_large": raft_large, "raft_small": raft_small, "spynet": SpyNet}
CONTAINER_KEYS = ("params_ema", "params", "state_dict", "model")
RAFT_ANCHOR = "feature_encoder.convnormrelu.0.weight"
RAFT_STEM_WIDTHS = {64: "raft_large", 32: "raft_small"}
SPYNET_ANCHOR = "basic_module.0.basic_module.0.weight"
SPYNET_MMAGIC_ANCHOR = "basic_module.0.basic_module.0.conv.weight"
OPTIONAL_BUFFERS = ("num_batches_tracked", "mean", "std")  # filled from the module when a file lacks them
LISTED_KEYS = 8


def unwrap_checkpoint(checkpoint):
    """The tensor dict inside a loaded checkpoint, and the container key it came from ('' if none).

    Descends into 'params_ema' / 'params' / 'state_dict' / 'model' (first present) while the level
    holds no tensors; nested dicts of tensors are flattened with dotted names; other entries are dropped.
    """
    if not isinstance(checkpoint, Mapping):
        raise ValueError(f"A checkpoint must be a dict of tensors, got {type(checkpoint).__name__}.")
    container = []
    while not any(isinstance(v, torch.Tensor) for v in checkpoint.values()):
        key = next((k for k in CONTAINER_KEYS if isinstance(checkpoint.get(k), Mapping)), None)
        if key is None:
            break
        container.append(key)
        checkpoint = checkpoint[key]
    tensors = _flatten_tensors(checkpoint)
    if not tensors:
        raise ValueError(f"The checkpoint holds no tensors (top-level entries: {_listing(checkpoint)}).")
    return tensors, "/".join(container)


def _flatten_tensors(mapping, prefix=""):
    flat = {}
    for key, value in mapping.items():
        if isinstance(value, torch.Tensor):
            flat[prefix + str(key)] = value
        elif isinstance(value, Mapping):
            flat.update(_flatten_tensors(value, f"{prefix}{key}."))
    return flat


def detect_flow_network(state_dict):
    """(kind, prefix, layout) of the flow network in a flat state dict, or None if there is none.

    kind: 'raft_large' | 'raft_small' | 'spynet', or None for a torchvision-RAFT-like layout of unknown
    width; prefix: what precedes the network's own key names ('' for a bare checkpoint); layout:
    'torchvision' | 'basicsr' | 'mmagic'. When several prefixes qualify the shortest wins.
    """
    found = []
    for key, tensor in state_dict.items():
        for anchor, layout in ((RAFT_ANCHOR, "torchvision"), (SPYNET_ANCHOR, "basicsr"),
                               (SPYNET_MMAGIC_ANCHOR, "mmagic")):
            prefix = key[:-len(anchor)]
            if key.endswith(anchor) and (prefix == "" or prefix.endswith(".")):
                width = tensor.shape[0] if tensor.ndim else None
                kind = RAFT_STEM_WIDTHS.get(width) if layout == "torchvision" else "spynet"
                found.append((len(prefix), kind, prefix, layout))
    if not found:
        return None
    return min(found, key=lambda entry: entry[0])[1:]


def _mmagic_to_basicsr(name):
    """'basic_module.N.basic_module.J.conv.P' -> 'basic_module.N.basic_module.{2J}.P'."""
    parts = name.split(".")
    if len(parts) == 6 and parts[4] == "conv":
        return ".".join(parts[:3] + [str(2 * int(parts[3])), parts[5]])
    return name


def _network_state_dict(state_dict):
    """(kind, state dict with the network's own key names) from a flat checkpoint dict."""
    detected = detect_flow_network(state_dict)
    if detected is None:
        raise ValueError(_unknown_layout_message(state_dict))
    kind, prefix, layout = detected
    if kind is None:
        stem = state_dict[prefix + RAFT_ANCHOR]
        raise ValueError(f"'{prefix}{RAFT_ANCHOR}' has shape {list(stem.shape)}; torchvision's raft_large "
                         f"has 64 output channels there and raft_small 32. This is not a known RAFT.")
    own = {key[len(prefix):]: value for key, value in state_dict.items() if key.startswith(prefix)}
    if layout == "mmagic":
        own = {_mmagic_to_basicsr(key): value for key, value in own.items()}
    return kind, own


def _unknown_layout_message(state_dict):
    keys = list(state_dict)
    if any(k.endswith("fnet.conv1.weight") for k in keys):
        return ("This is the original princeton-vl RAFT layout (fnet/cnet/update_block keys), which Tame does "
                "not read. Use torchvision's RAFT checkpoints (raft_large_C_T_SKHT_V2-ff5fadd5.pth or "
                "raft_small_C_T_V2-01064c6d.pth), converted with `tame convert-weights`.")
    return (f"Not a RAFT or SpyNet checkpoint: found none of '{RAFT_ANCHOR}' (torchvision RAFT), "
            f"'{SPYNET_ANCHOR}' (BasicSR SpyNet) or '{SPYNET_MMAGIC_ANCHOR}' (MMagic SPyNet), with or without "
            f"a prefix. The file has {len(keys)} keys: {_listing(keys)}.")


def _listing(names, limit=LISTED_KEYS):
    names = [str(n) for n in names]
    shown = ", ".join(names[:limit])
    return shown + (f", ... (+{len(names) - limit} more)" if len(names) > limit else "")


def _check_fit(kind, module_state, weights):
    """Raise ValueError listing missing, unexpected and wrongly shaped keys, if any."""
    missing = [k for k in module_state if k not in weights]
    unexpected = [k for k in weights if k not in module_state]
    mismatched = [f"{k} (file {list(weights[k].shape)}, model {list(module_state[k].shape)})"
                  for k in module_state if k in weights and weights[k].shape != module_state[k].shape]
    problems = [f"{len(names)} {what}: {_listing(names)}" for what, names in
                (("missing keys", missing), ("unexpected keys", unexpected), ("shape mismatches", mismatched))
                if names]
    if problems:
        raise ValueError(f"The weights do not fit {kind}: " + "; ".join(problems) + ". Use an unmodified "
                         "torchvision RAFT or BasicSR/MMagic SpyNet checkpoint (see models/flow/checkpoints.py).")


def build_from_state_dict(state_dict, kind=None):
    """An eval-mode flow network with the checkpoint's weights, and its kind.

    state_dict: a loaded checkpoint (e.g. `load_state_dict(path)`), wrapped or not (see module doc).
    kind: None to detect, or 'raft_large' / 'raft_small' / 'spynet' to insist on one.
    Returns `(module, kind)`; the module is float32 on the CPU. Raises ValueError naming the missing,
    unexpected or mis-shaped keys when the weights do not fit.
    """
    if kind is not None and kind not in BUILDERS:
        raise ValueError(f"unknown flow network '{kind}' (use one of {', '.join(BUILDERS)})")
    detected, weights = _network_state_dict(unwrap_checkpoint(state_dict)[0])
    if kind is not None and kind != detected:
        raise ValueError(f"The checkpoint holds {detected} weights, but {kind} was requested.")
    module = BUILDERS[detected]()
    module_state = module.state_dict()
    for key, default in module_state.items():
        if key not in weights and key.rsplit(".", 1)[-1] in OPTIONAL_BUFFERS:
            weights[key] = default
    _check_fit(detected, module_state, weights)
    module.load_state_dict(weights, strict=True)
    return module.eval(), detected


def convert_to_safetensors(src_path, dst_path=None, overwrite=False):
    """Convert a pickle checkpoint (.pth/.pt/.ckpt/.bin) to a .safetensors file; returns the new path.

    src_path: read with `torch.load(weights_only=True)`, so no code in the file runs; files that need
        arbitrary unpickling are refused with ValueError.
    dst_path: default: src_path with the suffix `.safetensors`. An existing file is replaced only with
        `overwrite=True` (FileExistsError otherwise). Written atomically.
    The container ('params_ema' / 'params' / 'state_dict' / 'model') is unwrapped, non-tensor entries
    (optimizer state, meta) are dropped, key names are kept unchanged (prefixes included, so a whole
    BasicVSR checkpoint stays usable by other loaders). Metadata records the source file name, the
    container and the detected flow architecture ('raft_large' / 'raft_small' / 'spynet' / 'unknown').
    """
    src = Path(src_path)
    if not src.is_file():
        raise FileNotFoundError(f"Checkpoint {src.name} not found in {src.parent}.")
    if src.suffix.lower() in (".safetensors", ".sft"):
        raise ValueError(f"{src.name} is already a safetensors file; nothing to convert.")
    dst = Path(dst_path) if dst_path is not None else src.with_suffix(".safetensors")
    if dst.exists() and not overwrite:
        raise FileExistsError(f"{dst} already exists; remove it or pass overwrite=True.")
    try:
        checkpoint = torch.load(str(src), map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises UnpicklingError, RuntimeError, ... for unreadable files
        raise ValueError(f"{src.name} cannot be read safely with torch.load(weights_only=True): {err}") from err
    tensors, container = unwrap_checkpoint(checkpoint)
    detected = detect_flow_network(tensors)
    metadata = {"format": "pt", "source": src.name, "container": container,
                "architecture": (detected and detected[0]) or "unknown"}
    # clone: safetensors refuses tensors that share storage (tied or sliced weights)
    tensors = {name: t.detach().cpu().contiguous().clone() for name, t in tensors.items()}
    return save_safetensors(tensors, dst, metadata)
