"""Training state files for resume: network, discriminator and optimiser states + step in one safetensors file.
"""
import json
from dataclasses import asdict

import torch

from ..io.weights import load_state_dict, read_safetensors_metadata, save_safetensors

STATE_FILE = "training_state.safetensors"


STATE_FORMAT = "tame_vsr_train/1"


# ---------------------------------------------------------------- checkpoints
def _optimizer_entries(prefix, optimizer):
    state = optimizer.state_dict()
    tensors = {f"{prefix}/{index}/{key}": torch.as_tensor(value).detach().cpu().contiguous()
               for index, entries in state["state"].items() for key, value in entries.items()}
    return tensors, json.dumps(state["param_groups"])


def _entries(tensors, prefix):
    """The tensors stored under `prefix/` with that prefix removed."""
    return {key[len(prefix) + 1:]: value for key, value in tensors.items() if key.startswith(prefix + "/")}


def _optimizer_state(tensors, prefix, groups_json):
    state = {}
    for key, value in _entries(tensors, prefix).items():
        index, name = key.split("/", 1)
        state.setdefault(int(index), {})[name] = value
    return {"state": state, "param_groups": json.loads(groups_json)}


def save_training_state(path, step, net, optimizer, config, discriminator=None, d_optimizer=None):
    """Write everything `resume` needs to one safetensors file (tensors + JSON metadata)."""
    tensors = {f"net/{k}": v.detach().cpu().contiguous() for k, v in net.state_dict().items()}
    optimizer_tensors, groups = _optimizer_entries("optimizer", optimizer)
    tensors.update(optimizer_tensors)
    metadata = {"format": STATE_FORMAT, "step": str(step), "net_config": json.dumps(net.config, sort_keys=True),
                "train_config": json.dumps(asdict(config), sort_keys=True), "optimizer_groups": groups}
    if discriminator is not None:
        tensors.update({f"discriminator/{k}": v.detach().cpu().contiguous()
                        for k, v in discriminator.state_dict().items()})
        d_tensors, d_groups = _optimizer_entries("d_optimizer", d_optimizer)
        tensors.update(d_tensors)
        metadata["d_optimizer_groups"] = d_groups
    save_safetensors(tensors, path, metadata)


def load_training_state(path):
    """Read a `save_training_state` file -> dict with step, net_config, net, optimizer and (when the run
    had a GAN) discriminator and d_optimizer state dicts."""
    metadata = read_safetensors_metadata(path)
    if metadata.get("format") != STATE_FORMAT:
        raise ValueError(f"'{path}' is not a Tame VSR training state (format "
                         f"{metadata.get('format')!r}); resume needs the {STATE_FILE} of a run.")
    tensors = load_state_dict(path)
    state = {"step": int(metadata["step"]), "net_config": json.loads(metadata["net_config"]),
             "net": _entries(tensors, "net"),
             "optimizer": _optimizer_state(tensors, "optimizer", metadata["optimizer_groups"])}
    if "d_optimizer_groups" in metadata:
        state["discriminator"] = _entries(tensors, "discriminator")
        state["d_optimizer"] = _optimizer_state(tensors, "d_optimizer", metadata["d_optimizer_groups"])
    return state
