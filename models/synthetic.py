"""Procedural video with exact ground truth: frames, forward/backward flow and occlusion masks.

A scene is a stack of layers in a fixed depth order (index 0 = background, higher = nearer). A layer
is a texture, an optional hard shape in texture pixel coordinates, and one affine map per frame from
view pixel coordinates to texture pixel coordinates, `A_t`. Frame t shows, at pixel p, the texture of
the nearest layer whose shape contains `A_t(p)`, sampled bilinearly at `A_t(p)` (inverse mapping).
The flow of pixel p from frame a to frame b is therefore analytic: `A_b^{-1}(A_a(p)) - p` for the
layer on top at p; p is occluded in frame b when that target leaves the frame or a nearer layer's
shape covers it there. Nothing is estimated.

Pixel convention (as kernels/warp.py): pixel (row i, column j) has its centre at x = j, y = i; a
frame spans `[0, W-1] x [0, H-1]` (grid_sample with align_corners=True). Affine maps are `[3,3]`
float64 homogeneous matrices acting on column vectors (x, y, 1).
"""
import math
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

# Texture margin (pixels) around a shape or a camera footprint, so bilinear samples stay inside.
_MARGIN_PX = 3
# Share of `motion` for each part of the per-frame displacement (see render_clip).
_CAMERA_SPEED = 0.6
_LAYER_SPEED = 0.4
_CAMERA_TURN_SHARE = 0.1
_LAYER_TURN_SHARE = 0.05
# Caps on per-frame rotation (radians) and log-zoom, so long clips at small sizes stay sane.
_MAX_SPIN = 0.03
_MAX_LOG_ZOOM = 0.02

# 5x7 bitmap font, one glyph per 14 hex digits: 7 rows of 5 bits, most significant bit = left.
_FONT_CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
_FONT_HEX = """
    0E11111F111111 1E11111E11111E 0E11101010110E 1E11111111111E 1F10101E10101F 1F10101E101010
    0E11101711110F 1111111F111111 0E04040404040E 0702020202120C 11121418141211 1010101010101F
    111B1515111111 11111915131111 0E11111111110E 1E11111E101010 0E11111115120D 1E11111E141211
    0F10100E01011E 1F040404040404 1111111111110E 11111111110A04 1111111515150A 11110A040A1111
    11110A04040404 1F01020408101F 0E11131519110E 040C040404040E 0E11010204081F 1F02040201110E
    02060A121F0202 1F101E0101110E 0608101E11110E 1F010204080808 0E11110E11110E 0E11110F01020C
"""


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


# --------------------------------------------------------------------------------------------------
# Affine maps ([3,3] float64)

def _affine(linear=((1.0, 0.0), (0.0, 1.0)), shift=(0.0, 0.0)):
    (a, b), (c, d) = linear
    return torch.tensor([[a, b, shift[0]], [c, d, shift[1]], [0.0, 0.0, 1.0]], dtype=torch.float64)


def _translation(dx, dy):
    return _affine(shift=(dx, dy))


def _rotation_scale(angle, scale=1.0):
    cos, sin = scale * math.cos(angle), scale * math.sin(angle)
    return _affine(((cos, -sin), (sin, cos)))


def _about(point, linear_map):
    """`linear_map` applied around `point` (x, y) instead of the origin."""
    return _translation(*point) @ linear_map @ _translation(-point[0], -point[1])


def _apply(matrix, points):
    """Affine `[3,3]` applied to `[...,2]` points (in the points' dtype)."""
    (a, b, c), (d, e, f) = matrix[:2].tolist()
    x, y = points[..., 0], points[..., 1]
    return torch.stack((a * x + b * y + c, d * x + e * y + f), dim=-1)


def similarity_motion(height, width, translation=(0.0, 0.0), rotation=0.0, zoom=1.0):
    """Content motion of one frame step in view coordinates -> `[3,3]` float64.

    p -> c + zoom * R(rotation) (p - c) + translation, with c = ((W-1)/2, (H-1)/2) the view centre,
    rotation in radians (positive turns +x towards +y, i.e. clockwise on screen), translation in
    pixels. A background following it has flow exactly `motion(p) - p`.
    """
    centre = ((width - 1) / 2.0, (height - 1) / 2.0)
    return _translation(*translation) @ _about(centre, _rotation_scale(rotation, zoom))


