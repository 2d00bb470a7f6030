"""Tri-plane benchmark: renderer accuracy and speed, fitting time, and In-N-Out's OOD removal against
a PTI-style single-field baseline on the pack's procedural head (models/data/scene3d.py).

    python bench/triplane/bench_triplane.py [--threads 1] [--quick]

(a) Renderer: max |difference| to a float64 per-ray brute-force reference (explicit bilinear taps,
    a Python loop over samples) on a random field, plain and composite, 96 deterministic stratified
    samples (the importance sampler is covered by tests/test_triplane_renderer.py); rays/s and peak
    memory (ru_maxrss growth of a fresh process, or torch.cuda.max_memory_allocated on CUDA) for one
    128x128 frame at 48 + 48 samples with EG3D-size planes 3x32x256x256, threads 1 and 2.
(b) Fitting: seconds per iteration of each fit below.
(c) Removal: an InD prior is fitted to clean views of the head; the observed clip (the head turning,
    a green disc in front of the mouth) is fitted by In-N-Out (InD fixed, and InD at 0.1x the
    learning rate; occluder masks given, as the reference code's default) and by the baseline
    (InD planes + decoder fine-tuned alone, same steps, patches and reconstruction loss). PSNR of the
    InD-only render against the clean head on HELD-OUT cameras, and of the composite against the
    observed frames. Writes bench/triplane/RESULTS.md, removal.png and orbit.png.
"""
import argparse
import json
import math
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT.parent))
from tame.kernels.metrics import psnr
from tame.kernels.rays import orbit_cam2world, pixel_rays
from tame.models.data.scene3d import eg3d_intrinsics, orbit_cameras, observed_sequence, render_scene
from tame.models.triplane.decoders import OODDecoder, OSGDecoder
from tame.models.triplane.fit import (fit_ood, fit_single_field_baseline, fit_triplane, ood_removal,
                                      render_composite, render_field)
from tame.models.triplane.renderer import OODField, RenderSettings, TriplaneField, render, render_rays

OUT_DIR = Path(__file__).resolve().parent
RESOLUTION = 64
FULL = dict(prior_views=24, prior_steps=1000, frames=8, ood_steps=600, held_out=8)
QUICK = dict(prior_views=6, prior_steps=60, frames=4, ood_steps=40, held_out=3)
BASELINE_LR = 0.1  # best observed-frame PSNR of the sweep in NOTES
NOTES = ["## Notes", "",
         "- Baseline learning rate: a sweep with these settings (600 steps, same prior recipe, 6 other held-out "
         "cameras) gave composite PSNR on the observed frames 22.33 / 23.85 / 23.93 dB and InD-only held-out "
         "PSNR 17.89 / 17.86 / 17.08 dB at lr 0.02 / 0.05 / 0.1; the bench gives the baseline its best "
         "reconstruction (0.1). A gentler lr does not rescue its held-out PSNR: the occluder is baked into the "
         "only field.",
         "- In-N-Out uses the occluder masks (the reference code's default 'w/ masks' mode); the baseline, as "
         "PTI, fits the frames as they are. Without masks (same settings, InD fixed, 600 steps) the blend "
         "stayed at b ~ 0 within this budget: composite 17.02 dB, i.e. the prior's; the reference runs "
         "10,000 steps. models/triplane/fit.py lists the deviations from the reference.",
         "- The two-thread renderer rows ran on a machine whose 2 cores were shared with other jobs; they "
         "are not a scaling measurement.",
         "- Pictures: removal.png rows = observed frames, In-N-Out composite, InD only (OOD removed), OOD "
         "alone, per-ray max b, baseline, clean frames (InD fixed; frames 0, 2, 4, 6); orbit.png rows = "
         "clean head, InD prior, In-N-Out InD only, baseline, on an orbit of yaw +-0.7 rad (beyond the "
         "prior's +-0.6 training range at the ends).", ""]
IND_LR_SCALE = 0.1


