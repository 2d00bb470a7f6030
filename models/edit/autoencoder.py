"""The pack's small built-in autoencoder: a real latent space for editing offline, in tests and benches.

Frames `[T,3,H,W]` in [0,1] <-> latents `[T,C,H/s,W/s]` with `s = 2 ** len(channels)`. Convolutional
residual blocks without normalisation (so a frame's decoding never depends on the rest of the
batch), stride-2 convolutions down, nearest-neighbour upsampling + convolution up, sigmoid output.
The architecture is stored in the state dict itself (the `config` buffer: latent channels followed by
the per-level widths), so `autoencoder_from_state_dict` rebuilds it from the file alone.
"""
from pathlib import Path

import torch
from torch import nn

from ..io.weights import load_state_dict

SHIPPED_WEIGHTS = Path(__file__).resolve().parents[1] / "weights" / "tame_autoencoder.safetensors"


class ResidualBlock(nn.Module):
    """`x + conv(silu(conv(silu(x))))`, width preserved."""

    def __init__(self, channels):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1)
        self.act = nn.SiLU()

    def forward(self, x):
        return x + self.conv2(self.act(self.conv1(self.act(x))))


class Encoder(nn.Module):
    """`[N,3,H,W]` in [0,1] -> `[N,latent_channels,H/s,W/s]`."""

    def __init__(self, latent_channels, channels):
        super().__init__()
        self.stem = nn.Conv2d(3, channels[0], 3, padding=1)
        blocks = []
        for width, next_width in zip(channels, channels[1:] + channels[-1:]):
            blocks += [ResidualBlock(width), nn.Conv2d(width, next_width, 3, stride=2, padding=1)]
        self.blocks = nn.Sequential(*blocks)
        self.head = nn.Sequential(ResidualBlock(channels[-1]), nn.SiLU(),
                                  nn.Conv2d(channels[-1], latent_channels, 3, padding=1))

    def forward(self, frames):
        return self.head(self.blocks(self.stem(frames * 2.0 - 1.0)))


class Decoder(nn.Module):
    """`[N,latent_channels,h,w]` -> `[N,3,h*s,w*s]` in [0,1]."""

    def __init__(self, latent_channels, channels):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(latent_channels, channels[-1], 3, padding=1),
                                  ResidualBlock(channels[-1]))
        blocks = []
        widths = list(reversed(channels))
        for width, next_width in zip(widths, widths[1:] + widths[-1:]):
            blocks += [nn.Upsample(scale_factor=2, mode="nearest"),
                       nn.Conv2d(width, next_width, 3, padding=1), ResidualBlock(next_width)]
        self.blocks = nn.Sequential(*blocks)
        self.head = nn.Sequential(nn.SiLU(), nn.Conv2d(channels[0], 3, 3, padding=1))

    def forward(self, latents):
        return torch.sigmoid(self.head(self.blocks(self.stem(latents))))


class TameAutoencoder(nn.Module):
    """Small convolutional autoencoder (about 1-3 MB in float32 at the default widths).

    latent_channels: channels of the latent (4-8 sensible); channels: width per resolution level,
    the number of levels sets the downscale factor `2 ** len(channels)` (2 levels -> 1/4 size).
    """

    def __init__(self, latent_channels=4, channels=(32, 64)):
        super().__init__()
        channels = tuple(int(c) for c in channels)
        if int(latent_channels) < 1 or not channels or min(channels) < 1:
            raise ValueError(f"latent_channels and every width must be >= 1, got {latent_channels} and "
                             f"{channels}.")
        self.latent_channels = int(latent_channels)
        self.channels = channels
        self.downscale = 2 ** len(channels)
        self.register_buffer("config", torch.tensor((self.latent_channels,) + channels))
        self.encoder = Encoder(self.latent_channels, channels)
        self.decoder = Decoder(self.latent_channels, channels)

    def encode(self, frames):
        """Frames `[N,3,H,W]` in [0,1] (H, W multiples of `downscale`) -> latents `[N,C,H/s,W/s]`."""
        if frames.shape[-1] % self.downscale or frames.shape[-2] % self.downscale:
            raise ValueError(f"frame size {tuple(frames.shape[-2:])} must be a multiple of "
                             f"{self.downscale}; crop or resize the frames first.")
        return self.encoder(frames)

    def decode(self, latents):
        """Latents `[N,C,h,w]` -> frames `[N,3,h*s,w*s]` in [0,1]."""
        return self.decoder(latents)

    def forward(self, frames):
        return self.decode(self.encode(frames))


def autoencoder_from_state_dict(state_dict):
    """Rebuild a `TameAutoencoder` (eval mode) from its state dict (architecture read from `config`)."""
    if "config" not in state_dict:
        raise ValueError("These weights are not a Tame autoencoder (no 'config' entry); use the file the "
                         "pack ships (models/weights/tame_autoencoder.safetensors) or one saved from "
                         "TameAutoencoder.state_dict().")
    config = [int(v) for v in state_dict["config"].tolist()]
    model = TameAutoencoder(config[0], tuple(config[1:]))
    model.load_state_dict(state_dict, strict=True)
    return model.eval()


def load_autoencoder(path=SHIPPED_WEIGHTS):
    """Load a `TameAutoencoder` from a .safetensors file (default: the weights shipped with the pack)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"Autoencoder weights {path.name} not found in {path.parent}. The pack ships them at "
            f"models/weights/tame_autoencoder.safetensors: reinstall or update the pack, or pass the "
            f"path of a file saved from TameAutoencoder.state_dict().")
    if path.suffix.lower() != ".safetensors":
        raise ValueError(f"{path.name}: the autoencoder loads from .safetensors only.")
    return autoencoder_from_state_dict(load_state_dict(path))
