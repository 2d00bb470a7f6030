"""Training recipe of the pack's built-in `TameAutoencoder` (models/weights/tame_autoencoder.safetensors).

Data: random square crops of photos (a folder of PNG/JPEG files, or tensors) at a random scale
(0.5x to 1x), mixed with crops of procedural textures (models/data/textures.procedural_texture, a
quarter of every batch by default); horizontal/vertical flips and a colour jitter (per-channel gain,
brightness, saturation, offset). Loss: `L1 + ssim_weight * (1 - SSIM)` (SSIM of kernels/metrics).
Adam with a cosine learning-rate decay. Deterministic for a seed on CPU.
"""
import math
from pathlib import Path

import torch
import torch.nn.functional as F

from ...kernels.metrics import psnr, ssim
from ..data.textures import procedural_texture
from ..io.images import load_image_folder
from ..io.weights import save_safetensors
from .autoencoder import TameAutoencoder

TEXTURE_POOL = 32  # procedural textures made once, then cropped like the photos
TEXTURE_SIDE_FACTOR = 2  # texture side = this x crop, so crops at scale 0.5 still fit
SCALE_RANGE = (0.5, 1.0)  # crop scale: output side / source side
FINAL_LR_SHARE = 0.02  # the cosine schedule ends at this share of the initial learning rate


def _image_list(images):
    """A folder, a tensor `[N,3,H,W]` or a sequence of `[3,h,w]` -> list of `[3,h,w]` float32."""
    if isinstance(images, (str, Path)):
        return load_image_folder(images)
    if isinstance(images, torch.Tensor):
        if images.dim() != 4 or images.shape[1] != 3:
            raise ValueError(f"an image tensor must be [N,3,H,W], got {tuple(images.shape)}.")
        images = list(images)
    images = list(images)
    if not images:
        raise ValueError("no training images given.")
    for number, image in enumerate(images):
        if not isinstance(image, torch.Tensor) or image.dim() != 3 or image.shape[0] != 3:
            shape = tuple(image.shape) if isinstance(image, torch.Tensor) else type(image).__name__
            raise ValueError(f"training image {number} must be [3,h,w] RGB in [0,1], got {shape}.")
    return [image.detach().float().cpu().clamp(0.0, 1.0) for image in images]


class TrainingCrops:
    """Random augmented crops `[B,3,crop,crop]` of photos and procedural textures.

    images: list of `[3,h,w]` in [0,1]; texture_share: probability that a crop comes from a
    procedural texture; gen: CPU torch.Generator (all randomness comes from it).
    """

    def __init__(self, images, crop, texture_share, gen):
        self.crop, self.texture_share, self.gen = crop, texture_share, gen
        self.photos = [self._at_least_crop(image) for image in images]
        side = TEXTURE_SIDE_FACTOR * crop
        self.textures = [procedural_texture(side, side, seed=self._integer(2 ** 31 - 1))
                         for _ in range(TEXTURE_POOL if texture_share > 0 else 0)]

    def _integer(self, high):
        return int(torch.randint(0, high, (), generator=self.gen))

    def _uniform(self, low, high):
        return low + (high - low) * float(torch.rand((), generator=self.gen))

    def _at_least_crop(self, image):
        """Upscale an image whose short side is below the crop size."""
        short = min(image.shape[-2:])
        if short >= self.crop:
            return image
        size = [math.ceil(s * self.crop / short) for s in image.shape[-2:]]
        return F.interpolate(image[None], size=size, mode="bilinear", align_corners=False)[0]

    def _crop(self, image):
        """A random square of side crop/scale, resized (antialiased) to crop -> `[3,crop,crop]`."""
        h, w = image.shape[-2:]
        side = min(h, w, round(self.crop / self._uniform(*SCALE_RANGE)))
        top, left = self._integer(h - side + 1), self._integer(w - side + 1)
        patch = image[:, top:top + side, left:left + side]
        if side != self.crop:
            patch = F.interpolate(patch[None], size=(self.crop, self.crop), mode="bilinear",
                                  align_corners=False, antialias=True)[0]
        return patch

    def _augment(self, patch):
        """Flips and colour jitter of `[3,crop,crop]`, clamped to [0,1]."""
        if self._uniform(0, 1) < 0.5:
            patch = patch.flip(-1)
        if self._uniform(0, 1) < 0.5:
            patch = patch.flip(-2)
        grey = patch.mean(0, keepdim=True)
        patch = grey + self._uniform(0.6, 1.4) * (patch - grey)
        gain = self._uniform(0.8, 1.2) * (1.0 + 0.1 * (2.0 * torch.rand(3, 1, 1, generator=self.gen) - 1.0))
        return (patch * gain + self._uniform(-0.05, 0.05)).clamp(0.0, 1.0)

    def sample(self, batch):
        """`[batch,3,crop,crop]` float32 in [0,1]."""
        crops = []
        for _ in range(batch):
            pool = self.textures if self.textures and self._uniform(0, 1) < self.texture_share else self.photos
            crops.append(self._augment(self._crop(pool[self._integer(len(pool))])))
        return torch.stack(crops)


