"""Adapters for objects other ComfyUI nodes make (duck-typed; comfy is never imported here):
a ComfyUI VAE as an encoding generator, and an UPSCALE_MODEL as a per-frame upscale function."""
import torch

from ..models.edit.generator import ComfyVAEGenerator


class VAEGenerator(ComfyVAEGenerator):
    """A ComfyUI VAE as generator that also encodes, with the VAE's own `encode` (comfy not imported).

    encode: frames `[T,3,H,W]` in [0,1] -> `vae.encode(pixels [T,H,W,3])` latents `[T,C,h,w]`.
    """

    def __init__(self, vae, device=None):
        super().__init__(vae, device)
        if not callable(getattr(vae, "encode", None)):
            raise ValueError("vae has no encode function; connect the VAE output of a checkpoint or VAE loader.")
        self.vae = vae

    def encode(self, frames):
        return self.vae.encode(frames.permute(0, 2, 3, 1)).float()


def model_upscaler(upscale_model, device):
    """`upscale_fn` and scale from ComfyUI's UPSCALE_MODEL (a spandrel ImageModelDescriptor): called on
    `[n,3,h,w]` in [0,1] as ComfyUI's Upscale Image (using Model) does, output clamped to [0,1]."""
    module = getattr(upscale_model, "model", None)
    scale = getattr(upscale_model, "scale", None)
    if module is None or not isinstance(scale, (int, float)):
        raise ValueError(f"upscale_model must be an UPSCALE_MODEL from Load Upscale Model (with .model and "
                         f".scale), got {type(upscale_model).__name__}.")
    if scale <= 1:
        raise ValueError(f"the upscale model has scale {scale}; the temporal wrapper needs an enlarging model "
                         f"(2x, 4x, ...). Use the model directly for 1x restoration.")
    call = upscale_model if callable(upscale_model) else module
    parameter = next(module.parameters(), None) if isinstance(module, torch.nn.Module) else None
    dtype = parameter.dtype if parameter is not None else torch.float32  # spandrel wants the model's dtype

    def upscale(images):
        with torch.no_grad():
            return call(images.to(device, dtype)).float().clamp(0.0, 1.0)

    return upscale, scale
