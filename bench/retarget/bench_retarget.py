"""Retarget benchmark: Tame's layered retarget vs uniform scaling, centre crop and seam carving, same run.

    python bench/retarget/bench_retarget.py [--quick] [--threads 2]

Images: scikit-image's sample photos at 512x384 (4:3) and a procedural image with a known object
(keep mask), each retargeted to half width (256x384). Columns (models/metrics/retarget_quality.py):
- distortion: saliency-weighted |log(bx/by)| of 8x8 output blocks from each method's exact mapping
  (its warp; for seam carving the kept pixels, recovered row by row); lower = salient regions keep
  their aspect ratio;
- completeness / coherence: bidirectional patch similarity at 96 px (lower is better; completeness
  tolerates squeezing up to the frame's aspect change, so crop loses it, artefacts cost coherence);
- ms: wall time of one call (median of 3 after a warm-up; seam carving: one call), and its ratio to
  Tame in the same run.
The weighting saliency is the plain spectral residual (not the map Tame optimises with), or the keep
mask for the procedural image.
Video: a synthetic camera pan with moving objects (models/data/scenes.py), 160x120 -> 80x120; E_warp of
the output (flow estimated on the output, built-in medium) for Tame's video retarget vs per-frame
retargeting of the same clip.
Needs the bench extra (scikit-image, seam-carving). Prints markdown, writes bench/retarget/RESULTS.md and
bench/retarget/cases.png (rows: images; columns: source, uniform, crop, seam carving, Tame).
"""
import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT.parent))
from tame.kernels.metrics import warping_error
from tame.kernels.saliency import spectral_residual
from tame.kernels.warp import pixel_grid
from tame.models.data.scenes import render_clip
from tame.models.flow.builtin import BuiltinFlow
from tame.models.flow.estimate import FlowEstimator, estimate_video_flow
from tame.models.metrics.retarget_quality import bidirectional_similarity, carved_registration, salient_distortion
from tame.models.retarget.image import retarget_image
from tame.models.retarget.video import VideoSettings, retarget_video

PHOTOS = ["astronaut", "chelsea", "coffee", "rocket", "motorcycle", "camera"]
SOURCE_SIZE, TARGET_SIZE = (384, 512), (384, 256)
METHODS = ["uniform", "centre crop", "seam carving", "Tame"]


def photo(name):
    from skimage import data
    array = data.stereo_motorcycle()[0] if name == "motorcycle" else getattr(data, name)()
    image = torch.from_numpy(np.asarray(array)).float() / 255
    image = image[..., None].expand(*image.shape, 3) if image.ndim == 2 else image[..., :3]
    return F.interpolate(image.permute(2, 0, 1)[None], size=SOURCE_SIZE, mode="area")