def reconstruction_loss(output, target, ssim_weight=0.5):
    """`mean |output - target| + ssim_weight * mean(1 - SSIM)` of `[N,3,H,W]` batches -> 0-d tensor."""
    return (output - target).abs().mean() + ssim_weight * (1.0 - ssim(output, target)).mean()


def _check_settings(steps, crop, batch, texture_share, downscale):
    for name, value, minimum in (("steps", steps, 0), ("crop", crop, 16), ("batch", batch, 1)):
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}.")
    if crop % downscale:
        raise ValueError(f"crop must be a multiple of the autoencoder's downscale {downscale}, got {crop}.")
    if not 0.0 <= texture_share <= 1.0:
        raise ValueError(f"texture_share must be in [0, 1], got {texture_share}.")


def train_autoencoder(images, steps=500, crop=64, batch=12, seed=0, progress=None, lr=2e-3,
                      texture_share=0.25, ssim_weight=0.5, latent_channels=4, channels=(32, 64)):
    """Train a `TameAutoencoder` on random crops of `images` (and procedural textures).

    Args:
        images: a folder of photos, a tensor `[N,3,H,W]` or a list of `[3,h,w]` in [0,1].
        steps: Adam steps; crop: crop side in pixels (multiple of the downscale, >= 16);
        batch: crops per step; seed: initialisation and data order (reproducible on CPU).
        progress: `progress(done, total)` after every step; may raise to cancel.
        lr: initial learning rate (cosine decay to 2 % of it); texture_share: share of crops taken
        from procedural textures; ssim_weight: weight of (1 - SSIM) against L1;
        latent_channels, channels: architecture (see TameAutoencoder).
    Returns:
        the trained TameAutoencoder, on the CPU, in eval mode.
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        model = TameAutoencoder(latent_channels, channels)
    _check_settings(steps, crop, batch, texture_share, model.downscale)
    gen = torch.Generator().manual_seed(int(seed))
    crops = TrainingCrops(_image_list(images), crop, texture_share, gen)
    optimiser = torch.optim.Adam(model.parameters(), lr=lr)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, max(steps, 1), eta_min=lr * FINAL_LR_SHARE)
    with torch.inference_mode(False), torch.enable_grad():
        model.train()
        for step in range(steps):
            target = crops.sample(batch)
            loss = reconstruction_loss(model(target), target, ssim_weight)
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
            schedule.step()
            if progress is not None:
                progress(step + 1, steps)
    return model.eval().requires_grad_(False)


def reconstruction_psnr(model, image):
    """PSNR (dB) of `model` on one `[3,h,w]` image, cropped to a multiple of the downscale -> float."""
    h, w = (s - s % model.downscale for s in image.shape[-2:])
    frame = image[None, :, :h, :w].float()
    with torch.no_grad():
        return float(psnr(model(frame).clamp(0.0, 1.0), frame)[0])


def save_autoencoder(model, path):
    """Write the state dict (with its architecture `config`) to a .safetensors file -> the Path."""
    path = Path(path)
    if path.suffix.lower() != ".safetensors":
        raise ValueError(f"{path.name}: save the autoencoder as .safetensors (load_autoencoder reads only that).")
    return save_safetensors(model.state_dict(), path)
