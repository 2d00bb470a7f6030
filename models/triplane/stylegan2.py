"""StyleGAN2 (Karras et al., CVPR 2020) as EG3D uses it: mapping network, modulated convolutions with
demodulation, [1,3,3,1] FIR up-sampling, per-layer noise, 'skip' architecture.

Parameter and buffer names are those of EG3D's pickled modules (`mapping.fc0.weight`,
`mapping.embed.weight`, `mapping.w_avg`, `synthesis.b4.const`, `synthesis.b8.conv0.affine.weight`,
`...noise_const`, `...noise_strength`, `...torgb.weight`, `...resample_filter`), so checkpoints load
by name. Everything runs in float32 (EG3D's fp16 layers change only rounding).

Noise modes: 'const' (the stored `noise_const` images, deterministic), 'random' (fresh N(0,1) per
call) and 'none'.
"""
import inspect
import math

import torch
import torch.nn.functional as F
from torch import nn

from ..io.eg3d_pickle import load_eg3d_pickle, load_strictly, naming_file
from .decoders import FullyConnected

LRELU_SLOPE = 0.2
LRELU_GAIN = math.sqrt(2.0)  # keeps the activations' second moment through a leaky ReLU
FIR_TAPS = (1.0, 3.0, 3.0, 1.0)
NOISE_MODES = ("const", "random", "none")
# constructor options of NVIDIA's networks that only choose float16 layers / fused kernels: same weights
PRECISION_OPTIONS = ("num_fp16_res", "fused_modconv_default")
TRAINING_ONLY_MAPPING_OPTIONS = ("w_avg_beta",)


def leaky_relu(x, gain=1.0, clamp=None):
    """EG3D's 'lrelu' activation: leaky ReLU (0.2) times sqrt(2) * gain, then optional clamp to ±clamp."""
    x = F.leaky_relu(x, LRELU_SLOPE) * (LRELU_GAIN * gain)
    return x if clamp is None else x.clamp(-clamp, clamp)


def normalize_2nd_moment(x, eps=1e-8):
    """`[N,C]` -> each row divided by its root mean square."""
    return x * torch.rsqrt(x.square().mean(dim=1, keepdim=True) + eps)


def fir_filter(taps=FIR_TAPS):
    """Separable low-pass `[k,k]`: outer product of `taps`, normalised to sum 1."""
    taps = torch.as_tensor(taps, dtype=torch.float32)
    kernel = torch.outer(taps, taps)
    return kernel / kernel.sum()


def upfirdn2d(x, kernel, up=1, padding=(0, 0, 0, 0), gain=1.0):
    """Upsample by zero insertion, pad, then convolve every channel with `kernel * gain`.

    x `[N,C,H,W]`; kernel `[k,k]` (true convolution, i.e. flipped correlation); padding
    (left, right, top, bottom) in output pixels after zero insertion.
    Returns `[N,C,H*up + top + bottom - k + 1, W*up + left + right - k + 1]`.
    """
    n, c, h, w = x.shape
    if up > 1:
        x = F.pad(x.reshape(n, c, h, 1, w, 1), (0, up - 1, 0, 0, 0, up - 1)).reshape(n, c, h * up, w * up)
    x = F.pad(x, list(padding))
    weight = (kernel.flip(0, 1) * gain).to(x.dtype)[None, None].expand(c, 1, *kernel.shape)
    return F.conv2d(x, weight, groups=c)


def upsample2d(x, kernel, up=2):
    """`[N,C,H,W]` -> `[N,C,H*up,W*up]`: zero insertion and FIR filter, pixel centres aligned.

    The gain up**2 restores the mean lost to the inserted zeros.
    """
    k = kernel.shape[-1]
    before, after = (k + up - 1) // 2, (k - up) // 2
    return upfirdn2d(x, kernel, up, (before, after, before, after), gain=up * up)


