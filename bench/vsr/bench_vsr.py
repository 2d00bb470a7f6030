"""Benchmark of the Tame VSR network (specs/vsr.md A-C): the shipped 4x weights (default, clean-input and
small) against bicubic and against single-image peers on held-out clips (BI and realistic degradations), the
seed-style ablation at a small training budget, speed and peak memory at 320x180 -> 1280x720, and peak
memory of the streaming path against clip length.

Usage:
    python bench/vsr/bench_vsr.py [--weights FILE] [--clean-weights FILE] [--small-weights FILE] [--peer FILE]
                                  [--clean-peer FILE] [--frames 12] [--size 256] [--skip-ablation]
                                  [--skip-speed] [--threads N]
    python bench/vsr/bench_vsr.py --ablation-only --ablation-steps 800
    python bench/vsr/bench_vsr.py --export-train-images DIR   # the photos the shipped weights saw

Prints Markdown tables and writes them to bench/vsr/RESULTS_vsr.md (the ablation to RESULTS_ablation.md).

Held-out clips: `render_clip` over the scikit-image photos HELD_OUT_PHOTOS (none of them is among the
TRAIN_PHOTOS), camera pan + rotation + zoom at 4 HR px/frame and 2 occluding layers (the first textured
with a crop of the photo, the second with a procedural texture), exact flow; LR = the BI protocol
(models/data/degradations.py), and BI with blur, noise and block-DCT compression (HELD_OUT_DEGRADATIONS).
The single-image peers (`single_image_peer_x4.safetensors` and `single_image_peer_x4_clean.safetensors`
next to this script) are TameVSRNet without propagation and temporal modules, at least as many parameters,
trained by the same commands, steps and data as the default and the clean-input weights (README recipe). Columns:
- PSNR / SSIM: mean over frames against the HR truth;
- E_warp (true flow): warping error of the output with the exact HR flow (its floor is the truth's own
  value: the metric's bilinear warp blurs detail);
- E_warp / RWE (DIS): flow estimated on the output with OpenCV DIS medium (a benchmark-only peer), as the
  metrics are defined (specs/flow.md): E_warp warps the output, RWE the ground truth, with that flow;
  the same with the built-in estimator when the pack has it.
Peak memory is the peak resident set size (ru_maxrss) of a fresh subprocess that does only that run.
"""
import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from skimage import data, io

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_wrapper import estimators, photo  # noqa: E402  (importing it makes `import tame` work)

from tame.kernels.metrics import psnr, referenced_warping_error, ssim, warping_error  # noqa: E402
from tame.models.data.degradations import degrade, lr_flow, realistic_degrade  # noqa: E402
from tame.models.data.scenes import render_clip  # noqa: E402
from tame.models.data.textures import procedural_texture  # noqa: E402
from tame.models.data.vsr_sources import FolderSource  # noqa: E402
from tame.models.flow.estimate import FlowEstimator, estimate_video_flow  # noqa: E402
from tame.models.io.video import VideoWriter  # noqa: E402
from tame.models.io.weights import (
    load_state_dict,  # noqa: E402
    read_safetensors_metadata,  # noqa: E402
)
from tame.models.vsr import VSRModel, load_vsr_weights, upscale_video, upscale_video_stream  # noqa: E402
from tame.models.vsr.arch import bicubic_upscale  # noqa: E402
from tame.models.vsr.loop import TrainConfig, super_resolve_clip, train  # noqa: E402
from tame.nodes import vsr_nodes  # noqa: E402
from tame.nodes.vsr_nodes import TameUpscaleVideoFile  # noqa: E402

