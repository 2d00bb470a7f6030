"""Training of TameVSRNet (specs/vsr.md B): losses, temporally inflated discriminator, checkpoints with
resume, and the validation report.

Loss per step, averaged over the frames of the clips (specs/vsr.md):
`charbonnier_weight * Charbonnier(sr, hr)` (10) `+ lpips_weight * LPIPS(sr, hr)` (5, only with an LPIPS
network) `+ gan_weight * softplus(-D(sr))` (0.05, non-saturating, only with `gan`); the discriminator
minimises `softplus(D(sr)) + softplus(-D(hr)) + r1_weight * R1` with `R1 = E ||grad_hr D(hr)||^2`
(0.2048). Optional, beyond the seed's loss (default off): `temporal_weight *` the Charbonnier distance
between the frame-to-frame changes of the output and of the truth along the exact flow
(`temporal_change_loss`), which penalises flicker the per-frame terms do not see; batches without exact
flow skip it. Adam (betas 0.9/0.99), learning rate `lr` (the seed's 5e-5 by default) with an optional
cosine decay to 1 % over the run.

Flow for the propagation: the exact flow of synthetic clips (moved from the HR to the LR grid, see
models/data/degradations.py), else flow estimated on the LR frames. Files in the output folder:
- `training_state.safetensors`: network, discriminator and optimiser states + step (for `resume`);
- `vsr_x{scale}.safetensors`: the network alone (save_vsr_weights), loadable by Load VSR Model;
- `train_log.jsonl`: one JSON object per log interval and per validation.
"""
import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F

from ...kernels.filters import charbonnier
from ...kernels.metrics import psnr, referenced_warping_error, ssim, warping_error
from ..data.degradations import check_degradation, degrade
from ..data.vsr_sources import ClipPool, center_crop, lr_clip_flows
from ..flow.estimate import estimate_video_flow
from .arch import TameVSRNet, bicubic_upscale
from .checkpoint import STATE_FILE, load_training_state, save_training_state
from .discriminator import TemporalDiscriminator, discriminator_loss
from .losses import temporal_change_loss
from .weights import save_vsr_weights

LOG_FILE = "train_log.jsonl"


ADAM_BETAS = (0.9, 0.99)


FINAL_LR_SHARE = 0.01


SCHEDULES = ("cosine", "constant")


VALIDATION_SEED = 1_000_003  # validation clips use seeds far from the training stream


@dataclass
class TrainConfig:
    """Settings of a training run (sizes in pixels; `crop` and `val_size` are LR and HR sides)."""
    scale: int = 4
    degradation: str = "BI"
    steps: int = 10000
    batch_size: int = 4
    num_frames: int = 7
    crop: int = 48
    lr: float = 5e-5
    schedule: str = "cosine"
    charbonnier_weight: float = 10.0
    lpips_weight: float = 5.0
    temporal_weight: float = 0.0
    gan: bool = False
    gan_weight: float = 0.05
    r1_weight: float = 0.2048
    pool_clips: int = 32
    log_every: int = 50
    val_every: int = 500
    checkpoint_every: int = 500
    val_clips: int = 2
    val_frames: int = 10
    val_size: int = 128
    seed: int = 0
    net: dict = field(default_factory=dict)  # TameVSRNet arguments besides `scale`

    def check(self):
        check_degradation(self.degradation, self.scale)
        if self.schedule not in SCHEDULES:
            raise ValueError(f"schedule must be one of {SCHEDULES}, got {self.schedule!r}.")
        for name in ("steps", "batch_size", "crop", "pool_clips", "log_every", "val_every",
                     "checkpoint_every", "val_clips"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)!r}.")
        if self.num_frames < 2 or self.val_frames < 2:
            raise ValueError("num_frames and val_frames must be at least 2 (propagation needs neighbours).")
        if self.crop < 16:
            raise ValueError(f"crop must be at least 16 LR px (the U-Net works on 1/8 of it), got {self.crop}.")
        if self.val_size < 16 or self.val_size % self.scale:
            raise ValueError(f"val_size must be a multiple of the scale {self.scale} and at least 16 HR px, "
                             f"got {self.val_size}.")
        if self.temporal_weight < 0:
            raise ValueError(f"temporal_weight must be >= 0, got {self.temporal_weight}.")
        if self.lr <= 0:
            raise ValueError(f"lr must be positive, got {self.lr}.")


