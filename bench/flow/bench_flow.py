"""Flow benchmark: the built-in estimator vs OpenCV DIS and Farneback on pairs with exact flow.

    python bench/flow/bench_flow.py [--quick] [--sections synthetic,real] [--sizes 480p,1080p]
                                    [--threads 2,1] [--omp-wait passive]

Scenes (tests/support/scenes.py `render_pair` over models/data/scenes.py): a background (scikit-image photos, or a procedural texture)
under camera motion (translation + rotation + zoom) and two independently moving, occluding layers;
motions 1-50 px per frame. Columns: mean end-point error over all pixels and over the pixels that
stay visible in frame 2, share of pixels with error > 3 px, milliseconds per pair (median of the
timed repeats after one warm-up call, the methods taking turns within each repeat; averaged over
pairs), that time divided by DIS-medium's time in the same run, and the peak-memory increase of one call.

CPU time: the process CPU time (all threads) of a call, reported beside wall time for the real pairs
because other jobs on a shared CPU inflate wall time unevenly.

Real pairs (section "real", tests/support/real_pairs.py): the Middlebury 2014 Motorcycle stereo pair
scikit-image ships (real photographs, real ground truth: flow = (-disparity, 0), disparities up to
60 px at 741x500; EPE over the pixels with ground truth, occluded ones included), at full size and
at half size, as captured and with frame 2 under an illumination change (gain, gamma, offset, light
falloff); and the photo scenes above at 480p with frame 2 (or both frames) degraded as a camera
would: illumination change, sensor noise + JPEG, defocus blur, all of them together. Columns: EPE and
share > 3 px per group, and the time ratio to DIS-medium on the same pairs in the same run, one pair per
call and with the video nodes' pairs per call (models/flow/estimate.py PAIRS_PER_BATCH).

Timing: every method runs with the same number of threads (torch.set_num_threads and
cv2.setNumThreads). `--omp-wait passive` sets OMP_WAIT_POLICY=PASSIVE before torch starts: on a CPU
shared with other jobs, torch's spinning OpenMP workers otherwise make multi-threaded torch code many
times slower (OpenCV's pthreads pool is not affected). The load average is reported.

Memory: in a fresh process, with the imports done and the inputs in memory, the peak-RSS mark is
reset (/proc/self/clear_refs, Linux) and one call runs on a random pair; reported is the peak resident
set size during the call minus the resident size before it. It covers everything the call allocates
(torch or OpenCV), which tracemalloc cannot see.

Needs the bench extra (opencv-python-headless, scikit-image). Prints markdown and writes
bench/flow/RESULTS.md.
"""
import argparse
import functools
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SIZES = {"480p": (480, 854), "1080p": (1080, 1920)}
MOTIONS = [1, 5, 15, 30, 50]
REAL_MOTIONS = [10, 30]
BUILTIN = ["built-in fast", "built-in medium", "built-in high"]
PEERS = ["DIS ultrafast", "DIS fast", "DIS medium", "Farneback"]
PHOTOS = ["astronaut", "coffee", "chelsea", "rocket"]
PROCEDURAL_BACKGROUNDS = 2
LUMA = (0.299, 0.587, 0.114)


def _import_runtime():
    """torch, numpy, cv2 and the pack (imported after OMP_WAIT_POLICY may have been set)."""
    global torch, np, cv2, BuiltinFlow, PAIRS_PER_BATCH, render_pair
    import cv2
    import numpy as np
    import torch
    sys.path.insert(0, str(ROOT / "tests"))
    import conftest  # noqa: F401  (makes `import tame` work from the checkout)

    from tame.models.flow.builtin import BuiltinFlow
    from tame.models.flow.estimate import PAIRS_PER_BATCH
    from tame.tests.support.scenes import render_pair
    global real_pairs
    from tame.tests.support import real_pairs