def modulated_conv2d(x, weight, styles, demodulate=True, up=1, kernel=None):
    """StyleGAN2 modulated convolution, one weight per sample (grouped convolution).

    x `[N,I,H,W]`, weight `[O,I,k,k]`, styles `[N,I]` (scale input channels). demodulate: normalise
    every output filter to unit norm. up=2: transposed stride-2 convolution followed by the FIR
    `kernel` `[f,f]`, as in EG3D. Returns `[N,O,H*up,W*up]` ('same' padding).
    """
    n, in_channels, h, w = x.shape
    out_channels, _, k, _ = weight.shape
    weights = weight[None] * styles[:, None, :, None, None]
    if demodulate:
        weights = weights * torch.rsqrt(weights.square().sum(dim=(2, 3, 4)) + 1e-8)[..., None, None, None]
    x = x.reshape(1, n * in_channels, h, w)
    if up == 1:
        out = F.conv2d(x, weights.reshape(n * out_channels, in_channels, k, k), padding=k // 2, groups=n)
        return out.reshape(n, out_channels, h, w)
    out = F.conv_transpose2d(x, weights.transpose(1, 2).reshape(n * in_channels, out_channels, k, k),
                             stride=up, groups=n)
    f = kernel.shape[-1]
    # the transposed conv grew the image by k - 1 (k - up at the end); the FIR pads make it up * size again
    before = k // 2 + (f + up - 1) // 2 - (k - 1)
    after = k // 2 + (f - up) // 2 - (k - up)
    out = upfirdn2d(out, kernel, 1, (before, after, before, after), gain=up * up)
    return out.reshape(n, out_channels, h * up, w * up)


def _check_noise_mode(noise_mode):
    if noise_mode not in NOISE_MODES:
        raise ValueError(f"noise_mode must be one of {NOISE_MODES}, got {noise_mode!r}.")


class MappingNetwork(nn.Module):
    """z `[N,z_dim]` (+ label c `[N,c_dim]`) -> ws `[N,num_ws,w_dim]` (one w broadcast to all layers).

    The label is embedded (fc `embed`), both halves are normalised to unit second moment, concatenated
    and passed through `num_layers` equalised-LR layers (lr_multiplier 0.01) with leaky ReLU.
    `w_avg` (buffer `[w_dim]`) is the centre used for truncation.
    """

    def __init__(self, z_dim, c_dim, w_dim, num_ws, num_layers=8, lr_multiplier=0.01):
        super().__init__()
        if z_dim < 1 or w_dim < 1 or num_ws < 1 or num_layers < 1 or c_dim < 0:
            raise ValueError(f"mapping network needs z_dim, w_dim, num_ws, num_layers >= 1 and c_dim >= 0; got "
                             f"z_dim={z_dim}, w_dim={w_dim}, num_ws={num_ws}, num_layers={num_layers}, "
                             f"c_dim={c_dim}.")
        self.z_dim, self.c_dim, self.w_dim, self.num_ws, self.num_layers = z_dim, c_dim, w_dim, num_ws, num_layers
        if c_dim:
            self.embed = FullyConnected(c_dim, w_dim)
        widths = [z_dim + (w_dim if c_dim else 0)] + [w_dim] * num_layers
        for index, (a, b) in enumerate(zip(widths[:-1], widths[1:])):
            setattr(self, f"fc{index}", FullyConnected(a, b, lr_multiplier))
        self.register_buffer("w_avg", torch.zeros(w_dim))

    def forward(self, z, c=None, truncation_psi=1.0, truncation_cutoff=None):
        """z `[N,z_dim]`, c `[N,c_dim]` -> ws `[N,num_ws,w_dim]`; the first `truncation_cutoff` ws
        (all when None) are pulled towards `w_avg`: `w_avg + psi (w - w_avg)`."""
        x = normalize_2nd_moment(z.float())
        if self.c_dim:
            if c is None or c.shape != (z.shape[0], self.c_dim):
                raise ValueError(f"the mapping network needs a label c of shape [{z.shape[0]},{self.c_dim}] "
                                 f"(camera: 16 cam2world + 9 intrinsics), got "
                                 f"{None if c is None else tuple(c.shape)}.")
            x = torch.cat([x, normalize_2nd_moment(self.embed(c.float()))], dim=1)
        for index in range(self.num_layers):
            x = leaky_relu(getattr(self, f"fc{index}")(x))
        ws = x[:, None].repeat(1, self.num_ws, 1)
        if truncation_psi != 1:
            cutoff = self.num_ws if truncation_cutoff is None else int(truncation_cutoff)
            ws[:, :cutoff] = self.w_avg.lerp(ws[:, :cutoff], truncation_psi)
        return ws


class SynthesisLayer(nn.Module):
    """Modulated 3x3 convolution (optionally 2x up), noise, bias, leaky ReLU.

    x `[N,in,R/up,R/up]`, w `[N,w_dim]` -> `[N,out,R,R]` (R = resolution).
    """

    def __init__(self, in_channels, out_channels, w_dim, resolution, up=1, use_noise=True, conv_clamp=None,
                 kernel_size=3):
        super().__init__()
        self.up, self.resolution, self.use_noise, self.conv_clamp = up, resolution, use_noise, conv_clamp
        self.affine = FullyConnected(w_dim, in_channels)
        nn.init.ones_(self.affine.bias)  # styles start at 1: an identity modulation
        self.register_buffer("resample_filter", fir_filter())
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, kernel_size, kernel_size))
        if use_noise:
            self.register_buffer("noise_const", torch.randn(resolution, resolution))
            self.noise_strength = nn.Parameter(torch.zeros([]))
        self.bias = nn.Parameter(torch.zeros(out_channels))

    def forward(self, x, w, noise_mode="const"):
        x = modulated_conv2d(x, self.weight, self.affine(w), up=self.up, kernel=self.resample_filter)
        if self.use_noise and noise_mode != "none":
            noise = self.noise_const if noise_mode == "const" else \
                torch.randn(x.shape[0], 1, self.resolution, self.resolution, device=x.device, dtype=x.dtype)
            x = x + noise * self.noise_strength
        return leaky_relu(x + self.bias[None, :, None, None], clamp=self.conv_clamp)


