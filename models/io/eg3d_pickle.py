"""Read EG3D / StyleGAN2 network pickles (`.pkl`) without executing any of their code.

An EG3D checkpoint is `pickle.dump({'G', 'D', 'G_ema', ...})`. Its networks are reduced to
`torch_utils.persistence._reconstruct_persistent_obj(meta)`, where `meta` carries the full source of
the defining module (`module_src`), which a normal unpickler `exec`s. Here a restricted unpickler
resolves only a whitelist of globals: persistent objects and EG3D/torch module classes become inert
stubs that keep their class name and saved state (the source is never run), tensors are rebuilt by
torch's own functions (storages read with `torch.load(weights_only=True)`), and anything else is
refused. The generator (`G_ema`, else `G`) is then flattened into a state dict with EG3D's dotted
names plus its constructor config; `load_strictly` loads such a state dict with every name checked.
"""
import builtins
import collections
import io
import pickle
from pathlib import Path

import torch

CODE_PREFIXES = ("training.", "torch_utils.", "dnnlib.", "torch.nn.modules.")
GENERATOR_KEYS = ("G_ema", "G")
FILTER_BUFFER = "resample_filter"
SAFE_BUILTINS = frozenset({"set", "frozenset", "slice", "complex", "bytearray", "range", "tuple", "list", "dict"})
TENSOR_REBUILDERS = {
    ("torch._utils", "_rebuild_tensor"),
    ("torch._utils", "_rebuild_tensor_v2"),
    ("torch._utils", "_rebuild_parameter"),
    ("torch._utils", "_rebuild_parameter_with_state"),
    ("torch._tensor", "_rebuild_from_type_v2"),
}
TENSOR_CLASSES = {("torch", "Tensor"), ("torch.nn.parameter", "Parameter"), ("torch._tensor", "Tensor")}
NUMPY_MODULES = ("numpy.core.multiarray", "numpy._core.multiarray")
NUMPY_NAMES = {"_reconstruct", "scalar"}
NUMPY_CLASSES = {("numpy", "ndarray"), ("numpy", "dtype")}


class ForbiddenClassError(ValueError):
    """The pickle names a global outside the whitelist (not an EG3D checkpoint, or tampered with)."""


class PickledObject:
    """Inert stand-in for a pickled EG3D/torch object: `class_name` and its saved `state` (a dict)."""
    class_name = "?"

    def __init__(self, *args, **kwargs):
        self.state = {}
        self.args = args

    def __setstate__(self, state):
        # objects with __slots__ pickle (dict, slots); only the dict matters here
        if isinstance(state, tuple) and len(state) == 2:
            state = state[0]
        self.state = dict(state) if isinstance(state, dict) else {"state": state}

    def __repr__(self):
        return f"PickledObject({self.class_name})"


class EasyDict(dict):
    """`dnnlib.util.EasyDict` replacement: a dict (attribute access is not needed here)."""


def _persistent_object(meta):
    """Replacement for `_reconstruct_persistent_obj`: keep class name and state, never run module_src."""
    if not isinstance(meta, dict) or meta.get("type") != "class" or "state" not in meta:
        raise ForbiddenClassError("the persistent-object record is malformed: this file is not an EG3D "
                                  "checkpoint (or has been tampered with).")
    stub = PickledObject()
    stub.class_name = str(meta.get("class_name", "?"))
    stub.__setstate__(meta["state"])
    return stub


def _storage_from_bytes(data):
    """Replacement for `torch.storage._load_from_bytes`: torch's own safe loader."""
    return torch.load(io.BytesIO(data), weights_only=True)


_STUB_CLASSES = {}


def _stub_class(module, name):
    """A PickledObject subclass named after `module.name` (one per name, so pickle can instantiate it)."""
    key = f"{module}.{name}"
    if key not in _STUB_CLASSES:
        _STUB_CLASSES[key] = type(name, (PickledObject,), {"class_name": key})
    return _STUB_CLASSES[key]


class RestrictedUnpickler(pickle.Unpickler):
    """Resolves only whitelisted globals; raises ForbiddenClassError for anything else."""

    def find_class(self, module, name):
        if (module, name) == ("torch_utils.persistence", "_reconstruct_persistent_obj"):
            return _persistent_object
        if (module, name) == ("dnnlib.util", "EasyDict"):
            return EasyDict
        if (module, name) == ("torch.storage", "_load_from_bytes"):
            return _storage_from_bytes
        if (module, name) == ("collections", "OrderedDict"):
            return collections.OrderedDict
        if module == "builtins" and name in SAFE_BUILTINS:
            return getattr(builtins, name)
        if (module, name) in TENSOR_REBUILDERS or (module, name) in TENSOR_CLASSES:
            return super().find_class(module, name)
        if module == "torch" and (name.endswith("Storage") or isinstance(getattr(torch, name, None), torch.dtype)):
            return super().find_class(module, name)
        if (module in NUMPY_MODULES and name in NUMPY_NAMES) or (module, name) in NUMPY_CLASSES:
            return super().find_class(module, name)
        if module.startswith(CODE_PREFIXES) or module in ("training", "torch_utils", "dnnlib"):
            return _stub_class(module, name)
        raise ForbiddenClassError(f"the EG3D loader refuses to load class {module}.{name}: this file is not an "
                                  f"EG3D checkpoint (or has been tampered with).")


