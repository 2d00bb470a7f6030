"""Long-video benchmark (issue 12): peak memory of the streaming file paths against video length, the
quality of windowed vs single-anchor blind consistency vs the flow temporal filter on a long moving-camera
clip (with a seam check at window/chunk borders), and the VSR network's sliding 9-frame context against
its whole-clip propagation.

Usage:
    python bench/longvideo/bench_streaming.py [--lengths 100 400 1600] [--quality-frames 120]
                                              [--skip-memory] [--skip-quality] [--skip-vsr] [--threads 1]

Writes the Markdown tables to bench/longvideo/RESULTS.md (and prints them).

Memory: every (path, length) runs in a fresh subprocess that writes its input MP4 files first (outside the
measured span: the peak-RSS counter VmHWM is reset after), then streams them through the procedure and
writes the output MP4; the peak RSS of that span is reported. Input: a 96x64 camera pan over a rendered
layered scene (models/data), 200 frames played forward and backward as often as needed; processed video =
the same frames with a random per-frame gain per channel (flicker). Settings are small so 1600 frames take
minutes on a CPU: blind U-Net width 8, 2 levels, 1 epoch per window of 16 frames (overlap 4); the wrapper
with the built-in 2x bicubic upscaler, chunk 8, look-ahead 16, flow estimated at the LR size.
"""
import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "bench" / "vsr"))
import conftest  # noqa: E402,F401  (makes `import tame` work)
from bench_vsr import measured_run  # noqa: E402

from tame.kernels.metrics import psnr, warping_error  # noqa: E402
from tame.models.data.degradations import degrade  # noqa: E402
from tame.models.data.scenes import render_clip  # noqa: E402
from tame.models.edit.blind import BlindSettings, blind_consistency  # noqa: E402
from tame.models.edit.windowed import WindowedSettings, windowed_blind_consistency, windowed_blind_stream  # noqa: E402
from tame.models.io.video import VideoWriter, iter_frame_chunks  # noqa: E402
from tame.models.io.weights import load_state_dict, read_safetensors_metadata  # noqa: E402
from tame.models.video.streaming import temporal_upscale_stream  # noqa: E402
from tame.models.video.temporal_filter import flow_temporal_filter  # noqa: E402
from tame.models.vsr import load_vsr_weights, upscale_video  # noqa: E402
from tame.models.vsr.context import upscale_video_windowed  # noqa: E402
from tame.models.vsr.wrapper import resize_upscaler  # noqa: E402
from tame.nodes.flow_nodes import builtin_estimator  # noqa: E402
from tame.tests.support.peers import flickering_upscaler  # noqa: E402

MEMORY_SIZE = (64, 96)
GRADE = (1.1, 0.95, 0.8)  # the "clean edit": a fixed colour grade
FLICKER = 0.12  # standard deviation of the per-frame, per-channel gain of the processed video


def flicker(frames, first_frame=0, amount=FLICKER):
    """Per-frame random gain per channel, seeded by the frame index (the same frame flickers the same)."""
    gains = [torch.randn(3, generator=torch.Generator().manual_seed(first_frame + t)) for t in range(frames.shape[0])]
    return (frames * (1 + amount * torch.stack(gains).view(-1, 3, 1, 1))).clamp(0, 1)


def graded(frames):
    return (frames * torch.tensor(GRADE).view(1, 3, 1, 1)).clamp(0, 1)


# ---------------------------------------------------------------- memory (subprocesses)
def pan_frames(count, clip):
    """Frames 0..count-1 of the clip played forward and backward (a camera panning back and forth)."""
    period = 2 * clip.shape[0] - 2
    index = [t % period for t in range(count)]
    return [clip[i if i < clip.shape[0] else period - i] for i in index]


def write_inputs(folder, count):
    """original.mp4 and processed.mp4 of `count` frames of 96x64 -> their paths."""
    clip = render_clip(200, *MEMORY_SIZE, motion=3.0, num_layers=2, rotation=False, zoom=False, seed=7).frames
    paths = folder / "original.mp4", folder / "processed.mp4"
    with VideoWriter(paths[0], 24.0) as original, VideoWriter(paths[1], 24.0) as processed:
        frames = pan_frames(count, clip)
        for start in range(0, count, 50):
            chunk = torch.stack(frames[start:start + 50])
            original.write(chunk.permute(0, 2, 3, 1))
            processed.write(flicker(graded(chunk), start).permute(0, 2, 3, 1))
    return paths


def chunks_chw(path):
    return (chunk.permute(0, 3, 1, 2) for chunk in iter_frame_chunks(path, 16))


