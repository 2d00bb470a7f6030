"""Edit-consistency nodes (seed 001, specs/consistency.md): a generator (the pack's autoencoder or a
ComfyUI VAE), encode/decode, a flickering per-frame edit, latent MLP refinement (phase 1), generator
fine-tuning (phase 2), blind mode for any processed video, and paste-back of edited crops."""
import time

import torch

from ..kernels.masks import mask_bounding_boxes
from ..models.edit.autoencoder import SHIPPED_WEIGHTS, autoencoder_from_state_dict
from ..models.edit.blind import BlindSettings, blind_consistency
from ..models.edit.generator import AutoencoderGenerator, Generator, decode_frames, encode_frames
from ..models.edit.jitter import colour_shift, jittered_edit, latent_direction
from ..models.edit.losses import perceptual_distance
from ..models.edit.optimize import MODES, PRESETS, ConsistencySettings, finetune_generator, refine_latents
from ..models.edit.optimize import anchor_frame as resolved_anchor
from ..models.edit.pasteback import paste_back
from ..models.edit.windowed import DEFAULT_OVERLAP, WindowedSettings, windowed_blind_consistency
from ..models.io.weights import load_state_dict
from . import host
from .comfy_objects import VAEGenerator
from .flow_nodes import builtin_estimator
from .tensors import frames_to_image, image_to_frames, mask_to_batch

CATEGORY = "Tame/edit"
BUILTIN_AUTOENCODER = "built-in autoencoder"
COMFY_VAE = "ComfyUI VAE"
SHIPPED_AUTOENCODER = SHIPPED_WEIGHTS
CUSTOM_RGB = "custom rgb"
COLOUR_SHIFTS = {"warm colour": (0.12, 0.03, -0.12), "cool colour": (-0.12, 0.0, 0.12),
                 "brighten": (0.15, 0.15, 0.15), "darken": (-0.15, -0.15, -0.15)}
DESATURATE = "desaturate"
EDITS = list(COLOUR_SHIFTS) + [DESATURATE, CUSTOM_RGB]
LUMA = (0.299, 0.587, 0.114)
PRESET_TOOLTIP = ("fast: large steps for short clips and the weight-free distance (the default). seed: the "
                  "paper's values, meant for ~150-frame clips; an epoch is only frames-1 iterations, so on "
                  "a short clip they barely change anything.")
SEED_OPTIONS = {"default": 0, "min": 0, "max": 2 ** 31 - 1}


# ------------------------------------------------------------------------------------- helpers
def _check_generator(generator):
    if not isinstance(generator, Generator):
        raise ValueError(f"generator must be a TAME_GENERATOR from Load Generator, got {type(generator).__name__}.")
    return generator


def _samples(latent, name="latent"):
    """LATENT dict -> samples `[T,C,h,w]` float32 (validated: a dict with finite 4-D samples)."""
    if not isinstance(latent, dict) or not isinstance(latent.get("samples"), torch.Tensor):
        raise ValueError(f"{name} must be a LATENT (a dict with 'samples'); connect a LATENT output.")
    samples = latent["samples"]
    if samples.ndim != 4:
        raise ValueError(f"{name} samples must be [frames,C,h,w], got shape {tuple(samples.shape)}; "
                         f"video (3-D) latents are not supported.")
    if not torch.isfinite(samples).all():  # NaN frames would reach grid_sample, whose CPU backward crashes
        raise ValueError(f"{name} contains NaN or Inf values; check the node that produced it (a VAE run "
                         f"in float16 can overflow).")
    return samples.float()


