"""Regenerate the UI-format workflows in this folder from compact descriptions.

Run `python workflows/build_workflows.py` after changing a node's inputs: widget values are written
in INPUT_TYPES order with the node defaults, exactly as ComfyUI's frontend saves a graph.
"""
import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
WIDGET_TYPES = {"INT", "FLOAT", "STRING", "BOOLEAN"}
SEED_NAMES = ("seed", "noise_seed")  # INT inputs the editor gives a control_after_generate widget

# name: [(node id, class, {widget: value}), ...], [(from id, from slot, to id, input name), ...]
WORKFLOWS = {
    "video_load_save": (
        "Load a video file and save it again (frame range, stride and size from the loader).",
        [(1, "TameLoadVideo", {"video": "tame_sample.mp4", "frame_count": 16}),
         (2, "TameSaveVideo", {"filename_prefix": "tame/copy", "format": "png"})],
        [(1, 0, 2, "images")]),
    "flow_estimate": (
        "Estimate bidirectional flow on a video, draw it with occluded pixels in black, save flow and pictures.",
        [(1, "TameLoadVideo", {"video": "tame_sample.mp4", "frame_count": 24}),
         (2, "TameLoadFlowModel", {}),
         (3, "TameEstimateFlow", {}),
         (4, "TameFlowConsistency", {}),
         (5, "TameVisualizeFlow", {}),
         (6, "TameSaveVideo", {"filename_prefix": "tame/flow_colors", "format": "mp4", "fps": 8.0}),
         (7, "TameSaveFlow", {"filename_prefix": "tame/flow"})],
        [(1, 0, 3, "images"), (2, 0, 3, "flow_model"), (3, 0, 4, "flow"), (3, 0, 5, "flow"),
         (4, 1, 5, "overlay_mask"), (5, 0, 6, "images"), (3, 0, 7, "flow")]),
    "temporal_report": (
        "Temporal-quality report of a video: E_warp, colour similarity over time, plots and an x-t slice.",
        [(1, "TameLoadVideo", {"video": "tame_sample.mp4", "frame_count": 24}),
         (2, "TameTemporalMetrics", {}),
         (3, "TameSaveVideo", {"filename_prefix": "tame/report_plot", "format": "png"}),
         (4, "TameSaveVideo", {"filename_prefix": "tame/report_xt", "format": "png"})],
        [(1, 0, 2, "video"), (2, 1, 3, "images"), (2, 2, 4, "images")]),
    "edit_consistency_autoencoder": (
        "Temporally consistent editing with the built-in autoencoder: a flickering per-frame latent edit "
        "(Jittered Latent Edit), phase 1 (Latent MLP Refine) and phase 2 (Generator Finetune), decoded and "
        "measured next to the direct edit.",
        [(1, "TameLoadVideo", {"video": "tame_sample.mp4", "frame_count": 8, "max_side": 128}),
         (2, "TameLoadGenerator", {"source": "built-in autoencoder"}),
         (3, "TameEncodeFrames", {}),
         (4, "TameJitteredLatentEdit", {"edit": "warm colour"}),
         (5, "TameLatentMLPRefine", {"epochs": 6}),
         (6, "TameGeneratorFinetune", {"epochs": 3}),
         (7, "TameDecodeFrames", {}),
         (8, "TameTemporalMetrics", {}),
         (9, "TameSaveVideo", {"filename_prefix": "tame/edit_consistent", "fps": 12.0}),
         (10, "TameDecodeFrames", {}),
         (11, "TameTemporalMetrics", {}),
         (12, "TameSaveVideo", {"filename_prefix": "tame/edit_direct", "fps": 12.0})],
        [(1, 0, 3, "images"), (2, 0, 3, "generator"), (3, 0, 4, "latent"), (2, 0, 4, "generator"),
         (1, 0, 4, "frames"), (2, 0, 5, "generator"), (4, 0, 5, "latent"), (1, 0, 5, "original"),
         (2, 0, 6, "generator"), (5, 0, 6, "latent"), (1, 0, 6, "original"), (5, 0, 7, "latent"),
         (6, 0, 7, "generator"), (7, 0, 8, "video"), (7, 0, 9, "images"), (4, 0, 10, "latent"),
         (2, 0, 10, "generator"), (10, 0, 11, "video"), (10, 0, 12, "images")]),
    "edit_consistency_blind": (
        "Blind consistency for any per-frame processed video (no latents): here the processed video is a "
        "flickering colour edit made with the built-in autoencoder; replace it with your own per-frame "
        "processing of the same frames.",
        [(1, "TameLoadVideo", {"video": "tame_sample.mp4", "frame_count": 8, "max_side": 128}),
         (2, "TameLoadGenerator", {"source": "built-in autoencoder"}),
         (3, "TameEncodeFrames", {}),
         (4, "TameJitteredLatentEdit", {"edit": "cool colour", "strength_jitter": 0.8}),
         (5, "TameDecodeFrames", {}),
         (6, "TameBlindConsistency", {"epochs": 8, "lr": 0.001}),
         (7, "TameTemporalMetrics", {}),
         (8, "TameSaveVideo", {"filename_prefix": "tame/blind_consistent", "fps": 12.0}),
         (9, "TameTemporalMetrics", {})],
        [(1, 0, 3, "images"), (2, 0, 3, "generator"), (3, 0, 4, "latent"), (2, 0, 4, "generator"),
         (1, 0, 4, "frames"), (4, 0, 5, "latent"), (2, 0, 5, "generator"), (1, 0, 6, "original"),
         (5, 0, 6, "processed"), (6, 0, 7, "video"), (6, 0, 8, "images"), (5, 0, 9, "video")]),
    "temporal_filter_deflicker": (
        "Quick deflicker with the Flow Temporal Filter (seconds, no training): a flickering per-frame colour "
        "edit (built-in autoencoder, jittered strength) is averaged with its +-2 neighbours along the optical "
        "flow, occluded and mismatching pixels excluded; the two reports compare E_warp before and after. "
        "Replace the edit with your own per-frame processing.",
        [(1, "TameLoadVideo", {"video": "tame_sample.mp4", "frame_count": 16, "max_side": 128}),
         (2, "TameLoadGenerator", {"source": "built-in autoencoder"}),
         (3, "TameEncodeFrames", {}),
         (4, "TameJitteredLatentEdit", {"edit": "cool colour", "strength_jitter": 0.8}),
         (5, "TameDecodeFrames", {}),
         (6, "TameFlowTemporalFilter", {"radius": 2}),
         (7, "TameTemporalMetrics", {}),
         (8, "TameSaveVideo", {"filename_prefix": "tame/deflickered", "fps": 12.0}),
         (9, "TameTemporalMetrics", {})],
        [(1, 0, 3, "images"), (2, 0, 3, "generator"), (3, 0, 4, "latent"), (2, 0, 4, "generator"),
         (1, 0, 4, "frames"), (4, 0, 5, "latent"), (2, 0, 5, "generator"), (5, 0, 6, "images"),
         (6, 0, 7, "video"), (6, 0, 8, "images"), (5, 0, 9, "video")]),
    "retarget_image_keep_mask": (
        "Retarget an image to half its width: the keep mask (here Saliency's map with a strong centre bias; "
        "connect a segmentation node's MASK instead) keeps its aspect ratio, the background absorbs the "
        "change. Apply Retarget carries the same warp to another image of the source (the saliency preview).",
        [(1, "TameLoadVideo", {"video": "tame_sample.mp4", "frame_count": 1}),
         (2, "TameSaliency", {"centre_weight": 0.8}),
         (3, "TameRetarget", {"width": 160, "height": 240}),
         (4, "TameSaveVideo", {"filename_prefix": "tame/retargeted", "format": "png"}),
         (5, "TameApplyRetarget", {}),
         (6, "TameSaveVideo", {"filename_prefix": "tame/retargeted_saliency", "format": "png"})],
        [(1, 0, 2, "images"), (1, 0, 3, "images"), (2, 0, 3, "keep_mask"), (3, 0, 4, "images"),
         (3, 1, 5, "warp"), (2, 1, 5, "image"), (5, 0, 6, "images")]),
    "retarget_video_vertical": (
        "Reformat a landscape video to 9:16 portrait without wobble: one layered warp per frame, tied to the "
        "previous frame's through the optical flow; the report measures the output's temporal stability.",
        [(1, "TameLoadVideo", {"video": "tame_sample.mp4", "frame_count": 24}),
         (2, "TameRetargetVideo", {"width": 136, "height": 240}),
         (3, "TameSaveVideo", {"filename_prefix": "tame/vertical", "format": "mp4", "fps": 12.0}),
         (4, "TameTemporalMetrics", {})],
        [(1, 0, 2, "images"), (2, 0, 3, "images"), (2, 0, 4, "video")]),
    "edit_consistency_vae": (
        "Temporally consistent editing through a ComfyUI VAE (runs in ComfyUI, with a VAE file): encode the "
        "frames, edit every latent (Jittered Latent Edit stands in for your per-frame diffusion edit: "
        "connect its output instead), refine the latents, fine-tune a copy of the VAE decoder, decode.",
        [(1, "TameLoadVideo", {"video": "tame_sample.mp4", "frame_count": 16, "max_side": 512}),
         (2, "VAELoader", {"vae_name": "vae-ft-mse-840000-ema-pruned.safetensors"}),
         (3, "TameLoadGenerator", {"source": "ComfyUI VAE"}),
         (4, "TameEncodeFrames", {}),
         (5, "TameJitteredLatentEdit", {"edit": "warm colour"}),
         (6, "TameLatentMLPRefine", {}),
         (7, "TameGeneratorFinetune", {}),
         (8, "TameDecodeFrames", {}),
         (9, "TameTemporalMetrics", {}),
         (10, "TameSaveVideo", {"filename_prefix": "tame/edit_vae_consistent"})],
        [(2, 0, 3, "vae"), (1, 0, 4, "images"), (3, 0, 4, "generator"), (4, 0, 5, "latent"),
         (3, 0, 5, "generator"), (1, 0, 5, "frames"), (3, 0, 6, "generator"), (5, 0, 6, "latent"),
         (1, 0, 6, "original"), (3, 0, 7, "generator"), (6, 0, 7, "latent"), (1, 0, 7, "original"),
         (6, 0, 8, "latent"), (7, 0, 8, "generator"), (8, 0, 9, "video"), (8, 0, 10, "images")]),
    "vsr_upscale_video": (
        "Upscale a video 4x with the shipped Tame VSR network (flow-guided propagation + anti-aliased U-Net "
        "with temporal attention), then measure its temporal stability.",
        [(1, "TameLoadVideo", {"video": "tame_sample.mp4", "frame_count": 12, "max_side": 160}),
         (2, "TameLoadVSRModel", {}),
         (3, "TameVideoUpscale", {}),
         (4, "TameSaveVideo", {"filename_prefix": "tame/vsr_upscaled", "fps": 12.0}),
         (5, "TameTemporalMetrics", {})],
        [(1, 0, 3, "images"), (2, 0, 3, "vsr_model"), (3, 0, 4, "images"), (3, 0, 5, "video")]),
    "vsr_upscale_video_file": (
        "Upscale a video file 4x with the shipped Tame VSR network, streaming: frames are read, upscaled and "
        "written chunk by chunk, so memory stays bounded by the chunk whatever the video's length.",
        [(1, "TameLoadVSRModel", {}),
         (2, "TameUpscaleVideoFile", {"video": "tame_sample.mp4", "filename_prefix": "tame/vsr_stream",
                                      "max_frames": 12})],
        [(1, 0, 2, "vsr_model")]),
    "vsr_temporal_wrapper_resize": (
        "Temporal wrapper around a built-in resize (runs headless): per-frame Lanczos upscaling, then the "
        "high band is fused along the flow across frames while the low band stays the current frame's.",
        [(1, "TameLoadVideo", {"video": "tame_sample.mp4", "frame_count": 16, "max_side": 160}),
         (2, "TameTemporalUpscale", {"resize_mode": "lanczos", "scale": 2}),
         (3, "TameSaveVideo", {"filename_prefix": "tame/wrapped_resize", "fps": 12.0}),
         (4, "TameTemporalMetrics", {})],
        [(1, 0, 2, "images"), (2, 0, 3, "images"), (2, 0, 4, "video")]),
    "vsr_temporal_wrapper_model": (
        "Temporal wrapper around any ComfyUI upscale model (ESRGAN, SwinIR, ...; runs in ComfyUI): the "
        "model upscales every frame, the wrapper removes its frame-to-frame flicker along the optical flow. "
        "Pick your model in Load Upscale Model.",
        [(1, "TameLoadVideo", {"video": "tame_sample.mp4", "frame_count": 16, "max_side": 160}),
         (2, "UpscaleModelLoader", {}),
         (3, "TameLoadFlowModel", {}),
         (4, "TameTemporalUpscale", {}),
         (5, "TameSaveVideo", {"filename_prefix": "tame/wrapped_model", "fps": 12.0}),
         (6, "TameTemporalMetrics", {})],
        [(1, 0, 4, "images"), (2, 0, 4, "upscale_model"), (3, 0, 4, "flow_model"), (4, 0, 5, "images"),
         (4, 0, 6, "video")]),
    "temporal_noise": (
        "Temporally low-pass noise (LongVideoGAN filter bank, runs headless): two pieces of one long noise "
        "sequence, frames 0-47 and 24-71, generated separately; they agree exactly on frames 24-47. The "
        "previews show channels 0-2. Connect the noise output to SamplerCustomAdvanced to sample a video "
        "(frames as batch) from correlated noise.",
        [(1, "TameTemporalNoise", {"frames": 48, "width": 256, "height": 256, "channels": 3, "k_min": 8.0,
                                   "k_max": 96.0, "filters": 8}),
         (2, "TameSaveVideo", {"filename_prefix": "tame/temporal_noise_a", "format": "png"}),
         (3, "TameTemporalNoise", {"frames": 48, "start_frame": 24, "width": 256, "height": 256, "channels": 3,
                                   "k_min": 8.0, "k_max": 96.0, "filters": 8}),
         (4, "TameSaveVideo", {"filename_prefix": "tame/temporal_noise_b", "format": "png"})],
        [(1, 2, 2, "images"), (3, 2, 4, "images")]),
    "instructpix2pix_consistency": (
        "Edit a video frame by frame with InstructPix2Pix (ComfyUI core nodes; runs in ComfyUI with an "
        "InstructPix2Pix checkpoint), then make the edit temporally consistent with Tame in latent mode "
        "through the checkpoint's own VAE (Latent MLP Refine, Generator Finetune, Decode Frames). The "
        "per-frame noise is Tame's temporal noise, so all frames start from nearly the same noise. "
        "Temporal Metrics compares the consistent result with the direct edit (VAE Decode). Guidance: "
        "cfg_conds = text guidance (about 7.5), cfg_cond2_negative = image guidance (about 1.5; higher "
        "stays closer to the input frame).",
        [(1, "TameLoadVideo", {"video": "tame_sample.mp4", "frame_count": 16, "max_side": 512}),
         (2, "CheckpointLoaderSimple", {}),
         (3, "CLIPTextEncode", {"text": "make it look like a watercolor painting"}),
         (4, "CLIPTextEncode", {"text": ""}),
         (5, "InstructPixToPixConditioning", {}),
         (6, "DualCFGGuider", {"cfg_conds": 7.5, "cfg_cond2_negative": 1.5}),
         (7, "TameTemporalNoise", {"k_min": 64.0, "k_max": 512.0, "filters": 4}),
         (8, "KSamplerSelect", {}),
         (9, "BasicScheduler", {"steps": 20}),
         (10, "SamplerCustomAdvanced", {}),
         (11, "TameLoadGenerator", {"source": "ComfyUI VAE"}),
         (12, "TameLatentMLPRefine", {"mode": "out-of-domain"}),
         (13, "TameGeneratorFinetune", {"mode": "out-of-domain"}),
         (14, "TameDecodeFrames", {}),
         (15, "TameSaveVideo", {"filename_prefix": "tame/ip2p_consistent", "fps": 12.0}),
         (16, "TameTemporalMetrics", {}),
         (17, "VAEDecode", {}),
         (18, "TameTemporalMetrics", {})],
        [(2, 1, 3, "clip"), (2, 1, 4, "clip"), (3, 0, 5, "positive"), (4, 0, 5, "negative"), (2, 2, 5, "vae"),
         (1, 0, 5, "pixels"), (2, 0, 6, "model"), (5, 0, 6, "cond1"), (5, 1, 6, "cond2"), (4, 0, 6, "negative"),
         (2, 0, 9, "model"), (7, 1, 10, "noise"), (6, 0, 10, "guider"), (8, 0, 10, "sampler"),
         (9, 0, 10, "sigmas"), (5, 2, 10, "latent_image"), (2, 2, 11, "vae"), (11, 0, 12, "generator"),
         (10, 0, 12, "latent"), (1, 0, 12, "original"), (11, 0, 13, "generator"), (12, 0, 13, "latent"),
         (1, 0, 13, "original"), (12, 0, 14, "latent"), (13, 0, 14, "generator"), (14, 0, 15, "images"),
         (14, 0, 16, "video"), (10, 0, 17, "samples"), (2, 2, 17, "vae"), (17, 0, 18, "video")]),
    "triplane_orbit": (
        "Tri-plane from views, no weights needed (runs headless, about a minute on one CPU core): the pack's "
        "procedural head rendered from 12 random cameras near frontal, a tri-plane fitted to them (Fit "
        "Triplane), then an orbit video of the fitted tri-plane and its depth. More steps and a larger "
        "plane_resolution give a sharper head.",
        [(1, "TameProceduralHead", {"resolution": 64, "frames": 12}),
         (2, "TameFitTriplane", {"steps": 150}),
         (3, "TameRenderOrbit", {"frames": 12, "resolution": 64}),
         (4, "TameSaveVideo", {"filename_prefix": "tame/triplane_orbit", "format": "mp4", "fps": 12.0}),
         (5, "TameSaveVideo", {"filename_prefix": "tame/triplane_orbit_depth", "format": "png"})],
        [(1, 0, 2, "images"), (1, 3, 2, "camera"), (2, 0, 3, "triplane"), (3, 0, 4, "images"),
         (3, 1, 5, "images")]),
    "triplane_ood_removal": (
        "In-N-Out OOD removal on the procedural head (runs headless, under two minutes on one CPU core): a "
        "tri-plane fitted to clean views is the in-distribution prior; a head-turning video with an occluder "
        "disc is explained as that prior plus an OOD field (Fit OOD, guided by the occluder mask); Remove OOD "
        "renders the head without the occluder, Render Triplane the composite. Temporal Metrics compares the "
        "removal with the clean video (PSNR, SSIM). The step counts are CPU-sized: raise Fit OOD's steps "
        "(hundreds) for the OOD field to take over the occluder in the composite.",
        [(1, "TameProceduralHead", {"resolution": 64, "frames": 12}),
         (2, "TameFitTriplane", {"steps": 120}),
         (3, "TameProceduralHead", {"mode": "observed video", "resolution": 64, "frames": 6, "occluder": True}),
         (4, "TameFitOOD", {"steps": 30}),
         (5, "TameRemoveOOD", {"resolution": 64}),
         (6, "TameRenderTriplane", {"resolution": 64}),
         (7, "TameProceduralHead", {"mode": "observed video", "resolution": 64, "frames": 6}),
         (8, "TameSaveVideo", {"filename_prefix": "tame/ood_removed", "format": "png"}),
         (9, "TameSaveVideo", {"filename_prefix": "tame/ood_composite", "format": "png"}),
         (10, "TameTemporalMetrics", {})],
        [(1, 0, 2, "images"), (1, 3, 2, "camera"), (3, 0, 4, "frames"), (3, 3, 4, "camera"), (2, 0, 4, "triplane"),
         (3, 1, 4, "mask"), (4, 0, 5, "ood_field"), (3, 3, 5, "camera"), (2, 0, 6, "triplane"), (3, 3, 6, "camera"),
         (4, 0, 6, "ood_field"), (5, 0, 8, "images"), (6, 0, 9, "images"), (5, 0, 10, "video"),
         (7, 0, 10, "reference")]),
}