SHIPPED = vsr_nodes.WEIGHTS_FOLDER / vsr_nodes.SHIPPED_FILES[vsr_nodes.SHIPPED]
SHIPPED_SMALL = vsr_nodes.WEIGHTS_FOLDER / vsr_nodes.SHIPPED_FILES[vsr_nodes.SHIPPED_SMALL]
SHIPPED_CLEAN = vsr_nodes.WEIGHTS_FOLDER / vsr_nodes.SHIPPED_FILES[vsr_nodes.SHIPPED_CLEAN]
PEER = Path(__file__).with_name("single_image_peer_x4.safetensors")
CLEAN_PEER = Path(__file__).with_name("single_image_peer_x4_clean.safetensors")
MAIN_LABEL = "Tame VSR"
CLEAN_LABEL = "Tame VSR clean-input"
SMALL_LABEL = "Tame VSR small"
PEER_ROW = "single-image peer, same recipe"
CLEAN_PEER_ROW = "single-image peer clean-input, same recipe"
# each network and the peer trained with the same recipe as it
PEERS = {MAIN_LABEL: PEER_ROW, CLEAN_LABEL: CLEAN_PEER_ROW}
HELD_OUT_PHOTOS = ("astronaut", "coffee", "chelsea", "rocket")
TRAIN_PHOTOS = ("hubble_deep_field", "immunohistochemistry", "retina", "camera", "brick", "grass", "gravel",
                "moon", "motorcycle_left", "motorcycle_right", "coins", "page", "text", "cell",
                "china", "flower", "grace_hopper", "aero", "ascent")
SCALE = 4
# held-out LR: plain BI, and BI with the middle of RealBI's blur / noise / compression ranges
HELD_OUT_DEGRADATIONS = {"BI": None, "realistic": {"blur_sigma": 0.6, "noise_sigma": 0.01, "quality": 70}}
ABLATION_ROWS = (
    ("per-frame base (no temporal modules, no propagation, stride-2 encoder, full skips)",
     dict(use_temporal=False, use_propagation=False, use_blurpool=False, use_hf_shuttle=False)),
    ("+ temporal conv/attention", dict(use_temporal=True, use_propagation=False, use_blurpool=False,
                                       use_hf_shuttle=False)),
    ("+ flow-guided propagation", dict(use_temporal=True, use_propagation=True, use_blurpool=False,
                                       use_hf_shuttle=False)),
    ("+ BlurPool", dict(use_temporal=True, use_propagation=True, use_blurpool=True, use_hf_shuttle=False)),
    ("+ HF shuttle (= shipped configuration)", dict(use_temporal=True, use_propagation=True, use_blurpool=True,
                                                    use_hf_shuttle=True)),
)
SPEED_SIZE = (180, 320)
STREAM_SIZE = (72, 128)


class ZeroFlow(torch.nn.Module):
    """Zero flow: isolates the network's own time and memory in the speed runs."""

    def forward(self, image1, image2):
        return image1.new_zeros(image1.shape[0], 2, *image1.shape[-2:])


# ---------------------------------------------------------------- data
def train_photo(name):
    """One of TRAIN_PHOTOS as a uint8 array: scikit-image's samples, scikit-learn's two sample photos
    (china, flower), matplotlib's grace_hopper and PyWavelets' aero and ascent (all shipped inside
    those packages, the `bench` extra)."""
    if name in ("motorcycle_left", "motorcycle_right"):
        left, right, _ = data.stereo_motorcycle()
        return left if name == "motorcycle_left" else right
    if name in ("china", "flower"):
        from sklearn.datasets import load_sample_image
        return load_sample_image(f"{name}.jpg")
    if name == "grace_hopper":
        from matplotlib import cbook
        return io.imread(cbook.get_sample_data("grace_hopper.jpg"))
    if name in ("aero", "ascent"):
        import pywt.data
        return getattr(pywt.data, name)().clip(0, 255).astype("uint8")
    return getattr(data, name)()


