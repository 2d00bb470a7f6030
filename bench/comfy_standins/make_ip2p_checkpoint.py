"""Build a stand-in SD1.5 InstructPix2Pix checkpoint with random weights, using ComfyUI's own classes.

What it is
    A single-file checkpoint (UNet + CLIP-L text encoder + SD VAE, ldm key names) that ComfyUI's
    `CheckpointLoaderSimple` detects as `SD15_instructpix2pix` (UNet `in_channels` = 8: 4 noisy latent
    channels + 4 channels of the encoded input frame). Every weight is random (seeded, normal std 0.02;
    norm layers weight 1, bias 0; other biases 0), so the pictures it makes are meaningless.
    The UNet is deliberately tiny: ComfyUI detects the UNet config from the weights' shapes, and the
    SD1.5 family is matched by `model_channels` 320, `context_dim` 768, non-linear `proj_in`, no ADM,
    no temporal layers (comfy/supported_models.py, `SD15_instructpix2pix.unet_config`). Depth is free,
    so this UNet has one resolution level, one res block per level and one transformer block (25.8 M
    parameters instead of 860 M). CLIP-L and the VAE have fixed configs and are full size.
    No `cc_projection.*` keys are written, so it is not taken for Stable Zero123 (same UNet config).

Why
    To validate `workflows/instructpix2pix_consistency.json` (the wiring, widget values and types
    between ComfyUI's core nodes and Tame's nodes) in the real ComfyUI, on a CPU-only machine with no
    internet, without the real (several GB) `instruct-pix2pix-00-22000.safetensors` (timbrooks/instruct-pix2pix).

How it is built
    Nothing of ComfyUI is copied here; its modules are imported from `--comfy`:
    `comfy.supported_models.SD15_instructpix2pix(unet_config).get_model()` (-> `comfy.model_base.
    SD15_instructpix2pix`), `comfy.sd.CLIP(model_config.clip_target())`, `comfy.sd.VAE` around
    `comfy.ldm.models.autoencoder.AutoencoderKL` (SD's KL-f8 config), then `comfy.sd.save_checkpoint`,
    which applies ComfyUI's own key conversion for saving. ComfyUI builds layers without weight init
    (`comfy.ops.disable_weight_init`: `torch.empty`), so every parameter and floating-point buffer is
    filled here before saving. The file is then loaded back with `comfy.sd.load_checkpoint_guess_config`
    (unless `--no-check`) to prove the detection and that every tensor is finite.

How to run (ComfyUI's python; CPU only)
    PYTHONPATH=<comfy_host>/shim /work/comfyvenv/bin/python bench/comfy_standins/make_ip2p_checkpoint.py \\
        --comfy /work/comfyui --out /work/comfystate/models/checkpoints/instruct-pix2pix-00-22000.safetensors
    (the shim from the comfy_host tool is only needed where torchvision is a CUDA-only wheel on CPU torch,
    as on this machine.) About 40 s on 2 cores (20 s to build and save, 20 s to check); the file is
    465 MB (fp16). Keep it outside the repository.
    Point ComfyUI at its folder with an extra_model_paths.yaml (see README.md in this folder).
"""
import argparse
import os
import sys
import time

# SD1.5 InstructPix2Pix, the smallest UNet ComfyUI still detects as SD15_instructpix2pix.
TINY_UNET = {
    "use_checkpoint": False, "image_size": 32, "use_spatial_transformer": True, "legacy": False,
    "adm_in_channels": None, "in_channels": 8, "out_channels": 4,
    "model_channels": 320, "context_dim": 768, "use_linear_in_transformer": False,
    "num_res_blocks": [1], "channel_mult": [1],
    "transformer_depth": [1], "transformer_depth_output": [1, 1], "transformer_depth_middle": 1,
    "use_temporal_resblock": False, "use_temporal_attention": False,
}
# Stable Diffusion's KL-f8 autoencoder (the config ComfyUI itself uses for SD1.x VAEs).
SD_VAE = {"double_z": True, "z_channels": 4, "resolution": 256, "in_channels": 3, "out_ch": 3, "ch": 128,
          "ch_mult": [1, 2, 4, 4], "num_res_blocks": 2, "attn_resolutions": [], "dropout": 0.0}


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--comfy", required=True, help="ComfyUI checkout (the folder with main.py)")
    parser.add_argument("--out", required=True, help="output .safetensors (outside the repository)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--std", type=float, default=0.02, help="std of the random weights")
    parser.add_argument("--fp32", action="store_true", help="save float32 (default float16, half the size)")
    parser.add_argument("--no-check", action="store_true", help="skip loading the file back")
    return parser.parse_args(argv)


def import_comfy(comfy_dir):
    """Import ComfyUI's modules from its checkout, forced to the CPU (as `main.py --cpu`)."""
    comfy_dir = os.path.abspath(comfy_dir)
    if not os.path.isfile(os.path.join(comfy_dir, "main.py")):
        raise SystemExit(f"--comfy {comfy_dir}: no main.py there; pass a ComfyUI checkout")
    sys.path.insert(0, comfy_dir)
    import comfy.cli_args
    comfy.cli_args.args.cpu = True  # before comfy.model_management is imported
    import comfy.ldm.models.autoencoder
    import comfy.model_base
    import comfy.model_detection
    import comfy.model_patcher
    import comfy.sd
    import comfy.supported_models
    import comfy.utils
    return comfy