# Note nodes (shown on the canvas in ComfyUI; the runner skips them): workflow name -> text
NOTES = {
    "instructpix2pix_consistency": (
        "InstructPix2Pix has two guidance scales (seed 003 eq. 4.3), set in DualCFGGuider:\n"
        "- cfg_conds = text guidance s_T (about 7.5): how strongly the instruction is applied. Higher = "
        "stronger edit, until colours burn.\n"
        "- cfg_cond2_negative = image guidance s_I (about 1.5): how closely the result follows the input "
        "frame. Higher = closer to the input (weaker edit, less flicker); 1.0-2.0 is the useful range.\n"
        "cond1 = the edited positive (instruction + frame), cond2 = the frame-only negative, negative = "
        "the plain negative prompt (no frame).\n"
        "A too weak edit: raise s_T or lower s_I. Too far from the video: raise s_I.\n"
        "Per-frame edits flicker; Latent MLP Refine + Generator Finetune (out-of-domain mode, the same "
        "VAE) remove the flicker. Replace Temporal Noise with RandomNoise for independent per-frame noise."),
}


class UpscaleModelLoader:
    """ComfyUI's core upscale-model loader as the editor saves it (widget `model_name`)."""
    RETURN_TYPES = ("UPSCALE_MODEL",)
    RETURN_NAMES = ("UPSCALE_MODEL",)

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"model_name": (["RealESRGAN_x2.pth"],)}}