def export_train_images(folder):
    """Write TRAIN_PHOTOS as PNGs into `folder` (grey photos stay grey; the loader makes them RGB)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for name in TRAIN_PHOTOS:
        io.imsave(folder / f"{name}.png", train_photo(name), check_contrast=False)
    return folder


def held_out_clip(name, seed, frames, size, degradation):
    """(HR frames, LR frames, LR flows fw/bw, HR flows fw/bw) of one held-out photo; `degradation` is a
    key of HELD_OUT_DEGRADATIONS."""
    clip = render_clip(frames, size, size, image=photo(name), motion=4.0, num_layers=2, seed=seed)
    settings = HELD_OUT_DEGRADATIONS[degradation]
    lr = degrade(clip.frames, SCALE, "BI") if settings is None else \
        realistic_degrade(clip.frames, SCALE, **settings, generator=torch.Generator().manual_seed(seed))
    return {"hr": clip.frames, "lr": lr, "lr_flows": (lr_flow(clip.flow_forward, SCALE, "BI"),
                                                      lr_flow(clip.flow_backward, SCALE, "BI")),
            "hr_flows": (clip.flow_forward, clip.flow_backward)}


def held_out_clips(args, degradation):
    return [held_out_clip(name, seed, args.frames, args.size, degradation)
            for seed, name in enumerate(HELD_OUT_PHOTOS)]


# ---------------------------------------------------------------- metrics
def measure(video, case, flow_estimators):
    row = {"psnr": psnr(video, case["hr"]).mean().item(), "ssim": ssim(video, case["hr"]).mean().item(),
           "e_warp_true": 1e3 * warping_error(video, *case["hr_flows"])[1].item()}
    for name, estimator in flow_estimators.items():
        flows = estimate_video_flow(estimator, video, bidirectional=True)
        row[f"e_warp {name}"] = 1e3 * warping_error(video, flows.forward, flows.backward)[1].item()
        row[f"rwe {name}"] = 1e3 * referenced_warping_error(video, case["hr"], flows.forward, flows.backward)[1].item()
    return row


def mean_rows(rows):
    return {key: sum(row[key] for row in rows) / len(rows) for key in rows[0]}


def metric_columns(flow_estimators):
    columns = [("psnr", "PSNR dB", "{:.2f}"), ("ssim", "SSIM", "{:.4f}"), ("e_warp_true", "E_warp x1e3 (true flow)", "{:.3f}")]
    for name in flow_estimators:
        columns += [(f"e_warp {name}", f"E_warp x1e3 ({name})", "{:.3f}"), (f"rwe {name}", f"RWE x1e3 ({name})", "{:.3f}")]
    return columns


def table(rows, columns, extra=()):
    """Markdown table: one row per (name, metrics), `extra` = [(key, header, format)] appended."""
    columns = list(columns) + list(extra)
    lines = ["| method | " + " | ".join(header for _, header, _ in columns) + " |",
             "|---|" + "---|" * len(columns)]
    for name, row in rows:
        cells = [fmt.format(row[key]) if key in row else "-" for key, _, fmt in columns]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return lines


# ---------------------------------------------------------------- shipped weights vs bicubic
def load_net(path):
    return load_vsr_weights(load_state_dict(path), read_safetensors_metadata(path))


def bench_shipped(nets, peers, cases, flow_estimators):
    """Rows: bicubic; each of `nets` ({label: TameVSRNet}, those with a peer also with estimated flow); the
    single-image `peers` ({row: TameVSRNet}); the HR truth."""
    rows = {}
    for case in cases:
        results = {"bicubic": bicubic_upscale(case["lr"], SCALE).clamp(0, 1)}
        for label, net in nets.items():
            results[f"{label}, exact LR flow"] = super_resolve_clip(net, case["lr"], *case["lr_flows"])
            for name, estimator in flow_estimators.items() if label in PEERS else ():
                results[f"{label}, {name} flow on LR (upscale_video)"] = upscale_video(net, case["lr"], estimator)
        for row, peer in peers.items():
            results[row] = super_resolve_clip(peer, case["lr"], *case["lr_flows"])  # it ignores the flow
        results["HR truth (metric floors)"] = case["hr"]
        for name, video in results.items():
            rows.setdefault(name, []).append(measure(video, case, flow_estimators))
    return [(name, mean_rows(values)) for name, values in rows.items()]


# ---------------------------------------------------------------- ablation
def bench_ablation(args, cases, flow_estimators, work):
    images = export_train_images(work / "train_images")
    rows = []
    for index, (label, switches) in enumerate(ABLATION_ROWS):
        config = TrainConfig(steps=args.ablation_steps, batch_size=2, num_frames=5, crop=48, lr=4e-4,
                             schedule="cosine", pool_clips=16, log_every=args.ablation_steps,
                             val_every=args.ablation_steps, checkpoint_every=args.ablation_steps, val_clips=1,
                             val_frames=4, val_size=64, seed=0, net=switches)
        started = time.monotonic()
        result = train(config, FolderSource(images, config.num_frames), work / f"row{index}")
        seconds = time.monotonic() - started
        net = load_net(result.weights_path)
        measured = [measure(super_resolve_clip(net, case["lr"], *case["lr_flows"]), case, flow_estimators)
                    for case in cases]
        row = mean_rows(measured) | {"params": sum(p.numel() for p in net.parameters()) / 1e3,
                                     "s_per_step": seconds / args.ablation_steps}
        rows.append((label, row))
        print(f"ablation: {label}: PSNR {row['psnr']:.2f} dB ({seconds:.0f} s)", file=sys.stderr, flush=True)
    return rows


# ---------------------------------------------------------------- speed and memory (subprocesses)
def reset_peak_rss():
    """Restart the kernel's peak-RSS counter (VmHWM) of this process (Linux); False where unsupported."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def peak_rss_mb():
    """Peak resident set size of this process in MB: VmHWM (since the last reset) or ru_maxrss."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def current_rss_mb():
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def measured_run(run, frames):
    """Call `run()` with the peak-RSS counter reset -> ms/frame over `frames`, peak and prior RSS (MB)."""
    before = current_rss_mb()
    reset_peak_rss()
    started = time.perf_counter()
    run()
    seconds = time.perf_counter() - started
    return {"frames": frames, "ms_per_frame": 1e3 * seconds / frames, "peak_rss_mb": peak_rss_mb(),
            "rss_before_mb": before}


def panning_chunks(count, chunk=16):
    """`count` frames of STREAM_SIZE panning over a procedural texture, in chunks `[n,3,72,128]`."""
    height, width = STREAM_SIZE
    texture = procedural_texture(height + 64, width + 200, seed=5)
    for start in range(0, count, chunk):
        offsets = [(t // 4) % 64 for t in range(start, min(start + chunk, count))]
        yield torch.stack([texture[:, o:o + height, o:o + width] for o in offsets])


def child_speed(args):
    """Upscale `args.frames` frames of 320x180 (zero flow) twice; report the second run."""
    net = load_net(args.weights)
    lr = F.interpolate(photo("astronaut")[None], size=SPEED_SIZE, mode="area")
    frames = torch.cat([torch.roll(lr, shifts=(t, 2 * t), dims=(-2, -1)) for t in range(args.frames)])
    estimator = FlowEstimator(ZeroFlow(), "zero")
    upscale_video(net, frames[:2], estimator)  # warm-up
    return measured_run(lambda: upscale_video(net, frames, estimator, chunk_frames=10), args.frames)


def child_stream(args):
    """Stream `args.frames` panning frames of 128x72 through upscale_video_stream, discarding the output."""
    net = load_net(args.weights)
    return measured_run(lambda: upscale_video_stream(net, panning_chunks(args.frames), lambda frames: None,
                                                     FlowEstimator(ZeroFlow(), "zero")), args.frames)


def child_stream_file(args):
    """The TameUpscaleVideoFile node on an MP4 of `args.frames` panning 128x72 frames (written first,
    outside the measured span), output MP4 in a temporary folder."""
    model = VSRModel(load_net(args.weights), "shipped")
    with tempfile.TemporaryDirectory() as work:
        source = Path(work) / "source.mp4"
        with VideoWriter(source, 24.0, "mp4", 95) as writer:
            for chunk in panning_chunks(args.frames):
                writer.write(chunk.permute(0, 2, 3, 1))
        os.environ["TAME_OUTPUT_DIR"] = str(Path(work) / "output")
        return measured_run(lambda: TameUpscaleVideoFile().upscale(
            str(source), "stream", "mp4", model, "4", 10, 0, 0, 16, 0, 0, 85), args.frames)


def run_child(kind, weights, frames, threads):
    command = [sys.executable, __file__, "--child", kind, "--weights", str(weights), "--frames", str(frames),
               "--threads", str(threads)]
    output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    return json.loads(output.strip().splitlines()[-1])


def bench_speed(args, flow_estimators):
    lines = []
    for label, weights in ((MAIN_LABEL, args.weights), (SMALL_LABEL, args.small_weights)):
        if not weights:
            continue
        result = run_child("speed", weights, args.speed_frames, args.threads)
        lines.append(f"- {label}, 320x180 -> 1280x720, {args.speed_frames} frames, whole frames (tile 0), chunk "
                     f"10, flow given (zero): **{result['ms_per_frame']:.0f} ms/frame**, peak RSS during the run "
                     f"{result['peak_rss_mb']:.0f} MB (RSS after loading and a 2-frame warm-up: "
                     f"{result['rss_before_mb']:.0f} MB). CPU, {args.threads} thread(s), machine shared with other "
                     f"jobs (the seed: 295 ms/frame on an A100 for the full VideoGigaGAN).")
    lr = F.interpolate(photo("astronaut")[None], size=SPEED_SIZE, mode="area").expand(4, -1, -1, -1).contiguous()
    for name, estimator in flow_estimators.items():
        started = time.perf_counter()
        estimate_video_flow(estimator, lr, bidirectional=True)
        lines.append(f"- flow on the 320x180 LR frames ({name}, both directions): "
                     f"{1e3 * (time.perf_counter() - started) / 3:.0f} ms per frame pair.")
    for kind, title in (("stream", "Streaming (upscale_video_stream, 128x72 -> 512x288, chunk 10, look-ahead 16, "
                                   "output discarded):"),
                        ("stream-file", "The node TameUpscaleVideoFile on an MP4 of that many frames (decode + "
                                        "upscale + H.264 encode, built-in flow; file written before the measured "
                                        "span):")):
        lines += ["", title, "", "| frames | ms/frame | peak RSS during the run MB | RSS before the run MB |",
                  "|---|---|---|---|"]
        for frames in args.stream_lengths:
            result = run_child(kind, args.weights, frames, args.threads)
            lines.append(f"| {result['frames']} | {result['ms_per_frame']:.0f} | {result['peak_rss_mb']:.0f} | "
                         f"{result['rss_before_mb']:.0f} |")
    return lines


# ---------------------------------------------------------------- report
def weights_line(label, path, net):
    """One Markdown bullet: the file, its size, training steps and degradation, and the net's parameters."""
    metadata = read_safetensors_metadata(path)
    size_mb = Path(path).stat().st_size / 2 ** 20
    parameters = sum(p.numel() for p in net.parameters())
    return (f"- {label}: Weights: `{Path(path).name}` ({size_mb:.2f} MB, {metadata.get('training_steps', '?')} "
            f"training steps, degradation {metadata.get('degradation', '?')}, {parameters / 1e3:.0f} k parameters).")