def _crop_to(frames, size, slack, name):
    """Centre-crop frames `[T,3,H,W]` to `size` (h, w) when they are at most `slack - 1` px larger
    (what encoding does to sizes that are not a multiple of the downscale); else a ValueError."""
    height, width = frames.shape[-2:]
    extra_y, extra_x = height - size[0], width - size[1]
    if not (0 <= extra_y < slack and 0 <= extra_x < slack):
        raise ValueError(f"{name} frames are {width}x{height} but the latents decode to {size[1]}x{size[0]}; "
                         f"connect the frames the latents were encoded from (same size).")
    return frames[..., extra_y // 2:extra_y // 2 + size[0], extra_x // 2:extra_x // 2 + size[1]]


def _frames_for(image, generator, samples, name):
    """IMAGE matched to latents: one frame per latent, cropped to the decoded size -> `[T,3,H,W]`."""
    frames = image_to_frames(image, name)
    if frames.shape[0] != samples.shape[0]:
        raise ValueError(f"{name} has {frames.shape[0]} frames but the latent has {samples.shape[0]}; "
                         f"the latent and frame counts must match (one latent per frame).")
    size = generator.frame_size(samples.shape[-2:])
    return _crop_to(frames, size, generator.downscale, name).to(generator.device)


def _distance():
    """D: LPIPS from the files in models/tame/lpips (merged) when there are any, else weight-free."""
    names = host.list_models("lpips")
    if not names:
        return perceptual_distance(None)
    weights = {}
    for name in names:
        weights.update(load_state_dict(host.model_path("lpips", name)))
    return perceptual_distance(weights, host.compute_device())


def _settings(mode, preset, anchor, seed, **preset_overrides):
    """ConsistencySettings of mode/preset; overrides whose value is 0 keep the preset's value."""
    overrides = {key: value for key, value in preset_overrides.items() if value}
    return ConsistencySettings.for_mode(mode, preset, anchor=None if anchor < 0 else anchor, seed=seed,
                                        **overrides)


def _inputs_for(mode, original, generator, samples):
    """The unedited frames for the optimisation (required in-domain), or None."""
    if original is None:
        if mode == MODES[0]:
            raise ValueError("in-domain mode needs the original IMAGE (the unedited frames) for its "
                             "perceptual-difference mask; connect it, or choose out-of-domain.")
        return None
    return _frames_for(original, generator, samples, "original")


def _report(phase, count, anchor, losses, distance, estimator, seconds):
    """One line about a finished optimisation: loss of the first and last epoch, D, flow, time."""
    per_epoch = max(count - 1, 1)
    text = f"{phase}: {count} frames, anchor {anchor}, {len(losses)} iterations"
    if losses:
        first, last = losses[:per_epoch], losses[-per_epoch:]
        text += f", loss {sum(first) / len(first):.4f} -> {sum(last) / len(last):.4f} (first -> last epoch)"
    name = getattr(estimator, "name", type(estimator).__name__)
    return f"{text}; D = {distance.name}; flow = {name}; {seconds:.1f} s"


def _optimisation_inputs():
    """Inputs the two phase nodes share."""
    return {
        "mode": (list(MODES), {"default": MODES[0],
                               "tooltip": "in-domain: a latent edit of this generator (colour, attribute); "
                                          "unedited regions stay equal to the original (needs original). "
                                          "out-of-domain: a style or generator change; flow masks only."}),
        "preset": (list(PRESETS), {"default": "fast", "tooltip": PRESET_TOOLTIP}),
    }


def _optional_inputs():
    return {
        "original": ("IMAGE", {"tooltip": "The unedited frames the latents were encoded from (same count "
                                           "and size). Required in-domain."}),
        "flow_model": ("TAME_FLOW_MODEL", {"tooltip": "Flow estimator run on the outputs at every iteration; "
                                                      "default: built-in fast."}),
    }


def _anchor_input():
    return ("INT", {"default": -1, "min": -1, "max": 100000,
                    "tooltip": "Frame paired with every other frame (-1 = the middle frame). Use the same "
                               "value in both phases."})


# ------------------------------------------------------------------------------------- nodes
class TameLoadGenerator:
    DESCRIPTION = ("The generator G that maps latents to frames for edit consistency: the pack's small "
                   "built-in autoencoder (models/weights/tame_autoencoder.safetensors; works offline), or a "
                   "ComfyUI VAE, to make per-frame diffusion edits consistent. The VAE is copied, never "
                   "modified.")
    CATEGORY = CATEGORY
    FUNCTION = "load"
    RETURN_TYPES = ("TAME_GENERATOR",)
    RETURN_NAMES = ("generator",)
    OUTPUT_TOOLTIPS = ("The generator that maps latents to frames (and encodes frames).",)

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "source": ([BUILTIN_AUTOENCODER, COMFY_VAE], {
                "tooltip": "built-in autoencoder: shipped with the pack. ComfyUI VAE: the VAE connected below "
                           "(image VAEs: SD1.x, SDXL, SD3, Flux, ...)."}),
        }, "optional": {
            "vae": ("VAE", {"tooltip": "Required when source is ComfyUI VAE: the VAE that encoded/decodes "
                                       "your latents."}),
        }}

    def load(self, source, vae=None):
        device = host.compute_device()
        if source == COMFY_VAE:
            if vae is None:
                raise ValueError("source is 'ComfyUI VAE' but no VAE is connected; connect the VAE output of "
                                 "a checkpoint or VAE loader, or choose 'built-in autoencoder'.")
            return (VAEGenerator(vae, device),)
        if source != BUILTIN_AUTOENCODER:
            raise ValueError(f"source must be '{BUILTIN_AUTOENCODER}' or '{COMFY_VAE}', got {source!r}.")
        if not SHIPPED_AUTOENCODER.is_file():
            raise FileNotFoundError(
                f"The built-in autoencoder weights '{SHIPPED_AUTOENCODER.name}' are missing from "
                f"{SHIPPED_AUTOENCODER.parent}. Reinstall or update Tame, or choose 'ComfyUI VAE'.")
        with torch.inference_mode(False):
            autoencoder = autoencoder_from_state_dict(load_state_dict(SHIPPED_AUTOENCODER)).to(device)
        return (AutoencoderGenerator(autoencoder, device),)


