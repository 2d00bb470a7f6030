"""Two-phase optimisation for temporally consistent editing (seed 001 §3, specs/consistency.md).

Given per-frame edited codes `W_t` of a generator `G` (directly edited frames `G(W_t)` flicker):
- phase 1 fits an MLP `f` so that `W_hat_t = W_t + alpha f(W_t)` decodes to a consistent video;
- phase 2 keeps `W_hat_t` fixed and fine-tunes (a copy of) `G`.
Each iteration takes a pair (anchor, i), estimates flow both ways on the current outputs, and
minimises the masked bi-directional photometric loss plus the regularisers of the seed. An epoch
visits every non-anchor frame once, in a seeded random order.
"""
from dataclasses import dataclass, field, replace
from typing import Optional

import torch

from .generator import decode_frames
from .losses import (
    CharbonnierSSIMDistance,
    flow_consistency_loss,
    fuse_masks,
    local_code,
    local_regulariser,
    mask_loss,
    pair_flows,
    perceptual_difference_mask,
    photometric_loss,
    visibility_masks,
)
from .mapper import LatentMapper, refine_codes

IN_DOMAIN = "in-domain"
OUT_OF_DOMAIN = "out-of-domain"
MODES = (IN_DOMAIN, OUT_OF_DOMAIN)
PRESETS = ("seed", "fast")
OUT_OF_DOMAIN_FROZEN_SHARE = 0.3  # the seed freezes the last 8 of StyleGAN2's ~26 synthesis layers


@dataclass
class ConsistencySettings:
    """Hyper-parameters; `ConsistencySettings.for_mode(mode, preset)` gives the defaults (the plain
    constructor: the seed's in-domain values).

    mode: "in-domain" (latent edits of a fixed generator: M^PD fused into the masks, L_M in phase 2)
        or "out-of-domain" (style/generator edits: visibility masks only, last layers frozen).
    anchor: anchor frame index (None = middle frame, (T-1)//2).
    phase1_epochs, phase1_lr, alpha: MLP refinement (epochs 0 skips the phase).
    phase2_epochs, phase2_lr: generator fine-tuning (epochs 0 skips the phase).
    lambda_rf, lambda_eps, lambda_r, lambda_m, lambda_l2: loss weights (seed: 0.1, 10, 200, -, -).
    regulariser_radius: RMS step from W_hat towards a prior code for L_r, in units of the codes'
        mean per-channel standard deviation.
    freeze_last: generator layers (in decode order) kept fixed in phase 2; None = 0 in-domain,
        30 % of the layers out-of-domain.
    grad_iterations: finest-level flow iterations differentiated (built-in estimator).
    mapper_layers: fully connected layers of f. frame_context: f also sees each frame's mean code
        (mapper.py; lets a per-pixel f undo per-frame changes). seed: makes the run reproducible.
    """
    mode: str = IN_DOMAIN
    anchor: Optional[int] = None
    phase1_epochs: int = 10
    phase1_lr: float = 0.05
    alpha: float = 0.04
    phase2_epochs: int = 5
    phase2_lr: float = 1e-4
    lambda_rf: float = 0.1
    lambda_eps: float = 10.0
    lambda_r: float = 200.0
    lambda_m: float = 1.0
    lambda_l2: float = 1.0
    regulariser_radius: float = 0.25
    freeze_last: Optional[int] = None
    grad_iterations: int = 1
    mapper_layers: int = 4
    frame_context: bool = True
    seed: int = 0

    @classmethod
    def for_mode(cls, mode=IN_DOMAIN, preset="seed", **overrides):
        """Defaults for `mode`, then `overrides`.

        preset "seed": the seed's values (§4.2-4.3), tuned for ~150-frame clips, StyleGAN codes and
        LPIPS. preset "fast": larger steps (phase-1 lr 1.0, alpha 0.5, lambda_rf 0.05, phase-2 lr 3e-3,
        lambda_r 20) for short clips (an epoch is only T-1 iterations) and the weight-free distance,
        whose linear response to small differences makes lambda_r = 200 pin the generator; with the
        seed's values an 8-frame clip barely changes. lambda_rf 0.05 is the measured edge: at 0.03 a
        benchmark clip drifts towards flat frames (bench/edit/RESULTS.md).
        """
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}.")
        if preset not in PRESETS:
            raise ValueError(f"preset must be one of {PRESETS}, got {preset!r}.")
        base = cls(mode=mode) if mode == IN_DOMAIN else \
            cls(mode=mode, phase1_lr=0.005, phase1_epochs=5, phase2_lr=8e-4, phase2_epochs=5)
        if preset == "fast":
            # L_eps is monitored but not differentiated: through the built-in estimator its gradient
            # collapses short clips to flat frames (open item, see README status)
            base = replace(base, phase1_lr=1.0, alpha=0.5, lambda_rf=0.05, phase2_lr=3e-3, lambda_r=20.0,
                           grad_iterations=0)
        return replace(base, **overrides)


