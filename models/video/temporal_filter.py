"""Flow-guided temporal filter: the quick deflicker (kernels/temporal_filter.py holds the per-pixel math).

Every frame t becomes the weighted mean of itself and its neighbours t-k..t+k warped onto it along the
optical flow of the clip; the weights drop with the temporal distance, with the forward-backward
inconsistency of the flow (occlusions, frame borders) and with the colour difference of the warped pixel
(flow errors). Flicker (what changes from frame to frame at the same scene point) is averaged out; moving
objects do not leave ghosts, because every neighbour is motion-compensated and untrusted pixels keep the
centre frame's value. Flows between non-adjacent frames are chained from the consecutive ones.
"""
from dataclasses import dataclass

import torch

from ...kernels.temporal_filter import chain_flows, neighbour_contribution, weighted_temporal_mean
from ..flow.estimate import estimate_video_flow

DEFAULT_RADIUS = 2
DEFAULT_TOLERANCE = 0.1
DEFAULT_ALPHA = 1.0


@dataclass
class FilterSettings:
    """radius: neighbours on each side (k >= 1); temporal_sigma: Gaussian width over time in frames
    (None = radius); tolerance: colour difference (intensity, [0,1] scale) at which a neighbour's weight
    falls to exp(-1/2); alpha: visibility sharpness exp(-alpha eps), eps = fw-bw error in px (1 tolerates
    estimated flow); strength: blend of the filtered frame into the input (0..1)."""
    radius: int = DEFAULT_RADIUS
    temporal_sigma: float = None
    tolerance: float = DEFAULT_TOLERANCE
    alpha: float = DEFAULT_ALPHA
    strength: float = 1.0

    def check(self):
        if isinstance(self.radius, bool) or not isinstance(self.radius, int) or self.radius < 1:
            raise ValueError(f"radius must be a whole number of frames >= 1, got {self.radius!r}.")
        if self.tolerance <= 0 or self.alpha < 0 or not 0.0 <= self.strength <= 1.0:
            raise ValueError(f"tolerance must be > 0, alpha >= 0 and strength in [0, 1]; got {self.tolerance}, "
                             f"{self.alpha}, {self.strength}.")


def neighbour_flows(forward, backward, centre, offset):
    """Chained flows between frame `centre` and `centre + offset` (offset != 0, inside the clip).

    forward, backward: consecutive flows `[T-1,2,H,W]` (F_{t->t+1}, F_{t+1->t}).
    Returns (F_{centre->centre+offset}, F_{centre+offset->centre}), each `[1,2,H,W]`.
    """
    if offset > 0:
        out = [forward[t:t + 1] for t in range(centre, centre + offset)]
        back = [backward[t:t + 1] for t in range(centre + offset - 1, centre - 1, -1)]
    else:
        out = [backward[t:t + 1] for t in range(centre - 1, centre + offset - 1, -1)]
        back = [forward[t:t + 1] for t in range(centre + offset, centre)]
    return chain_flows(out), chain_flows(back)


def filter_frame(frames, forward, backward, centre, settings):
    """Filtered frame `centre` of `frames` `[T,3,H,W]` with consecutive flows `[T-1,2,H,W]` -> `[1,3,H,W]`."""
    sigma = settings.temporal_sigma or float(settings.radius)
    image = frames[centre:centre + 1]
    warped, weights = [], []
    for offset in range(-settings.radius, settings.radius + 1):
        if offset == 0 or not 0 <= centre + offset < frames.shape[0]:
            continue
        to_neighbour, from_neighbour = neighbour_flows(forward, backward, centre, offset)
        neighbour = frames[centre + offset:centre + offset + 1]
        image_n, weight = neighbour_contribution(image, neighbour, to_neighbour, from_neighbour, offset, sigma,
                                                 settings.tolerance, settings.alpha)
        warped.append(image_n)
        weights.append(weight)
    return weighted_temporal_mean(image, warped, weights, settings.strength)


def flow_temporal_filter(frames, estimator=None, settings=None, flows=None, device=None, progress=None):
    """Motion-compensated, occlusion-aware temporal filter of a clip.

    Args:
        frames: `[T,3,H,W]` in [0,1]; T == 1 is returned unchanged.
        estimator: FlowEstimator for the consecutive flows (not needed when `flows` is given).
        settings: FilterSettings. flows: optional (forward, backward) consecutive flows `[T-1,2,H,W]`
            in pixels (e.g. exact ones). device: where the filtering runs (default: the frames').
        progress: `progress(done, total)` after the flow and after every frame; may raise to cancel.
    Returns:
        `[T,3,H,W]` CPU float32 in [0,1].
    """
    settings = settings or FilterSettings()
    settings.check()
    if frames.dim() != 4 or frames.shape[1] != 3:
        raise ValueError(f"frames must be RGB [T,3,H,W], got {tuple(frames.shape)}.")
    count = frames.shape[0]
    if count == 1:
        return frames.detach().float().cpu().clone()
    if flows is None:
        if estimator is None:
            raise ValueError("flow_temporal_filter needs a flow estimator or precomputed flows.")
        field = estimate_video_flow(estimator, frames, bidirectional=True)
        flows = (field.forward, field.backward)
    device = torch.device(device) if device is not None else frames.device
    forward, backward = (f.to(device, torch.float32) for f in flows)
    if tuple(forward.shape) != (count - 1, 2, *frames.shape[-2:]) or forward.shape != backward.shape:
        raise ValueError(f"flows must be consecutive forward and backward fields [{count - 1},2,H,W] of these "
                         f"frames, got {tuple(forward.shape)} and {tuple(backward.shape)}.")
    work = frames.to(device, torch.float32)
    output = torch.empty(count, 3, *frames.shape[-2:])
    total = count + 1
    if progress is not None:
        progress(1, total)
    with torch.no_grad():
        for centre in range(count):
            output[centre] = filter_frame(work, forward, backward, centre, settings)[0].clamp(0.0, 1.0).cpu()
            if progress is not None:
                progress(centre + 2, total)
    return output