def fill_(module, seed, std):
    """Every parameter and floating-point buffer of `module` -> finite seeded values (in place).

    Norm layers: weight 1, bias 0. Other biases: 0. Everything else: normal(0, std), drawn in float32
    from a generator seeded with `seed`, in sorted-name order (so the values do not depend on dtype).
    Returns the number of tensors filled.
    """
    import torch
    generator = torch.Generator().manual_seed(seed)
    norm_types = (torch.nn.LayerNorm, torch.nn.GroupNorm)
    norms = {name for name, m in module.named_modules() if isinstance(m, norm_types)}
    tensors = dict(module.named_parameters())
    tensors.update((n, b) for n, b in module.named_buffers() if b is not None and b.is_floating_point())
    with torch.no_grad():
        for name in sorted(tensors):
            tensor = tensors[name]
            owner, _, leaf = name.rpartition(".")
            if owner in norms:
                tensor.fill_(1.0 if leaf == "weight" else 0.0)
            elif leaf == "bias":
                tensor.zero_()
            else:
                tensor.copy_(torch.randn(tensor.shape, generator=generator) * std)
    return len(tensors)


def build(comfy, seed, std, dtype):
    import torch
    model_config = comfy.supported_models.SD15_instructpix2pix(TINY_UNET)
    if not model_config.matches(TINY_UNET):
        raise RuntimeError("TINY_UNET does not match ComfyUI's SD15_instructpix2pix unet_config")
    model_config.set_inference_dtype(dtype, None)
    model = model_config.get_model({})  # comfy.model_base.SD15_instructpix2pix
    count = fill_(model.diffusion_model, seed, std)
    unet_params = sum(p.numel() for p in model.diffusion_model.parameters())
    print(f"unet: {type(model).__module__}.{type(model).__name__}, {unet_params / 1e6:.1f} M params, "
          f"{count} tensors filled")
    patcher = comfy.model_patcher.ModelPatcher(model, load_device=torch.device("cpu"),
                                               offload_device=torch.device("cpu"))

    clip = comfy.sd.CLIP(model_config.clip_target(), embedding_directory=None,
                         model_options={"dtype": dtype, "load_device": torch.device("cpu"),
                                        "offload_device": torch.device("cpu"),
                                        "initial_device": torch.device("cpu")})
    count = fill_(clip.cond_stage_model, seed + 1, std)
    print(f"clip: {type(clip.cond_stage_model).__name__}, "
          f"{sum(p.numel() for p in clip.cond_stage_model.parameters()) / 1e6:.1f} M params, {count} tensors filled")

    autoencoder = comfy.ldm.models.autoencoder.AutoencoderKL(ddconfig=SD_VAE, embed_dim=SD_VAE["z_channels"])
    count = fill_(autoencoder, seed + 2, std)
    vae = comfy.sd.VAE(sd=autoencoder.state_dict(), dtype=dtype)
    del autoencoder
    print(f"vae: {type(vae.first_stage_model).__name__}, "
          f"{sum(p.numel() for p in vae.first_stage_model.parameters()) / 1e6:.1f} M params, {count} tensors filled")
    return patcher, clip, vae


def check(comfy, path):
    """Load the file as CheckpointLoaderSimple does; it must be SD15_instructpix2pix, in_channels 8, finite."""
    import torch
    state_dict = comfy.utils.load_torch_file(path)
    bad = [k for k, v in state_dict.items() if v.is_floating_point() and not torch.isfinite(v).all()]
    if bad:
        raise RuntimeError(f"non-finite tensors in {path}: {bad[:5]}")
    prefix = comfy.model_detection.unet_prefix_from_state_dict(state_dict)
    config = comfy.model_detection.model_config_from_unet(state_dict, prefix)
    if type(config) is not comfy.supported_models.SD15_instructpix2pix or config.unet_config["in_channels"] != 8:
        raise RuntimeError(f"detected {type(config).__name__} {getattr(config, 'unet_config', None)}")
    model, clip, vae, _ = comfy.sd.load_checkpoint_guess_config(path)
    if type(model.model) is not comfy.model_base.SD15_instructpix2pix or clip is None or vae is None:
        raise RuntimeError(f"loaded {type(model.model).__name__}, clip {clip}, vae {vae}")
    print(f"check: {len(state_dict)} tensors, all finite; detected {type(config).__name__} "
          f"(in_channels {config.unet_config['in_channels']}, channel_mult {config.unet_config['channel_mult']}, "
          f"num_res_blocks {config.unet_config['num_res_blocks']}); CheckpointLoaderSimple's loader gives "
          f"{type(model.model).__name__} + CLIP + VAE")


def main(argv=None):
    args = parse_args(argv)
    started = time.time()
    comfy = import_comfy(args.comfy)
    import torch
    torch.manual_seed(args.seed)
    out = os.path.abspath(args.out)
    os.makedirs(os.path.dirname(out), exist_ok=True)
    patcher, clip, vae = build(comfy, args.seed, args.std, torch.float32 if args.fp32 else torch.float16)
    metadata = {"tame_standin": "random weights (seed {}, std {}); NOT a trained model".format(args.seed, args.std),
                "modelspec.architecture": "stable-diffusion-v1-instructpix2pix (stand-in)"}
    comfy.sd.save_checkpoint(out, patcher, clip=clip, vae=vae, metadata=metadata)
    del patcher, clip, vae
    print(f"wrote {out} ({os.path.getsize(out) / 1e6:.0f} MB) in {time.time() - started:.0f} s")
    if not args.no_check:
        check(comfy, out)
    print(f"done in {time.time() - started:.0f} s")


if __name__ == "__main__":
    main()