class TameEncodeFrames:
    DESCRIPTION = ("Encode video frames into latents with the generator's encoder (the built-in autoencoder, "
                   "or the VAE's own encode). Frames whose size is not a multiple of the generator's "
                   "downscale are centre-cropped to one, as VAE Encode does.")
    CATEGORY = CATEGORY
    FUNCTION = "encode"
    RETURN_TYPES = ("LATENT",)
    RETURN_NAMES = ("latent",)
    OUTPUT_TOOLTIPS = ("The latents of the frames, one per frame.",)

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "images": ("IMAGE", {"tooltip": "The frames to encode (IMAGE batch)."}),
            "generator": ("TAME_GENERATOR", {"tooltip": "Generator from Load Generator."}),
        }}

    def encode(self, images, generator):
        generator = _check_generator(generator)
        frames = image_to_frames(images)
        scale = generator.downscale
        size = (frames.shape[-2] // scale * scale, frames.shape[-1] // scale * scale)
        if min(size) < scale:
            raise ValueError(f"images are {frames.shape[-1]}x{frames.shape[-2]}, smaller than the generator's "
                             f"downscale {scale}; use larger frames.")
        frames = _crop_to(frames, size, scale, "images")
        codes = encode_frames(generator, frames, progress=host.progress(frames.shape[0], "encode frames"))
        return ({"samples": codes},)


class TameDecodeFrames:
    DESCRIPTION = ("Decode latents into frames with a generator (for example the tuned generator of "
                   "Generator Finetune with the refined latents of Latent MLP Refine), a few frames at a time.")
    CATEGORY = CATEGORY
    FUNCTION = "decode"
    RETURN_TYPES = ("IMAGE",)
    RETURN_NAMES = ("images",)
    OUTPUT_TOOLTIPS = ("The decoded frames.",)

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "latent": ("LATENT", {"tooltip": "Latents made for this generator (same VAE / autoencoder)."}),
            "generator": ("TAME_GENERATOR", {"tooltip": "Generator from Load Generator or Generator Finetune."}),
        }}

    def decode(self, latent, generator):
        generator = _check_generator(generator)
        samples = _samples(latent)
        generator.check_latents(samples, "latent samples")
        frames = decode_frames(generator, samples, progress=host.progress(samples.shape[0], "decode frames"))
        return (frames_to_image(frames),)