def backgrounds(quick):
    """[(name, image [3,h,w] or None for a procedural texture)]."""
    import skimage.data
    photos = PHOTOS[:1] if quick else PHOTOS
    images = [(name, torch.from_numpy(getattr(skimage.data, name)()).permute(2, 0, 1).float() / 255)
              for name in photos]
    return images + [(f"procedural {i}", None) for i in range(1 if quick else PROCEDURAL_BACKGROUNDS)]


def _gray_u8(frame):
    """`[3,H,W]` in [0,1] -> uint8 luma (the built-in estimator's luma weights)."""
    weights = torch.tensor(LUMA).view(3, 1, 1)
    return ((frame * weights).sum(0).clamp(0, 1) * 255).round().to(torch.uint8).numpy()


def make_method(name, device="cpu"):
    """-> callable(frame1 [3,H,W], frame2) -> flow [2,H,W] (CPU)."""
    if name.startswith("built-in"):
        model = BuiltinFlow(name.split()[1])
        if device == "cpu":
            return lambda a, b: model(a[None], b[None])[0]

        def on_gpu(a, b):
            flow = model(a[None].to(device), b[None].to(device))[0]
            torch.cuda.synchronize()
            return flow.cpu()
        return on_gpu
    if name == "Farneback":  # OpenCV's documented example parameters
        return lambda a, b: torch.from_numpy(cv2.calcOpticalFlowFarneback(
            _gray_u8(a), _gray_u8(b), None, 0.5, 5, 15, 3, 5, 1.2, 0)).permute(2, 0, 1)
    preset = {"DIS ultrafast": cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST, "DIS fast": cv2.DISOPTICAL_FLOW_PRESET_FAST,
              "DIS medium": cv2.DISOPTICAL_FLOW_PRESET_MEDIUM}[name]
    dis = cv2.DISOpticalFlow_create(preset)
    return lambda a, b: torch.from_numpy(dis.calc(_gray_u8(a), _gray_u8(b), None)).permute(2, 0, 1)


def render_scenes(size, motions, scenes):
    """[(motion, frame1 [3,H,W], frame2, flow [2,H,W], visible [H,W] bool, valid [H,W] bool)] for
    every motion x scene (valid: all pixels)."""
    pairs = []
    for motion in motions:
        for seed, (_, image) in enumerate(scenes):
            clip = render_pair(*size, float(motion), seed=seed, image=image)
            visible = clip.occlusion_forward[0, 0] < 0.5
            pairs.append((motion, clip.frames[0], clip.frames[1], clip.flow_forward[0], visible,
                          torch.ones_like(visible)))
    return pairs


def real_groups(quick):
    """{group name: pairs as in render_scenes, keyed by the group instead of the motion}."""
    groups = {}
    for scale, label in ((1, "Motorcycle 741x500"), (0.5, "Motorcycle 370x250")):
        left, right, flow, valid = real_pairs.stereo_motorcycle(scale)
        groups[label] = [(label, left, right, flow, valid, valid)]
        groups[label + " + illumination"] = [(label, left, real_pairs.change_illumination(right), flow,
                                              valid, valid)]
    photos = [(name, image) for name, image in backgrounds(quick) if image is not None]
    for kind in real_pairs.DEGRADATIONS:
        label = f"photos 480p, {kind}"
        groups[label] = []
        for motion in ([30] if quick else REAL_MOTIONS):
            for seed, (_, image) in enumerate(photos):
                clip = render_pair(*SIZES["480p"], float(motion), seed=seed, image=image)
                first, second = real_pairs.degrade(clip.frames[0], clip.frames[1], kind, seed=seed)
                visible = clip.occlusion_forward[0, 0] < 0.5
                groups[label].append((label, first, second, clip.flow_forward[0], visible,
                                      torch.ones_like(visible)))
    return groups


def median_times(calls, repeats):
    """{name: (median wall seconds, median CPU seconds)} of the zero-argument `calls` over `repeats`
    rounds, in which the calls take turns, so a load change on a shared CPU hits them alike."""
    times = {name: ([], []) for name in calls}
    with torch.no_grad():
        for _ in range(repeats):
            for name, call in calls.items():
                start, cpu_start = time.perf_counter(), time.process_time()
                call()
                times[name][0].append(time.perf_counter() - start)
                times[name][1].append(time.process_time() - cpu_start)
    return {name: (float(np.median(wall)), float(np.median(cpu))) for name, (wall, cpu) in times.items()}


