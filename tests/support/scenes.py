"""Scenes for tests and benchmarks built on the pack's synthetic clips."""
from ...models.data.scenes import render_clip


def render_pair(height, width, motion, seed=0, image=None, device="cpu"):
    """Two frames of `render_clip` (two layers, rotation and zoom on) -> SyntheticClip."""
    return render_clip(2, height, width, image=image, motion=motion, seed=seed, device=device)
