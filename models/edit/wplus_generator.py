"""W+ codes of a StyleGAN2 or EG3D generator as `Generator` codes (seed 001's own setting).

Code layout: W+ `[T,num_ws,w_dim]` is stored as `[T,w_dim,num_ws,1]` (`wplus_to_codes`). Channels
are the entries of one w and every "latent pixel" is one synthesis layer's w, so the latent mapper
(mapper.py, an MLP on the channel axis per latent pixel) refines each w vector separately, as
StyleCLIP's mapper does; with frame_context each w also sees its frame's mean w. Per-channel
statistics over (frames, layers, 1) are statistics of w entries, which is what the base class's
regulariser radius expects.

Decoding: 2-D StyleGAN2 -> synthesis image; EG3D -> planes, rendered at one fixed camera (given at
construction), then the raw render (`image_raw`) or the super-resolved image. Frames are
`(image + 1) / 2` clamped to [0,1].
"""
import copy as _copy
import math

import torch

from ...kernels.rays import normalized_intrinsics, orbit_cam2world
from ..triplane.eg3d import TriplaneGenerator, camera_label
from ..triplane.stylegan2 import NOISE_MODES, StyleGAN2Generator
from .generator import Generator

OUTPUTS = ("raw", "super-resolved")
FFHQ_FOCAL = 4.2647  # EG3D FFHQ normalised focal length (FOV about 18.8 degrees)


def wplus_to_codes(ws):
    """W+ `[T,num_ws,w_dim]` -> codes `[T,w_dim,num_ws,1]`."""
    return ws.transpose(1, 2).unsqueeze(-1)


def codes_to_wplus(codes):
    """codes `[T,w_dim,num_ws,1]` -> W+ `[T,num_ws,w_dim]`."""
    return codes.squeeze(-1).transpose(1, 2)


def frontal_camera(model, focal=FFHQ_FOCAL):
    """EG3D's frontal camera of `model` (its avg_camera_radius, looking at avg_camera_pivot) ->
    cam2world `[1,4,4]`, intrinsics `[1,3,3]`."""
    rendering = model.rendering_kwargs
    cam2world = orbit_cam2world(math.pi / 2, math.pi / 2, float(rendering["avg_camera_radius"]),
                                target=[float(v) for v in rendering["avg_camera_pivot"]])
    return cam2world, normalized_intrinsics(focal, 1)


def _one_camera(matrix, size, name):
    matrix = torch.as_tensor(matrix, dtype=torch.float32)
    if matrix.shape not in ((size, size), (1, size, size)):
        raise ValueError(f"{name} must be one matrix [{size},{size}] (or [1,{size},{size}]), "
                         f"got {tuple(matrix.shape)}.")
    return matrix.reshape(1, size, size)


