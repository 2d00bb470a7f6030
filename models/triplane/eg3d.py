"""EG3D's tri-plane generator (Chan et al., CVPR 2022), module names as in its checkpoints.

`TriplaneGenerator` = StyleGAN2 backbone (`backbone.mapping`, `backbone.synthesis`, img_channels
3*32) producing planes `[N,3,32,R,R]`, EG3D's OSGDecoder (`decoder`) and a SuperresolutionHybrid8XDC
-like module (`superresolution`). It produces planes; rendering is renderer.py's job, `synthesis`
only chains planes -> render -> super-resolution like EG3D's `G.synthesis`.

Weights load from EG3D's `.pkl` files without running their code (models/io/eg3d_pickle.py) or
from safetensors written by `save_safetensors` (config JSON in the metadata).
"""
import inspect
import json
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ..io.eg3d_pickle import load_eg3d_pickle, load_strictly, naming_file
from ..io.weights import SAFE_SUFFIXES, load_state_dict, read_safetensors_metadata
from ..io.weights import save_safetensors as write_safetensors
from .decoders import OSGDecoder
from .renderer import RenderSettings, TriplaneField, render
from .stylegan2 import NOISE_MODES, PRECISION_OPTIONS, StyleGAN2Generator, SynthesisBlock

SR_MODULE = "training.superresolution.SuperresolutionHybrid8XDC"
CONFIG_METADATA_KEY = "tame_triplane_config"
SR_PRECISION_OPTIONS = ("channel_base", "channel_max", "fused_modconv_default")  # 8XDC ignores these too
SR_FP16_CONV_CLAMP = 256  # EG3D clamps SR activations whenever its SR runs in float16
DECODER_HIDDEN = 64
LABEL_SIZE = 25  # camera label: cam2world (16, row-major) + normalised intrinsics (9)

DEFAULT_RENDERING = {
    "depth_resolution": 48, "depth_resolution_importance": 48, "ray_start": 2.25, "ray_end": 3.3,
    "box_warp": 1.0, "avg_camera_radius": 2.7, "avg_camera_pivot": [0.0, 0.0, 0.2],
    "disparity_space_sampling": False, "clamp_mode": "softplus", "white_back": False,
    "superresolution_module": SR_MODULE, "c_gen_conditioning_zero": False, "c_scale": 1.0,
    "superresolution_noise_mode": "none", "sr_antialias": True, "decoder_lr_mul": 1.0,
}


def camera_label(cam2world, intrinsics):
    """EG3D's conditioning label: cam2world `[N,4,4]`, intrinsics `[N,3,3]` -> `[N,25]`."""
    return torch.cat([cam2world.reshape(-1, 16), intrinsics.reshape(-1, 9)], dim=1).float()


def _check_rendering(rendering):
    """Raise ValueError for EG3D rendering options this renderer does not implement."""
    problems = []
    if not str(rendering["superresolution_module"]).endswith("SuperresolutionHybrid8XDC"):
        problems.append(f"super-resolution {rendering['superresolution_module']} (only "
                        f"SuperresolutionHybrid8XDC, the FFHQ/AFHQ 512 models, is implemented)")
    if rendering["clamp_mode"] != "softplus":
        problems.append(f"clamp_mode {rendering['clamp_mode']!r} (only 'softplus')")
    if rendering["disparity_space_sampling"] or rendering["white_back"]:
        problems.append("disparity-space sampling / white background (ShapeNet settings)")
    if not all(isinstance(rendering[key], (int, float)) for key in ("ray_start", "ray_end")):
        problems.append("automatic ray_start/ray_end ('auto', ShapeNet settings)")
    if rendering["superresolution_noise_mode"] not in NOISE_MODES:
        problems.append(f"superresolution_noise_mode {rendering['superresolution_noise_mode']!r}")
    if problems:
        raise ValueError("unsupported EG3D rendering options: " + "; ".join(problems) + ".")


class Superresolution(nn.Module):
    """EG3D's SuperresolutionHybrid8XDC: two StyleGAN2 'skip' blocks (2x up each) driven by the last w.

    forward(rgb `[N,3,r,r]`, features `[N,C,r,r]`, ws `[N,num_ws,w_dim]`) -> image
    `[N,3,4*input_resolution,4*input_resolution]`. Inputs of another size are first resized
    (bilinear, antialiased) to input_resolution; rgb is the skip image the blocks add to.
    """

    def __init__(self, channels, w_dim, input_resolution=128, block_channels=(256, 128), conv_clamp=None,
                 antialias=True):
        super().__init__()
        self.input_resolution, self.antialias = int(input_resolution), bool(antialias)
        self.block0 = SynthesisBlock(channels, block_channels[0], w_dim, 2 * self.input_resolution, 3,
                                     conv_clamp=conv_clamp)
        self.block1 = SynthesisBlock(block_channels[0], block_channels[1], w_dim, 4 * self.input_resolution, 3,
                                     conv_clamp=conv_clamp)

    def _resized(self, image):
        if image.shape[-1] == self.input_resolution and image.shape[-2] == self.input_resolution:
            return image
        return F.interpolate(image, size=(self.input_resolution,) * 2, mode="bilinear", align_corners=False,
                             antialias=self.antialias)

    def forward(self, rgb, features, ws, noise_mode="none"):
        ws = ws[:, -1:].expand(-1, self.block0.num_conv + self.block0.num_torgb, -1)
        x, img = self.block0(self._resized(features), self._resized(rgb), ws, noise_mode)
        return self.block1(x, img, ws, noise_mode)[1]