def gain_line(rows, flow_estimators, label):
    """Gains of network `label` (exact LR flow) over bicubic and its peer, and RWE against bicubic's."""
    rows = dict(rows)
    model, bicubic = rows[f"{label}, exact LR flow"], rows["bicubic"]
    parts = [f"{label} (exact LR flow): {model['psnr'] - bicubic['psnr']:+.2f} dB over bicubic"]
    if PEERS.get(label) in rows:
        parts.append(f"{model['psnr'] - rows[PEERS[label]]['psnr']:+.2f} dB over its single-image peer")
    for name in flow_estimators:
        parts.append(f"RWE ({name}) {model[f'rwe {name}']:.3f} vs bicubic {bicubic[f'rwe {name}']:.3f}")
    return "; ".join(parts) + "."


def report(args, networks, sections, speed_lines, flow_estimators):
    """networks: {label: (weights path, loaded net)} of the benchmarked networks."""
    columns = metric_columns(flow_estimators)
    estimator_note = (f"Estimated flow: {', '.join(flow_estimators)}." if flow_estimators else
                      "No flow estimator available: true-flow columns only.")
    lines = ["# Tame VSR benchmark (bench/vsr/bench_vsr.py)", "",
             f"Held-out clips: render_clip over the scikit-image photos {', '.join(HELD_OUT_PHOTOS)} (seeds 0-3; "
             f"none was used in training), {args.frames} frames of {args.size}x{args.size} HR, motion 4 px/frame "
             f"with rotation, zoom and 2 occluding layers, exact flow; 4x degradation to {args.size // SCALE}x"
             f"{args.size // SCALE} LR. Means over the 4 clips. {estimator_note} CPU, {args.threads} thread(s); see "
             f"the script docstring for every column.", "", "Networks:"]
    lines += [weights_line(label, *network) for label, network in networks.items()]
    if set(PEERS.values()) & set(networks):
        lines.append("The single-image peers: the same architecture without propagation and temporal modules, "
                     "widened to at least the VSR network's parameter count, each trained with the same recipe, "
                     "steps and data as its VSR network; they upscale each frame alone.")
    for degradation, rows in sections.items():
        settings = HELD_OUT_DEGRADATIONS[degradation]
        detail = "bicubic (antialiased)" if settings is None else \
            ", ".join(f"{key} {value}" for key, value in settings.items()) + " (models/data/degradations.py)"
        lines += ["", f"## Held-out clips, {degradation} degradation: {detail}", ""]
        lines += table(rows, columns) + [""]
        lines += [gain_line(rows, flow_estimators, label) for label in PEERS if label in networks]
    if speed_lines:
        lines += ["", "## Speed and memory", ""] + speed_lines
    return "\n".join(lines) + "\n"


