"""Layered rendering with exact ground truth: frames, forward/backward flow and occlusion masks.

A scene is a stack of layers in a fixed depth order (index 0 = background, higher = nearer). A layer
is a texture, an optional hard shape in texture pixel coordinates, and one affine map per frame from
view pixel coordinates to texture pixel coordinates, `A_t`. Frame t shows, at pixel p, the texture of
the nearest layer whose shape contains `A_t(p)`, sampled bilinearly at `A_t(p)` (inverse mapping).
The flow of pixel p from frame a to frame b is therefore analytic: `A_b^{-1}(A_a(p)) - p` for the
layer on top at p; p is occluded in frame b when that target leaves the frame or a nearer layer's
shape covers it there. Nothing is estimated.

Pixel convention (as kernels/warp.py): pixel (row i, column j) has its centre at x = j, y = i; a
frame spans `[0, W-1] x [0, H-1]` (grid_sample with align_corners=True).
"""
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ...kernels.filters import gaussian_blur
from .motion import apply_affine


@dataclass
class SyntheticClip:
    """A rendered clip and its exact ground truth.

    frames:             `[T,3,H,W]` float32 in [0,1].
    flow_forward:       `[T-1,2,H,W]` F_{t->t+1} in pixels, channel 0 = x, 1 = y.
    flow_backward:      `[T-1,2,H,W]` F_{t+1->t}.
    occlusion_forward:  `[T-1,1,H,W]` float 0/1, 1 = pixel of frame t is hidden or outside the frame
                        in frame t+1.
    occlusion_backward: `[T-1,1,H,W]` the same for frame t+1 towards frame t.
    layer_index:        `[T,1,H,W]` uint8, the layer on top at each pixel (0 = background), or None.
    """
    frames: torch.Tensor
    flow_forward: torch.Tensor
    flow_backward: torch.Tensor
    occlusion_forward: torch.Tensor
    occlusion_backward: torch.Tensor
    layer_index: torch.Tensor = None


@dataclass(frozen=True)
class Blob:
    """Star-shaped region: |q - centre| < radius * (1 + sum_k a_k cos(k * angle + phase_k)).

    centre: (x, y) in texture pixels; harmonics: tuples (k, a_k, phase_k) with sum |a_k| < 1.
    """
    centre: tuple
    radius: float
    harmonics: tuple = ()

    def contains(self, points):
        """`[...,2]` texture coordinates -> `[...]` bool."""
        dx = points[..., 0] - self.centre[0]
        dy = points[..., 1] - self.centre[1]
        squared = dx * dx + dy * dy
        inverse = squared.clamp_min(1e-12).rsqrt()
        cos, sin = dx * inverse, dy * inverse  # of the polar angle; cos(k*angle) by recurrence below
        cos_k, sin_k = torch.ones_like(cos), torch.zeros_like(sin)
        boundary = torch.ones_like(cos)
        for k in range(1, 1 + max((h[0] for h in self.harmonics), default=0)):
            cos_k, sin_k = cos_k * cos - sin_k * sin, sin_k * cos + cos_k * sin
            for order, amplitude, phase in self.harmonics:
                if order == k:
                    boundary += amplitude * (math.cos(phase) * cos_k - math.sin(phase) * sin_k)
        return squared < (self.radius * boundary) ** 2

    def bounds(self):
        """(x_min, y_min, x_max, y_max) enclosing the shape."""
        reach = self.radius * (1 + sum(abs(a) for _, a, _ in self.harmonics))
        return (self.centre[0] - reach, self.centre[1] - reach,
                self.centre[0] + reach, self.centre[1] + reach)


@dataclass(frozen=True)
class ConvexPolygon:
    """Convex polygon; vertices: tuple of (x, y) texture pixels in order around the boundary."""
    vertices: tuple

    def contains(self, points):
        """`[...,2]` texture coordinates -> `[...]` bool."""
        corners = self.vertices
        area2 = sum(x0 * y1 - x1 * y0 for (x0, y0), (x1, y1) in zip(corners, corners[1:] + corners[:1]))
        orientation = 1.0 if area2 > 0 else -1.0
        inside = torch.ones(points.shape[:-1], dtype=torch.bool, device=points.device)
        for (x0, y0), (x1, y1) in zip(corners, corners[1:] + corners[:1]):
            cross = (x1 - x0) * (points[..., 1] - y0) - (y1 - y0) * (points[..., 0] - x0)
            inside &= orientation * cross >= 0
        return inside

    def bounds(self):
        """(x_min, y_min, x_max, y_max) enclosing the shape."""
        xs = [x for x, _ in self.vertices]
        ys = [y for _, y in self.vertices]
        return min(xs), min(ys), max(xs), max(ys)


