"""Deterministic stand-in weights for the learned-flow fixtures (RAFT, SpyNet).

Both the fixture generator (run once against the reference implementations) and the tests rebuild
the same weights from key names and shapes alone, so no weight file is committed.

Recipe, for the key at position i of the sorted key list, with `torch.Generator().manual_seed(1000 + i)`:
- integer tensors (BatchNorm `num_batches_tracked`): 0
- `running_mean`: 0.1 * randn;  `running_var`: 1 + 0.1 * rand
- keys named `mean` / `std` of shape [1,3,1,1] (SpyNet's normalisation buffers): ImageNet mean / std
- tensors with >= 2 dims (convolutions): randn * GAIN / sqrt(fan_in), fan_in = prod(shape[1:])
- other 1-D `weight` (norm scales): 1 + 0.1 * randn;  every other tensor (biases): 0.1 * randn
Only torch is needed, so this file also runs inside the reference environment.
"""
import math

import torch

SEED_BASE = 1000
GAIN = 1.0
IMAGENET = {"mean": (0.485, 0.456, 0.406), "std": (0.229, 0.224, 0.225)}


def recipe_tensor(index, name, shape, dtype=torch.float32):
    """The recipe value of key `name` at sorted position `index` with `shape`."""
    generator = torch.Generator().manual_seed(SEED_BASE + index)
    leaf = name.rsplit(".", 1)[-1]
    shape = tuple(shape)
    if not dtype.is_floating_point:
        return torch.zeros(shape, dtype=dtype)
    if leaf == "running_mean":
        return 0.1 * torch.randn(shape, generator=generator)
    if leaf == "running_var":
        return 1 + 0.1 * torch.rand(shape, generator=generator)
    if leaf in IMAGENET and shape == (1, 3, 1, 1):
        return torch.tensor(IMAGENET[leaf]).view(shape)
    if len(shape) >= 2:
        return torch.randn(shape, generator=generator) * GAIN / math.sqrt(math.prod(shape[1:]))
    if leaf == "weight":
        return 1 + 0.1 * torch.randn(shape, generator=generator)
    return 0.1 * torch.randn(shape, generator=generator)


def recipe_state_dict(layout):
    """layout: {name: (shape, dtype)} -> {name: tensor} following the recipe."""
    return {name: recipe_tensor(index, name, *layout[name]) for index, name in enumerate(sorted(layout))}


def layout_of(state_dict):
    """{name: (shape, dtype)} of a state dict."""
    return {name: (tuple(t.shape), t.dtype) for name, t in state_dict.items()}


def layout_from_json(entries):
    """{name: {"shape": [...], "dtype": "float32"}} (the key fixture) -> {name: (shape, dtype)}."""
    return {name: (tuple(e["shape"]), getattr(torch, e["dtype"])) for name, e in entries.items()}


def recipe_checksums(state_dict):
    """float64 `[K]`: the sum of every tensor in sorted key order (detects a drifting RNG)."""
    return torch.tensor([state_dict[name].double().sum().item() for name in sorted(state_dict)],
                        dtype=torch.float64)