class TriplaneGenerator(nn.Module):
    """EG3D generator: z `[N,z_dim]` + camera label `[N,25]` -> ws -> planes -> rendered, super-resolved image.

    EG3D FFHQ-512 defaults. plane_resolution, plane_channels (EG3D: 256, 32), sr_kwargs
    (input_resolution 128, block_channels (256, 128), conv_clamp) exist so tiny models can be built;
    rendering_kwargs: EG3D's dict (missing keys take the FFHQ values of DEFAULT_RENDERING).
    """

    def __init__(self, z_dim=512, c_dim=LABEL_SIZE, w_dim=512, img_resolution=512, plane_resolution=256,
                 plane_channels=32, channel_base=32768, channel_max=512, conv_clamp=None, mapping_kwargs=None,
                 rendering_kwargs=None, sr_kwargs=None, neural_rendering_resolution=128):
        super().__init__()
        rendering = {**DEFAULT_RENDERING, **(rendering_kwargs or {})}
        _check_rendering(rendering)
        sr_options = {"input_resolution": 128, "block_channels": [256, 128], "conv_clamp": None, **(sr_kwargs or {})}
        if img_resolution != 4 * sr_options["input_resolution"]:
            raise ValueError(f"img_resolution {img_resolution} must be 4x the super-resolution input "
                             f"({sr_options['input_resolution']}); set sr_kwargs['input_resolution'].")
        self.config = {
            "z_dim": z_dim, "c_dim": c_dim, "w_dim": w_dim, "img_resolution": img_resolution,
            "plane_resolution": plane_resolution, "plane_channels": plane_channels, "channel_base": channel_base,
            "channel_max": channel_max, "conv_clamp": conv_clamp, "mapping_kwargs": dict(mapping_kwargs or {}),
            "rendering_kwargs": rendering, "sr_kwargs": sr_options,
            "neural_rendering_resolution": neural_rendering_resolution}
        self.plane_channels, self.img_resolution = plane_channels, img_resolution
        self.rendering_kwargs = rendering
        self.neural_rendering_resolution = int(neural_rendering_resolution)
        self.backbone = StyleGAN2Generator(z_dim, c_dim, w_dim, plane_resolution, 3 * plane_channels,
                                           channel_base, channel_max, conv_clamp, mapping_kwargs)
        self.decoder = OSGDecoder(plane_channels, DECODER_HIDDEN, plane_channels,
                                  lr_multiplier=float(rendering["decoder_lr_mul"]))
        self.superresolution = Superresolution(plane_channels, w_dim, sr_options["input_resolution"],
                                               sr_options["block_channels"], sr_options["conv_clamp"],
                                               rendering["sr_antialias"])

    @property
    def num_ws(self):
        return self.backbone.num_ws

    @property
    def w_dim(self):
        return self.backbone.w_dim

    @property
    def z_dim(self):
        return self.backbone.z_dim

    def mapping(self, z, c, truncation_psi=1.0, truncation_cutoff=None):
        """z `[N,z_dim]`, camera label c `[N,25]` -> ws `[N,num_ws,w_dim]` (EG3D's c_scale and
        c_gen_conditioning_zero applied)."""
        c = c.float()
        if self.rendering_kwargs["c_gen_conditioning_zero"]:
            c = torch.zeros_like(c)
        return self.backbone.mapping(z, c * float(self.rendering_kwargs["c_scale"]), truncation_psi,
                                     truncation_cutoff)

    def planes(self, ws, noise_mode="const"):
        """ws `[N,num_ws,w_dim]` -> tri-planes `[N,3,plane_channels,R,R]` (channel blocks 0-31, 32-63, 64-95)."""
        image = self.backbone.synthesis(ws, noise_mode)
        return image.reshape(image.shape[0], 3, self.plane_channels, *image.shape[-2:])

    def render_settings(self, ray_chunk=8192):
        """RenderSettings of this model's rendering_kwargs (near/far, sample counts, box)."""
        rendering = self.rendering_kwargs
        return RenderSettings(near=float(rendering["ray_start"]), far=float(rendering["ray_end"]),
                              coarse=int(rendering["depth_resolution"]),
                              fine=int(rendering["depth_resolution_importance"]),
                              box_warp=float(rendering["box_warp"]), ray_chunk=ray_chunk)

    def synthesis(self, ws, cam2world, intrinsics, neural_rendering_resolution=None, noise_mode="const",
                  settings=None, rng=None, progress=None):
        """ws `[N,num_ws,w_dim]`, cameras `[N,4,4]`/`[N,3,3]` -> dict of image `[N,3,4r',4r']` (super-
        resolved, r' = SR input size), image_raw `[N,3,r,r]` and image_depth `[N,1,r,r]`; colours in
        [-1,1], r = neural_rendering_resolution (default: the model's).

        noise_mode applies to the backbone (EG3D's default there is 'random'; 'const' is
        deterministic); the SR uses rendering_kwargs['superresolution_noise_mode']. settings:
        RenderSettings (default `render_settings()`); rng: torch.Generator for EG3D's stratified
        jitter (None = no jitter, deterministic); progress: the renderer's per-chunk callback.
        """
        resolution = neural_rendering_resolution or self.neural_rendering_resolution
        field = TriplaneField(self.planes(ws, noise_mode), self.decoder)
        rendered = render(field, cam2world, intrinsics, resolution, settings or self.render_settings(),
                          generator=rng, progress=progress)
        rgb = rendered.image[:, :3]
        image = self.superresolution(rgb, rendered.image, ws, self.rendering_kwargs["superresolution_noise_mode"])
        return {"image": image, "image_raw": rgb, "image_depth": rendered.depth}

    @classmethod
    def from_config(cls, config):
        """Build from a config: this class's constructor arguments or an EG3D `_init_kwargs` dict (as
        `load_eg3d_pickle` returns it; float16 options are dropped, sr_num_fp16_res > 0 becomes the SR's
        conv_clamp 256). Raises ValueError naming unknown options."""
        options = dict(config)
        class_name = options.pop("class_name", None)
        if class_name is not None and not str(class_name).lower().endswith("triplanegenerator"):
            raise ValueError(f"the checkpoint holds a {class_name}, not an EG3D TriPlaneGenerator.")
        if options.pop("img_channels", 3) != 3:
            raise ValueError("only RGB tri-plane generators (img_channels 3) are supported.")
        for key in PRECISION_OPTIONS:
            options.pop(key, None)
        sr_options = {k: v for k, v in (options.pop("sr_kwargs", None) or {}).items() if k not in SR_PRECISION_OPTIONS}
        if options.pop("sr_num_fp16_res", 0):
            sr_options.setdefault("conv_clamp", SR_FP16_CONV_CLAMP)
        options["sr_kwargs"] = sr_options
        unknown = sorted(set(options) - set(inspect.signature(cls).parameters))
        if unknown:
            raise ValueError(f"unknown tri-plane generator options {unknown}; this is not an EG3D FFHQ/AFHQ-style "
                             f"configuration.")
        return cls(**options)

    @classmethod
    def from_state_dict(cls, config, state_dict):
        """Build from `config` (see from_config) and load `state_dict` strictly -> model in eval mode,
        gradients off. Raises ValueError listing missing/unexpected/mis-shaped entries."""
        model = cls.from_config(config)
        load_strictly(model, state_dict)
        return model.eval().requires_grad_(False)

    @classmethod
    def from_pickle(cls, path):
        """EG3D network pickle (`G_ema`) -> model; none of the file's code is executed."""
        config, state_dict = load_eg3d_pickle(path)
        return naming_file(path, lambda: cls.from_state_dict(config, state_dict))

    @classmethod
    def from_file(cls, path):
        """`.pkl` (EG3D) or `.safetensors` written by `save_safetensors` -> model."""
        path = Path(path)
        if path.suffix.lower() == ".pkl":
            return cls.from_pickle(path)
        if path.suffix.lower() not in SAFE_SUFFIXES:
            raise ValueError(f"{path.name}: unsupported tri-plane generator format '{path.suffix}'; use an EG3D "
                             f".pkl or a .safetensors converted by Tame.")
        state_dict = load_state_dict(path)
        metadata = read_safetensors_metadata(path)
        if CONFIG_METADATA_KEY not in metadata:
            raise ValueError(f"{path.name} (in {path.parent}) has no '{CONFIG_METADATA_KEY}' metadata: it was not "
                             f"written by Tame's save_safetensors; convert the EG3D .pkl with it.")
        config = json.loads(metadata[CONFIG_METADATA_KEY])
        return naming_file(path, lambda: cls.from_state_dict(config, state_dict))

    def save_safetensors(self, path):
        """Write weights + config (JSON metadata) to `path` (atomic) -> Path; reload with `from_file`."""
        return write_safetensors(self.state_dict(), path, {CONFIG_METADATA_KEY: json.dumps(self.config)})