@dataclass
class TrainResult:
    """What a run produced: last step, paths, the last validation report (or None) and notes."""
    step: int
    weights_path: Path
    state_path: Path
    report: dict
    notes: list


# ---------------------------------------------------------------- learning rate
def learning_rate(config, step):
    """Learning rate of step `step` (0-based): constant, or cosine from lr to 1 % of lr."""
    if config.schedule == "constant":
        return config.lr
    progress = min(step / config.steps, 1.0)
    return config.lr * (FINAL_LR_SHARE + (1 - FINAL_LR_SHARE) * 0.5 * (1 + math.cos(math.pi * progress)))


# ---------------------------------------------------------------- validation
@dataclass
class ValidationClip:
    """hr `[T,3,H,W]`, lr `[T,3,H/s,W/s]`, LR flows `[T-1,2,h,w]` (both directions), and the exact HR
    flows `[T-1,2,H,W]` or None."""
    hr: torch.Tensor
    lr: torch.Tensor
    lr_forward: torch.Tensor
    lr_backward: torch.Tensor
    hr_forward: torch.Tensor = None
    hr_backward: torch.Tensor = None


def make_validation_clips(source, config, estimator=None):
    """`config.val_clips` fixed clips of the source (seeded apart from training), centre-cropped to
    `val_size` HR px and degraded like the training data."""
    clips = []
    for number in range(config.val_clips):
        generator = torch.Generator().manual_seed(VALIDATION_SEED + 7919 * config.seed + number)
        hr = center_crop(source.clip(generator, config.val_frames, config.val_size), config.val_size, config.scale)
        lr = degrade(hr.frames, config.scale, config.degradation, generator)
        forward, backward = lr_clip_flows(hr, lr, config.scale, config.degradation, estimator)
        clips.append(ValidationClip(hr.frames, lr, forward, backward, hr.flow_forward, hr.flow_backward))
    return clips


def super_resolve_clip(net, lr, lr_forward, lr_backward):
    """Whole-clip forward of `net` in eval mode: lr `[T,3,h,w]` -> `[T,3,sh,sw]` clamped to [0,1], CPU."""
    device = next(net.parameters()).device
    was_training = net.training
    net.eval()
    with torch.no_grad():
        sr, _ = net(lr[None].to(device), lr_forward[None].to(device), lr_backward[None].to(device))
    net.train(was_training)
    return sr[0].clamp(0.0, 1.0).cpu()


def video_metrics(video, clip, estimator=None):
    """PSNR/SSIM against the clip's HR frames; E_warp with the exact flow (`e_warp_true_flow`, synthetic
    clips); E_warp and RWE with flow estimated on `video` (when an estimator is given)."""
    metrics = {"psnr": psnr(video, clip.hr).mean().item(), "ssim": ssim(video, clip.hr).mean().item()}
    if clip.hr_forward is not None:
        metrics["e_warp_true_flow"] = warping_error(video, clip.hr_forward, clip.hr_backward)[1].item()
    if estimator is not None:
        flows = estimate_video_flow(estimator, video, "consecutive", bidirectional=True)
        metrics["e_warp"] = warping_error(video, flows.forward, flows.backward)[1].item()
        metrics["rwe"] = referenced_warping_error(video, clip.hr, flows.forward, flows.backward)[1].item()
    return metrics


def validation_report(net, clips, estimator=None):
    """Mean metrics over `clips` of the network ("model"), bicubic upscaling ("bicubic") and the HR
    truth itself ("truth": its E_warp, the floor of the metric) -> dict, plus "psnr_gain" (dB)."""
    sums = {"model": {}, "bicubic": {}, "truth": {}}
    for clip in clips:
        videos = {"model": super_resolve_clip(net, clip.lr, clip.lr_forward, clip.lr_backward),
                  "bicubic": bicubic_upscale(clip.lr, net.scale).clamp(0.0, 1.0), "truth": clip.hr}
        for name, video in videos.items():
            for key, value in video_metrics(video, clip, estimator).items():
                sums[name][key] = sums[name].get(key, 0.0) + value / len(clips)
    for key in ("psnr", "ssim", "rwe"):
        sums["truth"].pop(key, None)  # trivially perfect against itself
    return {**sums, "clips": len(clips), "psnr_gain": sums["model"]["psnr"] - sums["bicubic"]["psnr"]}