class VAELoader:
    """ComfyUI's core VAE loader as the editor saves it (one widget, `vae_name`; output VAE)."""
    RETURN_TYPES = ("VAE",)
    RETURN_NAMES = ("VAE",)

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"vae_name": (["vae-ft-mse-840000-ema-pruned.safetensors"],)}}


def _core_node(class_name, inputs, outputs, names=None):
    """A stand-in for a ComfyUI core node: its inputs in the order the editor saves their widgets."""
    return type(class_name, (), {
        "__doc__": f"ComfyUI's core {class_name} as the editor saves it.",
        "RETURN_TYPES": tuple(outputs), "RETURN_NAMES": tuple(names or outputs),
        "INPUT_TYPES": classmethod(lambda cls: {"required": dict(inputs)})})


CONDITIONING = ("CONDITIONING", {})
CORE_NODES = {
    "VAELoader": VAELoader, "UpscaleModelLoader": UpscaleModelLoader,
    "CheckpointLoaderSimple": _core_node("CheckpointLoaderSimple", {
        "ckpt_name": (["instruct-pix2pix-00-22000.safetensors"],)}, ("MODEL", "CLIP", "VAE")),
    "CLIPTextEncode": _core_node("CLIPTextEncode", {
        "text": ("STRING", {"multiline": True, "dynamicPrompts": True}), "clip": ("CLIP", {})},
        ("CONDITIONING",)),
    "InstructPixToPixConditioning": _core_node("InstructPixToPixConditioning", {
        "positive": CONDITIONING, "negative": CONDITIONING, "vae": ("VAE", {}), "pixels": ("IMAGE", {})},
        ("CONDITIONING", "CONDITIONING", "LATENT"), ("positive", "negative", "latent")),
    "DualCFGGuider": _core_node("DualCFGGuider", {
        "model": ("MODEL", {}), "cond1": CONDITIONING, "cond2": CONDITIONING, "negative": CONDITIONING,
        "cfg_conds": ("FLOAT", {"default": 8.0, "min": 0.0, "max": 100.0}),
        "cfg_cond2_negative": ("FLOAT", {"default": 8.0, "min": 0.0, "max": 100.0}),
        "style": (["regular", "nested"],)}, ("GUIDER",)),
    "KSamplerSelect": _core_node("KSamplerSelect", {"sampler_name": (["euler", "euler_ancestral", "dpmpp_2m"],)},
                                 ("SAMPLER",)),
    "BasicScheduler": _core_node("BasicScheduler", {
        "model": ("MODEL", {}), "scheduler": (["normal", "karras", "exponential", "simple"],),
        "steps": ("INT", {"default": 20, "min": 1, "max": 10000}),
        "denoise": ("FLOAT", {"default": 1.0, "min": 0.0, "max": 1.0})}, ("SIGMAS",)),
    "SamplerCustomAdvanced": _core_node("SamplerCustomAdvanced", {
        "noise": ("NOISE", {}), "guider": ("GUIDER", {}), "sampler": ("SAMPLER", {}), "sigmas": ("SIGMAS", {}),
        "latent_image": ("LATENT", {})}, ("LATENT", "LATENT"), ("output", "denoised_output")),
    "VAEDecode": _core_node("VAEDecode", {"samples": ("LATENT", {}), "vae": ("VAE", {})}, ("IMAGE",)),
}


