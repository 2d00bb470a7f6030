"""TameVSRNet weight files: safetensors whose metadata holds the constructor config as JSON, and the
`TAME_VSR_MODEL` payload."""
import inspect
import json
from dataclasses import dataclass
from pathlib import Path

import torch

from ..io.weights import save_safetensors
from .arch import SUPPORTED_SCALES, TameVSRNet

FORMAT = "tame_vsr/1"
FORMAT_KEY = "format"
CONFIG_KEY = "tame_vsr_config"


@dataclass
class VSRModel:
    """The `TAME_VSR_MODEL` payload: a TameVSRNet in eval mode on its device, and a display name."""
    net: TameVSRNet
    name: str

    @property
    def scale(self):
        return self.net.scale

    @property
    def device(self):
        return next(self.net.parameters()).device

    def __repr__(self):
        return f"VSRModel({self.name}, {self.scale}x, {self.device})"


def save_vsr_weights(model, path, dtype=torch.float32, metadata=None):
    """Write `model`'s weights to `path` (.safetensors) with its config in the metadata.

    dtype: storage type (float16 halves the file; loading converts back to float32).
    metadata: extra `{str: str}` entries (e.g. what data trained it).
    """
    path = Path(path)
    if path.suffix.lower() != ".safetensors":
        raise ValueError(f"VSR weights are saved as .safetensors, got '{path.name}'.")
    tensors = {name: value.detach().to("cpu", dtype).contiguous() for name, value in model.state_dict().items()}
    entries = {str(k): str(v) for k, v in (metadata or {}).items()}
    entries.update({FORMAT_KEY: FORMAT, CONFIG_KEY: json.dumps(model.config, sort_keys=True)})
    return save_safetensors(tensors, path, entries)


def _config_from(metadata):
    if not metadata or CONFIG_KEY not in metadata:
        raise ValueError("These weights carry no Tame VSR configuration (metadata key "
                         f"'{CONFIG_KEY}'). Use a .safetensors file written by save_vsr_weights or the "
                         "Tame VSR training command.")
    try:
        config = json.loads(metadata[CONFIG_KEY])
    except json.JSONDecodeError as err:
        raise ValueError(f"The VSR configuration in the weight metadata is not valid JSON ({err}).") from err
    known = set(inspect.signature(TameVSRNet.__init__).parameters) - {"self"}
    unknown = sorted(set(config) - known)
    if unknown:
        raise ValueError(f"The VSR weights use settings this version of Tame does not know: {unknown}. "
                         f"Update Tame or use weights trained with this version.")
    return config


def check_scale(weights_scale, wanted):
    """ValueError unless the weights' scale equals the `wanted` one (None accepts any)."""
    if wanted is not None and int(wanted) != weights_scale:
        raise ValueError(f"These weights are {weights_scale}x; choose scale {weights_scale} or load "
                         f"{int(wanted)}x weights.")


def load_vsr_weights(state_dict, metadata, scale=None):
    """Build a TameVSRNet from the config in `metadata` and load `state_dict` into it.

    scale: the scale the caller wants; None accepts the weights' own. Returns the network in eval
    mode, float32, on the CPU. ValueError for a missing/invalid config, a scale mismatch or weights
    that do not fit the config.
    """
    config = _config_from(metadata)
    weights_scale = config.get("scale")
    if weights_scale not in SUPPORTED_SCALES:
        raise ValueError(f"These weights are for scale {weights_scale!r}; Tame supports {SUPPORTED_SCALES}.")
    check_scale(weights_scale, scale)
    net = TameVSRNet(**config)
    expected = net.state_dict()
    missing = sorted(set(expected) - set(state_dict))
    unexpected = sorted(set(state_dict) - set(expected))
    if missing or unexpected:
        raise ValueError(f"The weights do not match their configuration: missing {missing[:5]}, "
                         f"unexpected {unexpected[:5]} ({len(missing)} missing, {len(unexpected)} "
                         f"unexpected). The file is damaged or was edited.")
    for name, value in state_dict.items():
        if value.shape != expected[name].shape:
            raise ValueError(f"Weight '{name}' has shape {tuple(value.shape)} but the configuration needs "
                             f"{tuple(expected[name].shape)}. The file is damaged or was edited.")
    net.load_state_dict({name: value.float() for name, value in state_dict.items()})
    return net.eval()