def maps_from_motion(first_map, motions):
    """Per-frame view->texture maps of a layer whose content follows `motions`.

    first_map: `[3,3]` A_0; motions: `[T-1,3,3]` content motion M_t of step t -> t+1 (e.g. from
    `similarity_motion`). Returns `[T,3,3]` float64 with A_{t+1} = A_t M_t^{-1}.
    """
    steps = [m.to(torch.float64) for m in motions]
    identity = torch.eye(3, dtype=torch.float64)
    poses = _chain_poses(torch.linalg.inv(first_map.to(torch.float64)), 0, steps, [identity] * len(steps))
    return torch.linalg.inv(poses)


def _chain_poses(anchor_pose, anchor, view_steps, texture_steps):
    """Texture->view poses `[T,3,3]` with P_{t+1} = view_steps[t] @ P_t @ texture_steps[t]."""
    poses = [None] * (len(view_steps) + 1)
    poses[anchor] = anchor_pose
    for t in range(anchor, len(view_steps)):
        poses[t + 1] = view_steps[t] @ poses[t] @ texture_steps[t]
    for t in range(anchor - 1, -1, -1):
        poses[t] = torch.linalg.inv(view_steps[t]) @ poses[t + 1] @ torch.linalg.inv(texture_steps[t])
    return torch.stack(poses)


# --------------------------------------------------------------------------------------------------
# Rendering a scene

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
    return _gaussian_blur(texture, 0.5 * math.sqrt(scale * scale - 1.0))


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
    frame = _sample(textures[0], _apply(background, grid))
    top = torch.zeros(grid.shape[:2], dtype=torch.uint8, device=grid.device)
    for number in range(1, len(layers)):
        view_to_texture = layers[number].view_to_texture[t]
        window = _view_window(layers[number].shape, view_to_texture, grid.shape[:2])
        if window is None:
            continue
        rows, cols = window
        coords = _apply(view_to_texture, grid[rows, cols])
        inside = layers[number].shape.contains(coords)
        colour = _sample(textures[number], coords)
        frame[:, rows, cols] = torch.where(inside, colour, frame[:, rows, cols])
        top[rows, cols] = torch.where(inside, torch.full_like(top[rows, cols], number), top[rows, cols])
    return frame, top


def _view_window(shape, view_to_texture, size):
    """(row slice, column slice) of the view pixels a shape may cover, or None when off-screen."""
    x0, y0, x1, y1 = shape.bounds()
    corners = torch.tensor([[x0, y0], [x1, y0], [x0, y1], [x1, y1]], dtype=torch.float64)
    view = _apply(torch.linalg.inv(view_to_texture), corners)
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
    view = _apply(torch.linalg.inv(view_to_texture), corners)
    low, high = view.min(dim=0).values.tolist(), view.max(dim=0).values.tolist()
    candidates = candidates & (points[..., 0] >= low[0]) & (points[..., 0] <= high[0]) \
        & (points[..., 1] >= low[1]) & (points[..., 1] <= high[1])
    covered = torch.zeros_like(candidates)
    covered[candidates] = layer.shape.contains(_apply(view_to_texture, points[candidates]))
    return covered


# --------------------------------------------------------------------------------------------------
# Procedural texture

def procedural_texture(height, width, seed=0, device="cpu"):
    """A natural-looking texture `[3,H,W]` float32 in [0,1], deterministic for a seed.

    A colour gradient, multi-scale value noise, discs, rings, regular polygons, striped patches and
    lines of glyphs from a built-in 5x7 bitmap font, lightly blurred (sigma 0.5 px) so it has detail
    at every scale down to about 2 px without aliasing. Random numbers come from a CPU generator,
    so the result does not depend on `device` beyond float rounding.
    """
    height, width = _check_size(height, width, minimum=2)
    gen = torch.Generator().manual_seed(int(seed))
    palette = _palette(gen, 6)
    canvas = _gradient(gen, palette, height, width, device)
    luminance = _fractal_noise(gen, 1, height, width, device)
    canvas += 0.12 * luminance + 0.04 * _fractal_noise(gen, 3, height, width, device)
    area = height * width
    for _ in range(max(10, round(area / 6000))):
        _paint_shape(gen, canvas, palette, luminance)
    for _ in range(max(2, round(area / 25000))):
        _paint_text(gen, canvas, palette)
    return _gaussian_blur(canvas, 0.5).clamp_(0.0, 1.0)


