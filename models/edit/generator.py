"""One generator interface `G: latent codes -> frames` and its adapters.

The consistency optimisation (optimize.py) needs only what `Generator` offers: a differentiable
`decode`, the parameters to fine-tune (optionally freezing the last layers), codes from the prior for
the local regulariser, and a deep `copy` (the user's model is never modified in place).

Adapters:
- `ComfyVAEGenerator`: a ComfyUI `VAE` object (duck-typed, comfy is never imported); codes = the
  LATENT samples, exactly as `VAE.decode` takes them.
- `AutoencoderGenerator`: the pack's small `TameAutoencoder`.
- `BlindGenerator`: a U-Net fitted per video whose "code" is the original frame (blind mode).
"""
import copy as _copy

import torch

from .unet import UNet

CODING_CHUNK = 4  # frames per encode/decode call: bounds memory on long clips


class Generator:
    """Base class. Subclasses set `decoder` (the nn.Module to tune) and implement `_decode`.

    latent_channels: C of the codes `[T,C,h,w]`; downscale: frame size / code size.
    """
    name = "generator"

    def __init__(self, decoder, latent_channels, downscale):
        self.decoder = decoder
        self.latent_channels = int(latent_channels)
        self.downscale = int(downscale)

    def __repr__(self):
        return f"{type(self).__name__}({self.name}, C={self.latent_channels}, 1/{self.downscale})"

    @property
    def device(self):
        return next(self.decoder.parameters()).device

    def to(self, device):
        """Move the generator's weights to `device` (in place); returns self."""
        self.decoder.to(device)
        return self

    def check_latents(self, latents, name="latents"):
        """Raise ValueError unless `latents` is a float `[T,C,h,w]` with this generator's C."""
        if not isinstance(latents, torch.Tensor) or latents.dim() != 4:
            shape = tuple(latents.shape) if isinstance(latents, torch.Tensor) else type(latents).__name__
            raise ValueError(f"{name} must be a tensor [frames,C,h,w], got {shape}.")
        if not latents.is_floating_point():
            raise ValueError(f"{name} must be floating point, got {latents.dtype}.")
        if latents.shape[1] != self.latent_channels:
            raise ValueError(
                f"{name} have {latents.shape[1]} channels but {self.name} expects "
                f"{self.latent_channels}: the latents were probably made by another VAE/model. "
                f"Encode the frames with the same VAE you decode with.")

    def frame_size(self, latent_size):
        """(H, W) of the frames decoded from codes of spatial size `latent_size` (h, w)."""
        return latent_size[0] * self.downscale, latent_size[1] * self.downscale

    def decode(self, latents):
        """Codes `[T,C,h,w]` -> frames `[T,3,H,W]` in [0,1], differentiable, on the generator's device."""
        self.check_latents(latents)
        return self._decode(latents.to(self.device, torch.float32))

    def _decode(self, latents):
        raise NotImplementedError

    def _probe_latents(self):
        """A small code batch `[1,C,h,w]` that `decode` accepts (used to trace layer order)."""
        return torch.zeros(1, self.latent_channels, 8, 8, device=self.device)

    def layers(self):
        """The modules that own parameters used by `decode`, in the order `decode` runs them."""
        order = []
        owners = [m for m in self.decoder.modules() if any(True for _ in m.parameters(recurse=False))]
        hooks = [m.register_forward_hook(lambda module, *_: order.append(module)) for m in owners]
        try:
            with torch.no_grad():
                self._decode(self._probe_latents())
        finally:
            for hook in hooks:
                hook.remove()
        seen = set()
        return [m for m in order if not (id(m) in seen or seen.add(id(m)))]

    def trainable_parameters(self, freeze_last=0):
        """Parameters to fine-tune: every layer `decode` uses except the last `freeze_last` ones.

        Sets `requires_grad` accordingly (True on the returned ones, False on all others, including
        weights `decode` never touches such as a VAE's encoder). Returns a list of Parameters.
        """
        layers = self.layers()
        if isinstance(freeze_last, bool) or not isinstance(freeze_last, int) \
                or not 0 <= freeze_last < len(layers):
            raise ValueError(f"freeze_last must be an integer in [0, {len(layers) - 1}] ({self.name} has "
                             f"{len(layers)} layers with weights), got {freeze_last!r}.")
        self.decoder.requires_grad_(False)
        trainable = []
        for layer in layers[:len(layers) - freeze_last]:
            for parameter in layer.parameters(recurse=False):
                parameter.requires_grad_(True)
                trainable.append(parameter)
        return trainable

    def sample_prior_code(self, like, generator=None):
        """A random code from the generator's prior, shaped like `like` `[T,C,h,w]`.

        Without a learned prior the latent distribution is modelled as a Gaussian with the per-channel
        mean and standard deviation of `like` (the video's own codes). `generator`: torch.Generator
        (CPU) for reproducible draws.
        """
        mean = like.mean(dim=(0, 2, 3), keepdim=True)
        std = like.std(dim=(0, 2, 3), keepdim=True) if like.numel() > like.shape[1] else torch.ones_like(mean)
        noise = torch.randn(like.shape, generator=generator, dtype=torch.float32).to(like.device, like.dtype)
        return mean + std * noise

    def copy(self):
        """An independent deep copy (weights cloned); tuning the copy never touches this generator."""
        duplicate = _copy.copy(self)
        with torch.inference_mode(False):
            duplicate.decoder = _copy.deepcopy(self.decoder)
        return duplicate


