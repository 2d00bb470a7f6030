"""Mask geometry: bounding boxes of masks."""
import torch


def mask_bounding_boxes(masks, threshold=0.5):
    """Bounding box (x, y, width, height) in pixels of the pixels above `threshold`, per mask of `[N,1,H,W]`.

    Returns a list of N int tuples; ValueError naming the index of a mask with no pixel above the threshold.
    """
    if not isinstance(masks, torch.Tensor) or masks.dim() != 4 or masks.shape[1] != 1:
        raise ValueError(f"masks must be a tensor [N,1,H,W], got {getattr(masks, 'shape', type(masks).__name__)}.")
    boxes = []
    for index, inside in enumerate(masks[:, 0] > threshold):
        rows, cols = inside.any(1).nonzero()[:, 0], inside.any(0).nonzero()[:, 0]
        if len(rows) == 0:
            raise ValueError(f"mask {index} is empty (no pixel above {threshold}); use a mask that covers the "
                             f"region in every frame.")
        boxes.append((int(cols[0]), int(rows[0]), int(cols[-1] - cols[0]) + 1, int(rows[-1] - rows[0]) + 1))
    return boxes