class TameJitteredLatentEdit:
    DESCRIPTION = ("A per-frame latent edit that flickers, as real per-frame editing does: the edit's latent "
                   "direction (encode(edited frame) - encode(frame), per frame) is added with a strength "
                   "that varies per frame, plus per-frame latent noise. The 'direct edit' of the demos and "
                   "benchmarks, to be made consistent by Latent MLP Refine and Generator Finetune.")
    CATEGORY = CATEGORY
    FUNCTION = "edit"
    RETURN_TYPES = ("LATENT",)
    RETURN_NAMES = ("latent",)
    OUTPUT_TOOLTIPS = ("The edited latents, flickering from frame to frame.",)

    @classmethod
    def INPUT_TYPES(cls):
        offset = {"default": 0.0, "min": -1.0, "max": 1.0, "step": 0.01}
        return {"required": {
            "latent": ("LATENT", {"tooltip": "Latents of the frames (Encode Frames)."}),
            "generator": ("TAME_GENERATOR", {"tooltip": "The generator that encoded the latents; it also "
                                                        "encodes the edited frames to find the direction."}),
            "frames": ("IMAGE", {"tooltip": "The frames the latents were encoded from (same count and size)."}),
            "edit": (EDITS, {"default": EDITS[0],
                             "tooltip": "The picture edit whose latent direction is applied; custom rgb adds "
                                        "the red/green/blue offsets below."}),
            "strength": ("FLOAT", {"default": 1.0, "min": -4.0, "max": 4.0, "step": 0.05,
                                   "tooltip": "Mean edit strength (1 = the edit as defined, negative reverses it)."}),
            "strength_jitter": ("FLOAT", {"default": 0.5, "min": 0.0, "max": 2.0, "step": 0.05,
                                          "tooltip": "Per-frame strength is uniform in strength * (1 +- this)."}),
            "noise": ("FLOAT", {"default": 0.1, "min": 0.0, "max": 2.0, "step": 0.01,
                                "tooltip": "Per-frame Gaussian latent noise, in units of the latents' "
                                           "per-channel standard deviation."}),
            "seed": ("INT", {**SEED_OPTIONS, "tooltip": "Seed of the per-frame strengths and noise."}),
            "red": ("FLOAT", {**offset, "tooltip": "custom rgb only: offset added to red (0..1 scale)."}),
            "green": ("FLOAT", {**offset, "tooltip": "custom rgb only: offset added to green."}),
            "blue": ("FLOAT", {**offset, "tooltip": "custom rgb only: offset added to blue."}),
        }}

    def edit(self, latent, generator, frames, edit, strength, strength_jitter, noise, seed, red, green, blue):
        generator = _check_generator(generator)
        samples = _samples(latent)
        generator.check_latents(samples, "latent samples")
        pictures = _frames_for(frames, generator, samples, "frames")
        edited = _edited_pictures(pictures, edit, (red, green, blue))
        direction = latent_direction(lambda batch: encode_frames(generator, batch), pictures,
                                     edited, spatial=True)
        result = jittered_edit(samples, direction, strength, strength_jitter, noise, seed)
        return ({**latent, "samples": result.latents},)


def _edited_pictures(frames, edit, custom_rgb):
    """The edit applied to frames `[T,3,H,W]` in [0,1] -> `[T,3,H,W]`."""
    if edit in COLOUR_SHIFTS:
        return colour_shift(frames, COLOUR_SHIFTS[edit])
    if edit == CUSTOM_RGB:
        return colour_shift(frames, custom_rgb)
    if edit == DESATURATE:
        luma = (frames * torch.tensor(LUMA, dtype=frames.dtype, device=frames.device).view(1, 3, 1, 1)).sum(1, True)
        return luma.expand_as(frames)
    raise ValueError(f"edit must be one of {EDITS}, got {edit!r}.")