# ------------------------------------------------------------------------------------ (a) renderer
def random_field(channels, size, seed):
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    return TriplaneField(torch.randn(1, 3, channels, size, size, generator=gen), OSGDecoder(channels))


def random_ood(channels, size, seed):
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    return OODField(torch.randn(1, 3, channels, size, size, generator=gen), OODDecoder(channels),
                    torch.randn(1, 32, generator=gen))


def bilinear_tap(plane, u, v):
    """Zero-padded bilinear sample (align_corners=False) of one plane `[C,H,W]` at (u, v) in [-1,1]."""
    channels, height, width = plane.shape
    x, y = ((u + 1) * width - 1) / 2, ((v + 1) * height - 1) / 2
    x0, y0 = math.floor(x), math.floor(y)
    value = torch.zeros(channels, dtype=plane.dtype)
    for xi, yi in ((x0, y0), (x0 + 1, y0), (x0, y0 + 1), (x0 + 1, y0 + 1)):
        if 0 <= xi < width and 0 <= yi < height:
            value += (1 - abs(x - xi)) * (1 - abs(y - yi)) * plane[:, yi, xi]
    return value


def brute_feature(planes, point, box_warp=1.0):
    x, y, z = (2 / box_warp * point).tolist()
    return sum(bilinear_tap(planes[0, i], u, v) for i, (u, v) in enumerate(((x, y), (x, z), (z, x)))) / 3


def brute_march(depths, density, colour, blend=None, ood_density=None, ood_colour=None):
    """One ray, loop over intervals; EG3D's marcher (composite when blend is given) -> RGB in [-1,1]."""
    out, transmittance = torch.zeros(3, dtype=torch.float64), 1.0
    for k in range(len(depths) - 1):
        delta = depths[k + 1] - depths[k]
        alpha = 1 - math.exp(-F.softplus(torch.tensor((density[k] + density[k + 1]) / 2 - 1)).item() * delta)
        c_ind = (colour[k] + colour[k + 1]) / 2
        if blend is None:
            out += transmittance * alpha * c_ind
            transmittance *= 1 - alpha + 1e-10
            continue
        b = (blend[k] + blend[k + 1]) / 2
        alpha_o = 1 - math.exp(-F.softplus(torch.tensor((ood_density[k] + ood_density[k + 1]) / 2 - 1)).item() * delta)
        out += transmittance * (b * alpha_o * (ood_colour[k] + ood_colour[k + 1]) / 2 + (1 - b) * alpha * c_ind)
        transmittance *= (1 - b * alpha_o) * (1 - (1 - b) * alpha) + 1e-10
    return 2 * out - 1


def brute_force_error(rays=24, samples=96):
    """Max |renderer - brute force| over `rays` random rays, plain and composite (float64)."""
    field, ood = random_field(32, 32, 1), random_ood(32, 32, 2)
    field = TriplaneField(field.planes.double(), field.decoder.double())
    ood = OODField(ood.planes.double(), ood.decoder.double(), ood.codes.double())
    cam2world, intrinsics = orbit_cameras(1, seed=3)
    origins, directions = pixel_rays(cam2world.double(), intrinsics.double(), 64)
    pick = torch.randperm(64 * 64, generator=torch.Generator().manual_seed(4))[:rays]
    origins, directions = origins[:, pick], directions[:, pick]
    settings = RenderSettings(coarse=samples, fine=0)
    with torch.no_grad():
        plain = render_rays(field, origins, directions, settings).features[0, :, :3]
        composite = render_rays(field, origins, directions, settings, ood=ood).features[0, :, :3]
        depths = torch.linspace(settings.near, settings.far, samples, dtype=torch.float64).tolist()
        errors = {"plain": 0.0, "composite": 0.0}
        for r in range(rays):
            points = [origins[0, r] + t * directions[0, r] for t in depths]
            features = torch.stack([brute_feature(field.planes, p) for p in points])
            density, colour = field.decoder(features[None])
            ood_features = torch.stack([brute_feature(ood.planes, p) for p in points])
            ood_density, ood_colour, blend = ood.decoder(ood_features[None], ood.codes)
            reference = brute_march(depths, density[0, :, 0].tolist(), colour[0, :, :3])
            errors["plain"] = max(errors["plain"], (plain[r] - reference).abs().max().item())
            reference = brute_march(depths, density[0, :, 0].tolist(), colour[0, :, :3], blend[0, :, 0].tolist(),
                                    ood_density[0, :, 0].tolist(), ood_colour[0, :, :3])
            errors["composite"] = max(errors["composite"], (composite[r] - reference).abs().max().item())
    return errors


