"""Volume rendering along sorted ray samples: EG3D's MipRayMarcher2 and In-N-Out's two-field composite.

Both work on K sorted samples per ray and integrate over the K-1 intervals between them: depths,
raw densities, features (and blend weights) are averaged at interval midpoints, the density is
softplus(raw - 1) applied AFTER averaging, alpha = 1 - exp(-sigma * delta) (specs/triplane.md,
reference 1.7 and 2.5). Features come back as the weighted sum, NOT yet mapped to [-1,1]
(the renderer applies EG3D's 2C - 1).
"""
from typing import NamedTuple

import torch
import torch.nn.functional as F

# EG3D adds this to every transmittance factor (keeps the cumulative product off exact zero).
_TRANSMITTANCE_FLOOR = 1e-10


class MarchResult(NamedTuple):
    """Per-ray integrals: features `[N,M,C]` (unscaled), depth `[N,M,1]`, opacity `[N,M,1]`,
    weights `[N,M,K-1,1]` (per interval, for importance sampling)."""
    features: torch.Tensor
    depth: torch.Tensor
    opacity: torch.Tensor
    weights: torch.Tensor


def _midpoints(values):
    """Interval averages along the sample axis: `[N,M,K,C]` -> `[N,M,K-1,C]`."""
    return 0.5 * (values[:, :, :-1] + values[:, :, 1:])


def _alpha(raw_density, deltas):
    """Interval opacity 1 - exp(-softplus(mean raw - 1) * delta) -> `[N,M,K-1,1]`."""
    return 1 - torch.exp(-F.softplus(_midpoints(raw_density) - 1) * deltas)


def _transmittance(passing):
    """Exclusive cumulative product of per-interval pass factors `[N,M,K-1,1]`: T_k = prod_{j<k}."""
    ones = torch.ones_like(passing[:, :, :1])
    return torch.cumprod(torch.cat((ones, passing[:, :, :-1]), dim=2), dim=2)


def _expected_depth(weights, depths):
    """sum w t_mid / sum w per ray `[N,M,1]`; empty rays (0/0) go to the largest depth, as in EG3D."""
    depth = (weights * _midpoints(depths)).sum(dim=2) / weights.sum(dim=2)
    depth = torch.nan_to_num(depth, nan=float("inf"))
    return depth.clamp(depths.min(), depths.max())


def _check_samples(depths, **per_sample):
    if depths.dim() != 4 or depths.shape[-1] != 1 or depths.shape[2] < 2:
        raise ValueError(f"depths must have shape [N,M,K,1] with K >= 2 sorted samples, got {tuple(depths.shape)}.")
    for name, values in per_sample.items():
        if values.dim() != 4 or values.shape[:3] != depths.shape[:3]:
            raise ValueError(f"{name} must have shape [N,M,K,*] matching depths {tuple(depths.shape[:3])}, "
                             f"got {tuple(values.shape)}.")


def march(depths, raw_density, features):
    """EG3D MipRayMarcher2 over sorted samples.

    depths `[N,M,K,1]` (sorted), raw_density `[N,M,K,1]` (decoder output before activation),
    features `[N,M,K,C]`. Weights w_k = alpha_k T_k with T_k = prod_{j<k} (1 - alpha_j + 1e-10).
    Returns MarchResult; features are the plain weighted sum (range of the inputs, not 2C-1).
    """
    _check_samples(depths, raw_density=raw_density, features=features)
    alpha = _alpha(raw_density, depths[:, :, 1:] - depths[:, :, :-1])
    weights = alpha * _transmittance(1 - alpha + _TRANSMITTANCE_FLOOR)
    return MarchResult(features=(weights * _midpoints(features)).sum(dim=2),
                       depth=_expected_depth(weights, depths),
                       opacity=weights.sum(dim=2),
                       weights=weights)


def composite_march(depths, ind_density, ind_features, ood_density, ood_features, blend):
    """In-N-Out composite of an in-distribution and an out-of-distribution field on shared samples.

    depths `[N,M,K,1]` (sorted); ind/ood raw densities `[N,M,K,1]`; features `[N,M,K,C]`; blend b
    `[N,M,K,1]` in [0,1] (1 = OOD). With midpoint values and alphas a^I, a^O:
    T_k = prod_{j<k} [(1 - b_j a^O_j)(1 - (1 - b_j) a^I_j) + 1e-10],
    w_k = T_k (b_k a^O_k + (1 - b_k) a^I_k), C = sum_k T_k (b a^O c^O + (1 - b) a^I c^I).
    b = 0 reproduces `march` of the InD field, b = 1 that of the OOD field. Returns MarchResult (unscaled).
    """
    _check_samples(depths, ind_density=ind_density, ind_features=ind_features, ood_density=ood_density,
                   ood_features=ood_features, blend=blend)
    deltas = depths[:, :, 1:] - depths[:, :, :-1]
    alpha_ind, alpha_ood = _alpha(ind_density, deltas), _alpha(ood_density, deltas)
    blend_mid = _midpoints(blend)
    ood_part, ind_part = blend_mid * alpha_ood, (1 - blend_mid) * alpha_ind
    transmittance = _transmittance((1 - ood_part) * (1 - ind_part) + _TRANSMITTANCE_FLOOR)
    weights = transmittance * (ood_part + ind_part)
    features = transmittance * (ood_part * _midpoints(ood_features) + ind_part * _midpoints(ind_features))
    return MarchResult(features=features.sum(dim=2),
                       depth=_expected_depth(weights, depths),
                       opacity=weights.sum(dim=2),
                       weights=weights)