@dataclass
class SceneLayer:
    """One layer of a scene.

    texture:         `[3,h,w]` float in [0,1] (h, w >= 2); sampled with mirrored borders outside.
    view_to_texture: `[T,3,3]` (float64 preferred), per frame the affine map A_t from view pixel
                     coordinates to texture pixel coordinates.
    shape:           Blob / ConvexPolygon in texture coordinates (hard mask), or None for a layer
                     covering the whole plane (the background must be one).
    """
    texture: torch.Tensor
    view_to_texture: torch.Tensor
    shape: object = None


def render_layers(layers, height, width):
    """Render a layered scene and its exact flow and occlusion -> SyntheticClip.

    layers: sequence of SceneLayer, back to front; layers[0] must have shape None (background), all
    must have the same number of frames T >= 2. Textures are prefiltered with a Gaussian matched to
    the strongest minification each one undergoes, so zooming out does not alias badly.
    """
    _check_layers(layers, height, width)
    layers = [SceneLayer(layer.texture, layer.view_to_texture.detach().to("cpu", torch.float64), layer.shape)
              for layer in layers]
    device = layers[0].texture.device
    grid = _pixel_coordinates(height, width, device)
    textures = [_prefilter(layer.texture.float(), layer.view_to_texture) for layer in layers]
    frames, index = [], []
    for t in range(layers[0].view_to_texture.shape[0]):
        frame, top = _render_frame(layers, textures, t, grid)
        frames.append(frame)
        index.append(top)
    truths_fw = [_pair_truth(layers, t, t + 1, index[t], grid) for t in range(len(frames) - 1)]
    truths_bw = [_pair_truth(layers, t + 1, t, index[t + 1], grid) for t in range(len(frames) - 1)]
    return SyntheticClip(
        frames=torch.stack(frames).clamp_(0.0, 1.0),
        flow_forward=torch.stack([flow for flow, _ in truths_fw]),
        flow_backward=torch.stack([flow for flow, _ in truths_bw]),
        occlusion_forward=torch.stack([occ for _, occ in truths_fw]),
        occlusion_backward=torch.stack([occ for _, occ in truths_bw]),
        layer_index=torch.stack(index).unsqueeze(1))


def _check_layers(layers, height, width):
    if int(height) < 2 or int(width) < 2:
        raise ValueError(f"frame size must be at least 2x2 pixels, got {height}x{width}.")
    if not layers:
        raise ValueError("render_layers needs at least one layer (the background).")
    if layers[0].shape is not None:
        raise ValueError("layers[0] is the background and must cover the whole view: give it shape=None.")
    if len(layers) > 255:
        raise ValueError(f"at most 255 layers are supported, got {len(layers)}.")
    first_maps = tuple(layers[0].view_to_texture.shape)
    for number, layer in enumerate(layers):
        maps = tuple(layer.view_to_texture.shape)
        if len(maps) != 3 or maps[1:] != (3, 3) or maps != first_maps:
            raise ValueError(f"layer {number}: view_to_texture must be [T,3,3] like the background's "
                             f"{first_maps}, got {maps}.")
    if first_maps[0] < 2:
        raise ValueError(f"a clip needs at least 2 frames, got maps for {first_maps[0]}.")
    for number, layer in enumerate(layers):
        texture = layer.texture
        if texture.ndim != 3 or texture.shape[0] != 3 or min(texture.shape[1:]) < 2:
            raise ValueError(f"layer {number}: texture must be [3,h,w] with h, w >= 2, got "
                             f"{tuple(texture.shape)}.")
        if texture.device != layers[0].texture.device:
            raise ValueError(f"layer {number}: texture is on {texture.device}, the background on "
                             f"{layers[0].texture.device}; put all textures on one device.")


def _pixel_coordinates(height, width, device):
    """`[H,W,2]` float32 (x, y) of every pixel centre."""
    ys, xs = torch.meshgrid(torch.arange(height, dtype=torch.float32, device=device),
                            torch.arange(width, dtype=torch.float32, device=device), indexing="ij")
    return torch.stack((xs, ys), dim=-1)


def _prefilter(texture, view_to_texture):
    """Blur `[3,h,w]` by sigma = 0.5 sqrt(s^2 - 1), s = largest texture/view scale over the frames."""
    scale = torch.linalg.det(view_to_texture[:, :2, :2]).abs().sqrt().max().item()
    if scale <= 1.05:
        return texture
    return gaussian_blur(texture, 0.5 * math.sqrt(scale * scale - 1.0))