def frame_render_probe(threads, composite, device):
    """Render one 128x128 frame (48 + 48, planes 3x32x256x256) -> seconds (median of 2) and peak MB."""
    torch.set_num_threads(threads)
    field = random_field(32, 256, 5)
    field = TriplaneField(field.planes.to(device), field.decoder.to(device))
    ood = None
    if composite:
        ood = random_ood(32, 256, 6)
        ood = OODField(ood.planes.to(device), ood.decoder.to(device), ood.codes.to(device))
    cam2world, intrinsics = (t.to(device) for t in orbit_cameras(1, seed=7))
    baseline_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    seconds = []
    with torch.no_grad():
        for _ in range(2):
            start = time.perf_counter()
            render(field, cam2world, intrinsics, 128, RenderSettings(), ood=ood)
            if device == "cuda":
                torch.cuda.synchronize()
            seconds.append(time.perf_counter() - start)
    peak_mb = (torch.cuda.max_memory_allocated() / 2 ** 20 if device == "cuda"
               else (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - baseline_kb) / 1024)
    return {"seconds": statistics.median(seconds), "peak_mb": peak_mb}


def measure_frame(threads, composite, device):
    """Run frame_render_probe in a fresh process, so the ru_maxrss growth is this render's own."""
    command = [sys.executable, __file__, "--probe", json.dumps([threads, composite, device])]
    result = subprocess.run(command, check=True, capture_output=True, text=True)
    return json.loads(result.stdout.strip().splitlines()[-1])


def renderer_section(quick):
    lines = ["## (a) Renderer", ""]
    errors = brute_force_error(rays=6 if quick else 24)
    lines += ["Max |renderer - float64 per-ray brute force| (RGB in [-1,1], 96 stratified samples, random "
              "3x32x32x32 planes, float64):", "",
              "| field | max abs diff |", "|---|---|",
              f"| InD alone | {errors['plain']:.2e} |", f"| composite InD + OOD | {errors['composite']:.2e} |", ""]
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    lines += ["One 128x128 frame, 48 + 48 samples, planes 3x32x256x256, ray_chunk 8192, no gradient:", "",
              "| device | threads | field | s / frame | rays / s | peak memory MB |", "|---|---|---|---|---|---|"]
    for device in devices:
        for threads in ((1,) if device == "cuda" else (1, 2)):
            for composite in (False, True):
                probe = measure_frame(threads, composite, device)
                lines.append(f"| {device} | {threads} | {'composite' if composite else 'InD alone'} | "
                             f"{probe['seconds']:.2f} | {128 * 128 / probe['seconds']:,.0f} | {probe['peak_mb']:.0f} |")
    return lines + [""]


# ------------------------------------------------------------------------------------ (b, c) fitting
def timed(function):
    start = time.perf_counter()
    result = function()
    return result, time.perf_counter() - start