class ToRGB(nn.Module):
    """Modulated 1x1 convolution without demodulation, plus bias: `[N,in,R,R]`, w -> `[N,img_channels,R,R]`."""

    def __init__(self, in_channels, img_channels, w_dim, conv_clamp=None):
        super().__init__()
        self.conv_clamp = conv_clamp
        self.affine = FullyConnected(w_dim, in_channels)
        nn.init.ones_(self.affine.bias)
        self.weight = nn.Parameter(torch.randn(img_channels, in_channels, 1, 1))
        self.bias = nn.Parameter(torch.zeros(img_channels))
        self.weight_gain = 1.0 / math.sqrt(in_channels)

    def forward(self, x, w):
        x = modulated_conv2d(x, self.weight, self.affine(w) * self.weight_gain, demodulate=False)
        x = x + self.bias[None, :, None, None]
        return x if self.conv_clamp is None else x.clamp(-self.conv_clamp, self.conv_clamp)


class SynthesisBlock(nn.Module):
    """One resolution of the 'skip' architecture: (learned constant | 2x up conv0), conv1, torgb; the
    running image is FIR-upsampled and the block's RGB added to it.

    in_channels 0 makes the first block (learned constant `[out,R,R]`, no conv0). Consumes
    `num_conv + num_torgb` ws; forward(x `[N,in,R/2,R/2]` or None, img `[N,C,R/2,R/2]` or None,
    ws `[N,num_conv+num_torgb,w_dim]`) -> (x `[N,out,R,R]`, img `[N,C,R,R]`).
    """

    def __init__(self, in_channels, out_channels, w_dim, resolution, img_channels, use_noise=True,
                 conv_clamp=None):
        super().__init__()
        self.in_channels = in_channels
        if in_channels == 0:
            self.const = nn.Parameter(torch.randn(out_channels, resolution, resolution))
        else:
            self.conv0 = SynthesisLayer(in_channels, out_channels, w_dim, resolution, up=2, use_noise=use_noise,
                                        conv_clamp=conv_clamp)
        self.conv1 = SynthesisLayer(out_channels, out_channels, w_dim, resolution, use_noise=use_noise,
                                    conv_clamp=conv_clamp)
        self.torgb = ToRGB(out_channels, img_channels, w_dim, conv_clamp)
        self.register_buffer("resample_filter", fir_filter())
        self.num_conv = 1 if in_channels == 0 else 2
        self.num_torgb = 1

    def forward(self, x, img, ws, noise_mode="const"):
        if self.in_channels == 0:
            x = self.conv1(self.const[None].expand(ws.shape[0], -1, -1, -1), ws[:, 0], noise_mode)
        else:
            x = self.conv1(self.conv0(x, ws[:, 0], noise_mode), ws[:, 1], noise_mode)
        rgb = self.torgb(x, ws[:, self.num_conv])
        img = rgb if img is None else upsample2d(img, self.resample_filter) + rgb
        return x, img