def _sample(texture, coords):
    """Bilinear samples of `[3,h,w]` at texture pixel coordinates `[h',w',2]` -> `[3,h',w']`."""
    h, w = texture.shape[-2:]
    scale = torch.tensor([2.0 / (w - 1), 2.0 / (h - 1)], dtype=coords.dtype, device=coords.device)
    grid = (coords * scale - 1.0).unsqueeze(0)
    return F.grid_sample(texture.unsqueeze(0), grid, mode="bilinear", padding_mode="reflection",
                         align_corners=True)[0]


def _render_frame(layers, textures, t, grid):
    """Frame t `[3,H,W]` and the index of the layer on top `[H,W]` uint8."""
    background = layers[0].view_to_texture[t]
    frame = _sample(textures[0], apply_affine(background, grid))
    top = torch.zeros(grid.shape[:2], dtype=torch.uint8, device=grid.device)
    for number in range(1, len(layers)):
        view_to_texture = layers[number].view_to_texture[t]
        window = _view_window(layers[number].shape, view_to_texture, grid.shape[:2])
        if window is None:
            continue
        rows, cols = window
        coords = apply_affine(view_to_texture, grid[rows, cols])
        inside = layers[number].shape.contains(coords)
        colour = _sample(textures[number], coords)
        frame[:, rows, cols] = torch.where(inside, colour, frame[:, rows, cols])
        top[rows, cols] = torch.where(inside, torch.full_like(top[rows, cols], number), top[rows, cols])
    return frame, top


def _view_window(shape, view_to_texture, size):
    """(row slice, column slice) of the view pixels a shape may cover, or None when off-screen."""
    x0, y0, x1, y1 = shape.bounds()
    corners = torch.tensor([[x0, y0], [x1, y0], [x0, y1], [x1, y1]], dtype=torch.float64)
    view = apply_affine(torch.linalg.inv(view_to_texture), corners)
    height, width = size
    left, top = max(0, math.floor(view[:, 0].min().item())), max(0, math.floor(view[:, 1].min().item()))
    right = min(width, math.ceil(view[:, 0].max().item()) + 1)
    bottom = min(height, math.ceil(view[:, 1].max().item()) + 1)
    if left >= right or top >= bottom:
        return None
    return slice(top, bottom), slice(left, right)


def _pair_truth(layers, a, b, top_a, grid):
    """Exact flow F_{a->b} `[2,H,W]` and occlusion `[1,H,W]` (float 0/1) of frame a."""
    identity = torch.eye(3, dtype=torch.float64)
    displacements = torch.stack([
        (torch.linalg.inv(layer.view_to_texture[b]) @ layer.view_to_texture[a] - identity)[:2].reshape(6)
        for layer in layers]).to(device=grid.device, dtype=grid.dtype)
    coefficients = displacements[top_a.long()].unbind(-1)  # per pixel: the affine map of its layer
    x, y = grid[..., 0], grid[..., 1]
    flow = torch.stack((coefficients[0] * x + coefficients[1] * y + coefficients[2],
                        coefficients[3] * x + coefficients[4] * y + coefficients[5]))
    target_x, target_y = x + flow[0], y + flow[1]
    height, width = grid.shape[:2]
    occluded = (target_x < 0) | (target_x > width - 1) | (target_y < 0) | (target_y > height - 1)
    for number in range(1, len(layers)):
        occluded |= _covered_by(layers[number], b, torch.stack((target_x, target_y), dim=-1),
                                top_a < number)
    return flow, occluded.unsqueeze(0).float()


def _covered_by(layer, t, points, candidates):
    """`[H,W]` bool: candidate view points `[H,W,2]` that `layer`'s shape covers in frame t."""
    view_to_texture = layer.view_to_texture[t]
    x0, y0, x1, y1 = layer.shape.bounds()
    corners = torch.tensor([[x0, y0], [x1, y0], [x0, y1], [x1, y1]], dtype=torch.float64)
    view = apply_affine(torch.linalg.inv(view_to_texture), corners)
    low, high = view.min(dim=0).values.tolist(), view.max(dim=0).values.tolist()
    candidates = candidates & (points[..., 0] >= low[0]) & (points[..., 0] <= high[0]) \
        & (points[..., 1] >= low[1]) & (points[..., 1] <= high[1])
    covered = torch.zeros_like(candidates)
    covered[candidates] = layer.shape.contains(apply_affine(view_to_texture, points[candidates]))
    return covered