def removal_section(config):
    """Fit the prior, In-N-Out (two settings) and the baseline -> (markdown lines, pictures)."""
    prior_cameras = orbit_cameras(config["prior_views"], 0.6, 0.3, seed=0)
    prior_images = render_scene(*prior_cameras, RESOLUTION).images
    sequence = observed_sequence(config["frames"], resolution=RESOLUTION, seed=0)
    held_cameras = orbit_cameras(config["held_out"], 0.5, 0.25, seed=99)
    held_clean = render_scene(*held_cameras, RESOLUTION).images
    observed = (sequence.frames, sequence.cam2world, sequence.intrinsics)
    steps = config["ood_steps"]

    prior, prior_seconds = timed(lambda: fit_triplane(prior_images, *prior_cameras, steps=config["prior_steps"]))
    fixed, fixed_seconds = timed(lambda: fit_ood(*observed, prior, steps=steps, masks=sequence.occluder_masks))
    refined, refined_seconds = timed(lambda: fit_ood(*observed, prior, steps=steps, ind_lr_scale=IND_LR_SCALE,
                                                     masks=sequence.occluder_masks))
    baseline, baseline_seconds = timed(lambda: fit_single_field_baseline(*observed, prior, steps=steps, lr=BASELINE_LR))

    def held(field):
        return psnr(render_field(field, *held_cameras, RESOLUTION).images, held_clean).mean().item()

    def on_observed(images):
        return psnr(images, sequence.frames).mean().item()

    composites = {name: render_composite(fit, sequence.cam2world, sequence.intrinsics, RESOLUTION)
                  for name, fit in (("fixed", fixed), ("refined", refined))}
    baseline_frames = render_field(baseline, sequence.cam2world, sequence.intrinsics, RESOLUTION).images
    prior_frames = render_field(prior, sequence.cam2world, sequence.intrinsics, RESOLUTION).images
    rows = [("InD prior alone (upper reference)", held(prior), on_observed(prior_frames)),
            ("In-N-Out, InD fixed", held(fixed.ind), on_observed(composites["fixed"].images)),
            (f"In-N-Out, InD at {IND_LR_SCALE}x lr", held(refined.ind), on_observed(composites["refined"].images)),
            ("single-field baseline (PTI-style)", held(baseline), on_observed(baseline_frames))]
    lines = ["## (b) Fitting time", "",
             "| fit | steps | rays / step | s / step |", "|---|---|---|---|",
             f"| InD prior (fit_triplane) | {config['prior_steps']} | 1024 | "
             f"{prior_seconds / config['prior_steps']:.3f} |",
             f"| In-N-Out, InD fixed | {steps} | 4 x 16x16 | {fixed_seconds / steps:.3f} |",
             f"| In-N-Out, InD at {IND_LR_SCALE}x lr | {steps} | 4 x 16x16 | {refined_seconds / steps:.3f} |",
             f"| baseline | {steps} | 4 x 16x16 | {baseline_seconds / steps:.3f} |", "",
             "## (c) OOD removal", "",
             f"InD-only PSNR (dB) vs the clean head on {config['held_out']} held-out cameras; composite PSNR vs "
             f"the {config['frames']} observed frames (for the prior and the baseline: their only field). "
             f"{RESOLUTION}x{RESOLUTION}, 48 + 48 samples, no jitter.", "",
             "| method | InD-only held-out PSNR | composite PSNR on observed |", "|---|---|---|"]
    lines += [f"| {name} | {held_psnr:.2f} | {observed_psnr:.2f} |" for name, held_psnr, observed_psnr in rows]
    baseline_row = rows[3]
    lines += ["", "Acceptance (issue): InD-only held-out PSNR >= baseline + 6 dB and composite PSNR >= "
              "baseline - 1 dB:", ""]
    for name, held_psnr, observed_psnr in rows[1:3]:
        gain, loss = held_psnr - baseline_row[1], observed_psnr - baseline_row[2]
        verdict = "PASS" if gain >= 6 and loss >= -1 else "FAIL"
        lines.append(f"- {name}: held-out {gain:+.2f} dB, composite {loss:+.2f} dB -> {verdict}")
    lines.append("")
    pictures = removal_pictures(sequence, composites["fixed"], fixed, baseline_frames)
    orbit = orbit_pictures(prior, fixed, baseline)
    return lines, pictures, orbit


