"""Retargeting a video: one layered warp per frame, tied to the previous frame's warp through optical flow.

Per-frame retargeting wobbles: saliency flickers and each solve lands somewhere else. Two ties fix it:
- saliency memory: frame t's saliency is blended with frame t-1's, carried onto frame t by the flow;
- temporal term: each field's mesh is pulled towards the previous frame's mesh carried along the
  content's motion. A target vertex q whose source point x = phi(q) moves by F (the flow at x) is
  expected to move by g = J^-1 F in the target (J = backward Jacobian of phi at q), so the prediction
  is phi_t(q) = phi_{t-1}(q - g) + F(phi_{t-1}(q - g)). For a static camera it is the previous warp.
Frames are processed in chunks (flow is estimated per chunk with one frame of overlap); what crosses a
chunk border is the state of one frame (meshes and saliency), so memory is bounded by the chunk.
"""
from dataclasses import dataclass

import torch

from ...kernels.mesh_warp import mesh_grid, mesh_jacobian
from ...kernels.saliency import saliency
from ...kernels.warp import pixel_grid, remap
from ..flow.estimate import estimate_video_flow
from ..flow.field import FlowSet
from .image import (
    RetargetFields,
    RetargetSettings,
    check_target_size,
    layered_warp,
    solve_background,
    solve_salient,
    source_maps,
    stack_warps,
    warp_map,
    work_copy,
)


@dataclass(frozen=True)
class VideoSettings:
    temporal_weight: float = 4.0   # pull of each mesh vertex to its flow-carried previous position
    saliency_memory: float = 0.8   # share of the carried previous saliency in a frame's saliency
    chunk: int = 16                # frames per flow-estimation chunk
    flow_side: int = 256           # flow is estimated with the longer side at most this (0 = full size)


@dataclass
class _Carried:
    """What one frame hands to the next."""
    fields: RetargetFields
    saliency: torch.Tensor   # [1,1,h,w] smoothed saliency of the frame (work size)


def transport_vertices(vertices, grid, flow):
    """Carry mesh vertices `[2,R+1,C+1]` (source px) along flow `[1,2,H,W]` F_{t-1->t} -> predicted vertices."""
    at_vertices = remap(flow.double(), vertices[None], padding="border")[0][0]
    jacobian = mesh_jacobian(vertices, grid).permute(2, 3, 0, 1)                      # [R+1,C+1,2,2]
    target_motion = torch.linalg.solve(jacobian, at_vertices.permute(1, 2, 0)[..., None])[..., 0]
    dx, dy = grid.spacing
    index = pixel_grid(grid.rows + 1, grid.cols + 1, dtype=torch.float64)[0]
    back = torch.stack((index[0] - target_motion[..., 0] / dx, index[1] - target_motion[..., 1] / dy))
    return remap((vertices + at_vertices)[None], back[None], padding="border")[0][0]


def check_video(frames, target_size, keep, drop):
    if frames.shape[0] < 2:
        raise ValueError(f"the video has {frames.shape[0]} frame; Retarget Video needs at least 2 frames "
                         f"(use Retarget for a single image).")
    check_target_size(frames.shape[-2:], target_size)
    for name, mask in (("keep_mask", keep), ("drop_mask", drop)):
        if mask is not None and (mask.shape[0] not in (1, frames.shape[0]) or mask.shape[-2:] != frames.shape[-2:]):
            raise ValueError(f"{name} is {tuple(mask.shape)} but the video is {frames.shape[0]} frames of "
                             f"{frames.shape[-1]}x{frames.shape[-2]}; give one mask or one per frame, at the video's size.")


def _mask_at(mask, t):
    return None if mask is None else mask[min(t, mask.shape[0] - 1)][None]


def _retarget_frame(frame, keep, drop, carried, flows, grid, settings, video):
    """One frame -> (layered FlowSet pair, state for the next frame, saliency used `[1,1,H,W]`).

    flows: (F_{t-1->t} on frame t-1, F_{t->t-1} on frame t), each `[1,2,H,W]`, or None for the first frame.
    """
    frame_saliency = saliency(work_copy(frame))
    reference = {}
    if carried is not None:
        forward, backward = flows
        carried_saliency = FlowSet(backward, pairs=[(0, 0)]).warp(carried.saliency)[0]
        frame_saliency = video.saliency_memory * carried_saliency + (1 - video.saliency_memory) * frame_saliency
        weight = torch.full((grid.rows + 1, grid.cols + 1), video.temporal_weight, dtype=torch.float64)
        reference = {name: (transport_vertices(getattr(carried.fields, name), grid, forward), weight)
                     for name in ("background", "salient")}
    maps = source_maps(frame, keep, drop, frame_saliency)
    background = solve_background(maps, grid, settings, *reference.get("background", (None, None)))
    salient = solve_salient(maps, grid, background, settings, *reference.get("salient", (None, None)))
    fields = RetargetFields(grid, background, salient)
    return layered_warp(maps, fields, settings), _Carried(fields, frame_saliency), maps.saliency


def retarget_video(frames, target_size, estimator, keep=None, drop=None, settings=None, video=None,
                   progress=None):
    """Retarget frames `[T,3,H,W]` (CPU, [0,1]) to `target_size` (H', W').

    keep / drop: optional masks `[1 or T,1,H,W]`. progress(done, total) is called per frame (may raise to
    cancel). Returns (frames `[T,3,H',W']`, layered FlowSet of pairs (t, t), warped saliency `[T,1,H',W']`).
    """
    settings, video = settings or RetargetSettings(), video or VideoSettings()
    check_video(frames, target_size, keep, drop)
    grid = mesh_grid(frames.shape[-2:], target_size, settings.cells)
    outputs, warps, saliencies, carried = [], [], [], None
    total = frames.shape[0]
    for start in range(0, total, video.chunk):
        first = max(0, start - 1)
        chunk = frames[first:start + video.chunk]
        flows = estimate_video_flow(estimator, chunk, bidirectional=True, max_side=video.flow_side)
        for t in range(start, min(total, start + video.chunk)):
            pair = None if t == 0 else (flows.forward[t - 1 - first][None], flows.backward[t - 1 - first][None])
            frame = frames[t][None]
            warp, carried, frame_saliency = _retarget_frame(frame, _mask_at(keep, t), _mask_at(drop, t), carried,
                                                            pair, grid, settings, video)
            outputs.append(warp.warp(frame)[0].clamp(0, 1))
            saliencies.append(warp_map(frame_saliency, warp))
            warps.append(warp)
            if progress is not None:
                progress(t + 1, total)
    return torch.cat(outputs), stack_warps(warps), torch.cat(saliencies)