def block_channels(resolution, channel_base, channel_max):
    """Feature channels of the block at `resolution`: min(channel_base // resolution, channel_max)."""
    return min(channel_base // resolution, channel_max)


class SynthesisNetwork(nn.Module):
    """ws `[N,num_ws,w_dim]` -> image `[N,img_channels,R,R]` through blocks b4, b8, ..., bR.

    num_ws: each block reads ws[i : i + num_conv + num_torgb] and advances i by num_conv; the last
    torgb adds one more (EG3D at 256: 1 + 6*2 + 1 = 14).
    """

    def __init__(self, w_dim, img_resolution, img_channels, channel_base=32768, channel_max=512,
                 conv_clamp=None, use_noise=True):
        super().__init__()
        log2 = math.log2(img_resolution) if img_resolution > 0 else 0
        if img_resolution < 4 or log2 != int(log2):
            raise ValueError(f"img_resolution must be a power of two >= 4, got {img_resolution}.")
        if block_channels(img_resolution, channel_base, channel_max) < 1:
            raise ValueError(f"channel_base {channel_base} leaves no channels at {img_resolution}x{img_resolution}; "
                             f"use channel_base >= {img_resolution}.")
        self.w_dim, self.img_resolution, self.img_channels = w_dim, img_resolution, img_channels
        self.block_resolutions = [2 ** i for i in range(2, int(log2) + 1)]
        self.num_ws = 0
        for res in self.block_resolutions:
            in_channels = block_channels(res // 2, channel_base, channel_max) if res > 4 else 0
            block = SynthesisBlock(in_channels, block_channels(res, channel_base, channel_max), w_dim, res,
                                   img_channels, use_noise, conv_clamp)
            setattr(self, f"b{res}", block)
            self.num_ws += block.num_conv
        self.num_ws += 1

    def forward(self, ws, noise_mode="const"):
        _check_noise_mode(noise_mode)
        if ws.dim() != 3 or ws.shape[1:] != (self.num_ws, self.w_dim):
            raise ValueError(f"ws must be [N,{self.num_ws},{self.w_dim}], got {tuple(ws.shape)}.")
        x = img = None
        index = 0
        for res in self.block_resolutions:
            block = getattr(self, f"b{res}")
            x, img = block(x, img, ws[:, index:index + block.num_conv + block.num_torgb], noise_mode)
            index += block.num_conv
        return img


class StyleGAN2Generator(nn.Module):
    """Mapping + synthesis (`mapping.*`, `synthesis.*`): z `[N,z_dim]`, c `[N,c_dim]` -> image
    `[N,img_channels,R,R]` (about [-1,1] for RGB). Also EG3D's tri-plane backbone (img_channels 96).

    mapping_kwargs: num_layers (default 8), lr_multiplier (0.01).
    """

    def __init__(self, z_dim, c_dim, w_dim, img_resolution, img_channels, channel_base=32768, channel_max=512,
                 conv_clamp=None, mapping_kwargs=None):
        super().__init__()
        self.z_dim, self.c_dim, self.w_dim = z_dim, c_dim, w_dim
        self.img_resolution, self.img_channels = img_resolution, img_channels
        self.synthesis = SynthesisNetwork(w_dim, img_resolution, img_channels, channel_base, channel_max,
                                          conv_clamp)
        self.num_ws = self.synthesis.num_ws
        self.mapping = MappingNetwork(z_dim, c_dim, w_dim, self.num_ws, **(mapping_kwargs or {}))

    def forward(self, z, c=None, truncation_psi=1.0, truncation_cutoff=None, noise_mode="const"):
        return self.synthesis(self.mapping(z, c, truncation_psi, truncation_cutoff), noise_mode)

    @classmethod
    def from_config(cls, config):
        """Build from constructor arguments or a StyleGAN2-ADA / StyleGAN3-repo StyleGAN2 `_init_kwargs`
        dict (as `load_eg3d_pickle` returns it). Raises ValueError for other architectures or options."""
        options = dict(config)
        class_name = str(options.pop("class_name", "Generator"))
        if not class_name.endswith("Generator") or "stylegan3" in class_name or "TriPlane" in class_name:
            raise ValueError(f"the checkpoint holds a {class_name}, not a StyleGAN2 generator.")
        options.update(options.pop("synthesis_kwargs", None) or {})
        for key in PRECISION_OPTIONS:
            options.pop(key, None)
        if options.pop("architecture", "skip") != "skip":
            raise ValueError("only StyleGAN2's 'skip' synthesis architecture (config F, EG3D) is implemented.")
        options["mapping_kwargs"] = {key: value for key, value in (options.get("mapping_kwargs") or {}).items()
                                     if key not in TRAINING_ONLY_MAPPING_OPTIONS}
        unknown = sorted(set(options) - set(inspect.signature(cls).parameters)) + sorted(
            set(options["mapping_kwargs"]) - set(inspect.signature(MappingNetwork).parameters))
        if unknown:
            raise ValueError(f"unknown StyleGAN2 generator options {unknown}.")
        return cls(**options)

    @classmethod
    def from_pickle(cls, path):
        """StyleGAN2 network pickle (`G_ema`) -> model in eval mode, gradients off; no code is executed."""
        config, state_dict = load_eg3d_pickle(path)

        def build():
            model = cls.from_config(config)
            load_strictly(model, state_dict)
            return model.eval().requires_grad_(False)
        return naming_file(path, build)
