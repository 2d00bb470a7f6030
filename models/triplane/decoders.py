"""Decoders from tri-plane features to density and features: EG3D's OSGDecoder and In-N-Out's OOD decoder.

Layer names follow EG3D (`net.0.weight`, `net.0.bias`, `net.2.weight`, `net.2.bias`) so its state dicts
load unchanged.
"""
import math

import torch
import torch.nn.functional as F
from torch import nn

# MipNeRF's widened sigmoid: lets features reach exactly 0 and 1.
_SIGMOID_PAD = 0.001


class FullyConnected(nn.Module):
    """Equalized-learning-rate linear layer (StyleGAN2/EG3D FullyConnectedLayer without activation).

    The stored weight is N(0,1)/lr_multiplier; at run time it is scaled by lr_multiplier/sqrt(in_features)
    and the bias by lr_multiplier. `[*, in_features]` -> `[*, out_features]`.
    """

    def __init__(self, in_features, out_features, lr_multiplier=1.0):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_features, in_features) / lr_multiplier)
        self.bias = nn.Parameter(torch.zeros(out_features))
        self.weight_gain = lr_multiplier / math.sqrt(in_features)
        self.bias_gain = lr_multiplier

    def forward(self, x):
        return F.linear(x, self.weight * self.weight_gain, self.bias * self.bias_gain)


def _widened_sigmoid(x):
    return torch.sigmoid(x) * (1 + 2 * _SIGMOID_PAD) - _SIGMOID_PAD


def _check_features(features, expected):
    if not isinstance(features, torch.Tensor) or features.dim() != 3 or features.shape[-1] != expected:
        shape = tuple(features.shape) if isinstance(features, torch.Tensor) else type(features).__name__
        raise ValueError(f"features must be a tensor [N,M,{expected}] (mean tri-plane features), got {shape}.")


class OSGDecoder(nn.Module):
    """EG3D's decoder: FC(features -> hidden) -> Softplus -> FC(hidden -> 1 + out_features).

    forward(features `[N,M,features]`) -> raw density `[N,M,1]` (before softplus(raw - 1), which the
    marcher applies) and features `[N,M,out_features]` in [-0.001, 1.001] (first 3 = RGB).
    """

    def __init__(self, features=32, hidden=64, out_features=32, lr_multiplier=1.0):
        super().__init__()
        self.features = features
        self.net = nn.Sequential(FullyConnected(features, hidden, lr_multiplier), nn.Softplus(),
                                 FullyConnected(hidden, 1 + out_features, lr_multiplier))

    def forward(self, features):
        _check_features(features, self.features)
        out = self.net(features)
        return out[..., :1], _widened_sigmoid(out[..., 1:])


class OODDecoder(nn.Module):
    """In-N-Out's out-of-distribution decoder on concat(tri-plane feature, per-frame code).

    FC(features + code -> hidden) -> Softplus -> FC(hidden -> 1 + out_features + 1).
    forward(features `[N,M,features]`, codes `[N,code]`) -> raw density `[N,M,1]`, features
    `[N,M,out_features]` (widened sigmoid) and blend weight b `[N,M,1]` in (0,1) (1 = OOD owns the sample).
    """

    def __init__(self, features=32, code=32, hidden=64, out_features=32, lr_multiplier=1.0):
        super().__init__()
        self.features, self.code = features, code
        self.net = nn.Sequential(FullyConnected(features + code, hidden, lr_multiplier), nn.Softplus(),
                                 FullyConnected(hidden, out_features + 2, lr_multiplier))

    def forward(self, features, codes):
        _check_features(features, self.features)
        n, m = features.shape[:2]
        if not isinstance(codes, torch.Tensor) or codes.shape != (n, self.code):
            shape = tuple(codes.shape) if isinstance(codes, torch.Tensor) else type(codes).__name__
            raise ValueError(f"codes must be a tensor [N,{self.code}] with N = {n} (one code per frame), got {shape}.")
        inputs = torch.cat((features, codes[:, None, :].expand(n, m, self.code).to(features.dtype)), dim=-1)
        out = self.net(inputs)
        return out[..., :1], _widened_sigmoid(out[..., 1:-1]), torch.sigmoid(out[..., -1:])