def _spatial_ratio(vae):
    """Frame pixels per latent pixel of a ComfyUI VAE (its ratio may be a number or a tuple)."""
    ratio = getattr(vae, "upscale_ratio", None) or getattr(vae, "downscale_ratio", None)
    if isinstance(ratio, (tuple, list)):
        ratio = ratio[-1]
    if callable(ratio) or ratio is None or int(ratio) != ratio or ratio < 1:
        raise ValueError(f"the VAE's spatial scale factor {ratio!r} is not a whole number; only image VAEs "
                         f"with an integer downscale are supported.")
    return int(ratio)


class ComfyVAEGenerator(Generator):
    """A ComfyUI `VAE` as generator: `decode(samples) = process_output(first_stage_model.decode(samples))`,
    the same path as ComfyUI's `VAE.decode` (which takes LATENT samples directly; any latent scaling
    lives in the model), in float32 on a deep copy of `first_stage_model`.

    vae: an object with `.first_stage_model` (nn.Module with `.decode(z)`), `.process_output`,
    `.latent_channels` and `.downscale_ratio`/`.upscale_ratio`; video VAEs (`latent_dim` 3) are refused.
    device: where the copy lives (default: where the VAE's weights are).
    """
    name = "ComfyUI VAE"

    def __init__(self, vae, device=None):
        model = getattr(vae, "first_stage_model", None)
        if not isinstance(model, torch.nn.Module) or not hasattr(model, "decode"):
            raise ValueError("vae must be a ComfyUI VAE (with a first_stage_model that has .decode); got "
                             f"{type(vae).__name__}. Connect the VAE output of a checkpoint or VAE loader.")
        if getattr(vae, "latent_dim", 2) != 2:
            raise ValueError("This VAE encodes video clips (3-D latents), so latents and frames do not "
                             "correspond one to one; use an image VAE (SD1.x, SDXL, SD3, Flux, ...).")
        if not callable(getattr(vae, "process_output", None)):
            raise ValueError("vae has no process_output function; it is not a ComfyUI VAE object.")
        parameter = next(model.parameters(), None)
        if parameter is None:
            raise ValueError("The VAE's first_stage_model has no weights.")
        with torch.inference_mode(False):
            decoder = _copy.deepcopy(model).float().to(device or parameter.device).eval()
        decoder.requires_grad_(False)
        super().__init__(decoder, int(vae.latent_channels), _spatial_ratio(vae))
        self._process_output = vae.process_output

    def _decode(self, latents):
        return self._process_output(self.decoder.decode(latents).float())


class AutoencoderGenerator(Generator):
    """The pack's `TameAutoencoder` as generator (its decoder, deep-copied); `encode` uses the
    original encoder, without gradient."""
    name = "Tame autoencoder"

    def __init__(self, autoencoder, device=None):
        parameter = next(autoencoder.parameters())
        with torch.inference_mode(False):
            decoder = _copy.deepcopy(autoencoder.decoder).float().to(device or parameter.device).eval()
        decoder.requires_grad_(False)
        super().__init__(decoder, autoencoder.latent_channels, autoencoder.downscale)
        self.autoencoder = autoencoder

    def _decode(self, latents):
        return self.decoder(latents)

    def encode(self, frames):
        """Frames `[T,3,H,W]` in [0,1] -> codes `[T,C,H/s,W/s]` (no gradient, generator's device)."""
        with torch.no_grad():
            encoder_device = next(self.autoencoder.parameters()).device
            return self.autoencoder.encode(frames.to(encoder_device, torch.float32)).to(self.device)


class BlindGenerator(Generator):
    """A per-video U-Net (blind mode / DVP): its "code" is a frame `[T,3,H,W]` in [0,1].

    width, levels: U-Net size; seed: weight initialisation (reproducible).
    """
    name = "blind U-Net"

    def __init__(self, width=32, levels=3, seed=0, device="cpu"):
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(seed))
            network = UNet(3, width, levels)
        super().__init__(network.to(device), 3, 1)

    def _decode(self, latents):
        return self.decoder(latents)

    def _probe_latents(self):
        side = 2 ** self.decoder.levels
        return torch.zeros(1, 3, side, side, device=self.device)


def encode_frames(generator, frames, chunk=CODING_CHUNK, progress=None):
    """Frames `[T,3,H,W]` in [0,1] -> codes `[T,C,h,w]` (CPU float32), `chunk` frames at a time, no gradient.

    progress(done, total) is called after every chunk (it may raise to cancel).
    """
    if not callable(getattr(generator, "encode", None)):
        raise ValueError(f"{generator.name} cannot encode frames; load the generator with Load Generator "
                         f"(built-in autoencoder or a ComfyUI VAE) and encode with it.")
    return _in_chunks(generator.encode, frames, chunk, progress)


def decode_frames(generator, latents, chunk=CODING_CHUNK, progress=None):
    """Codes `[T,C,h,w]` -> frames `[T,3,H,W]` (CPU float32), `chunk` codes at a time, no gradient."""
    return _in_chunks(generator.decode, latents, chunk, progress)


def _in_chunks(function, batch, chunk, progress):
    outputs = []
    with torch.no_grad():
        for start in range(0, batch.shape[0], chunk):
            outputs.append(function(batch[start:start + chunk]).float().cpu())
            if progress is not None:
                progress(min(start + chunk, batch.shape[0]), batch.shape[0])
    return torch.cat(outputs)