def child_blind(paths, output):
    settings = WindowedSettings(BlindSettings(epochs=1, width=8, levels=2), 16, 4, 1)
    with VideoWriter(output, 24.0) as writer:
        windowed_blind_stream(chunks_chw(paths[0]), chunks_chw(paths[1]),
                              lambda frames: writer.write(frames.permute(0, 2, 3, 1)), builtin_estimator(), settings)


def child_wrapper(paths, output):
    with VideoWriter(output, 24.0) as writer:
        temporal_upscale_stream(chunks_chw(paths[0]), lambda frames: writer.write(frames.permute(0, 2, 3, 1)),
                                resize_upscaler("bicubic", 2), 2, builtin_estimator(), chunk=8, lookahead=16,
                                flow_min_side=0)


def child(kind, count):
    with tempfile.TemporaryDirectory() as work:
        paths = write_inputs(Path(work), count)
        run = {"blind": child_blind, "wrapper": child_wrapper}[kind]
        return measured_run(lambda: run(paths, Path(work) / "out.mp4"), count)


def bench_memory(args):
    lines = ["## Peak memory of the streaming file paths against video length (96x64, fresh process each)", "",
             "| path | frames | peak RSS (MB) | RSS before (MB) | ms/frame |", "|---|---|---|---|---|"]
    for kind in ("blind", "wrapper"):
        peaks = []
        for count in args.lengths:
            command = [sys.executable, __file__, "--child", kind, "--frames", str(count), "--threads", str(args.threads)]
            row = json.loads(subprocess.run(command, check=True, capture_output=True, text=True).stdout.splitlines()[-1])
            peaks.append(row["peak_rss_mb"])
            lines.append(f"| {NAMES[kind]} | {count} | {row['peak_rss_mb']:.0f} | {row['rss_before_mb']:.0f} | "
                         f"{row['ms_per_frame']:.1f} |")
            print(lines[-1], flush=True)
        lines.append(f"| {NAMES[kind]}: largest / smallest peak | | {max(peaks) / min(peaks):.3f} | | |")
    return lines


NAMES = {"blind": "windowed blind consistency (stream)", "wrapper": "temporal upscale wrapper (stream, 2x)"}


# ---------------------------------------------------------------- quality on a long pan
def pan_clip(frames):
    clip = render_clip(frames, 64, 96, motion=3.0, num_layers=1, rotation=False, zoom=False, seed=2)
    return clip, graded(clip.frames), flicker(graded(clip.frames))


def border_ratio(per_pair, borders, reach=None):
    """mean E_warp of the pairs (b-1, b) for b in borders / mean of the other pairs: all of them (reach
    None), or only those within `reach` pairs of a border (a local comparison, which the content's
    variation along the clip does not sway)."""
    at_border = [b - 1 for b in borders if 0 < b < per_pair.shape[0] + 1]
    inside = [i for i in range(per_pair.shape[0]) if i not in at_border and
              (reach is None or min(abs(i - j) for j in at_border) <= reach)]
    return float(per_pair[at_border].mean() / per_pair[inside].mean())


def seam_text(per_pair, borders):
    return f"{border_ratio(per_pair, borders):.2f} / {border_ratio(per_pair, borders, 3):.2f}"


def quality_row(name, video, clip, clean, processed, seconds, borders=None):
    per_pair = warping_error(video, clip.flow_forward, clip.flow_backward)[0]
    ratio = "" if borders is None else seam_text(per_pair, borders)
    return (f"| {name} | {1e3 * float(per_pair.mean()):.3f} | {float(psnr(video, clean).mean()):.2f} | "
            f"{float(psnr(video, processed).clamp(max=99).mean()):.2f} | {ratio} | {seconds:.0f} |")


def timed(function):
    started = time.perf_counter()
    result = function()
    return result, time.perf_counter() - started