class TameLatentMLPRefine:
    DESCRIPTION = ("Phase 1 of temporally consistent editing (seed 001): refines per-frame edited latents "
                   "W_t into W_t + alpha * f(W_t) with a small MLP f fitted so the decoded video agrees "
                   "with itself along optical flow (masked bi-directional photometric loss). The generator "
                   "stays fixed. Then run Generator Finetune, and Decode Frames.")
    CATEGORY = CATEGORY
    FUNCTION = "refine"
    RETURN_TYPES = ("LATENT", "STRING")
    RETURN_NAMES = ("latent", "report")
    OUTPUT_TOOLTIPS = ("The refined latents W + alpha * f(W).", "What was optimised, the losses and the time taken.")

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "generator": ("TAME_GENERATOR", {"tooltip": "The generator that decodes the latents."}),
            "latent": ("LATENT", {"tooltip": "Per-frame edited latents (at least 2 frames), e.g. from "
                                             "Jittered Latent Edit or a per-frame diffusion edit."}),
            **_optimisation_inputs(),
            "epochs": ("INT", {"default": 0, "min": 0, "max": 1000,
                               "tooltip": "Passes over the non-anchor frames (0 = the preset's: 10 in-domain, "
                                          "5 out-of-domain)."}),
            "lr": ("FLOAT", {"default": 0.0, "min": 0.0, "max": 10.0, "step": 0.0001,
                             "tooltip": "Adam learning rate of f (0 = the preset's)."}),
            "alpha": ("FLOAT", {"default": 0.0, "min": 0.0, "max": 10.0, "step": 0.001,
                                "tooltip": "Scale of the refinement W + alpha * f(W) (0 = the preset's: 0.5 "
                                           "fast, 0.04 seed)."}),
            "anchor_frame": _anchor_input(),
            "seed": ("INT", {**SEED_OPTIONS, "tooltip": "Seed of f's initialisation and the pair order."}),
        }, "optional": _optional_inputs()}

    def refine(self, generator, latent, mode, preset, epochs, lr, alpha, anchor_frame, seed, original=None,
               flow_model=None):
        generator = _check_generator(generator)
        samples = _samples(latent)
        settings = _settings(mode, preset, anchor_frame, seed, phase1_epochs=epochs, phase1_lr=lr, alpha=alpha)
        inputs = _inputs_for(mode, original, generator, samples)
        estimator, distance = flow_model or builtin_estimator("fast"), _distance()
        started = time.perf_counter()
        refined, _, losses = refine_latents(
            generator, samples, estimator, inputs, settings, distance,
            host.progress(settings.phase1_epochs * (samples.shape[0] - 1), "latent MLP refine"))
        report = _report("phase 1 (latent MLP refine)", len(samples), resolved_anchor(settings, len(samples)),
                         losses, distance, estimator, time.perf_counter() - started)
        return ({**latent, "samples": refined}, report)


class TameGeneratorFinetune:
    DESCRIPTION = ("Phase 2 of temporally consistent editing (seed 001): fine-tunes a copy of the generator "
                   "on the refined latents (frozen) so the decoded video is consistent along optical flow, "
                   "with a local regulariser that keeps the generator's behaviour around these latents. "
                   "The input generator is never modified. Decode the refined latents with the result.")
    CATEGORY = CATEGORY
    FUNCTION = "finetune"
    RETURN_TYPES = ("TAME_GENERATOR", "STRING")
    RETURN_NAMES = ("generator", "report")
    OUTPUT_TOOLTIPS = (
        "A fine-tuned copy of the generator (the input is unchanged).",
        "What was optimised, the losses and the time taken.",
    )

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "generator": ("TAME_GENERATOR", {"tooltip": "The generator to tune (a copy is tuned)."}),
            "latent": ("LATENT", {"tooltip": "Refined latents from Latent MLP Refine (or any per-frame "
                                             "latents, to skip phase 1)."}),
            **_optimisation_inputs(),
            "epochs": ("INT", {"default": 0, "min": 0, "max": 1000,
                               "tooltip": "Passes over the non-anchor frames (0 = the preset's: 5)."}),
            "lr": ("FLOAT", {"default": 0.0, "min": 0.0, "max": 1.0, "step": 0.00001,
                             "tooltip": "Adam learning rate of the generator (0 = the preset's: 3e-3 fast; "
                                        "1e-4 in-domain / 8e-4 out-of-domain seed)."}),
            "anchor_frame": _anchor_input(),
            "seed": ("INT", {**SEED_OPTIONS, "tooltip": "Seed of the pair order and the regulariser's codes."}),
        }, "optional": _optional_inputs()}

    def finetune(self, generator, latent, mode, preset, epochs, lr, anchor_frame, seed, original=None,
                 flow_model=None):
        generator = _check_generator(generator)
        samples = _samples(latent)
        settings = _settings(mode, preset, anchor_frame, seed, phase2_epochs=epochs, phase2_lr=lr)
        inputs = _inputs_for(mode, original, generator, samples)
        estimator, distance = flow_model or builtin_estimator("fast"), _distance()
        started = time.perf_counter()
        tuned, losses = finetune_generator(
            generator, samples, estimator, inputs, settings, distance,
            host.progress(settings.phase2_epochs * (samples.shape[0] - 1), "generator finetune"))
        report = _report("phase 2 (generator finetune)", len(samples), resolved_anchor(settings, len(samples)),
                         losses, distance, estimator, time.perf_counter() - started)
        return (tuned, report)


