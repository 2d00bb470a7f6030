"""Procedural textures: gradients, fractal noise, painted shapes and bitmap text, deterministic per seed.
"""
import math

import torch
import torch.nn.functional as F

from ...kernels.filters import gaussian_blur

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


def procedural_texture(height, width, seed=0, device="cpu"):
    """A natural-looking texture `[3,H,W]` float32 in [0,1], deterministic for a seed.

    A colour gradient, multi-scale value noise, discs, rings, regular polygons, striped patches and
    lines of glyphs from a built-in 5x7 bitmap font, lightly blurred (sigma 0.5 px) so it has detail
    at every scale down to about 2 px without aliasing. Random numbers come from a CPU generator,
    so the result does not depend on `device` beyond float rounding.
    """
    height, width = check_size(height, width, minimum=2)
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
    return gaussian_blur(canvas, 0.5).clamp_(0.0, 1.0)


def uniform(gen, low, high):
    return low + (high - low) * torch.rand((), generator=gen).item()


def integer(gen, low, high):
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
    angle = uniform(gen, 0.0, 2 * math.pi)
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
    radius = math.exp(uniform(gen, math.log(2.0), math.log(max(4.0, 0.12 * min(height, width)))))
    centre = (uniform(gen, 0, width - 1), uniform(gen, 0, height - 1))
    angle = uniform(gen, 0.0, math.pi)
    kind = integer(gen, 0, 4)
    colour = palette[integer(gen, 0, len(palette))].to(canvas.device)
    accent = palette[integer(gen, 0, len(palette))].to(canvas.device)
    aspect = uniform(gen, 0.4, 1.0)
    detail = (uniform(gen, 4.0, 16.0), integer(gen, 3, 8), uniform(gen, 0.1, 0.35))
    opacity = 1.0 if uniform(gen, 0.0, 1.0) < 0.7 else uniform(gen, 0.4, 0.9)
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
    glyphs = _font_bitmaps()[torch.randint(0, len(_FONT_CHARS), (integer(gen, 3, 13),), generator=gen)]
    spaced = F.pad(glyphs, (0, 1))  # one blank column after each glyph
    line = spaced.permute(1, 0, 2).reshape(7, -1)[:, :-1]
    scale = round(math.exp(uniform(gen, math.log(2.0), math.log(max(2.0, min(height, width) / 50)))))
    vertical = uniform(gen, 0.0, 1.0) < 0.2
    dark = uniform(gen, 0.0, 1.0) < 0.5
    colour = palette[integer(gen, 0, len(palette))] * 0.3 + (0.0 if dark else 0.7)
    top, left = integer(gen, -20, height), integer(gen, -20, width)
    bitmap = F.interpolate(line[None, None], scale_factor=scale, mode="bilinear", align_corners=False)[0, 0]
    bitmap = (bitmap.T if vertical else bitmap).to(canvas.device)
    rows = slice(max(0, top), min(height, top + bitmap.shape[0]))
    cols = slice(max(0, left), min(width, left + bitmap.shape[1]))
    if rows.start >= rows.stop or cols.start >= cols.stop:
        return
    alpha = bitmap[rows.start - top:rows.stop - top, cols.start - left:cols.stop - left]
    canvas[:, rows, cols] += alpha * (colour.to(canvas.device)[:, None, None] - canvas[:, rows, cols])


def check_size(height, width, minimum):
    for name, value in (("height", height), ("width", width)):
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise ValueError(f"{name} must be an integer >= {minimum} pixels, got {value!r}.")
    return height, width