def removal_pictures(sequence, composite, fit, baseline_frames):
    shown = list(range(0, sequence.frames.shape[0], max(1, sequence.frames.shape[0] // 4)))[:4]
    removed = ood_removal(fit, sequence.cam2world, sequence.intrinsics, RESOLUTION).images
    return [[images[i:i + 1] for i in shown] for images in
            (sequence.frames, composite.images, removed, composite.ood_images,
             composite.blend_max.expand(-1, 3, -1, -1), baseline_frames, sequence.clean)]


def orbit_pictures(prior, fit, baseline, views=6):
    yaw = math.pi / 2 + torch.linspace(-0.7, 0.7, views)
    cam2world = orbit_cam2world(yaw, torch.full_like(yaw, math.pi / 2 - 0.15), 2.7)
    intrinsics = eg3d_intrinsics(views)
    rows = [render_scene(cam2world, intrinsics, RESOLUTION).images,
            render_field(prior, cam2world, intrinsics, RESOLUTION).images,
            ood_removal(fit, cam2world, intrinsics, RESOLUTION).images,
            render_field(baseline, cam2world, intrinsics, RESOLUTION).images]
    return [[images[i:i + 1] for i in range(views)] for images in rows]


def picture_grid(rows_of_images, path, height=128):
    from PIL import Image
    strips = []
    for images in rows_of_images:
        tiles = [F.interpolate(im, size=(height, height), mode="nearest") for im in images]
        gap = torch.ones(1, 3, height, 4)
        strips.append(torch.cat([t for tile in tiles for t in (tile, gap)][:-1], -1))
    grid = torch.cat([t for s in strips for t in (s, torch.ones(1, 3, 4, s.shape[-1]))][:-1], -2)
    Image.fromarray((grid[0].permute(1, 2, 0).clamp(0, 1).numpy() * 255).round().astype(np.uint8)).save(path)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--threads", type=int, default=1, help="torch threads for the fits")
    parser.add_argument("--quick", action="store_true", help="tiny steps: a smoke run, numbers meaningless")
    parser.add_argument("--probe", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.probe:
        print(json.dumps(frame_render_probe(*json.loads(args.probe))))
        return
    torch.set_num_threads(args.threads)
    start = time.perf_counter()
    config = QUICK if args.quick else FULL
    lines = renderer_section(args.quick)
    torch.set_num_threads(args.threads)
    removal_lines, removal, orbit = removal_section(config)
    lines += removal_lines + NOTES
    minutes = (time.perf_counter() - start) / 60
    command = "python bench/triplane/bench_triplane.py" + (f" --threads {args.threads}" if args.threads != 1 else "") \
        + (" --quick" if args.quick else "")
    header = [f"Command: `{command}` ({minutes:.1f} min, torch threads {args.threads} for the fits, "
              f"{'CUDA' if torch.cuda.is_available() else 'CPU'}).", "",
              f"Settings: frames {RESOLUTION}x{RESOLUTION}; prior: {config['prior_views']} clean views (yaw +-0.6, "
              f"pitch +-0.3 rad), {config['prior_steps']} steps, planes 3x32x64x64; observed clip: "
              f"{config['frames']} frames (yaw sweep +-0.45 rad, disc drifting 0.02); fits: 24 + 24 samples, "
              f"{config['ood_steps']} steps each, In-N-Out lr 0.1 (planes) / 0.01 (decoder, codes), "
              f"baseline lr {BASELINE_LR}; seed 0.", ""]
    print("\n".join(header + lines))
    if not args.quick:
        (OUT_DIR / "RESULTS.md").write_text("# Tri-plane benchmark\n\n" + "\n".join(header + lines) + "\n")
        picture_grid(removal, OUT_DIR / "removal.png")
        picture_grid(orbit, OUT_DIR / "orbit.png")


if __name__ == "__main__":
    main()