class TameBlindConsistency:
    DESCRIPTION = ("Makes any per-frame processed video temporally consistent without latents (style "
                   "transfer, colour grading, per-frame diffusion edits already decoded): a small U-Net is "
                   "fitted to map each original frame to its processed frame while its outputs agree along "
                   "the original video's optical flow.")
    CATEGORY = CATEGORY
    FUNCTION = "process"
    RETURN_TYPES = ("IMAGE", "STRING")
    RETURN_NAMES = ("images", "report")
    OUTPUT_TOOLTIPS = (
        "The temporally consistent processed video.",
        "What was optimised, the losses and the time taken.",
    )

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "original": ("IMAGE", {"tooltip": "The unprocessed video (at least 2 frames); its flow guides "
                                              "consistency."}),
            "processed": ("IMAGE", {"tooltip": "The per-frame processed video, same frame count and size."}),
            "epochs": ("INT", {"default": BlindSettings.epochs, "min": 1, "max": 1000,
                               "tooltip": "Passes over the non-anchor frames; more = closer fit, slower."}),
            "lr": ("FLOAT", {"default": BlindSettings.lr, "min": 0.00001, "max": 0.1, "step": 0.00001,
                             "tooltip": "Adam learning rate of the network. Lower it if the result turns into "
                                        "a flat colour (the fit diverged)."}),
            "seed": ("INT", {**SEED_OPTIONS, "tooltip": "Seed of the network initialisation and pair order."}),
        }, "optional": {
            "flow_model": ("TAME_FLOW_MODEL", {"tooltip": "Flow estimator for the original video; default: "
                                                          "built-in medium."}),
            "window_frames": ("INT", {"default": 0, "min": 0, "max": 1024,
                                      "tooltip": "0 = one anchor (the middle frame) for the whole clip. >= 2 = "
                                                 "overlapping windows of this many frames, each with its own "
                                                 "anchor, the network carried from window to window: needed "
                                                 "when the camera moves far over a long clip."}),
            "overlap_frames": ("INT", {"default": DEFAULT_OVERLAP, "min": 0, "max": 1023,
                                       "tooltip": "Windowed mode: frames shared with the previous window (their "
                                                  "previous output is kept as the target and cross-faded)."}),
        }}

    def process(self, original, processed, epochs, lr, seed, flow_model=None, window_frames=0,
                overlap_frames=DEFAULT_OVERLAP):
        source = image_to_frames(original, "original", min_frames=2)
        target = image_to_frames(processed, "processed")
        if source.shape != target.shape:
            raise ValueError(f"original is {tuple(original.shape)} and processed {tuple(processed.shape)} "
                             f"([frames,H,W,3]); they must have the same frame count and size. Resize the "
                             f"processed frames to the original size first.")
        estimator, distance = flow_model or builtin_estimator(), _distance()
        settings = BlindSettings(epochs=epochs, lr=lr, seed=seed)
        started = time.perf_counter()
        if window_frames:
            windowed = WindowedSettings(settings, min(window_frames, source.shape[0]),
                                        min(overlap_frames, window_frames - 1))
            result = windowed_blind_consistency(source, target, estimator, windowed, distance,
                                                host.progress(source.shape[0], "windowed blind consistency"),
                                                host.compute_device())
            report = (f"windowed blind consistency: {source.shape[0]} frames, {len(result.windows)} windows, "
                      f"{len(result.losses)} iterations; D = {distance.name}; "
                      f"{time.perf_counter() - started:.1f} s")
            return (frames_to_image(result.frames), report)
        result = blind_consistency(source, target, estimator, settings, distance,
                                   host.progress(epochs * (source.shape[0] - 1) + 1, "blind consistency"),
                                   host.compute_device())
        report = _report("blind consistency", source.shape[0], result.anchor, result.losses, distance,
                         estimator, time.perf_counter() - started)
        return (frames_to_image(result.frames), report)