def _uniform(gen, low, high):
    return low + (high - low) * torch.rand((), generator=gen).item()


def _integer(gen, low, high):
    """Uniform integer in [low, high)."""
    return int(torch.randint(low, high, (), generator=gen).item())


def _palette(gen, count):
    """`[count,3]` colours: random brightness and hue, moderate saturation."""
    brightness = torch.rand(count, 1, generator=gen) * 0.8 + 0.1
    hue = torch.rand(count, 3, generator=gen)
    saturation = torch.rand(count, 1, generator=gen) * 0.8
    return (brightness + saturation * (hue - hue.mean(dim=1, keepdim=True))).clamp(0.0, 1.0)


def _gradient(gen, palette, height, width, device):
    """Linear blend of two palette colours along a random direction -> `[3,H,W]`."""
    angle = _uniform(gen, 0.0, 2 * math.pi)
    first, second = palette[0].to(device), palette[1].to(device)
    xs = torch.linspace(0.0, 1.0, width, device=device) * math.cos(angle)
    ys = torch.linspace(0.0, 1.0, height, device=device) * math.sin(angle)
    ramp = ys[:, None] + xs[None, :]
    ramp = (ramp - ramp.min()) / (ramp.max() - ramp.min()).clamp_min(1e-6)
    return first[:, None, None] + (second - first)[:, None, None] * ramp