def measure(methods, pairs, repeats):
    """Per method: lists over pairs of EPE (valid / visible and valid), share > 3 px (valid) and
    median ms (`median_times`, after one warm-up call)."""
    stats = {name: {"epe": [], "epe_visible": [], "bad": [], "ms": [], "cpu_ms": [], "motion": []}
             for name in methods}
    for motion, a, b, truth, visible, valid in pairs:
        with torch.no_grad():
            flows = {name: method(a, b) for name, method in methods.items()}   # warm-up
        times = median_times({name: functools.partial(method, a, b) for name, method in methods.items()}, repeats)
        for name, flow in flows.items():
            error = (flow - truth).norm(dim=0)
            s = stats[name]
            s["epe"].append(error[valid].mean().item())
            s["epe_visible"].append(error[visible & valid].mean().item())
            s["bad"].append((error[valid] > 3).float().mean().item())
            s["ms"].append(1e3 * times[name][0])
            s["cpu_ms"].append(1e3 * times[name][1])
            s["motion"].append(motion)
    return stats


def _memory_kb(field):
    """A field of /proc/self/status in kB (VmRSS = resident now, VmHWM = peak since the last reset)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def measure_call_memory(name, size, threads, device="cpu"):
    """Run in a fresh process: peak RSS during one call minus RSS before it (MB), printed."""
    torch.set_num_threads(threads)
    cv2.setNumThreads(threads)
    method = make_method(name, device)
    generator = torch.Generator().manual_seed(0)
    first, second = (torch.rand(3, *size, generator=generator) for _ in range(2))
    Path("/proc/self/clear_refs").write_text("5")  # reset the peak-RSS mark (Linux >= 4.0)
    before = _memory_kb("VmRSS")
    with torch.no_grad():
        method(first, second)
    print((_memory_kb("VmHWM") - before) / 1024)


def peak_memory_increase_mb(name, size, threads, device="cpu"):
    """Peak-RSS increase (MB) of one call of method `name` on a random pair, in a fresh process."""
    code = (f"import sys; sys.path.insert(0, {str(ROOT / 'bench' / 'flow')!r}); import bench_flow as b; "
            f"b._import_runtime(); b.measure_call_memory({name!r}, {tuple(size)!r}, {threads}, {device!r})")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def summary_table(stats, memory):
    reference = np.mean(stats["DIS medium"]["ms"])
    lines = ["| method | EPE all (px) | EPE visible (px) | > 3 px | ms / pair | time / DIS-medium | "
             "peak memory increase (MB) |",
             "|---|---|---|---|---|---|---|"]
    for name, s in stats.items():
        ms = np.mean(s["ms"])
        lines.append(f"| {name} | {np.mean(s['epe']):.3f} | {np.mean(s['epe_visible']):.3f} | "
                     f"{100 * np.mean(s['bad']):.2f}% | {ms:.1f} | {ms / reference:.2f}x | "
                     f"{memory.get(name, float('nan')):.0f} |")
    return "\n".join(lines)


def per_motion_table(stats, motions):
    lines = ["| method | " + " | ".join(f"{m} px" for m in motions) + " |",
             "|---|" + "---|" * len(motions)]
    for name, s in stats.items():
        epe = np.array(s["epe"])
        motion = np.array(s["motion"])
        lines.append(f"| {name} | " + " | ".join(f"{epe[motion == m].mean():.3f}" for m in motions) + " |")
    return "\n".join(lines)


def real_tables(group_stats):
    """Rows: groups. Table 1: EPE (px, pixels with ground truth) and share > 3 px per method;
    table 2: wall time (and process CPU time) relative to DIS-medium's on the same pairs."""
    methods = list(next(iter(group_stats.values())))
    head = ["| pairs | " + " | ".join(methods) + " |", "|---|" + "---|" * len(methods)]
    accuracy, speed = list(head), list(head)
    for group, stats in group_stats.items():
        reference = np.mean(stats["DIS medium"]["ms"])
        cpu_reference = np.mean(stats["DIS medium"]["cpu_ms"])
        accuracy.append(f"| {group} | " + " | ".join(
            f"{np.mean(stats[m]['epe']):.3f} ({100 * np.mean(stats[m]['bad']):.1f}%)" for m in methods) + " |")
        speed.append(f"| {group} | " + " | ".join(
            f"{np.mean(stats[m]['ms']) / reference:.2f}x ({np.mean(stats[m]['cpu_ms']) / cpu_reference:.2f}x)"
            for m in methods) + " |")
    means = [np.mean([np.mean(stats[m]["epe"]) for stats in group_stats.values()]) for m in methods]
    accuracy.append("| mean over groups | " + " | ".join(f"{v:.3f}" for v in means) + " |")
    return "\n".join(accuracy), "\n".join(speed)


