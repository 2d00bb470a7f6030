"""Temporally low-pass filtered noise of any length, indexed by absolute frame (seed 003 §2.4.2).

A bank of N Kaiser-windowed low-pass filters with footprints spaced exponentially between k_min and
k_max frames (`k_i = k_min (k_max/k_min)^(i/(N-1))`) filters independent white-noise streams over
time; the N outputs are summed with equal weight and the result has unit variance per element.

How it is computed (and why it is chunk-independent and cheap):

* Filter i is the continuous windowed sinc `h_i(tau) = sinc(2 tau / k_i) * I0(beta sqrt(1 - (2 tau /
  k_i)^2)) / I0(beta)` for `|tau| <= k_i / 2` (cutoff 1/k_i cycles per frame, Kaiser beta 5.65, i.e.
  60 dB by Kaiser's formula), 0 outside. Correlation fades to ~0.4 at 0.3 k_i and to 0 at 0.75 k_i.
* Its input is white noise on a lattice of step `s_i = max(1, floor(k_i / 8))` frames: `u_i[j]`, one
  independent N(0,1) field per lattice point j, drawn from a generator seeded by a hash of (seed,
  filter, j) -- a counter-based stream, so any frame can be produced without producing the others.
* Frame t of filter i is `y_i(t) = sum_j h_i(t - j s_i) u_i[j] / sqrt(sum_j h_i(t - j s_i)^2)`: the
  filter evaluated exactly at the lattice offsets (no interpolation), normalised to unit variance.
  The filter's energy above 4/k_i is ~1e-7 of the total, below the lattice's Nyquist rate
  1/(2 s_i) >= 4/k_i, so this equals low-pass filtering a per-frame white noise, up to ~1e-7 aliasing.
* Every output element is a fixed-order sum of elementwise products that depend only on its absolute
  frame index, so frames are bit-identical however a sequence is split into chunks or blocks.

Cost: about 10 multiply-adds per element and filter whatever the footprint (a 10000-frame footprint
costs what a 16-frame one does), and ~T/s_i + 10 noise fields per filter for T frames. Memory: the
output plus one block of lattice noise, never a per-pixel filter of footprint length.
"""
import math

import torch

KAISER_BETA = 5.65  # 0.1102 * (A - 8.7) for A = 60 dB attenuation (Kaiser 1974)
SAMPLES_PER_FOOTPRINT = 8
_BLOCK_ELEMENTS = 1 << 22  # output elements per block (bounds the temporary tensors)
_MASK64 = (1 << 64) - 1


def footprints(k_min, k_max, count):
    """Exponentially spaced footprints `k_i = k_min (k_max/k_min)^(i/(count-1))` in frames -> list of floats.

    count = 1 gives [k_min]. Raises ValueError unless 1 <= k_min <= k_max and count >= 1.
    """
    if int(count) != count or count < 1:
        raise ValueError(f"the number of filters must be an integer >= 1, got {count!r}.")
    if not (math.isfinite(k_min) and math.isfinite(k_max)):
        raise ValueError(f"footprints must be finite, got k_min={k_min!r}, k_max={k_max!r}.")
    if k_min < 1:
        raise ValueError(f"k_min is {k_min:g} frames; a footprint must be at least 1 frame (raise k_min, or "
                         f"the fps when footprints are in seconds).")
    if k_max < k_min:
        raise ValueError(f"k_min ({k_min:g} frames) is larger than k_max ({k_max:g} frames); swap them or "
                         f"raise k_max.")
    if count == 1:
        return [float(k_min)]
    return [float(k_min) * (k_max / k_min) ** (i / (count - 1)) for i in range(int(count))]


def kaiser_lowpass(offsets, footprint, beta=KAISER_BETA):
    """Kaiser-windowed sinc low-pass of support `footprint` frames, cutoff 1/footprint cycles/frame.

    Args:
        offsets: tensor of time offsets tau in frames (any shape, float64 recommended).
        footprint: filter length k in frames (> 0); h = 0 for |tau| > k/2.
    Returns:
        h(tau), same shape and dtype as offsets; h(0) = 1.
    """
    x = 2.0 * offsets / footprint
    inside = x.abs() <= 1.0
    window = torch.special.i0(beta * torch.sqrt((1.0 - x * x).clamp(min=0.0))) / torch.special.i0(
        torch.tensor(beta, dtype=offsets.dtype))
    return torch.where(inside, torch.sinc(x) * window, torch.zeros_like(x))


