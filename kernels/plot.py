"""Line plots rendered straight into an image tensor (no matplotlib), with a built-in 5x7 pixel font.

The font has digits, capital letters (lower case is drawn in capitals) and `. , - + : / ( ) = % _ *`;
any other character is drawn as `?`.
"""
import math

import torch

# 5x7 glyphs: one int per row, top to bottom; bit 4 (0x10) is the leftmost column.
_FONT = {
    "0": (0x0E, 0x11, 0x13, 0x15, 0x19, 0x11, 0x0E), "1": (0x04, 0x0C, 0x04, 0x04, 0x04, 0x04, 0x0E),
    "2": (0x0E, 0x11, 0x01, 0x02, 0x04, 0x08, 0x1F), "3": (0x1F, 0x02, 0x04, 0x02, 0x01, 0x11, 0x0E),
    "4": (0x02, 0x06, 0x0A, 0x12, 0x1F, 0x02, 0x02), "5": (0x1F, 0x10, 0x1E, 0x01, 0x01, 0x11, 0x0E),
    "6": (0x06, 0x08, 0x10, 0x1E, 0x11, 0x11, 0x0E), "7": (0x1F, 0x01, 0x02, 0x04, 0x08, 0x08, 0x08),
    "8": (0x0E, 0x11, 0x11, 0x0E, 0x11, 0x11, 0x0E), "9": (0x0E, 0x11, 0x11, 0x0F, 0x01, 0x02, 0x0C),
    "A": (0x0E, 0x11, 0x11, 0x1F, 0x11, 0x11, 0x11), "B": (0x1E, 0x11, 0x11, 0x1E, 0x11, 0x11, 0x1E),
    "C": (0x0E, 0x11, 0x10, 0x10, 0x10, 0x11, 0x0E), "D": (0x1C, 0x12, 0x11, 0x11, 0x11, 0x12, 0x1C),
    "E": (0x1F, 0x10, 0x10, 0x1E, 0x10, 0x10, 0x1F), "F": (0x1F, 0x10, 0x10, 0x1E, 0x10, 0x10, 0x10),
    "G": (0x0E, 0x11, 0x10, 0x17, 0x11, 0x11, 0x0F), "H": (0x11, 0x11, 0x11, 0x1F, 0x11, 0x11, 0x11),
    "I": (0x0E, 0x04, 0x04, 0x04, 0x04, 0x04, 0x0E), "J": (0x07, 0x02, 0x02, 0x02, 0x02, 0x12, 0x0C),
    "K": (0x11, 0x12, 0x14, 0x18, 0x14, 0x12, 0x11), "L": (0x10, 0x10, 0x10, 0x10, 0x10, 0x10, 0x1F),
    "M": (0x11, 0x1B, 0x15, 0x15, 0x11, 0x11, 0x11), "N": (0x11, 0x11, 0x19, 0x15, 0x13, 0x11, 0x11),
    "O": (0x0E, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0E), "P": (0x1E, 0x11, 0x11, 0x1E, 0x10, 0x10, 0x10),
    "Q": (0x0E, 0x11, 0x11, 0x11, 0x15, 0x12, 0x0D), "R": (0x1E, 0x11, 0x11, 0x1E, 0x14, 0x12, 0x11),
    "S": (0x0F, 0x10, 0x10, 0x0E, 0x01, 0x01, 0x1E), "T": (0x1F, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04),
    "U": (0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0E), "V": (0x11, 0x11, 0x11, 0x11, 0x11, 0x0A, 0x04),
    "W": (0x11, 0x11, 0x11, 0x15, 0x15, 0x15, 0x0A), "X": (0x11, 0x11, 0x0A, 0x04, 0x0A, 0x11, 0x11),
    "Y": (0x11, 0x11, 0x11, 0x0A, 0x04, 0x04, 0x04), "Z": (0x1F, 0x01, 0x02, 0x04, 0x08, 0x10, 0x1F),
    " ": (0, 0, 0, 0, 0, 0, 0), ".": (0, 0, 0, 0, 0, 0x0C, 0x0C), ",": (0, 0, 0, 0, 0x0C, 0x04, 0x08),
    "-": (0, 0, 0, 0x1F, 0, 0, 0), "+": (0, 0x04, 0x04, 0x1F, 0x04, 0x04, 0),
    ":": (0, 0x0C, 0x0C, 0, 0x0C, 0x0C, 0), "/": (0, 0x01, 0x02, 0x04, 0x08, 0x10, 0),
    "(": (0x02, 0x04, 0x08, 0x08, 0x08, 0x04, 0x02), ")": (0x08, 0x04, 0x02, 0x02, 0x02, 0x04, 0x08),
    "=": (0, 0, 0x1F, 0, 0x1F, 0, 0), "%": (0x18, 0x19, 0x02, 0x04, 0x08, 0x13, 0x03),
    "_": (0, 0, 0, 0, 0, 0, 0x1F), "*": (0, 0x04, 0x15, 0x0E, 0x15, 0x04, 0),
    "?": (0x0E, 0x11, 0x01, 0x02, 0x04, 0, 0x04),
}
GLYPH_WIDTH, GLYPH_HEIGHT = 5, 7