def batched_speed_table(groups, repeats):
    """Rows: groups. Built-in medium's time per pair when PAIRS_PER_BATCH pairs of the group (repeated
    if it has fewer) go into one call, as the video nodes call it, over DIS-medium's time per pair
    (one call per pair), wall and CPU time (`median_times`)."""
    builtin, dis = BuiltinFlow("medium"), make_method("DIS medium")
    lines = ["| pairs | built-in medium, batched | wall time / DIS-medium | CPU time / DIS-medium |",
             "|---|---|---|---|"]
    for group, pairs in groups.items():
        chosen = [pairs[i % len(pairs)] for i in range(PAIRS_PER_BATCH)]
        first, second = (torch.stack([pair[k] for pair in chosen]) for k in (1, 2))
        with torch.no_grad():
            builtin(first, second)                                                   # warm-up
        times = median_times({"built-in": lambda: builtin(first, second),
                              "DIS": lambda: [dis(a, b) for a, b in zip(first, second)]}, repeats)
        (wall, cpu), (dis_wall, dis_cpu) = times["built-in"], times["DIS"]
        lines.append(f"| {group} | {1e3 * wall / PAIRS_PER_BATCH:.0f} ms / pair | {wall / dis_wall:.2f}x | "
                     f"{cpu / dis_cpu:.2f}x |")
    return "\n".join(lines)


def real_section(quick, thread_counts, repeats):
    """Markdown lines of the real-pairs section, one table per thread count."""
    groups = real_groups(quick)
    section = []
    for threads in thread_counts:
        torch.set_num_threads(threads)
        cv2.setNumThreads(threads)
        methods = {name: make_method(name) for name in BUILTIN + PEERS[:3]}
        group_stats = {group: measure(methods, pairs, repeats) for group, pairs in groups.items()}
        accuracy, speed = real_tables(group_stats)
        lines = [f"## Real pairs, {threads} thread{'s' * (threads > 1)}", "",
                 "EPE in px over the pixels with ground truth (share of them > 3 px):", "", accuracy, "",
                 "Wall time (process CPU time) relative to DIS-medium's on the same pairs; CPU time is "
                 "what a shared CPU does not inflate (DIS-medium wall time: "
                 + ", ".join(f"{np.mean(stats['DIS medium']['ms']):.0f} ms" for stats in group_stats.values())
                 + " per pair in this order):", "", speed, "",
                 f"The video nodes give the estimator {PAIRS_PER_BATCH} pairs per call "
                 "(models/flow/estimate.py); time per pair that way (the batch amortises the per-operation "
                 "cost, its larger working set costs memory traffic):",
                 "", batched_speed_table(groups, repeats), ""]
        print("\n".join(lines), flush=True)
        section += lines
    return section


