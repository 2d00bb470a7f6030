"""Temporal-quality report of a video: E_warp, RWE, PSNR/SSIM, colour similarity over time."""
import torch

from ...kernels.metrics import color_similarity_curve, psnr, referenced_warping_error, ssim, warping_error
from ...kernels.plot import line_plot
from ..flow.estimate import estimate_video_flow


def temporal_metrics(frames, estimator, reference=None, progress=None):
    """Measure a video `[T,3,H,W]` in [0,1] (T >= 2); `reference` `[T,3,H,W]` enables RWE/PSNR/SSIM.

    E_warp uses flow estimated on `frames` (the evaluated video); RWE warps the reference frames
    with that same flow (seed 000 eq. 2.4). Returns a dict of 1-D CPU tensors and floats.
    """
    if reference is not None and reference.shape != frames.shape:
        raise ValueError(
            f"reference video {tuple(reference.shape)} differs from the video {tuple(frames.shape)}; "
            f"both need the same frame count and size.")
    flows = estimate_video_flow(estimator, frames, bidirectional=True, progress=progress)
    e_warp_pairs, e_warp = warping_error(frames, flows.forward, flows.backward)
    result = {
        "frames": frames.shape[0],
        "e_warp_per_pair": e_warp_pairs, "e_warp": float(e_warp),
        "color_similarity": color_similarity_curve(frames),
    }
    if reference is not None:
        _, rwe = referenced_warping_error(frames, reference, flows.forward, flows.backward)
        result.update(rwe=float(rwe), psnr=psnr(frames, reference), ssim=ssim(frames, reference))
    return result


def format_report(result):
    """Plain-text report of `temporal_metrics` output."""
    lines = [f"frames: {result['frames']}",
             f"E_warp (x1e3, lower = steadier): {1e3 * result['e_warp']:.4f}"]
    if "rwe" in result:
        lines += [f"RWE (x1e3): {1e3 * result['rwe']:.4f}",
                  f"PSNR mean: {result['psnr'].mean():.3f} dB",
                  f"SSIM mean: {result['ssim'].mean():.4f}"]
    similarity = result["color_similarity"]
    lines.append(f"colour similarity S(t) to frame 0: min {similarity.min():.4f}, last {similarity[-1]:.4f}")
    lines.append("E_warp per pair (x1e3): " + ", ".join(f"{1e3 * v:.3f}" for v in result["e_warp_per_pair"]))
    if "psnr" in result:
        lines.append("PSNR per frame: " + ", ".join(f"{v:.2f}" for v in result["psnr"]))
    return "\n".join(lines)


def plot_report(result, height=256, width=512):
    """Curves of the report rendered to `[3,H,W]` images stacked vertically -> `[3,k*H,W]`."""
    panels = [
        line_plot({"E_warp x1e3": 1e3 * result["e_warp_per_pair"]}, height, width, title="warping error per pair"),
        line_plot({"S(t)": result["color_similarity"]}, height, width, title="colour similarity to frame 0",
                  y_range=(0.0, 1.0)),
    ]
    if "psnr" in result:
        panels.append(line_plot({"PSNR dB": result["psnr"]}, height, width, title="PSNR per frame"))
        panels.append(line_plot({"SSIM": result["ssim"]}, height, width, title="SSIM per frame"))
    return torch.cat(panels, dim=1)
