"""Benchmark of the temporal wrapper (specs/vsr.md D): a deliberately flickering per-frame upscaler,
alone and wrapped, on clips with known motion made from scikit-image photos.

Usage: python bench/vsr/bench_wrapper.py [--frames 16] [--size 256] [--scales 2 4] [--device cpu]
       [--threads N]
Prints a Markdown table and writes it to bench/vsr/RESULTS_wrapper.md.

Clips: `render_clip` (camera pan + rotation + zoom, two occluding layers, sub-pixel motion, exact flow)
at HR size, downscaled by the BI protocol (antialiased bicubic, pixel-area aligned like the upscalers).
Columns:
- E_warp x1e3: warping error with the ground-truth HR flow (kernels.metrics.warping_error). Its floor is
  not 0: the metric's bilinear warp blurs detail, so even the HR truth scores > 0 (row "HR truth").
- PSNR: mean over frames against the HR truth.
- HF kept: energy of the high band (the wrapper's own split) of the result / that of the per-frame
  result. The per-frame high band includes the flicker itself, so removing flicker lowers it.
- steady detail kept: projection of the result's high band onto the high band of the same upscaler with
  its jitter switched off (mean sharpening, no grain), relative to the per-frame result's projection:
  how much of the flicker-free detail survives (1 = all; the grain is uncorrelated with it).
- ms/frame: wall time of the whole call per frame (upscaler included; flow estimation only in
  "estimated flow" rows, which estimate on LR frames enlarged to flow_min_side px like the defaults,
  except the "at the LR size" row).
- must-show (specs/vsr.md D): E_warp down >= 50%, PSNR at most 0.2 dB below the per-frame result, HF
  kept >= 0.8; "no (...)" names the criteria a row misses.
"""
import argparse
import inspect
import os
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from skimage import data

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests"))
import conftest  # noqa: E402,F401  (makes `import tame` work)

from tame.kernels.frequency import split_frequencies  # noqa: E402
from tame.kernels.metrics import psnr, warping_error  # noqa: E402
from tame.kernels.warp import resize_flow  # noqa: E402
from tame.models.data.scenes import render_clip  # noqa: E402
from tame.models.flow.field import FlowSet  # noqa: E402
from tame.models.vsr.wrapper import (
    FLOW_MIN_SIDE_DEFAULT,
    estimate_lr_flow,
    hf_passes_for_scale,
    resize_upscaler,
    temporal_upscale,
)
from tame.tests.support.peers import flickering_upscaler

PHOTOS = ("astronaut", "coffee", "chelsea", "rocket")
# Flickering upscaler settings: per-frame unsharp amount range and grain sigma. Both have mean amount 0.75.
FLICKER_LEVELS = {"strong": ((0.0, 1.5), 0.03), "mild": ((0.5, 1.0), 0.01)}
STEADY_SHARPEN = 0.75


class OpenCvDisFlow(torch.nn.Module):
    """OpenCV DIS (medium preset) as an estimator module: a benchmark-only peer, not a dependency."""

    def forward(self, image1, image2):
        import cv2
        dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
        grey = lambda image: (image.mean(0) * 255).round().byte().cpu().numpy()
        flows = [torch.from_numpy(dis.calc(grey(a), grey(b), None)).permute(2, 0, 1)
                 for a, b in zip(image1, image2)]
        return torch.stack(flows).to(image1.device)


def estimators(device):
    """Flow estimators for the estimated-flow rows: the built-in one and OpenCV DIS, when present."""
    from tame.models.flow.estimate import FlowEstimator
    found = {}
    try:
        from tame.models.flow.builtin import BuiltinFlow
        found["built-in medium"] = FlowEstimator(BuiltinFlow(quality="medium"), "built-in medium", device)
    except ImportError:
        pass
    try:
        import cv2  # noqa: F401
        found["OpenCV DIS medium"] = FlowEstimator(OpenCvDisFlow(), "OpenCV DIS medium", "cpu")
    except ImportError:
        pass
    return found


def photo(name):
    return torch.from_numpy(getattr(data, name)()).permute(2, 0, 1).float() / 255