def read_network_pickle(path):
    """Unpickle `path` with the RestrictedUnpickler -> the root object (a dict for EG3D files)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"Checkpoint {path.name} not found in {path.parent}.")
    try:
        with path.open("rb") as handle:
            return RestrictedUnpickler(handle).load()
    except ForbiddenClassError as err:
        raise ForbiddenClassError(f"{path.name} (in {path.parent}): {err}") from None
    except Exception as err:  # truncation and corruption surface as many exception types
        raise ValueError(f"{path.name} (in {path.parent}) is not a readable EG3D/StyleGAN2 checkpoint "
                         f"({type(err).__name__}: {err}); the file may be truncated or corrupt — download "
                         f"it again.") from err


def _tensor(value, name):
    if not isinstance(value, torch.Tensor):
        raise ValueError(f"checkpoint entry {name} is a {type(value).__name__}, not a tensor.")
    return value.detach()


def flatten_state(stub, prefix=""):
    """`_parameters`, persistent `_buffers` and `_modules` of a stub tree -> {dotted name: tensor}."""
    state = stub.state
    skipped = set(state.get("_non_persistent_buffers_set") or ())
    tensors = {}
    for name, value in (state.get("_parameters") or {}).items():
        if value is not None:
            tensors[prefix + name] = _tensor(value, prefix + name)
    for name, value in (state.get("_buffers") or {}).items():
        if value is not None and name not in skipped:
            tensors[prefix + name] = _tensor(value, prefix + name)
    for name, child in (state.get("_modules") or {}).items():
        if isinstance(child, PickledObject):
            tensors.update(flatten_state(child, f"{prefix}{name}."))
    return tensors


def plain(value):
    """Config values as plain Python: dicts (EasyDict included) and lists, recursively."""
    if isinstance(value, dict):
        return {str(key): plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(item) for item in value]
    return value


def _generator_config(stub):
    state = stub.state
    config = plain(state.get("_init_kwargs") or {})
    if state.get("_init_args"):
        raise ValueError(f"the generator ({stub.class_name}) was built with positional arguments; only "
                         f"keyword-configured EG3D/StyleGAN2 networks are supported.")
    for name in ("rendering_kwargs", "neural_rendering_resolution"):
        if name in state:
            config[name] = plain(state[name])
    config["class_name"] = stub.class_name
    return config


def load_eg3d_pickle(path):
    """EG3D (or StyleGAN2-ADA/3) network pickle -> (config, state_dict) of its generator.

    Picks `G_ema` (else `G`). config: the constructor `_init_kwargs` plus `rendering_kwargs`,
    `neural_rendering_resolution` (EG3D) and `class_name`; state_dict: {dotted name: tensor} on the CPU
    (`backbone.mapping.fc0.weight`, `decoder.net.0.weight`, ...). No code from the file is executed.
    Raises FileNotFoundError (missing file) or ValueError (corrupt, foreign or tampered file).
    """
    path = Path(path)
    root = read_network_pickle(path)
    generator = None
    if isinstance(root, dict):
        generator = next((root[key] for key in GENERATOR_KEYS if isinstance(root.get(key), PickledObject)), None)
    if generator is None:
        found = sorted(map(str, root)) if isinstance(root, dict) else type(root).__name__
        raise ValueError(f"{path.name} (in {path.parent}) holds no generator network (G_ema or G); found "
                         f"{found}. Use an EG3D/StyleGAN2 network pickle such as ffhqrebalanced512-128.pkl.")
    return _generator_config(generator), flatten_state(generator)


def _fixed_filters(state_dict, expected):
    """Reconcile `resample_filter` buffers (the constant [1,3,3,1] FIR kernel, never trained): EG3D
    versions differ in which modules store one, so copies of the expected kernel may be absent or extra."""
    kernel = next((tensor for name, tensor in expected.items() if name.endswith(FILTER_BUFFER)), None)
    matched = {name: tensor for name, tensor in state_dict.items()
               if name in expected or not (name.endswith(FILTER_BUFFER) and kernel is not None
                                           and tensor.shape == kernel.shape and torch.allclose(tensor, kernel))}
    matched.update({name: tensor for name, tensor in expected.items()
                    if name.endswith(FILTER_BUFFER) and name not in matched})
    return matched


def load_strictly(model, state_dict, listed=8):
    """`model.load_state_dict(state_dict)` with every name and shape checked first (constant FIR
    filter buffers excepted, see _fixed_filters); the ValueError lists up to `listed` missing,
    unexpected and mis-shaped entries."""
    expected = model.state_dict()
    state_dict = _fixed_filters(state_dict, expected)
    missing = sorted(set(expected) - set(state_dict))
    unexpected = sorted(set(state_dict) - set(expected))
    reshaped = sorted(f"{name} {tuple(state_dict[name].shape)} != {tuple(tensor.shape)}"
                      for name, tensor in expected.items()
                      if name in state_dict and state_dict[name].shape != tensor.shape)
    if missing or unexpected or reshaped:
        parts = [f"{label} ({len(names)}): {', '.join(names[:listed])}{' ...' if len(names) > listed else ''}"
                 for label, names in (("missing", missing), ("unexpected", unexpected), ("wrong shape", reshaped))
                 if names]
        raise ValueError("weights do not match the generator architecture: " + "; ".join(parts) + ".")
    model.load_state_dict(state_dict)


def naming_file(path, build):
    """`build()`, with any ValueError it raises prefixed by the file name and folder of `path`."""
    try:
        return build()
    except ValueError as err:
        raise ValueError(f"{Path(path).name} (in {Path(path).parent}): {err}") from err
