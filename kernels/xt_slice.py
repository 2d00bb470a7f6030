"""Space-time slices of a video: one image row (or column) stacked over time.

Flicker shows up in such slices as horizontal (x-t) or vertical (y-t) streaks, smooth motion as
straight oblique lines.
"""


def _check_video(video):
    if video.dim() != 4:
        raise ValueError(f"video must have shape [T,C,H,W], got {tuple(video.shape)}.")


def _index(value, size, what):
    if value is None:
        return size // 2
    if int(value) != value or not 0 <= value < size:
        raise ValueError(f"{what} must be an integer in [0, {size - 1}] (or None for the middle), got {value!r}.")
    return int(value)


def xt_slice(video, row=None):
    """Image row `row` of every frame stacked top to bottom -> `[C,T,W]` (time runs downwards).

    Args:
        video: `[T,C,H,W]`.
        row: image row (0 = top); None = the middle row `H // 2`.
    """
    _check_video(video)
    return video[:, :, _index(row, video.shape[2], "row"), :].transpose(0, 1)


def yt_slice(video, column=None):
    """Image column `column` of every frame stacked left to right -> `[C,H,T]` (time runs rightwards).

    Args:
        video: `[T,C,H,W]`.
        column: image column (0 = left); None = the middle column `W // 2`.
    """
    _check_video(video)
    return video[:, :, :, _index(column, video.shape[3], "column")].permute(1, 2, 0)