@dataclass
class ConsistencyResult:
    """frames `[T,3,H,W]` CPU float32 in [0,1] (the consistent video); latents: refined codes
    `W_hat` `[T,C,h,w]` (CPU); generator: the tuned copy; mapper: the fitted f; losses: total loss
    per iteration of each phase; distance: name of D; anchor: the anchor frame index."""
    frames: torch.Tensor
    latents: torch.Tensor
    generator: object
    mapper: torch.nn.Module
    losses: dict = field(default_factory=dict)
    distance: str = ""
    anchor: int = 0


def _check_inputs(generator, latents, inputs, settings):
    if settings.mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {settings.mode!r}.")
    for name in ("phase1_epochs", "phase2_epochs"):
        value = getattr(settings, name)
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ValueError(f"{name} must be an integer >= 0 (0 skips the phase), got {value!r}.")
    if settings.phase1_lr <= 0 or settings.phase2_lr <= 0:
        raise ValueError(f"learning rates must be > 0, got {settings.phase1_lr} and {settings.phase2_lr}.")
    generator.check_latents(latents)
    count = latents.shape[0]
    if count < 2:
        raise ValueError(f"temporal consistency needs at least 2 frames, got {count} latent(s).")
    if settings.anchor is not None and not 0 <= settings.anchor < count:
        raise ValueError(f"anchor frame {settings.anchor} is outside the video (0..{count - 1}).")
    if settings.mode == IN_DOMAIN and inputs is None:
        raise ValueError("in-domain mode needs the input (unedited) frames for the perceptual-difference "
                         "mask; pass inputs=frames, or use mode='out-of-domain'.")
    if inputs is None:
        return
    if not isinstance(inputs, torch.Tensor) or inputs.dim() != 4 or inputs.shape[1] != 3:
        raise ValueError(f"inputs must be RGB frames [T,3,H,W], got "
                         f"{tuple(inputs.shape) if isinstance(inputs, torch.Tensor) else type(inputs).__name__}.")
    if inputs.shape[0] != count:
        raise ValueError(f"there are {count} latents but {inputs.shape[0]} input frames; give one latent "
                         f"per frame.")
    expected = generator.frame_size(latents.shape[-2:])
    if tuple(inputs.shape[-2:]) != tuple(expected):
        raise ValueError(f"input frames are {tuple(inputs.shape[-2:])} but the latents decode to "
                         f"{tuple(expected)}; resize the frames (or crop them) to the decoded size.")


def epoch_schedule(count, anchor, epochs, rng):
    """Non-anchor frame indices, each once per epoch in a random order -> list."""
    others = torch.tensor([t for t in range(count) if t != anchor])
    return [int(others[i]) for _ in range(epochs) for i in torch.randperm(len(others), generator=rng)]


class _PairLoss:
    """Photometric, flow-consistency and mask losses of one (anchor, i) pair of decoded frames."""

    def __init__(self, estimator, distance, settings, inputs):
        self.estimator, self.distance, self.settings, self.inputs = estimator, distance, settings, inputs

    def __call__(self, frames, pair):
        """frames `[2,3,H,W]` = (anchor, i) outputs -> (photometric, L_eps, M^PD `[2,1,H,W]` or None)."""
        flow_ai, flow_ia = pair_flows(self.estimator, frames[0:1], frames[1:2], self.settings.grad_iterations)
        vis_anchor, vis_other = visibility_masks(flow_ai, flow_ia)
        difference = None
        if self.settings.mode == IN_DOMAIN:
            difference = perceptual_difference_mask(self.distance, frames.detach(), self.inputs[pair])
        mask_anchor = fuse_masks(vis_anchor, None if difference is None else difference[0:1])
        mask_other = fuse_masks(vis_other, None if difference is None else difference[1:2])
        photo = photometric_loss(self.distance, frames[0:1], frames[1:2], flow_ai, flow_ia,
                                 mask_anchor, mask_other)
        return photo, flow_consistency_loss(flow_ai, flow_ia), difference