def format_validation(report):
    """One line per method: PSNR/SSIM, E_warp and RWE (x1e3)."""
    lines = []
    for name in ("model", "bicubic", "truth"):
        values = report[name]
        parts = [f"PSNR {values['psnr']:.2f} dB", f"SSIM {values['ssim']:.4f}"] if "psnr" in values else []
        parts += [f"{label} {1e3 * values[key]:.3f}" for key, label in
                  (("e_warp_true_flow", "E_warp(true flow)x1e3"), ("e_warp", "E_warp x1e3"), ("rwe", "RWE x1e3"))
                  if key in values]
        lines.append(f"  {name:8s} " + ", ".join(parts))
    lines.append(f"  PSNR gain over bicubic: {report['psnr_gain']:+.2f} dB ({report['clips']} clips)")
    return "\n".join(lines)


# ---------------------------------------------------------------- the loop
class _Run:
    """State of one training run: networks, optimisers, data pool, files."""

    def __init__(self, config, source, out_dir, estimator, lpips, device, resume, log):
        self.config, self.source, self.estimator, self.lpips, self.device = config, source, estimator, lpips, device
        self.out_dir, self.log = Path(out_dir), log
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.state_path = self.out_dir / STATE_FILE
        self.weights_path = self.out_dir / f"vsr_x{config.scale}.safetensors"
        net_config = {"scale": config.scale, **config.net}
        state = self._resumed_state(net_config) if resume else None
        torch.manual_seed(config.seed)
        self.net = TameVSRNet(**(state["net_config"] if state else net_config)).to(device).train()
        self.optimizer = torch.optim.Adam(self.net.parameters(), lr=config.lr, betas=ADAM_BETAS)
        self.discriminator = self.d_optimizer = None
        if config.gan:
            self.discriminator = TemporalDiscriminator().to(device).train()
            self.d_optimizer = torch.optim.Adam(self.discriminator.parameters(), lr=config.lr, betas=ADAM_BETAS)
        self.step = 0
        if state:
            self._restore(state)

    def _resumed_state(self, net_config):
        if not self.state_path.is_file():
            raise FileNotFoundError(f"Nothing to resume: {self.state_path} does not exist. Start without "
                                    f"resume, or point to the output folder of an earlier run.")
        state = load_training_state(self.state_path)
        if state["net_config"] != TameVSRNet(**net_config).config:
            raise ValueError(f"The run in {self.out_dir} trained a network with {state['net_config']}, not "
                             f"{TameVSRNet(**net_config).config}. Resume with the same network options, or "
                             f"use a new output folder.")
        return state

    def _restore(self, state):
        self.net.load_state_dict(state["net"])
        self.optimizer.load_state_dict(state["optimizer"])
        if self.discriminator is not None:
            if "discriminator" in state:
                self.discriminator.load_state_dict(state["discriminator"])
                self.d_optimizer.load_state_dict(state["d_optimizer"])
            else:
                self.log(f"note: the run resumed at step {state['step']} had no discriminator; it starts fresh")
        self.step = state["step"]

    def save(self, note=None):
        save_training_state(self.state_path, self.step, self.net, self.optimizer, self.config,
                            self.discriminator, self.d_optimizer)
        metadata = {"trained_by": "tame train-vsr", "training_steps": str(self.step),
                    "degradation": self.config.degradation, "training_data": self.source.description}
        save_vsr_weights(self.net, self.weights_path, metadata=metadata)
        if note:
            self.log(note)

    def write_log(self, record):
        with open(self.out_dir / LOG_FILE, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(record) + "\n")

    def train_step(self, batch):
        """One optimisation step on a TrainingBatch -> dict of loss terms (floats)."""
        lr = learning_rate(self.config, self.step)
        for optimizer in filter(None, (self.optimizer, self.d_optimizer)):
            for group in optimizer.param_groups:
                group["lr"] = lr
        hr, lq = batch.hr.to(self.device), batch.lr.to(self.device)
        sr, _ = self.net(lq, batch.flows_forward.to(self.device), batch.flows_backward.to(self.device))
        terms = {"charbonnier": charbonnier(sr - hr).mean()}
        loss = self.config.charbonnier_weight * terms["charbonnier"]
        if self.lpips is not None and self.config.lpips_weight > 0:
            terms["lpips"] = self.lpips(sr.flatten(0, 1), hr.flatten(0, 1)).mean()
            loss = loss + self.config.lpips_weight * terms["lpips"]
        if self.config.temporal_weight > 0 and batch.hr_flows_forward is not None:
            terms["temporal"] = temporal_change_loss(sr, hr, batch.hr_flows_forward.to(self.device),
                                                     batch.hr_flows_backward.to(self.device))
            loss = loss + self.config.temporal_weight * terms["temporal"]
        if self.discriminator is not None:
            self.discriminator.requires_grad_(False)
            terms["gan_g"] = F.softplus(-self.discriminator(sr)).mean()
            loss = loss + self.config.gan_weight * terms["gan_g"]
            self.discriminator.requires_grad_(True)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        if self.discriminator is not None:
            terms["gan_d"], terms["r1"] = discriminator_loss(self.discriminator, hr, sr, self.config.r1_weight)
            self.d_optimizer.zero_grad(set_to_none=True)
            terms["gan_d"].backward()
            self.d_optimizer.step()
        terms["loss"] = loss
        return {key: float(value.detach()) for key, value in terms.items()} | {"lr": lr}