def _fractal_noise(gen, channels, height, width, device, persistence=0.7):
    """Value noise summed over octaves (cells of 2 px up to the texture size) -> `[C,H,W]`, std 1."""
    fine = (max(2, height // 2), max(2, width // 2))
    octaves = max(1, int(math.log2(min(fine))))
    noise = None
    for octave in range(octaves, -1, -1):
        size = (max(2, math.ceil(fine[0] / 2 ** octave)), max(2, math.ceil(fine[1] / 2 ** octave)))
        layer = torch.randn(1, channels, *size, generator=gen).to(device) * persistence ** (octaves - octave)
        noise = layer if noise is None else layer + F.interpolate(noise, size=size, mode="bilinear",
                                                                  align_corners=False)
    noise = F.interpolate(noise, size=(height, width), mode="bicubic", align_corners=False)[0]
    return (noise - noise.mean()) / noise.std().clamp_min(1e-6)


def _paint_shape(gen, canvas, palette, luminance):
    """Blend one random shape (disc, ring, polygon or striped patch) into `canvas` in place."""
    height, width = canvas.shape[-2:]
    radius = math.exp(_uniform(gen, math.log(2.0), math.log(max(4.0, 0.12 * min(height, width)))))
    centre = (_uniform(gen, 0, width - 1), _uniform(gen, 0, height - 1))
    angle = _uniform(gen, 0.0, math.pi)
    kind = _integer(gen, 0, 4)
    colour = palette[_integer(gen, 0, len(palette))].to(canvas.device)
    accent = palette[_integer(gen, 0, len(palette))].to(canvas.device)
    aspect = _uniform(gen, 0.4, 1.0)
    detail = (_uniform(gen, 4.0, 16.0), _integer(gen, 3, 8), _uniform(gen, 0.1, 0.35))
    opacity = 1.0 if _uniform(gen, 0.0, 1.0) < 0.7 else _uniform(gen, 0.4, 0.9)
    window = _clip_window(centre, radius + 2, height, width)
    if window is None:
        return
    rows, cols = window
    ys = torch.arange(rows.start, rows.stop, device=canvas.device, dtype=torch.float32)[:, None]
    xs = torch.arange(cols.start, cols.stop, device=canvas.device, dtype=torch.float32)[None, :]
    u = (xs - centre[0]) * math.cos(angle) + (ys - centre[1]) * math.sin(angle)
    v = (ys - centre[1]) * math.cos(angle) - (xs - centre[0]) * math.sin(angle)
    distance, fill = _shape_field(kind, u, v, radius, aspect, detail, colour, accent)
    fill = fill * (1.0 + 0.3 * luminance[:, rows, cols])
    alpha = (0.5 - distance).clamp(0.0, 1.0) * opacity
    canvas[:, rows, cols] += alpha * (fill - canvas[:, rows, cols])


def _shape_field(kind, u, v, radius, aspect, detail, colour, accent):
    """Signed distance (px, negative inside) `[h,w]` and fill colour `[3,h,w]` of one shape."""
    period, sides, thickness = detail
    shading = colour[:, None, None] + 0.15 * (accent - colour)[:, None, None] * (u / radius)
    if kind == 0:  # ellipse
        minor = radius * aspect
        return (torch.sqrt((u / radius) ** 2 + (v / minor) ** 2) - 1.0) * minor, shading
    if kind == 1:  # ring
        return (torch.sqrt(u * u + v * v) - 0.75 * radius).abs() - thickness * radius, shading
    if kind == 2:  # regular polygon
        apothem = radius * math.cos(math.pi / sides)
        edges = [u * math.cos(2 * math.pi * k / sides) + v * math.sin(2 * math.pi * k / sides)
                 for k in range(sides)]
        return torch.stack(edges).amax(dim=0) - apothem, shading
    # striped rectangle: a square wave with 1-px ramps between the two colours
    box = torch.maximum(u.abs() - radius, v.abs() - radius * aspect)
    stripes = (0.5 + torch.sin(2 * math.pi * u / period) * period / (2 * math.pi)).clamp(0.0, 1.0)
    return box, colour[:, None, None] + (accent - colour)[:, None, None] * stripes


def _clip_window(centre, reach, height, width):
    """Row and column slices of the square of half-size `reach` around `centre`, or None if outside."""
    left, right = max(0, math.floor(centre[0] - reach)), min(width, math.ceil(centre[0] + reach) + 1)
    top, bottom = max(0, math.floor(centre[1] - reach)), min(height, math.ceil(centre[1] + reach) + 1)
    if left >= right or top >= bottom:
        return None
    return slice(top, bottom), slice(left, right)


def _font_bitmaps():
    """`[36,7,5]` float 0/1 glyphs of `_FONT_CHARS`."""
    codes = _FONT_HEX.split()
    rows = torch.tensor([[int(code[2 * r:2 * r + 2], 16) for r in range(7)] for code in codes])
    bits = torch.tensor([16, 8, 4, 2, 1])
    return ((rows[..., None] & bits) > 0).float()


def _paint_text(gen, canvas, palette):
    """Blend one line of random glyphs (horizontal, or transposed to run downwards) into `canvas`."""
    height, width = canvas.shape[-2:]
    glyphs = _font_bitmaps()[torch.randint(0, len(_FONT_CHARS), (_integer(gen, 3, 13),), generator=gen)]
    spaced = F.pad(glyphs, (0, 1))  # one blank column after each glyph
    line = spaced.permute(1, 0, 2).reshape(7, -1)[:, :-1]
    scale = round(math.exp(_uniform(gen, math.log(2.0), math.log(max(2.0, min(height, width) / 50)))))
    vertical = _uniform(gen, 0.0, 1.0) < 0.2
    dark = _uniform(gen, 0.0, 1.0) < 0.5
    colour = palette[_integer(gen, 0, len(palette))] * 0.3 + (0.0 if dark else 0.7)
    top, left = _integer(gen, -20, height), _integer(gen, -20, width)
    bitmap = F.interpolate(line[None, None], scale_factor=scale, mode="bilinear", align_corners=False)[0, 0]
    bitmap = (bitmap.T if vertical else bitmap).to(canvas.device)
    rows = slice(max(0, top), min(height, top + bitmap.shape[0]))
    cols = slice(max(0, left), min(width, left + bitmap.shape[1]))
    if rows.start >= rows.stop or cols.start >= cols.stop:
        return
    alpha = bitmap[rows.start - top:rows.stop - top, cols.start - left:cols.stop - left]
    canvas[:, rows, cols] += alpha * (colour.to(canvas.device)[:, None, None] - canvas[:, rows, cols])


def _gaussian_blur(image, sigma):
    """Separable Gaussian blur of `[C,H,W]` with mirrored borders (weighted sums of shifted copies,
    much faster on CPU than a depthwise convolution)."""
    radius = max(1, math.ceil(3 * sigma))
    weights = [math.exp(-0.5 * (offset / sigma) ** 2) for offset in range(-radius, radius + 1)]
    weights = [weight / sum(weights) for weight in weights]
    height, width = image.shape[-2:]
    mode = "reflect" if radius < min(height, width) else "replicate"
    padded = F.pad(image.unsqueeze(0), (radius, radius, 0, 0), mode=mode)[0]
    rows = sum(weight * padded[..., i:i + width] for i, weight in enumerate(weights))
    padded = F.pad(rows.unsqueeze(0), (0, 0, radius, radius), mode=mode)[0]
    return sum(weight * padded[..., i:i + height, :] for i, weight in enumerate(weights))


# --------------------------------------------------------------------------------------------------
# Random scenes

def render_clip(num_frames=8, height=128, width=128, image=None, motion=4.0, num_layers=2,
                rotation=True, zoom=True, seed=0, device="cpu"):
    """Render a random layered scene under known motion -> SyntheticClip (deterministic for a seed).

    The background (a procedural texture, or `image` `[3,h,w]` / `[h,w,3]` / `[1,h,w,3]` resampled
    to cover the camera path and mirrored beyond it) follows a smooth camera path: translation of
    0.6 * motion px per frame along a slowly turning heading, plus (when enabled) a steady rotation
    and an oscillating zoom about the view centre, each moving the view corners by up to
    0.1 * motion px per frame. `num_layers` hard-edged shapes (blobs and convex polygons, textured
    with procedural textures or crops of `image`) ride on the camera motion with their own
    translation of 0.4 * motion px per frame and (when enabled) rotation / scaling moving their rim
    by up to 0.05 * motion px per frame; they occlude the background and each other in a fixed order.
    Rotation and zoom rates are capped at 0.03 rad and 2 % per frame.
    """
    num_frames = _check_count(num_frames, "num_frames", 2)
    num_layers = _check_count(num_layers, "num_layers", 0)
    height, width = _check_size(height, width, minimum=8)
    motion = _check_motion(motion)
    texture_image = None if image is None else _image_chw(image).to(device)
    gen = torch.Generator().manual_seed(int(seed))
    camera = _camera_motions(gen, num_frames, height, width, motion, rotation, zoom)
    anchor = (num_frames - 1) // 2
    layers = [_background_layer(gen, camera, anchor, height, width, texture_image, device)]
    for number in range(num_layers):
        source = texture_image if number % 2 == 0 else None
        layers.append(_foreground_layer(gen, camera, anchor, height, width, motion, (rotation, zoom),
                                        source, device))
    return render_layers(layers, height, width)


def render_pair(height, width, motion, seed=0, image=None, device="cpu"):
    """Two frames of `render_clip` (two layers, rotation and zoom on) -> SyntheticClip."""
    return render_clip(2, height, width, image=image, motion=motion, seed=seed, device=device)


def make_demo_video(path, num_frames=24, height=240, width=320):
    """Render a clip with three moving layers, write it to `path` (.mp4, .webm, or a folder for PNG
    frames) at 12 fps and return the SyntheticClip."""
    from .video_file import write_video
    clip = render_clip(num_frames, height, width, motion=4.0, num_layers=3, seed=0)
    suffix = Path(path).suffix.lower()
    video_format = {".webm": "webm", "": "png"}.get(suffix, "mp4")
    write_video(path, clip.frames.permute(0, 2, 3, 1), fps=12, format=video_format)
    return clip


def _check_count(value, name, minimum):
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}.")
    return value


def _check_size(height, width, minimum):
    for name, value in (("height", height), ("width", width)):
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise ValueError(f"{name} must be an integer >= {minimum} pixels, got {value!r}.")
    return height, width


def _check_motion(motion):
    if isinstance(motion, bool) or not isinstance(motion, (int, float)) or not 0 <= motion <= 1000:
        raise ValueError(f"motion must be a number of pixels per frame in [0, 1000], got {motion!r}.")
    return float(motion)


def _image_chw(image):
    """User image `[3,h,w]`, `[h,w,3]` or `[1,h,w,3]` (float 0..1 or uint8) -> `[3,h,w]` float32."""
    if not isinstance(image, torch.Tensor):
        raise ValueError(f"image must be a torch.Tensor [3,h,w] or [h,w,3], got {type(image).__name__}.")
    if image.ndim == 4 and image.shape[0] == 1:
        image = image[0]
    if image.ndim != 3 or 3 not in (image.shape[0], image.shape[-1]):
        raise ValueError(f"image must be RGB [3,h,w] or [h,w,3], got shape {tuple(image.shape)}; "
                         f"drop an alpha channel or repeat a grey channel first.")
    chw = image if image.shape[0] == 3 else image.permute(2, 0, 1)
    chw = chw.float() / 255.0 if chw.dtype == torch.uint8 else chw.float()
    if min(chw.shape[1:]) < 8:
        raise ValueError(f"image must be at least 8x8 pixels, got {tuple(chw.shape[1:])}.")
    if not torch.isfinite(chw).all():
        raise ValueError("image contains NaN or infinite values.")
    return chw.clamp(0.0, 1.0)


def _camera_motions(gen, num_frames, height, width, motion, rotation, zoom):
    """Per-step content motions `[3,3]` of the background (list of T-1)."""
    corner = math.hypot((width - 1) / 2.0, (height - 1) / 2.0)
    heading, turn = _uniform(gen, 0.0, 2 * math.pi), _uniform(gen, -0.15, 0.15)
    spin = math.copysign(min(_CAMERA_TURN_SHARE * motion / corner, _MAX_SPIN), _uniform(gen, -1, 1))
    zoom_rate = min(_CAMERA_TURN_SHARE * motion / corner, _MAX_LOG_ZOOM)
    phase, period = _uniform(gen, 0.0, 2 * math.pi), _uniform(gen, 12.0, 24.0)
    steps = []
    for t in range(num_frames - 1):
        direction = heading + turn * t
        shift = (_CAMERA_SPEED * motion * math.cos(direction), _CAMERA_SPEED * motion * math.sin(direction))
        log_zoom = zoom_rate * math.cos(phase + 2 * math.pi * t / period) if zoom else 0.0
        steps.append(similarity_motion(height, width, shift, spin if rotation else 0.0, math.exp(log_zoom)))
    return steps


def _background_layer(gen, camera, anchor, height, width, image, device):
    """Background SceneLayer whose texture covers the camera footprint (mirrored beyond an image)."""
    identity = torch.eye(3, dtype=torch.float64)
    centre = ((width - 1) / 2.0, (height - 1) / 2.0)
    world_to_view = _chain_poses(_translation(*centre), anchor, camera, [identity] * len(camera))
    view_to_world = torch.linalg.inv(world_to_view)
    corners = torch.tensor([[-1.0, -1.0], [width, -1.0], [-1.0, height], [width, height]],
                           dtype=torch.float64)
    reach = torch.stack([_apply(m, corners) for m in view_to_world]).reshape(-1, 2)
    low, high = reach.min(dim=0).values, reach.max(dim=0).values
    footprint = (high - low).tolist()
    if image is None:
        size = (math.ceil(footprint[1]) + 2 * _MARGIN_PX + 1, math.ceil(footprint[0]) + 2 * _MARGIN_PX + 1)
        texture = procedural_texture(size[0], size[1], seed=_integer(gen, 0, 2 ** 31 - 1), device=device)
        offset = (_MARGIN_PX - low[0].item(), _MARGIN_PX - low[1].item())
    else:
        texture = _fit_image(image, footprint, height, width)
        middle = ((low + high) / 2).tolist()
        offset = ((texture.shape[-1] - 1) / 2.0 - middle[0], (texture.shape[-2] - 1) / 2.0 - middle[1])
    return SceneLayer(texture, _translation(*offset) @ view_to_world)


def _fit_image(image, footprint, height, width):
    """Resample `[3,h,w]` so it covers the camera footprint (w, h) in view pixels, upscaling at most
    to 1.5x what covering the view needs (or to 1:1); the sampler mirrors it beyond that."""
    h, w = image.shape[-2:]
    cover_view = max(width / w, height / h)
    scale = min(max(footprint[0] / w, footprint[1] / h), max(1.5 * cover_view, 1.0))
    scale = max(scale, cover_view)
    size = (max(2, round(h * scale)), max(2, round(w * scale)))
    return F.interpolate(image[None], size=size, mode="bilinear", align_corners=False, antialias=True)[0]


def _foreground_layer(gen, camera, anchor, height, width, motion, turns, image, device):
    """A textured hard-edged shape riding on the camera motion with its own affine motion."""
    rotation, zoom = turns
    radius = _uniform(gen, 0.12, 0.28) * min(height, width)
    reach = radius * 1.35
    side = 2 * math.ceil(reach) + 2 * _MARGIN_PX + 1
    middle = ((side - 1) / 2.0, (side - 1) / 2.0)
    shape = _random_shape(gen, middle, radius)
    texture_seed = _integer(gen, 0, 2 ** 31 - 1)
    texture = procedural_texture(side, side, seed=texture_seed, device=device) if image is None \
        else _image_crop(gen, image, side)
    position = (_uniform(gen, 0.2, 0.8) * (width - 1), _uniform(gen, 0.2, 0.8) * (height - 1))
    anchor_pose = _translation(*position) @ _rotation_scale(_uniform(gen, 0, 2 * math.pi)) \
        @ _translation(-middle[0], -middle[1])
    heading, turn = _uniform(gen, 0.0, 2 * math.pi), _uniform(gen, -0.2, 0.2)
    spin = math.copysign(min(_LAYER_TURN_SHARE * motion / radius, _MAX_SPIN), _uniform(gen, -1, 1))
    growth = min(_LAYER_TURN_SHARE * motion / radius, _MAX_LOG_ZOOM)
    phase, period = _uniform(gen, 0.0, 2 * math.pi), _uniform(gen, 12.0, 24.0)
    view_steps, texture_steps = [], []
    for t, camera_step in enumerate(camera):
        direction = heading + turn * t
        speed = _LAYER_SPEED * motion
        own_shift = _translation(speed * math.cos(direction), speed * math.sin(direction))
        view_steps.append(camera_step @ own_shift)
        log_scale = growth * math.cos(phase + 2 * math.pi * t / period) if zoom else 0.0
        texture_steps.append(_about(middle, _rotation_scale(spin if rotation else 0.0, math.exp(log_scale))))
    poses = _chain_poses(anchor_pose, anchor, view_steps, texture_steps)
    return SceneLayer(texture, torch.linalg.inv(poses), shape)


def _random_shape(gen, centre, radius):
    """A Blob or a ConvexPolygon around `centre` reaching at most 1.35 * radius."""
    if _uniform(gen, 0.0, 1.0) < 0.5:
        harmonics = tuple((k, _uniform(gen, 0.0, 0.35 / 3), _uniform(gen, 0.0, 2 * math.pi))
                          for k in (2, 3, 4))
        return Blob(centre, radius, harmonics)
    sides = _integer(gen, 3, 9)
    start = _uniform(gen, 0.0, 2 * math.pi)
    angles = sorted(start + 2 * math.pi * (k + _uniform(gen, -0.3, 0.3)) / sides for k in range(sides))
    vertices = tuple((centre[0] + radius * math.cos(a), centre[1] + radius * math.sin(a)) for a in angles)
    return ConvexPolygon(vertices)


def _image_crop(gen, image, side):
    """A random square crop of `[3,h,w]` (30-70 % of its short side, maybe mirrored) -> `[3,side,side]`."""
    h, w = image.shape[-2:]
    crop = max(2, round(_uniform(gen, 0.3, 0.7) * min(h, w)))
    top, left = _integer(gen, 0, h - crop + 1), _integer(gen, 0, w - crop + 1)
    patch = image[:, top:top + crop, left:left + crop]
    if _uniform(gen, 0.0, 1.0) < 0.5:
        patch = patch.flip(-1)
    return F.interpolate(patch[None], size=(side, side), mode="bilinear", align_corners=False,
                         antialias=True)[0]
