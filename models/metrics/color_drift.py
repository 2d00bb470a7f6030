"""Colour change over time (seed 003 eq. 2.1) against frame separation, real vs generated video.

`S(x, d) = sum_i min(H(x_s, i), H(x_{s+d}, i))` with the normalised 3-D RGB histograms of
kernels.metrics; the seed reports its mean and standard deviation over clips. Here every start frame
s of a video starts a clip, so a video of T frames gives T - d values at separation d.
"""
import torch

from ...kernels.metrics import color_histogram
from ...kernels.plot import line_plot


def color_drift(frames, max_separation=128, bins=20):
    """Mean and spread of the colour similarity per frame separation.

    Args:
        frames: `[T,3,H,W]` in [0,1], T >= 2.
        max_separation: largest separation D considered (clipped to T - 1).
        bins: histogram bins per channel (20 in the seed).
    Returns:
        (mean `[D+1]`, std `[D+1]`) float64 on the CPU; entry d is over the T - d pairs (s, s + d);
        std is the population standard deviation (0 where there is a single pair). mean[0] = 1.
    """
    if frames.ndim != 4 or frames.shape[0] < 2:
        raise ValueError(f"a video of at least 2 frames [T,3,H,W] is needed, got shape {tuple(frames.shape)}.")
    if int(max_separation) != max_separation or max_separation < 1:
        raise ValueError(f"max_separation must be an integer >= 1, got {max_separation!r}.")
    histograms = color_histogram(frames, bins).to("cpu", torch.float64)
    count = histograms.shape[0]
    means, spreads = [], []
    for separation in range(min(int(max_separation), count - 1) + 1):
        similarity = torch.minimum(histograms[:count - separation], histograms[separation:]).sum(1)
        means.append(similarity.mean())
        spreads.append(similarity.std(unbiased=False))
    return torch.stack(means), torch.stack(spreads)


def compare_color_drift(real, generated, max_separation=128, bins=20):
    """`color_drift` of both videos and the mean |difference| of their mean curves over d = 1..D.

    real, generated: `[T,3,H,W]` in [0,1] (lengths and sizes may differ; D is the smaller range).
    Returns a dict with real_mean, real_std, generated_mean, generated_std (1-D tensors) and gap (float).
    """
    real_mean, real_std = color_drift(real, max_separation, bins)
    generated_mean, generated_std = color_drift(generated, max_separation, bins)
    common = min(real_mean.numel(), generated_mean.numel())
    gap = float((real_mean[1:common] - generated_mean[1:common]).abs().mean())
    return {"real_mean": real_mean, "real_std": real_std, "generated_mean": generated_mean,
            "generated_std": generated_std, "gap": gap, "real_frames": real.shape[0],
            "generated_frames": generated.shape[0]}


def plot_color_drift(result, height=320, width=640):
    """Mean and spread (std) curves of both videos against separation on one plot -> `[3,H,W]`."""
    return line_plot({"real mean": result["real_mean"], "generated mean": result["generated_mean"],
                      "real std": result["real_std"], "generated std": result["generated_std"]},
                     height, width, title="colour similarity vs frame separation", y_range=(0.0, 1.0))


def format_color_drift(result):
    """Plain-text summary: sizes, the gap and mean +- std at separations 1, 2, 4, ... D."""
    common = min(result["real_mean"].numel(), result["generated_mean"].numel()) - 1
    lines = ["colour similarity S vs frame separation (seed 003 eq. 2.1, mean +- std over start frames)",
             f"real: {result['real_frames']} frames, generated: {result['generated_frames']} frames",
             f"mean |S_real - S_generated| over separations 1..{common}: {result['gap']:.4f} "
             f"(0 = same rate of colour change)"]
    longest = max(result["real_mean"].numel(), result["generated_mean"].numel()) - 1
    separation = 1
    while separation <= longest:
        lines.append(f"d={separation}: real {_at(result, 'real', separation)} | generated "
                     f"{_at(result, 'generated', separation)}")
        separation *= 2
    return "\n".join(lines)


def _at(result, name, separation):
    mean, std = result[f"{name}_mean"], result[f"{name}_std"]
    return f"{mean[separation]:.4f} +- {std[separation]:.4f}" if separation < mean.numel() else "n/a"