def procedural_case():
    """Textured background with a red-white object and its keep mask."""
    generator = torch.Generator().manual_seed(3)
    h, w = SOURCE_SIZE
    base = F.interpolate(torch.rand(1, 3, h // 16, w // 16, generator=generator), size=SOURCE_SIZE, mode="bicubic")
    image = (0.3 + 0.4 * base).clamp(0, 1)
    keep = torch.zeros(1, 1, h, w)
    keep[..., 120:300, 200:330] = 1
    stripes = (torch.arange(130) // 13 % 2).float().view(1, 1, 1, 130)
    image[..., 120:300, 200:330] = torch.tensor([0.9, 0.15, 0.1]).view(1, 3, 1, 1) * (1 - stripes) + stripes * 0.95
    return image, keep


def uniform(image):
    size = TARGET_SIZE
    out = F.interpolate(image, size=size, mode="bilinear", antialias=True, align_corners=False)
    scale = image.new_tensor([image.shape[-1] / size[1], image.shape[-2] / size[0]]).view(1, 2, 1, 1)
    return out, (pixel_grid(*size) + 0.5) * scale - 0.5


def centre_crop(image):
    left = (image.shape[-1] - TARGET_SIZE[1]) // 2
    coords = pixel_grid(*TARGET_SIZE)
    coords[:, 0] += left
    return image[..., :, left:left + TARGET_SIZE[1]], coords


def seam_carving(image):
    import seam_carving as sc
    array = (image[0].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
    size = TARGET_SIZE if image.shape[-2:] == SOURCE_SIZE else (image.shape[-2], image.shape[-1] // 2)
    out = sc.resize(array, size=(size[1], size[0]), energy_mode="backward", order="width-first")
    return torch.from_numpy(out).float().permute(2, 0, 1)[None] / 255


def tame(image, keep=None):
    result = retarget_image(image, TARGET_SIZE, keep=keep)
    return result.image, result.warp.forward + pixel_grid(*TARGET_SIZE)


def timed(function, repeats, warm_up=True):
    if warm_up:
        function()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        out = function()
        times.append(time.perf_counter() - start)
    return out, 1000 * statistics.median(times)


def measure(image, keep, repeats):
    weight = keep if keep is not None else spectral_residual(image)
    rows, pictures = {}, [image]
    runs = {"uniform": lambda: uniform(image), "centre crop": lambda: centre_crop(image),
            "seam carving": lambda: (seam_carving(image), None), "Tame": lambda: tame(image, keep)}
    for method in METHODS:
        seam = method == "seam carving"  # compiled once in main(); slow, timed once
        (out, mapping), ms = timed(runs[method], 1 if seam else repeats, warm_up=not seam)
        mapping = carved_registration(image, out) if seam else mapping
        similarity = bidirectional_similarity(image, out)
        rows[method] = {"distortion": salient_distortion(mapping, weight),
                        "completeness": similarity["completeness"], "coherence": similarity["coherence"], "ms": ms}
        pictures.append(out)
    return rows, pictures


def video_case(frames=24):
    clip = render_clip(num_frames=frames, height=120, width=160, motion=3.0, num_layers=2, seed=5)
    video = clip.frames
    estimator = FlowEstimator(BuiltinFlow(quality="medium"), "built-in medium")
    rows = {}
    for name, settings in (("per-frame retarget", VideoSettings(temporal_weight=0.0, saliency_memory=0.0)),
                           ("Tame video retarget", VideoSettings())):
        start = time.perf_counter()
        out, _, _ = retarget_video(video, (120, 80), estimator, video=settings)
        seconds = time.perf_counter() - start
        flows = estimate_video_flow(estimator, out, bidirectional=True)
        rows[name] = {"ewarp": warping_error(out, flows.forward, flows.backward)[1].item(),
                      "ms": 1000 * seconds / frames}
    return rows


def picture_grid(rows_of_images, path):
    from PIL import Image
    height = 160
    strips = []
    for images in rows_of_images:
        tiles = [F.interpolate(im, size=(height, max(1, round(im.shape[-1] * height / im.shape[-2]))), mode="area")
                 for im in images]
        gap = torch.ones(1, 3, height, 6)
        strips.append(torch.cat([t for tile in tiles for t in (tile, gap)][:-1], -1))
    width = max(s.shape[-1] for s in strips)
    strips = [F.pad(s, (0, width - s.shape[-1]), value=1.0) for s in strips]
    grid = torch.cat([t for s in strips for t in (s, torch.ones(1, 3, 6, width))][:-1], -2)
    Image.fromarray((grid[0].permute(1, 2, 0).clamp(0, 1).numpy() * 255).round().astype(np.uint8)).save(path)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="two photos, 1 repeat")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (seam carving is single-threaded)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    names = PHOTOS[:2] if args.quick else PHOTOS
    seam_carving(torch.rand(1, 3, 32, 32))  # numba compiles on first use
    cases = [(name, photo(name), None) for name in names] + [("procedural + keep mask", *procedural_case())]
    lines = [f"Threads: {args.threads}. Source 512x384 -> 256x384 (half width).", "",
             "| image | method | distortion | completeness | coherence | ms | ms / Tame |",
             "|---|---|---|---|---|---|---|"]
    totals = {m: {"distortion": [], "completeness": [], "coherence": [], "ms": []} for m in METHODS}
    pictures = []
    for name, image, keep in cases:
        rows, images = measure(image, keep, 1 if args.quick else 3)
        pictures.append(images)
        for method in METHODS:
            row = rows[method]
            lines.append(f"| {name} | {method} | {row['distortion']:.3f} | {row['completeness']:.4f} | "
                         f"{row['coherence']:.4f} | {row['ms']:.0f} | {row['ms'] / rows['Tame']['ms']:.1f} |")
            for key in totals[method]:
                totals[method][key].append(row[key])
    lines += ["", "Mean over images:", "", "| method | distortion | completeness | coherence | ms |", "|---|---|---|---|---|"]
    for method in METHODS:
        t = totals[method]
        lines.append(f"| {method} | {statistics.mean(t['distortion']):.3f} | {statistics.mean(t['completeness']):.4f} | "
                     f"{statistics.mean(t['coherence']):.4f} | {statistics.mean(t['ms']):.0f} |")
    video = video_case(12 if args.quick else 24)
    lines += ["", "Video (synthetic pan, 160x120 -> 80x120):", "", "| method | output E_warp | ms / frame |",
              "|---|---|---|"]
    for name, row in video.items():
        lines.append(f"| {name} | {row['ewarp']:.5f} | {row['ms']:.0f} |")
    cut = 1 - video["Tame video retarget"]["ewarp"] / video["per-frame retarget"]["ewarp"]
    lines.append(f"\nE_warp cut by the temporal terms: {100 * cut:.0f} %")
    text = "\n".join(lines)
    print(text)
    out_dir = Path(__file__).resolve().parent
    if not args.quick:
        (out_dir / "RESULTS.md").write_text("# Retarget benchmark\n\nCommand: `python bench/retarget/bench_retarget.py`\n\n"
                                            + text + "\n")
        picture_grid(pictures, out_dir / "cases.png")


if __name__ == "__main__":
    main()
