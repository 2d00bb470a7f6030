"""LPIPS distance (Zhang et al. 2018), AlexNet variant v0.1, for user-supplied weights.

Architecture written here with the parameter names of the `lpips` package's `LPIPS(net='alex')`:
`net.slice{1..5}.{i}.{weight,bias}` (AlexNet's `features.{i}` convolutions, i = 0, 3, 6, 8, 10) and
`lin{0..4}.model.1.weight` (the learnt 1x1 channel weights). Accepted files (merge them into one state
dict): a full `LPIPS` state dict; or torchvision's AlexNet weights (`features.{i}.*`, other keys
ignored) plus the `lpips` package's `alex.pth` (`lin{k}.model.1.weight`, also `lins.{k}.*`).

Distance: images in [0,1] -> [-1,1] -> fixed shift/scale -> AlexNet ReLU features at 5 depths ->
unit-normalised over channels -> squared difference -> 1x1 lin -> upsampled to the image size and
summed over depths: a per-pixel map whose spatial mean is the usual LPIPS value.
"""
import torch
import torch.nn.functional as F
from torch import nn

SHIFT = (-0.030, -0.088, -0.188)
SCALE = (0.458, 0.448, 0.450)
# (slice, AlexNet feature index, in, out, kernel, stride, padding, max-pool before the conv)
_CONVS = ((1, 0, 3, 64, 11, 4, 2, False), (2, 3, 64, 192, 5, 1, 2, True), (3, 6, 192, 384, 3, 1, 1, True),
          (4, 8, 384, 256, 3, 1, 1, False), (5, 10, 256, 256, 3, 1, 1, False))


class _Slice(nn.Sequential):
    """Part of AlexNet's `features` keeping its original indices as module names."""

    def __init__(self, index, in_channels, out_channels, kernel, stride, padding, pool):
        super().__init__()
        if pool:
            self.add_module(str(index - 1), nn.MaxPool2d(3, 2))
        self.add_module(str(index), nn.Conv2d(in_channels, out_channels, kernel, stride, padding))
        self.add_module(str(index + 1), nn.ReLU())


class _AlexFeatures(nn.Module):
    def __init__(self):
        super().__init__()
        for number, index, c_in, c_out, kernel, stride, padding, pool in _CONVS:
            self.add_module(f"slice{number}", _Slice(index, c_in, c_out, kernel, stride, padding, pool))

    def forward(self, x):
        features = []
        for number in range(1, 6):
            x = getattr(self, f"slice{number}")(x)
            features.append(x)
        return features


class _Lin(nn.Module):
    def __init__(self, channels):
        super().__init__()
        self.model = nn.Sequential(nn.Dropout(), nn.Conv2d(channels, 1, 1, bias=False))

    def forward(self, x):
        return self.model(x)


class LPIPS(nn.Module):
    """`map(a, b)`: `[N,3,H,W]` x2 in [0,1] -> `[N,1,H,W]`; `forward(a, b)` -> `[N]` (mean of the map)."""

    def __init__(self):
        super().__init__()
        self.register_buffer("shift", torch.tensor(SHIFT).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("scale", torch.tensor(SCALE).view(1, 3, 1, 1), persistent=False)
        self.net = _AlexFeatures()
        for k, conv in enumerate(_CONVS):
            self.add_module(f"lin{k}", _Lin(conv[3]))

    def map(self, a, b):
        size = a.shape[-2:]
        features = self.net((torch.cat((a, b)) * 2.0 - 1.0 - self.shift) / self.scale)
        total = 0.0
        for k, feature in enumerate(features):
            feature = feature / (feature.square().sum(1, keepdim=True).sqrt() + 1e-10)
            first, second = feature.chunk(2)
            layer = getattr(self, f"lin{k}")((first - second).square())
            total = total + F.interpolate(layer, size=size, mode="bilinear", align_corners=False)
        return total

    def forward(self, a, b):
        return self.map(a, b).flatten(1).mean(1)


def _normalised_keys(state_dict):
    """Map accepted key layouts onto `LPIPS`'s names (unknown keys are dropped)."""
    slice_of = {str(index): number for number, index, *_ in _CONVS}
    renamed = {}
    for key, value in state_dict.items():
        key = key.removeprefix("module.")
        parts = key.split(".")
        if parts[0] == "features" and len(parts) == 3 and parts[1] in slice_of:
            key = f"net.slice{slice_of[parts[1]]}.{parts[1]}.{parts[2]}"
        elif parts[0] == "lins" and len(parts) > 1:
            key = ".".join([f"lin{parts[1]}"] + parts[2:])
        renamed[key] = value
    return renamed


def lpips_from_state_dict(state_dict):
    """An eval-mode, frozen `LPIPS` from a state dict in one of the accepted layouts (module doc)."""
    model = LPIPS()
    expected = model.state_dict()
    weights = {k: v for k, v in _normalised_keys(state_dict).items() if k in expected}
    missing = [k for k in expected if k not in weights]
    if missing:
        part = "the AlexNet backbone (torchvision alexnet weights)" if any(k.startswith("net.") for k in missing) \
            else "the LPIPS lin layers (the lpips package's alex.pth)"
        raise ValueError(f"The LPIPS weights are incomplete: {len(missing)} tensors of {part} are missing "
                         f"(e.g. {missing[0]}). Put both files into models/tame/lpips.")
    wrong = [f"{k} {tuple(v.shape)} != {tuple(expected[k].shape)}" for k, v in weights.items()
             if v.shape != expected[k].shape]
    if wrong:
        raise ValueError(f"The LPIPS weights do not fit the AlexNet variant: {'; '.join(wrong[:3])}.")
    model.load_state_dict(weights, strict=True)
    return model.eval().requires_grad_(False)


class LpipsDistance:
    """D = LPIPS (AlexNet), the seed's choice; same interface as `CharbonnierSSIMDistance`."""
    name = "LPIPS (AlexNet)"

    def __init__(self, model):
        self.model = model

    def map(self, a, b):
        """`[N,3,H,W]` x2 in [0,1] -> `[N,1,H,W]`."""
        return self.model.map(a.to(self.model.shift.device), b.to(self.model.shift.device)).to(a.device)

    def __call__(self, a, b):
        return self.map(a, b).flatten(1).mean(1)