def bench_quality(args):
    clip, clean, processed = pan_clip(args.quality_frames)
    estimator = builtin_estimator()
    settings = BlindSettings(epochs=6, width=16, levels=2)
    lines = [f"## Quality on a {args.quality_frames}-frame camera pan (96x64, 1.8 px/frame, one moving layer)", "",
             "E_warp with the exact flow of the clip (x1e3, non-occluded pixels); PSNR to the clean edit (fixed "
             "colour grade) and to the processed frames (the grade with per-frame gain flicker, sd 0.12); "
             "seam = E_warp of the pairs at window borders (first frame of a window, end of its cross-fade) / E_warp of "
             "all other pairs, and / of the pairs within 3 frames of a border (local).", "",
             "| method | E_warp x1e3 | PSNR to clean edit | PSNR to processed | seam ratio | seconds |",
             "|---|---|---|---|---|---|", quality_row("processed (per-frame edit)", processed, clip, clean, processed, 0)]
    single, seconds = timed(lambda: blind_consistency(clip.frames, processed, estimator, settings).frames)
    lines.append(quality_row("single-anchor blind (6 epochs)", single, clip, clean, processed, seconds))
    print(lines[-1], flush=True)
    windowed_settings = WindowedSettings(settings, 24, 12, 4)
    result, seconds = timed(lambda: windowed_blind_consistency(clip.frames, processed, estimator, windowed_settings))
    borders = sorted({b for start, _, _ in result.windows[1:] for b in (start, start + windowed_settings.overlap)})
    lines.append(quality_row("windowed blind (window 24, overlap 12, 6 + 4 epochs)", result.frames, clip, clean,
                             processed, seconds, borders))
    print(lines[-1], flush=True)
    filtered, seconds = timed(lambda: flow_temporal_filter(processed, estimator))
    lines.append(quality_row("flow temporal filter (radius 2)", filtered, clip, clean, processed, seconds))
    lines.extend(wrapper_seams(clip, estimator))
    return lines


def wrapper_seams(clip, estimator):
    """Seam check of the streaming wrapper: E_warp (exact HR flow) at chunk borders vs inside chunks."""
    lr = degrade(clip.frames, 2, "BI")
    written = []
    temporal_upscale_stream((lr[i:i + 16] for i in range(0, lr.shape[0], 16)), written.append,
                            flickering_upscaler(2), 2, estimator, chunk=8, lookahead=16)
    per_pair = warping_error(torch.cat(written), clip.flow_forward, clip.flow_backward)[0]
    ratio = seam_text(per_pair, range(8, clip.frames.shape[0], 8))
    return ["", f"Streaming wrapper (flickering 2x upscaler, chunk 8, look-ahead 16) on the same clip: E_warp x1e3 "
                f"{1e3 * float(per_pair.mean()):.3f}, seam ratio at chunk borders (all / local) {ratio}."]


# ---------------------------------------------------------------- VSR context
def bench_vsr_context():
    path = ROOT / "models" / "weights" / "tame_vsr_x4.safetensors"
    net = load_vsr_weights(load_state_dict(path), read_safetensors_metadata(path)).eval()
    estimator = builtin_estimator()
    cases = []
    for seed in range(3):
        clip = render_clip(20, 192, 192, motion=4.0, num_layers=2, seed=seed)
        cases.append((clip.frames, degrade(clip.frames, 4, "BI")))
    runs = {"whole-clip propagation (today)": lambda lr: upscale_video(net, lr, estimator, chunk_frames=10),
            "9-frame window (4 + 4), per frame": lambda lr: upscale_video_windowed(net, lr, estimator, 4, 1),
            "9-frame window (>= 4 + 4), chunks of 10": lambda lr: upscale_video_windowed(net, lr, estimator, 4, 10),
            "no temporal context (radius 0)": lambda lr: upscale_video_windowed(net, lr, estimator, 0, 1)}
    lines = ["## VSR network: sliding 9-frame context vs whole-clip propagation", "",
             "Shipped 4x weights, 3 procedural clips of 20 frames, 192x192 HR (48x48 LR, BI), built-in flow.", "",
             "| temporal context | PSNR (dB) | ms/frame |", "|---|---|---|"]
    for name, run in runs.items():
        scores, seconds = [], 0.0
        for hr, lr in cases:
            output, spent = timed(lambda: run(lr))
            scores.append(float(psnr(output, hr).mean()))
            seconds += spent
        lines.append(f"| {name} | {sum(scores) / len(scores):.2f} | {1e3 * seconds / (20 * len(cases)):.0f} |")
        print(lines[-1], flush=True)
    return lines


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--lengths", type=int, nargs="+", default=[100, 400, 1600])
    parser.add_argument("--quality-frames", type=int, default=120)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--skip-memory", action="store_true")
    parser.add_argument("--skip-quality", action="store_true")
    parser.add_argument("--skip-vsr", action="store_true")
    parser.add_argument("--child", choices=("blind", "wrapper"))
    parser.add_argument("--frames", type=int, default=100)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.child:
        print(json.dumps(child(args.child, args.frames)))
        return
    lines = ["# Long video: streaming memory, windowed consistency, VSR context", "",
             f"`python bench/longvideo/bench_streaming.py --threads {args.threads}` (CPU)", ""]
    for skip, section in ((args.skip_memory, lambda: bench_memory(args)), (args.skip_quality, lambda: bench_quality(args)),
                          (args.skip_vsr, bench_vsr_context)):
        if not skip:
            lines += section() + [""]
    (HERE / "RESULTS.md").write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