def make_case(name, seed, frames, size, scale):
    """HR clip, its BI-degraded LR frames, and ground-truth LR flow (the HR flow resized to LR)."""
    clip = render_clip(frames, size, size, image=photo(name), motion=4.0, num_layers=2, seed=seed)
    lr_size = (size // scale, size // scale)
    lr = F.interpolate(clip.frames, size=lr_size, mode="bicubic", align_corners=False, antialias=True).clamp(0, 1)
    lr_flows = FlowSet(resize_flow(clip.flow_forward, lr_size), resize_flow(clip.flow_backward, lr_size))
    return clip, lr, lr_flows


def measure(result, clip, per_frame, steady, passes):
    high = lambda frames: split_frequencies(frames, passes=passes)[1]
    reference = high(steady)
    return {
        "e_warp": 1e3 * warping_error(result, clip.flow_forward, clip.flow_backward)[1].item(),
        "psnr": psnr(result, clip.frames).mean().item(),
        "hf_kept": (high(result).square().mean() / high(per_frame).square().mean()).item(),
        "steady_kept": ((high(result) * reference).sum() / (high(per_frame) * reference).sum()).item(),
    }


def timed(function):
    start = time.perf_counter()
    result = function()
    return result, time.perf_counter() - start


def best_time(function, repeats=3):
    """Shortest wall time of `repeats` runs (the CPU may be shared with other jobs)."""
    return min(timed(function)[1] for _ in range(repeats))


def variants(lr, lr_flows, upscale, scale, flow_estimators, device):
    """name -> callable producing the result `[T,3,H,W]`."""
    runs = {
        "per-frame flickering upscaler": lambda: upscale(lr),
        "wrapped, GT flow (defaults)": lambda: temporal_upscale(lr, upscale, scale, flows=lr_flows, device=device),
        "wrapped, GT flow, keep_detail 0 (plain average)": lambda: temporal_upscale(
            lr, upscale, scale, flows=lr_flows, keep_detail=0.0, device=device),
        "wrapped, GT flow, temporal_weight 0.5": lambda: temporal_upscale(
            lr, upscale, scale, flows=lr_flows, temporal_weight=0.5, device=device),
    }
    for name, estimator in flow_estimators.items():
        runs[f"wrapped, {name} flow (estimated on LR, enlarged to {FLOW_MIN_SIDE_DEFAULT} px)"] = (
            lambda estimator=estimator: temporal_upscale(lr, upscale, scale, estimator, device=device))
    if "built-in medium" in flow_estimators:
        runs["wrapped, built-in medium flow at the LR size (flow_min_side 0)"] = lambda: temporal_upscale(
            lr, upscale, scale, flow_estimators["built-in medium"], flow_min_side=0, device=device)
    return runs


def mean_rows(rows):
    return {key: sum(row[key] for row in rows) / len(rows) for key in rows[0]}


def bench_setting(scale, level, args, flow_estimators):
    """Mean metrics over the photos for every variant plus reference rows -> [(name, metrics)]."""
    sharpen_range, grain = FLICKER_LEVELS[level]
    totals = {}
    for seed, name in enumerate(PHOTOS):
        clip, lr, lr_flows = make_case(name, seed, args.frames, args.size, scale)
        passes = hf_passes_for_scale(scale)
        upscale = flickering_upscaler(scale, sharpen_range, grain, seed=seed)
        steady_upscale = flickering_upscaler(scale, (STEADY_SHARPEN, STEADY_SHARPEN), 0.0)
        per_frame, steady = upscale(lr), steady_upscale(lr)
        for variant, run in variants(lr, lr_flows, upscale, scale, flow_estimators, args.device).items():
            result, seconds = timed(run)
            row = measure(result.cpu(), clip, per_frame, steady, passes)
            row["ms_per_frame"] = 1e3 * seconds / args.frames
            totals.setdefault(variant, []).append(row)
        references = {"reference: upscaler with jitter off": steady, "reference: plain bicubic":
                      resize_upscaler("bicubic", scale)(lr), "reference: HR truth": clip.frames}
        for variant, frames in references.items():
            totals.setdefault(variant, []).append(measure(frames, clip, per_frame, steady, passes))
    return [(name, mean_rows(rows)) for name, rows in totals.items()]


def speed(args, flow_estimators, frames=16):
    """ms/frame of the wrapper (4x bicubic, GT-free zero flow) at 320x180 -> 1280x720, and flow time."""
    device = torch.device(args.device)
    lr = F.interpolate(photo("astronaut")[None], size=(180, 320), mode="area").expand(frames, -1, -1, -1).contiguous()
    zero = torch.zeros(frames - 1, 2, 180, 320)
    upscale = resize_upscaler("bicubic", 4)
    temporal_upscale(lr[:2], upscale, 4, flows=FlowSet(zero[:1], zero[:1]), device=device)  # warm-up
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    per_frame_seconds = best_time(lambda: upscale(lr.to(device)).cpu())
    seconds = best_time(lambda: temporal_upscale(lr, upscale, 4, flows=FlowSet(zero, zero), device=device))
    lines = [f"- 4x bicubic alone: {1e3 * per_frame_seconds / frames:.1f} ms/frame; wrapped (flow given): "
             f"{1e3 * seconds / frames:.1f} ms/frame ({frames} frames, device {args.device}, best of 3)."]
    if device.type == "cuda":
        lines.append(f"- peak GPU memory of the wrapped run: {torch.cuda.max_memory_allocated() / 2 ** 20:.0f} MiB "
                     f"(output-size buffers stay on the CPU).")
    for name, estimator in flow_estimators.items():
        for min_side in (0, FLOW_MIN_SIDE_DEFAULT):
            flow_seconds = best_time(lambda: estimate_lr_flow(estimator, lr, min_side))
            where = f"enlarged to {FLOW_MIN_SIDE_DEFAULT} px (the default)" if min_side else "at 320x180"
            lines.append(f"- flow estimation ({name}, both directions), frames {where}: "
                         f"{1e3 * flow_seconds / frames:.1f} ms/frame.")
    return lines


def must_show_verdict(row, baseline):
    """The issue's must-show for a wrapped row: E_warp down >= 50%, PSNR at most 0.2 dB worse, HF kept
    >= 0.8 -> "yes" or "no (" + the failed criteria + ")"."""
    failed = [label for label, passed in (
        ("E_warp", row["e_warp"] <= 0.5 * baseline["e_warp"]),
        ("PSNR", row["psnr"] >= baseline["psnr"] - 0.2),
        ("HF", row["hf_kept"] >= 0.8)) if not passed]
    return f"no ({', '.join(failed)})" if failed else "yes"


def wrapper_defaults():
    """The tuning defaults of `temporal_upscale`, as read from its signature."""
    parameters = inspect.signature(temporal_upscale).parameters
    names = ("temporal_weight", "keep_detail", "max_gain", "prefilter", "visibility_alpha", "flow_min_side")
    return ", ".join(f"{name} {parameters[name].default:g}" for name in names)


def format_table(results, args, estimator_note, speed_lines, loads):
    lines = [
        "# Temporal wrapper benchmark (bench/vsr/bench_wrapper.py)",
        "",
        f"Clips: render_clip from skimage photos {', '.join(PHOTOS)} (one clip each, seeds 0-3), "
        f"{args.frames} frames of {args.size}x{args.size} HR, motion 4 px/frame with rotation, zoom and 2 "
        f"occluding layers; LR = antialiased bicubic downscale (BI). Per-frame upscaler: flickering_upscaler "
        f"= bicubic + per-frame random unsharp amount + high-pass grain (strong: amount in [0, 1.5], grain "
        f"sigma 0.03; mild: amount in [0.5, 1.0], grain 0.01). Wrapper defaults: {wrapper_defaults()}, "
        f"split passes {', '.join(f'{s}x: {hf_passes_for_scale(s)}' for s in args.scales)}. "
        f"Device: {args.device}, {torch.get_num_threads()} CPU threads. {estimator_note}",
        "",
        "Values are means over the 4 clips; changes are relative to the per-frame flickering upscaler. "
        "E_warp uses the ground-truth flow; see the script docstring for every column. ms/frame in the "
        "tables is one run per clip: on a CPU shared with other jobs it can vary several-fold between "
        "runs; the speed section takes the best of 3. CPU load average (1 min) at start / end of this run: "
        f"{loads[0]:.1f} / {loads[1]:.1f} (machine with {os.cpu_count()} cores).",
        "",
    ]
    for (scale, level), rows in results:
        baseline = dict(rows)["per-frame flickering upscaler"]
        lines += [f"## {scale}x ({args.size // scale}px -> {args.size}px), {level} flicker", "",
                  "| variant | E_warp x1e3 | E_warp change | PSNR dB | PSNR change | HF kept | steady detail kept "
                  "| ms/frame | must-show |",
                  "|---|---|---|---|---|---|---|---|---|"]
        for name, row in rows:
            change = 100 * (row["e_warp"] / baseline["e_warp"] - 1)
            timing = f"{row['ms_per_frame']:.1f}" if "ms_per_frame" in row else "-"
            psnr_text = (f"{row['psnr']:.2f} | {row['psnr'] - baseline['psnr']:+.2f}" if row["psnr"] != float("inf")
                         else "inf | -")
            verdict = must_show_verdict(row, baseline) if name.startswith("wrapped") else "-"
            lines.append(f"| {name} | {row['e_warp']:.3f} | {change:+.0f}% | {psnr_text} | {row['hf_kept']:.2f} | "
                         f"{row['steady_kept']:.2f} | {timing} | {verdict} |")
        lines.append("")
    lines += ["## Speed, 320x180 -> 1280x720", ""] + speed_lines
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=16)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--scales", type=int, nargs="+", default=[2, 4])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--output", default=str(Path(__file__).with_name("RESULTS_wrapper.md")))
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    flow_estimators = estimators(args.device)
    note = (f"Estimated-flow rows: {', '.join(flow_estimators)}." if flow_estimators
            else "No flow estimator available: ground-truth flow rows only.")
    load_at_start = os.getloadavg()[0]
    results = [((scale, level), bench_setting(scale, level, args, flow_estimators))
               for scale in args.scales for level in FLICKER_LEVELS]
    speed_lines = speed(args, flow_estimators)
    table = format_table(results, args, note, speed_lines, (load_at_start, os.getloadavg()[0]))
    print(table)
    Path(args.output).write_text(table + "\n")


if __name__ == "__main__":
    main()