# Series colours (RGB in [0,1]), used in order and repeated.
PALETTE = ((0.12, 0.47, 0.71), (1.00, 0.50, 0.05), (0.17, 0.63, 0.17), (0.84, 0.15, 0.16),
           (0.58, 0.40, 0.74), (0.55, 0.34, 0.29), (0.89, 0.47, 0.76), (0.50, 0.50, 0.50))
_BLACK, _GRID, _WHITE = (0.0, 0.0, 0.0), (0.88, 0.88, 0.88), (1.0, 1.0, 1.0)
_TARGET_TICKS = 5


def text_mask(text, scale=1):
    """Bitmap of `text` in the 5x7 font -> bool `[7*scale, (6*len-1)*scale]` (1 px gap between glyphs)."""
    if not text:
        return torch.zeros(GLYPH_HEIGHT * scale, 0, dtype=torch.bool)
    bits = torch.tensor([_FONT.get(char.upper(), _FONT["?"]) for char in text])       # [L,7]
    columns = torch.tensor([16, 8, 4, 2, 1, 0])                                           # 6th = gap
    glyphs = (bits.unsqueeze(-1) & columns) > 0                                          # [L,7,6]
    mask = glyphs.permute(1, 0, 2).reshape(GLYPH_HEIGHT, -1)[:, :-1]
    return mask.repeat_interleave(scale, 0).repeat_interleave(scale, 1)


def _paint(canvas, rows, cols, color):
    """Set pixels `(rows, cols)` (1-D long tensors, may fall outside) of `canvas` `[3,H,W]` to `color`."""
    keep = (rows >= 0) & (rows < canvas.shape[1]) & (cols >= 0) & (cols < canvas.shape[2])
    canvas[:, rows[keep], cols[keep]] = torch.tensor(color, dtype=canvas.dtype).unsqueeze(1)


def draw_text(canvas, text, x, y, color=_BLACK, scale=1):
    """Draw `text` into `canvas` `[3,H,W]` in place, top-left corner at column x, row y (clipped)."""
    rows, cols = torch.nonzero(text_mask(text, scale), as_tuple=True)
    _paint(canvas, rows + int(y), cols + int(x), color)


def _fill_rect(canvas, x0, y0, x1, y1, color):
    """Fill columns x0..x1 and rows y0..y1 (inclusive) of `canvas` in place."""
    rows, cols = torch.meshgrid(torch.arange(int(y0), int(y1) + 1), torch.arange(int(x0), int(x1) + 1),
                                indexing="ij")
    _paint(canvas, rows.flatten(), cols.flatten(), color)