def report_progress(progress, done, total):
    """Call `progress(done, total)` when a callback is given (it may raise to cancel)."""
    if progress is not None:
        progress(done, total)


def _phase1(generator, codes, pair_loss, settings, schedule, anchor, step):
    """Fit the mapper f (generator frozen) -> the mapper."""
    mapper = LatentMapper(codes.shape[1], layers=settings.mapper_layers, frame_context=settings.frame_context,
                          seed=settings.seed).to(codes.device)
    generator.decoder.requires_grad_(False)
    optimiser = torch.optim.Adam(mapper.parameters(), lr=settings.phase1_lr)
    for other in schedule:
        pair = [anchor, other]
        refined, residual = refine_codes(mapper, codes[pair], settings.alpha)
        photo, epsilon, _ = pair_loss(generator.decode(refined), pair)
        loss = photo + settings.lambda_rf * residual.abs().flatten(1).mean(1).sum() \
            + settings.lambda_eps * epsilon
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
        step(loss)
    mapper.requires_grad_(False)
    return mapper


def _phase2(original, tuned, refined, pair_loss, settings, schedule, anchor, rng, step):
    """Fine-tune `tuned` (a copy of `original`) on the frozen refined codes."""
    freeze = settings.freeze_last
    if freeze is None:
        freeze = 0 if settings.mode == IN_DOMAIN else round(OUT_OF_DOMAIN_FROZEN_SHARE * len(tuned.layers()))
    optimiser = torch.optim.Adam(tuned.trainable_parameters(freeze), lr=settings.phase2_lr)
    radius = settings.regulariser_radius * float(refined.std(dim=(0, 2, 3)).mean())
    for other in schedule:
        pair = [anchor, other]
        frames = tuned.decode(refined[pair])
        photo, epsilon, difference = pair_loss(frames, pair)
        prior = original.sample_prior_code(refined, generator=rng)[pair]
        regulariser = local_regulariser(pair_loss.distance, original, tuned,
                                        local_code(refined[pair], prior, radius), settings.lambda_l2)
        loss = photo + settings.lambda_eps * epsilon + settings.lambda_r * regulariser
        if difference is not None:
            loss = loss + settings.lambda_m * mask_loss(pair_loss.distance, frames,
                                                        pair_loss.inputs[pair], difference)
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
        step(loss)
    tuned.decoder.requires_grad_(False)


def anchor_frame(settings, count):
    """The anchor index: `settings.anchor`, or the middle frame `(count - 1) // 2`."""
    return (count - 1) // 2 if settings.anchor is None else settings.anchor


def _prepare(generator, latents, inputs, settings, distance, epochs_field):
    """Validate; (settings, distance, anchor, schedule of `settings.<epochs_field>`, seeded rng)."""
    settings = settings or ConsistencySettings()
    distance = distance or CharbonnierSSIMDistance()
    _check_inputs(generator, latents, inputs, settings)
    count = latents.shape[0]
    anchor = anchor_frame(settings, count)
    rng = torch.Generator().manual_seed(int(settings.seed))
    return settings, distance, anchor, epoch_schedule(count, anchor, getattr(settings, epochs_field), rng), rng


def _recorder(progress, total):
    """(losses list, step(loss)) recording each iteration's loss and reporting progress."""
    losses = []

    def step(loss):
        losses.append(float(loss.detach()))
        report_progress(progress, len(losses), total)

    return losses, step


def _on_device(generator, latents, estimator, inputs, settings, distance):
    """Codes and the pair loss on the generator's device (call inside inference_mode(False))."""
    device = generator.device
    codes = latents.detach().clone().to(device, torch.float32)
    frames_in = None if inputs is None else inputs.detach().clone().to(device, torch.float32)
    return codes, _PairLoss(estimator, distance, settings, frames_in)