def lattice_step(footprint):
    """Noise lattice step `max(1, floor(k / 8))` frames of the filter with footprint k (an int)."""
    return max(1, int(footprint // SAMPLES_PER_FOOTPRINT))


def filter_weights(frames, footprint):
    """Lattice indices and unit-norm weights of one filter for absolute frames.

    Args:
        frames: `[T]` int64 absolute frame indices.
        footprint: k in frames.
    Returns:
        (indices `[T,L]` int64 lattice indices j, weights `[T,L]` float64) with
        `sum_l weights[t,l]^2 = 1`; frame t is `sum_l weights[t,l] * u[indices[t,l]]`. Both depend on
        t only (never on the other frames), and L is the same for every t.
    """
    step = lattice_step(footprint)
    reach = math.ceil(footprint / (2 * step))
    base = torch.div(frames, step, rounding_mode="floor")
    indices = base[:, None] + torch.arange(-reach, reach + 2, dtype=torch.int64)
    weights = kaiser_lowpass((frames[:, None] - indices * step).to(torch.float64), footprint)
    return indices, weights / weights.square().sum(1, keepdim=True).sqrt()


def counter_seed(seed, stream, index):
    """64-bit generator seed of (seed, stream, lattice index): chained splitmix64 finalisers (bijective
    per step, so distinct indices of one stream never share a seed)."""
    value = 0
    for part in (seed, stream, index):
        value = ((value ^ (int(part) & _MASK64)) + 0x9E3779B97F4A7C15) & _MASK64
        value = ((value ^ (value >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
        value = ((value ^ (value >> 27)) * 0x94D049BB133111EB) & _MASK64
        value ^= value >> 31
    return value


def lattice_noise(seed, stream, indices, size):
    """White N(0,1) fields at lattice indices: `[J]` int64 -> `[J,*size]` float32 on the CPU.

    Field j depends only on (seed, stream, j): the same on every machine and in every chunk.
    """
    generator = torch.Generator(device="cpu")
    fields = torch.empty((len(indices), *size), dtype=torch.float32)
    for row, index in enumerate(indices.tolist()):
        generator.manual_seed(counter_seed(seed, stream, index))
        fields[row] = torch.randn(size, generator=generator, dtype=torch.float32)
    return fields


def _check_size(size):
    if len(size) != 3 or any(int(n) != n or n < 1 for n in size):
        raise ValueError(f"noise size must be (channels, height, width) of positive integers, got {tuple(size)}.")
    return tuple(int(n) for n in size)


def _check_frames(frames):
    frames = torch.as_tensor(frames)
    if frames.ndim != 1 or frames.numel() == 0:
        raise ValueError(f"need at least one frame index (a 1-D list), got shape {tuple(frames.shape)}; "
                         f"set the frame count to 1 or more.")
    if frames.is_floating_point() or frames.dtype == torch.bool:
        raise ValueError("frame indices must be integers.")
    return frames.to(torch.int64).cpu()


def _accumulate(out, seed, stream, frames, footprint, scale):
    """out `[T,*size]` += scale * (filter `footprint` of stream `stream`) at `frames` `[T]`."""
    indices, weights = filter_weights(frames, footprint)
    needed = torch.unique(indices)
    fields = lattice_noise(seed, stream, needed, out.shape[1:])
    rows = torch.searchsorted(needed, indices)
    weights = (weights * scale).to(torch.float32).view(*weights.shape, *([1] * (out.ndim - 1)))
    for tap in range(indices.shape[1]):
        out += weights[:, tap] * fields[rows[:, tap]]


def temporal_noise(frames, size, seed, footprint_list, fresh=0.0, progress=None):
    """Temporally correlated N(0,1) noise at absolute frame indices.

    Args:
        frames: `[T]` int absolute frame indices (any order, repeats allowed; T >= 1).
        size: (C, h, w) of one frame's noise.
        seed: integer seed; with the frame index it fully determines a frame.
        footprint_list: filter footprints in frames (each >= 1), e.g. from `footprints`.
        fresh: fraction in [0,1] of the variance given to independent per-frame white noise
            (0 = fully low-pass, 1 = plain white noise).
        progress: optional `progress(done, total)` per block of frames (may raise to cancel).
    Returns:
        `[T,C,h,w]` float32 on the CPU, unit variance per element, temporal autocorrelation
        `(1 - fresh) * mean_i R_i(lag) + fresh * [lag == 0]` with R_i the filters' autocorrelations.
    """
    frames, size = _check_frames(frames), _check_size(size)
    if not 0.0 <= fresh <= 1.0:
        raise ValueError(f"fresh must be in [0, 1] (the share of per-frame white noise), got {fresh!r}.")
    if fresh < 1.0 and (not footprint_list or min(footprint_list) < 1):
        raise ValueError(f"need at least one footprint >= 1 frame, got {list(footprint_list)!r}.")
    block = max(1, _BLOCK_ELEMENTS // math.prod(size))
    out = torch.zeros((frames.numel(), *size), dtype=torch.float32)
    filter_scale = math.sqrt((1.0 - fresh) / max(len(footprint_list), 1))
    for start in range(0, frames.numel(), block):
        chunk, target = frames[start:start + block], out[start:start + block]
        if fresh < 1.0:
            for number, footprint in enumerate(footprint_list):
                _accumulate(target, seed, number + 1, chunk, footprint, filter_scale)
        if fresh > 0.0:
            target += math.sqrt(fresh) * lattice_noise(seed, 0, chunk, size)
        if progress is not None:
            progress(min(start + block, frames.numel()), frames.numel())
    return out