def _draw_polyline(canvas, xs, ys, color, width):
    """Connect consecutive points (float pixel coords, 1-D) with `width`-px lines; NaN points break it."""
    points = []
    for i in range(len(xs) - 1):
        x0, y0, x1, y1 = float(xs[i]), float(ys[i]), float(xs[i + 1]), float(ys[i + 1])
        if not all(math.isfinite(v) for v in (x0, y0, x1, y1)):
            continue
        t = torch.linspace(0.0, 1.0, int(max(abs(x1 - x0), abs(y1 - y0))) + 2)
        points.append(torch.stack((y0 + (y1 - y0) * t, x0 + (x1 - x0) * t)))
    points += [torch.tensor([[float(y)], [float(x)]]) for x, y in zip(xs, ys)
               if math.isfinite(float(x)) and math.isfinite(float(y))]
    if not points:
        return
    rows, cols = torch.cat(points, 1).round().long()
    for dy in range(width):
        for dx in range(width):
            _paint(canvas, rows + dy - width // 2, cols + dx - width // 2, color)


def nice_ticks(low, high, target=_TARGET_TICKS):
    """Round tick values (steps 1, 2 or 5 x 10^k) inside `[low, high]` -> (list of floats, step)."""
    raw_step = (high - low) / target
    magnitude = 10.0 ** math.floor(math.log10(raw_step))
    step = next(m * magnitude for m in (1, 2, 5, 10) if m * magnitude >= raw_step * (1 - 1e-9))
    first = math.ceil(low / step - 1e-9)
    count = math.floor(high / step + 1e-9) - first + 1
    return [(first + i) * step + 0.0 for i in range(count)], step


def format_tick(value, step):
    """Short label for a tick value, with as many decimals as the tick step needs."""
    if abs(value) >= 1e5 or step < 1e-3:
        return f"{value:.1e}" if value != 0 else "0"
    decimals = max(0, -math.floor(math.log10(step) + 1e-9))
    return f"{value + 0.0:.{decimals}f}"


def _as_series(series):
    if not isinstance(series, dict) or not series:
        raise ValueError("series must be a non-empty dict {name: 1-D tensor of values}.")
    curves = {}
    for name, values in series.items():
        values = torch.as_tensor(values).detach().to("cpu", torch.float64)
        if values.dim() != 1 or values.numel() == 0:
            raise ValueError(f"series {name!r} must be a non-empty 1-D tensor, got shape {tuple(values.shape)}.")
        curves[str(name)] = values
    return curves


def _value_range(curves, y_range):
    if y_range is not None:
        low, high = float(y_range[0]), float(y_range[1])
        if not (math.isfinite(low) and math.isfinite(high) and high > low):
            raise ValueError(f"y_range must be (low, high) with low < high, got {y_range!r}.")
        return low, high
    finite = torch.cat([values[torch.isfinite(values)] for values in curves.values()])
    if finite.numel() == 0:
        return 0.0, 1.0
    low, high = float(finite.min()), float(finite.max())
    margin = 0.05 * (high - low) if high > low else max(0.1 * abs(low), 0.5)
    return low - margin, high + margin


def line_plot(series, height=256, width=512, title="", y_range=None):
    """Render curves into an RGB image `[3,height,width]` float32 in [0,1] (white background).

    Args:
        series: {name: 1-D tensor}; value i is drawn at x = i (frame index); NaN/inf values leave gaps.
        height, width: image size in pixels (at least 64 x 96); text scales up with the size.
        title: drawn centred on top.
        y_range: (low, high) of the y axis; None = the data range plus a 5 % margin. Values outside
            are drawn on the plot's edge.
    Returns:
        `[3,height,width]` with axes, grid lines at round y values, x/y tick labels and a legend.
    """
    curves = _as_series(series)
    if height < 64 or width < 96:
        raise ValueError(f"plot size must be at least 64 x 96 px (height x width), got {height} x {width}.")
    low, high = _value_range(curves, y_range)
    scale = max(1, min(height // 256, width // 512))
    y_ticks, y_step = nice_ticks(low, high)
    y_labels = [format_tick(v, y_step) for v in y_ticks]
    text_h, char_w = GLYPH_HEIGHT * scale, (GLYPH_WIDTH + 1) * scale
    left = max((len(label) for label in y_labels), default=1) * char_w + 6 * scale
    top = text_h + 6 * scale if title else 4 * scale
    right, bottom = width - 8 * scale, height - text_h - 6 * scale
    canvas = torch.ones(3, height, width)
    length = max(values.numel() for values in curves.values())

    def to_x(index):
        return left + (right - left) * (index / (length - 1) if length > 1 else 0.5)

    def to_y(value):
        return bottom - (bottom - top) * ((value - low) / (high - low))

    for value, label in zip(y_ticks, y_labels):
        row = round(to_y(value))
        _fill_rect(canvas, left, row, right, row, _GRID)
        _fill_rect(canvas, left - 2 * scale, row, left - 1, row, _BLACK)
        draw_text(canvas, label, left - 3 * scale - len(label) * char_w + scale, row - text_h // 2, _BLACK, scale)
    x_ticks, _ = nice_ticks(0.0, max(length - 1, 1.0)) if length > 1 else ([0.0], 1.0)
    for index in (v for v in x_ticks if v == int(v) and v <= length - 1):
        label, column = str(int(index)), round(to_x(index))
        _fill_rect(canvas, column, bottom + 1, column, bottom + 2 * scale, _BLACK)
        draw_text(canvas, label, column - (len(label) * char_w - scale) // 2, bottom + 3 * scale, _BLACK, scale)
    _fill_rect(canvas, left - 1, top, left - 1, bottom + 1, _BLACK)
    _fill_rect(canvas, left - 1, bottom + 1, right, bottom + 1, _BLACK)
    for number, values in enumerate(curves.values()):
        xs = torch.tensor([to_x(i) for i in range(values.numel())])
        ys = torch.where(torch.isfinite(values), to_y(values).clamp(top, bottom), math.nan)
        _draw_polyline(canvas, xs, ys, PALETTE[number % len(PALETTE)], scale + 1)
    if title:
        draw_text(canvas, title, (width - len(title) * char_w) // 2, 3 * scale, _BLACK, scale)
    _draw_legend(canvas, list(curves), right, top, scale)
    return canvas


def _draw_legend(canvas, names, right, top, scale):
    """Box in the top-right corner of the plot area: a coloured line sample and the name per series."""
    char_w, row_h = (GLYPH_WIDTH + 1) * scale, (GLYPH_HEIGHT + 4) * scale
    max_chars = max(1, (canvas.shape[2] // 2) // char_w - 4)
    names = [name[:max_chars] for name in names]
    box_w = (max(len(name) for name in names) + 3) * char_w + 4 * scale
    x0, y0 = right - box_w - 2 * scale, top + 2 * scale
    y1 = y0 + len(names) * row_h + 2 * scale
    _fill_rect(canvas, x0, y0, right - 2 * scale, y1, _GRID)
    _fill_rect(canvas, x0 + 1, y0 + 1, right - 2 * scale - 1, y1 - 1, _WHITE)
    for number, name in enumerate(names):
        row = y0 + 3 * scale + number * row_h
        sample_y = row + GLYPH_HEIGHT * scale // 2
        _draw_polyline(canvas, torch.tensor([x0 + 2.0 * scale, x0 + 2.0 * scale + 2 * char_w]),
                       torch.tensor([float(sample_y), float(sample_y)]), PALETTE[number % len(PALETTE)], scale + 1)
        draw_text(canvas, name, x0 + 3 * scale + 2 * char_w + char_w // 2, row, _BLACK, scale)