class TamePasteBack:
    DESCRIPTION = ("Paste edited crops back into the full frames with a feathered edge (the 'unalign' step "
                   "after editing a cropped region, e.g. a face). The place is a box (x, y, width, height) "
                   "or, when a mask is connected, the bounding box of the mask in each frame.")
    CATEGORY = CATEGORY
    FUNCTION = "paste"
    RETURN_TYPES = ("IMAGE",)
    RETURN_NAMES = ("images",)
    OUTPUT_TOOLTIPS = ("The full frames with the crops pasted back.",)

    @classmethod
    def INPUT_TYPES(cls):
        position = {"default": 0, "min": -16384, "max": 16384}
        return {"required": {
            "frames": ("IMAGE", {"tooltip": "The full frames (one per crop, or one image for all crops)."}),
            "crops": ("IMAGE", {"tooltip": "The edited crops; each is resized to its box."}),
            "x": ("INT", {**position, "tooltip": "Left edge of the box in frame pixels (may be outside the frame)."}),
            "y": ("INT", {**position, "tooltip": "Top edge of the box in frame pixels."}),
            "width": ("INT", {"default": 0, "min": 0, "max": 16384,
                              "tooltip": "Box width in frame pixels (0 = the crops' width)."}),
            "height": ("INT", {"default": 0, "min": 0, "max": 16384,
                               "tooltip": "Box height in frame pixels (0 = the crops' height)."}),
            "feather": ("INT", {"default": 8, "min": 0, "max": 1024,
                                "tooltip": "Width in pixels of the blend ramp inside the box edge (0 = hard edge)."}),
        }, "optional": {
            "mask": ("MASK", {"tooltip": "Where the crops came from: its bounding box per frame (pixels above "
                                         "0.5) replaces x/y/width/height."}),
        }}

    def paste(self, frames, crops, x, y, width, height, feather, mask=None):
        full = image_to_frames(frames, "frames")
        edited = image_to_frames(crops, "crops")
        if full.shape[0] == 1:
            full = full.expand(edited.shape[0], -1, -1, -1)
        if full.shape[0] != edited.shape[0]:
            raise ValueError(f"frames has {full.shape[0]} images and crops {edited.shape[0]}; give one frame "
                             f"per crop (or a single frame).")
        if mask is None:
            boxes = (x, y, width or edited.shape[-1], height or edited.shape[-2])
        else:
            boxes = _mask_boxes(mask_to_batch(mask), full)
        return (frames_to_image(paste_back(full, edited, boxes, feather)),)


def _mask_boxes(masks, frames):
    """Bounding boxes (x, y, w, h) of `masks` `[B,1,H,W]` > 0.5, one per frame of `frames` `[T,3,H,W]`."""
    if masks.shape[0] not in (1, frames.shape[0]) or masks.shape[-2:] != frames.shape[-2:]:
        raise ValueError(f"mask is {masks.shape[0]}x{masks.shape[-1]}x{masks.shape[-2]} (count x width x height) "
                         f"but frames are {frames.shape[0]}x{frames.shape[-1]}x{frames.shape[-2]}; give one mask "
                         f"of the frame size (or one per frame).")
    try:
        return mask_bounding_boxes(masks.expand(frames.shape[0], -1, -1, -1))
    except ValueError as error:
        raise ValueError(f"{error} There is no place to paste that crop.") from error


NODE_CLASS_MAPPINGS = {cls.__name__: cls for cls in (
    TameLoadGenerator, TameEncodeFrames, TameDecodeFrames, TameJitteredLatentEdit, TameLatentMLPRefine,
    TameGeneratorFinetune, TameBlindConsistency, TamePasteBack)}
NODE_DISPLAY_NAME_MAPPINGS = {
    "TameLoadGenerator": "Load Generator (Tame)",
    "TameEncodeFrames": "Encode Frames (Tame)",
    "TameDecodeFrames": "Decode Frames (Tame)",
    "TameJitteredLatentEdit": "Jittered Latent Edit (Tame)",
    "TameLatentMLPRefine": "Latent MLP Refine (Tame)",
    "TameGeneratorFinetune": "Generator Finetune (Tame)",
    "TameBlindConsistency": "Blind Consistency (Tame)",
    "TamePasteBack": "Paste Back (Tame)",
}