def ablation_report(args, rows, flow_estimators):
    lines = ["# Tame VSR ablation (bench/vsr/bench_vsr.py --ablation-steps N)", "",
             f"Seed 000 Table 2.1 shape at a small training budget. Every row is trained from scratch with the "
             f"same recipe and the same budget: {args.ablation_steps} steps of 2 clips x 5 frames with 48x48 LR "
             f"crops, Adam lr 4e-4 with cosine decay, the seed's Charbonnier loss only (no temporal term), the "
             f"TRAIN_PHOTOS under synthetic motion (exact flow), BI, seed 0, the small network (16 channels). That "
             f"is a small fraction of the shipped weights' budget, so the rows sit far below the shipped row and "
             f"differences of a few 0.01 dB are within run-to-run noise. Evaluated on the BI held-out clips with "
             f"exact LR flow; s/step includes data rendering.", ""]
    lines += table(rows, metric_columns(flow_estimators),
                   [("params", "params (k)", "{:.0f}"), ("s_per_step", "s/step", "{:.2f}")])
    return "\n".join(lines) + "\n"


CHILDREN = {"speed": child_speed, "stream": child_stream, "stream-file": child_stream_file}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", default=str(SHIPPED))
    parser.add_argument("--clean-weights", default=str(SHIPPED_CLEAN), help="'' to leave the clean-input model out")
    parser.add_argument("--small-weights", default=str(SHIPPED_SMALL), help="'' to leave the small model out")
    parser.add_argument("--peer", default=str(PEER), help="single-image peer weights ('' to leave it out)")
    parser.add_argument("--clean-peer", default=str(CLEAN_PEER),
                        help="the clean-input model's single-image peer ('' to leave it out)")
    parser.add_argument("--frames", type=int, default=12)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--ablation-steps", type=int, default=500)
    parser.add_argument("--speed-frames", type=int, default=10)
    parser.add_argument("--stream-lengths", type=int, nargs="+", default=[100, 400])
    parser.add_argument("--skip-ablation", action="store_true")
    parser.add_argument("--ablation-only", action="store_true")
    parser.add_argument("--skip-speed", action="store_true")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--export-train-images", metavar="DIR")
    parser.add_argument("--child", choices=list(CHILDREN), help=argparse.SUPPRESS)
    parser.add_argument("--output", default=str(Path(__file__).with_name("RESULTS_vsr.md")))
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.export_train_images:
        print(f"wrote {', '.join(TRAIN_PHOTOS)} to {export_train_images(args.export_train_images)}")
        return
    if args.child:
        print(json.dumps(CHILDREN[args.child](args)))
        return
    flow_estimators = estimators("cpu")
    if not args.skip_ablation:
        cases = held_out_clips(args, "BI")
        with tempfile.TemporaryDirectory() as work:
            text = ablation_report(args, bench_ablation(args, cases, flow_estimators, Path(work)), flow_estimators)
        print(text)
        Path(args.output).with_name("RESULTS_ablation.md").write_text(text)
    if args.ablation_only:
        return
    paths = {MAIN_LABEL: args.weights, CLEAN_LABEL: args.clean_weights, SMALL_LABEL: args.small_weights,
             PEER_ROW: args.peer, CLEAN_PEER_ROW: args.clean_peer}
    networks = {label: (path, load_net(path)) for label, path in paths.items() if path}
    nets = {label: networks[label][1] for label in (MAIN_LABEL, CLEAN_LABEL, SMALL_LABEL) if label in networks}
    peers = {row: networks[row][1] for row in PEERS.values() if row in networks}
    sections = {}
    for degradation in HELD_OUT_DEGRADATIONS:
        sections[degradation] = bench_shipped(nets, peers, held_out_clips(args, degradation), flow_estimators)
        print("\n".join(table(sections[degradation], metric_columns(flow_estimators))), file=sys.stderr, flush=True)
    speed_lines = [] if args.skip_speed else bench_speed(args, flow_estimators)
    text = report(args, networks, sections, speed_lines, flow_estimators)
    print(text)
    Path(args.output).write_text(text)


if __name__ == "__main__":
    main()