def train(config, source, out_dir, estimator=None, lpips=None, val_source=None, resume=False, device="cpu",
          progress=None, log=None):
    """Train (or continue training) a TameVSRNet.

    config: TrainConfig. source: a clip source of data.py (ProceduralSource, FolderSource).
    out_dir: folder for the state, weights and log (module docstring). estimator: FlowEstimator for
    clips without exact flow and for the validation's E_warp/RWE (None: exact-flow metrics only).
    lpips: an LPIPS module (`module(a, b) -> [N]` on `[N,3,H,W]` in [0,1]) or None (term skipped).
    val_source: source of the validation clips (default `source`, other seeds). resume: continue from
    out_dir's training state up to `config.steps`. progress: `progress(step, steps)` after every
    step; it may raise to cancel, after the state has been saved. log: `log(text)` for notes, loss
    lines and validation reports. Returns a TrainResult.
    """
    config.check()
    log = log or (lambda text: None)
    run = _Run(config, source, out_dir, estimator, lpips, torch.device(device), resume, log)
    notes = [] if lpips is not None or config.lpips_weight == 0 else \
        ["LPIPS term skipped: no LPIPS weights (put them into models/tame/lpips)"]
    for note in notes:
        log(f"note: {note}")
    log(f"data: {source.description}")
    if run.step >= config.steps:
        log(f"the run is already at step {run.step} of {config.steps}; nothing to train")
    generator = torch.Generator().manual_seed(config.seed * 1_000_003 + run.step)
    validation = make_validation_clips(val_source or source, config, estimator)
    pool = ClipPool(source, config.pool_clips, config.num_frames, config.scale * config.crop, generator)
    report, started, window = None, time.monotonic(), []
    try:
        while run.step < config.steps:
            generator.manual_seed(config.seed * 1_000_003 + run.step)
            pool.refresh(generator)
            batch = pool.batch(generator, config.batch_size, config.crop, config.scale, config.degradation,
                               estimator)
            tick = time.monotonic()
            window.append(run.train_step(batch) | {"seconds": time.monotonic() - tick})
            run.step += 1
            if run.step % config.log_every == 0 or run.step == config.steps:
                record = _mean_record(window, run.step)
                run.write_log(record)
                log(_format_record(record, config.steps))
                window = []
            if run.step % config.val_every == 0 or run.step == config.steps:
                report = validation_report(run.net, validation, estimator) | {"step": run.step}
                run.write_log({"step": run.step, "validation": report})
                log(f"validation at step {run.step}:\n{format_validation(report)}")
            if run.step % config.checkpoint_every == 0 or run.step == config.steps:
                run.save()
            if progress is not None:
                progress(run.step, config.steps)
    except BaseException:
        run.save(f"stopped at step {run.step}; state saved to {run.state_path} (resume to continue)")
        raise
    if not run.weights_path.is_file():
        run.save()
    log(f"done: {run.step} steps in {time.monotonic() - started:.0f} s; weights {run.weights_path}")
    return TrainResult(run.step, run.weights_path, run.state_path, report, notes)


def _mean_record(window, step):
    keys = window[0].keys()
    return {"step": step, **{key: sum(entry[key] for entry in window) / len(window) for key in keys}}


def _format_record(record, steps):
    terms = ", ".join(f"{key} {record[key]:.4g}" for key in ("charbonnier", "lpips", "temporal", "gan_g", "gan_d", "r1")
                      if key in record)
    return (f"step {record['step']}/{steps}: loss {record['loss']:.4g} ({terms}), lr {record['lr']:.3g}, "
            f"{record['seconds']:.2f} s/step")
