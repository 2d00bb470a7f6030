"""Paste edited crops back into the full frames with a feathered mask (seed 001 §3.4, "unalign")."""
import torch
import torch.nn.functional as F


def feather_mask(height, width, radius, device=None, dtype=torch.float32):
    """`[1,1,height,width]` weights: 1 inside, falling linearly to ~0 over `radius` px at the edges.

    Weight of a pixel = min(1, (distance to the nearest edge + 0.5) / radius); radius 0 = hard box.
    """
    if radius < 0:
        raise ValueError(f"feather radius must be >= 0 pixels, got {radius}.")
    if radius == 0:
        return torch.ones(1, 1, height, width, device=device, dtype=dtype)
    rows = torch.arange(height, device=device, dtype=dtype)
    cols = torch.arange(width, device=device, dtype=dtype)
    to_edge_y = torch.minimum(rows, height - 1 - rows) + 0.5
    to_edge_x = torch.minimum(cols, width - 1 - cols) + 0.5
    edge = torch.minimum(to_edge_y[:, None], to_edge_x[None, :])
    return (edge / radius).clamp(max=1.0)[None, None]


def _boxes(boxes, count):
    """Boxes as a list of `count` (x, y, w, h) integer tuples (one box may serve all frames)."""
    table = torch.as_tensor(boxes, dtype=torch.float64)
    if table.dim() == 1:
        table = table.unsqueeze(0)
    if table.dim() != 2 or table.shape[1] != 4:
        raise ValueError(f"boxes must be (x, y, w, h) per frame, shape [T,4] or [4], got {tuple(table.shape)}.")
    if table.shape[0] == 1:
        table = table.expand(count, 4)
    if table.shape[0] != count:
        raise ValueError(f"{table.shape[0]} boxes for {count} frames; give one box per frame (or one for all).")
    if (table != table.round()).any() or (table[:, 2:] < 1).any():
        raise ValueError("boxes must be whole pixels with width and height >= 1.")
    return [tuple(int(v) for v in row) for row in table.tolist()]


def paste_back(frames, crops, boxes, feather=8):
    """Composite each crop into its frame at its box with a feathered edge.

    Args:
        frames: `[T,C,H,W]` full frames; crops: `[T,C,h,w]` edited crops (resized to each box,
            bilinear with antialiasing); boxes: `[T,4]` or one `(x, y, w, h)` in frame pixels (x, y =
            top-left corner; boxes may extend past the frame, that part is dropped); feather: radius in
            pixels of the linear blend ramp inside the box edge.
    Returns:
        `[T,C,H,W]`: crop * mask + frame * (1 - mask) inside each box, the frame elsewhere.
    """
    if frames.dim() != 4 or crops.dim() != 4 or frames.shape[:2] != crops.shape[:2]:
        raise ValueError(f"frames {tuple(frames.shape)} and crops {tuple(crops.shape)} must both be "
                         f"[T,C,H,W] with the same T and C.")
    height, width = frames.shape[-2:]
    result = frames.clone()
    for t, (x, y, w, h) in enumerate(_boxes(boxes, frames.shape[0])):
        left, top, right, bottom = max(x, 0), max(y, 0), min(x + w, width), min(y + h, height)
        if left >= right or top >= bottom:
            continue
        crop = F.interpolate(crops[t:t + 1].to(frames.dtype), size=(h, w), mode="bilinear",
                             align_corners=False, antialias=True)
        mask = feather_mask(h, w, feather, frames.device, frames.dtype)
        window = (..., slice(top - y, bottom - y), slice(left - x, right - x))
        target = result[t:t + 1, :, top:bottom, left:right]
        result[t:t + 1, :, top:bottom, left:right] = target + mask[window] * (crop[window] - target)
    return result