class StyleGANWPlusGenerator(Generator):
    """A StyleGAN2Generator or TriplaneGenerator (deep-copied) decoding W+ codes `[T,w_dim,num_ws,1]`.

    cam2world `[4,4]`, intrinsics `[3,3]`: the fixed camera of a tri-plane model (default: frontal,
    f = 4.2647). output: "raw" (neural-rendering resolution) or "super-resolved" (tri-plane only).
    noise_mode: 'const' (deterministic, default), 'random' or 'none'. conditioning: the label `[c_dim]`
    for the mapping network when sampling the prior (default for EG3D: the frontal camera's label).
    truncation_psi: of the prior samples. device: where the copy lives (default: the model's).
    """
    name = "StyleGAN2 W+"

    def __init__(self, model, cam2world=None, intrinsics=None, output="raw", noise_mode="const",
                 conditioning=None, truncation_psi=1.0, device=None):
        if not isinstance(model, (StyleGAN2Generator, TriplaneGenerator)):
            raise ValueError(f"model must be a StyleGAN2Generator or TriplaneGenerator, got {type(model).__name__}.")
        if output not in OUTPUTS or noise_mode not in NOISE_MODES:
            raise ValueError(f"output must be one of {OUTPUTS} and noise_mode one of {NOISE_MODES}; got "
                             f"{output!r}, {noise_mode!r}.")
        self.triplane = isinstance(model, TriplaneGenerator)
        if not self.triplane and (output != "raw" or cam2world is not None or intrinsics is not None):
            raise ValueError("a 2-D StyleGAN2 has no camera or super-resolution; leave cam2world, intrinsics "
                             "and output at their defaults.")
        parameter = next(model.parameters())
        with torch.inference_mode(False):
            decoder = _copy.deepcopy(model).float().to(device or parameter.device).eval()
        decoder.requires_grad_(False)
        super().__init__(decoder, model.w_dim, 1)
        self.output, self.noise_mode, self.truncation_psi = output, noise_mode, float(truncation_psi)
        self.num_ws = model.num_ws
        self.cam2world = self.intrinsics = None
        if self.triplane:
            self.name = "EG3D W+"
            frontal_pose, frontal_intrinsics = frontal_camera(model)
            self.cam2world = frontal_pose if cam2world is None else _one_camera(cam2world, 4, "cam2world")
            self.intrinsics = frontal_intrinsics if intrinsics is None else _one_camera(intrinsics, 3, "intrinsics")
            if conditioning is None:
                conditioning = camera_label(frontal_pose, frontal_intrinsics)[0]
        self.conditioning = self._check_conditioning(conditioning)

    @property
    def mapping_network(self):
        """The copy's MappingNetwork (z_dim, c_dim, w_avg)."""
        return self.decoder.backbone.mapping if self.triplane else self.decoder.mapping

    def _check_conditioning(self, conditioning):
        c_dim = self.mapping_network.c_dim
        if c_dim == 0:
            return None
        if conditioning is None or torch.as_tensor(conditioning).numel() != c_dim:
            raise ValueError(f"the mapping network is conditioned on a label of {c_dim} values; pass "
                             f"conditioning=<tensor [{c_dim}]> to sample its prior.")
        return torch.as_tensor(conditioning, dtype=torch.float32).reshape(1, c_dim)

    def frame_size(self, latent_size):
        """(H, W) of the decoded frames (the code's spatial size does not change it)."""
        if not self.triplane:
            side = self.decoder.img_resolution
        elif self.output == "raw":
            side = self.decoder.neural_rendering_resolution
        else:
            side = self.decoder.img_resolution
        return side, side

    def check_latents(self, latents, name="latents"):
        """Raise ValueError unless `latents` is `[T,w_dim,num_ws,1]` (see wplus_to_codes)."""
        super().check_latents(latents, name)
        if tuple(latents.shape[2:]) != (self.num_ws, 1):
            raise ValueError(f"{name} must be W+ codes [frames,{self.latent_channels},{self.num_ws},1] "
                             f"(wplus_to_codes of ws [frames,{self.num_ws},{self.latent_channels}]), got "
                             f"{tuple(latents.shape)}.")

    def _decode(self, latents):
        ws = codes_to_wplus(latents)
        if not self.triplane:
            image = self.decoder.synthesis(ws, self.noise_mode)
        else:
            count = ws.shape[0]
            cam2world = self.cam2world.to(ws.device).expand(count, 4, 4)
            intrinsics = self.intrinsics.to(ws.device).expand(count, 3, 3)
            out = self.decoder.synthesis(ws, cam2world, intrinsics, noise_mode=self.noise_mode)
            image = out["image_raw" if self.output == "raw" else "image"]
        return ((image + 1) / 2).clamp(0, 1)

    def _probe_latents(self):
        return wplus_to_codes(self.mapping_network.w_avg.expand(1, self.num_ws, -1))

    def sample_codes(self, count, generator=None):
        """W+ codes `[count,w_dim,num_ws,1]` of z ~ N(0,I) through the mapping network (no gradient).
        generator: torch.Generator (CPU) for reproducible draws."""
        z = torch.randn(count, self.mapping_network.z_dim, generator=generator).to(self.device)
        c = None if self.conditioning is None else self.conditioning.to(self.device).expand(count, -1)
        with torch.no_grad():
            return wplus_to_codes(self.decoder.mapping(z, c, self.truncation_psi))

    def sample_prior_code(self, like, generator=None):
        """Codes from the mapping network's prior (not the Gaussian fallback), shaped like `like`."""
        return self.sample_codes(like.shape[0], generator).to(like.device, like.dtype)