def cpu_name():
    """The CPU model (ratios against DIS differ between CPU models, so the report names it)."""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown CPU"


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="one photo + one procedural texture, motions 5 and 30 px, 480p")
    parser.add_argument("--sections", default="synthetic,real",
                        help="comma-separated of synthetic (rendered scenes, sizes below) and real "
                             "(Motorcycle stereo + degraded photo scenes)")
    parser.add_argument("--sizes", default=None, help="comma-separated of 480p,1080p (default both; "
                                                      "480p with --quick)")
    parser.add_argument("--threads", default="2", help="thread count(s) for torch and OpenCV alike, "
                                                       "comma-separated for one section each (e.g. 2,1)")
    parser.add_argument("--repeats", type=int, default=3, help="timed calls per 480p pair after a warm-up "
                                                               "(1080p: 1)")
    parser.add_argument("--omp-wait", choices=["default", "passive"], default="default",
                        help="passive: OMP_WAIT_POLICY=PASSIVE for torch (use on a shared CPU)")
    parser.add_argument("--output", default=str(ROOT / "bench" / "flow" / "RESULTS.md"))
    return parser.parse_args()


def main():
    args = parse_args()
    if args.omp_wait == "passive":
        os.environ["OMP_WAIT_POLICY"] = "PASSIVE"
    _import_runtime()
    thread_counts = [int(t) for t in args.threads.split(",")]
    sizes = (args.sizes or ("480p" if args.quick else "480p,1080p")).split(",")
    motions = [5, 30] if args.quick else MOTIONS
    scenes = backgrounds(args.quick)
    names = BUILTIN + PEERS
    gpu = torch.cuda.is_available()
    load_before = os.getloadavg()
    command = " ".join(["python bench/flow/bench_flow.py"] + sys.argv[1:])
    report = [
        "# Flow benchmark", "",
        f"Command: `{command}`. Threads: torch and OpenCV use the same count (per section); OMP wait "
        f"policy: {os.environ.get('OMP_WAIT_POLICY', 'default')}; {os.cpu_count()} CPUs visible ({cpu_name()}); "
        f"torch {torch.__version__}, OpenCV {cv2.__version__}"
        + (f"; GPU: {torch.cuda.get_device_name()}" if gpu else "; no GPU") + ".",
        f"Scenes: {len(scenes)} backgrounds ({', '.join(n for n, _ in scenes)}) x motions {motions} px, "
        "camera motion + 2 occluding layers (models/data/scenes.py). Time: median of the timed calls per "
        f"pair after a warm-up ({args.repeats} at 480p, 1 at 1080p), averaged over pairs; the ratio is "
        "against DIS-medium in the same run. Memory: peak-RSS increase of one call in a fresh process.", ""]
    sections = args.sections.split(",")
    for size_name in (sizes if "synthetic" in sections else []):
        size = SIZES[size_name]
        pairs = render_scenes(size, motions, scenes)
        for threads in thread_counts:
            torch.set_num_threads(threads)
            cv2.setNumThreads(threads)
            methods = {name: make_method(name) for name in names}
            if gpu:
                methods.update({f"{name} (GPU)": make_method(name, "cuda") for name in BUILTIN})
            stats = measure(methods, pairs, args.repeats if size_name == "480p" else 1)
            memory = {name: peak_memory_increase_mb(name, size, threads) for name in names}
            section = [f"## {size_name} ({size[1]}x{size[0]}), {threads} thread{'s' * (threads > 1)}", "",
                       summary_table(stats, memory), "",
                       f"EPE (all pixels) per motion, {size_name}:", "", per_motion_table(stats, motions), ""]
            print("\n".join(section), flush=True)
            report += section
    if "real" in sections:
        report += real_section(args.quick, thread_counts, args.repeats)
    load_after = os.getloadavg()
    report.append(f"Load average (1 min) at start / end: {load_before[0]:.1f} / {load_after[0]:.1f} "
                  f"on {os.cpu_count()} CPUs (above zero: other jobs shared the machine).")
    text = "\n".join(report)
    Path(args.output).write_text(text + "\n")


if __name__ == "__main__":
    main()