def refine_latents(generator, latents, estimator, inputs=None, settings=None, distance=None,
                   progress=None):
    """Phase 1: fit the mapper f with the generator frozen; `settings.phase1_*` and `alpha` apply.

    Arguments as `make_consistent`. Returns (refined codes `W_hat` `[T,C,h,w]` CPU float32, the
    fitted mapper, loss per iteration). With `phase1_epochs` 0 the codes come back unchanged.
    `progress(done, total)` is called with 0, then after every iteration.
    """
    settings, distance, anchor, schedule, _ = _prepare(generator, latents, inputs, settings, distance,
                                                       "phase1_epochs")
    losses, step = _recorder(progress, len(schedule))
    with torch.inference_mode(False), torch.enable_grad():
        codes, pair_loss = _on_device(generator, latents, estimator, inputs, settings, distance)
        report_progress(progress, 0, len(schedule))
        mapper = _phase1(generator, codes, pair_loss, settings, schedule, anchor, step)
        with torch.no_grad():
            refined = refine_codes(mapper, codes, settings.alpha)[0] if schedule else codes
    return refined.cpu(), mapper, losses


def finetune_generator(generator, refined_latents, estimator, inputs=None, settings=None, distance=None,
                       progress=None):
    """Phase 2: fine-tune a copy of `generator` on the frozen refined codes; `settings.phase2_*` apply.

    Arguments as `make_consistent` (`refined_latents`: the codes phase 1 returned, or any codes).
    Returns (the tuned copy, loss per iteration); `generator` itself is never modified. With
    `phase2_epochs` 0 the copy is untuned. `progress(done, total)`: 0, then after every iteration.
    """
    settings, distance, anchor, schedule, rng = _prepare(generator, refined_latents, inputs, settings,
                                                         distance, "phase2_epochs")
    losses, step = _recorder(progress, len(schedule))
    with torch.inference_mode(False), torch.enable_grad():
        refined, pair_loss = _on_device(generator, refined_latents, estimator, inputs, settings, distance)
        tuned = generator.copy()
        report_progress(progress, 0, len(schedule))
        if schedule:
            _phase2(generator, tuned, refined, pair_loss, settings, schedule, anchor, rng, step)
    return tuned, losses


def _shifted_progress(progress, offset, total):
    """`progress` of a phase as part of the whole run: done + offset of total (the phase's own
    start report is dropped when an earlier phase already reported that point)."""
    def report(done, _phase_total):
        if done or not offset:
            report_progress(progress, offset + done, total)
    return report


def make_consistent(generator, latents, estimator, inputs=None, settings=None, distance=None,
                    progress=None):
    """Temporally consistent decoding of per-frame edited codes: `refine_latents`, then
    `finetune_generator` on its codes, then decoding (both phases of seed 001).

    Args:
        generator: a `Generator` (never modified: phase 2 tunes a copy).
        latents: per-frame edited codes `[T,C,h,w]`, T >= 2 (any device; moved to the generator's).
        estimator: flow estimator (`FlowEstimator` or module `(image1, image2) -> flow`), run on the
            outputs at every iteration.
        inputs: the unedited input frames `[T,3,H,W]` in [0,1] at the decoded size (required in-domain).
        settings: `ConsistencySettings` (default: in-domain defaults of the seed).
        distance: perceptual distance D (default: the weight-free one; see losses.perceptual_distance).
        progress: `progress(done, total)` over both phases: 0, then after every iteration; may raise
            to cancel.
    Returns:
        ConsistencyResult. Deterministic for a given `settings.seed` on CPU.
    """
    settings = settings or ConsistencySettings()
    distance = distance or CharbonnierSSIMDistance()
    _check_inputs(generator, latents, inputs, settings)
    pairs_per_epoch = latents.shape[0] - 1
    first = settings.phase1_epochs * pairs_per_epoch
    total = first + settings.phase2_epochs * pairs_per_epoch
    refined, mapper, losses1 = refine_latents(generator, latents, estimator, inputs, settings, distance,
                                              _shifted_progress(progress, 0, total))
    tuned, losses2 = finetune_generator(generator, refined, estimator, inputs, settings, distance,
                                        _shifted_progress(progress, first, total))
    return ConsistencyResult(decode_frames(tuned, refined), refined, tuned, mapper,
                             {"phase1": losses1, "phase2": losses2}, distance.name,
                             anchor_frame(settings, latents.shape[0]))