def _inputs(cls):
    spec = cls.INPUT_TYPES()
    return {**spec.get("required", {}), **spec.get("optional", {})}


def _is_widget(kind, options):
    return (isinstance(kind, list) or kind in WIDGET_TYPES) and not options.get("forceInput")


def _widget_values(inputs, values):
    """widgets_values in INPUT_TYPES order: given values, else defaults; seeds get their companion
    control_after_generate value ("fixed", so saved runs repeat)."""
    widgets = []
    for name, (kind, *rest) in inputs.items():
        options = rest[0] if rest else {}
        if not _is_widget(kind, options):
            continue
        widgets.append(values.get(name, options.get("default", kind[0] if isinstance(kind, list) else None)))
        if kind == "INT" and options.get("control_after_generate", name in SEED_NAMES):
            widgets.append("fixed")
    return widgets


def build(name, description, nodes, links, mappings):
    ui_nodes, ui_links = {}, []
    for order, (node_id, class_name, values) in enumerate(nodes):
        cls = mappings[class_name]
        inputs = _inputs(cls)
        unknown = set(values) - set(inputs)
        if unknown:
            raise ValueError(f"{name}: {class_name} has no inputs {sorted(unknown)}")
        widgets = _widget_values(inputs, values)
        ui_nodes[node_id] = {
            "id": node_id, "type": class_name, "pos": [40 + 360 * order, 80 + 40 * (order % 2)],
            "size": [320, 160], "flags": {}, "order": order, "mode": 0,
            "inputs": [{"name": k, "type": kind, "link": None} for k, (kind, *rest) in inputs.items()
                       if not _is_widget(kind, rest[0] if rest else {})],
            "outputs": [{"name": n, "type": t, "links": [], "slot_index": i}
                        for i, (n, t) in enumerate(zip(cls.RETURN_NAMES, cls.RETURN_TYPES))],
            "properties": {"Node name for S&R": class_name},
            "widgets_values": widgets}
    for link_id, (src, slot, dst, input_name) in enumerate(links, start=1):
        source, target = ui_nodes[src], ui_nodes[dst]
        link_type = source["outputs"][slot]["type"]
        target_slot = next(i for i, s in enumerate(target["inputs"]) if s["name"] == input_name)
        target["inputs"][target_slot]["link"] = link_id
        source["outputs"][slot]["links"].append(link_id)
        ui_links.append([link_id, src, slot, dst, target_slot, link_type])
    if name in NOTES:
        note_id = max(ui_nodes) + 1
        ui_nodes[note_id] = {"id": note_id, "type": "Note", "pos": [40, 340], "size": [520, 240], "flags": {},
                             "order": len(ui_nodes), "mode": 0, "inputs": [], "outputs": [],
                             "properties": {"text": ""}, "widgets_values": [NOTES[name]]}
    return {"last_node_id": max(ui_nodes), "last_link_id": len(ui_links),
            "nodes": list(ui_nodes.values()), "links": ui_links, "groups": [], "config": {},
            "extra": {"tame_description": description}, "version": 0.4}


def main():
    sys.path.insert(0, str(HERE.parent / "tests"))
    import conftest  # noqa: F401  (makes `import tame` work from a checkout)

    from tame import NODE_CLASS_MAPPINGS
    for name, (description, nodes, links) in WORKFLOWS.items():
        graph = build(name, description, nodes, links, {**CORE_NODES, **NODE_CLASS_MAPPINGS})
        (HERE / f"{name}.json").write_text(json.dumps(graph, indent=1) + "\n")
        print(f"wrote workflows/{name}.json")


if __name__ == "__main__":
    main()
