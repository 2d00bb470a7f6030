"""Conversions between ComfyUI's tensor layouts and the pack's, with input validation."""
import torch


def _check_tensor(value, name, type_name):
    if not isinstance(value, torch.Tensor):
        raise ValueError(f"{name} must be a {type_name} tensor, got {type(value).__name__}.")
    if value.numel() == 0:
        raise ValueError(f"{name} is empty (shape {tuple(value.shape)}); connect a non-empty {type_name}.")
    if not torch.isfinite(value).all():
        raise ValueError(f"{name} contains NaN or Inf values; check the node that produced it.")


def image_to_frames(image, name="images", min_frames=1):
    """ComfyUI IMAGE `[B,H,W,3]` -> frames `[B,3,H,W]` float32 (validated)."""
    _check_tensor(image, name, "IMAGE")
    if image.ndim != 4 or image.shape[-1] != 3:
        raise ValueError(
            f"{name} must be an RGB IMAGE batch [frames,H,W,3], got shape {tuple(image.shape)}. "
            f"Convert grayscale/RGBA images to RGB first.")
    if image.shape[0] < min_frames:
        raise ValueError(
            f"{name} has {image.shape[0]} frame(s) but this node needs at least {min_frames}. "
            f"Load more frames of the video.")
    return image.permute(0, 3, 1, 2).float()


def frames_to_image(frames):
    """Frames `[B,3,H,W]` -> ComfyUI IMAGE `[B,H,W,3]` float32 on the CPU, clamped to [0,1]."""
    return frames.detach().float().clamp(0, 1).permute(0, 2, 3, 1).cpu().contiguous()


def mask_to_batch(mask, name="mask"):
    """ComfyUI MASK `[B,H,W]` (also `[H,W]` or `[B,1,H,W]`) -> `[B,1,H,W]` float32."""
    _check_tensor(mask, name, "MASK")
    if mask.ndim == 2:
        mask = mask[None]
    if mask.ndim == 4 and mask.shape[1] == 1:
        mask = mask[:, 0]
    if mask.ndim != 3:
        raise ValueError(f"{name} must be a MASK [B,H,W], got shape {tuple(mask.shape)}.")
    return mask[:, None].float()


def batch_to_mask(batch):
    """`[B,1,H,W]` -> ComfyUI MASK `[B,H,W]` float32 on the CPU."""
    return batch.detach().float()[:, 0].cpu().contiguous()


def check_flow_matches(flows, frames, name="images", size=None):
    """Error unless the FlowSet was computed for frames like `frames` `[T,C,H,W]` of `size` (default: flows.size)."""
    size = flows.size if size is None else tuple(size)
    if tuple(frames.shape[-2:]) != size:
        raise ValueError(
            f"{name} frames are {frames.shape[-1]}x{frames.shape[-2]} but the flow was estimated at "
            f"{size[1]}x{size[0]}. Estimate the flow on these frames, or resize them to match.")
    if frames.shape[0] not in (1, flows.num_frames):
        raise ValueError(
            f"{name} has {frames.shape[0]} frames but the flow belongs to a video of {flows.num_frames} "
            f"frames. Pass the same video (or a single image to warp along every pair).")
