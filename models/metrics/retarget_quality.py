"""Weight-free quality measures of a retargeted image (bench and tests; the same measure for every method).

- Bidirectional patch similarity (Simakov et al. 2008): completeness = mean over source patches of the
  distance to the nearest output patch (is all source content still there?), coherence = mean over
  output patches of the distance to the nearest source patch (is everything in the output from the
  source, no new artefacts?). Exact nearest neighbours on small copies (longer side `side` px).
  Completeness also searches the output stretched back by part or all of the frame's aspect change
  (factors 1, sqrt(r), r): content that is present but squeezed counts as present, content that was
  cut away does not. Coherence compares the output as it is.
- Salient distortion (ARS-like, continuous): from a registration (output pixel -> source position),
  per output block the source extent over the output extent in x and y (10-90 % quantiles) gives the
  local backward scales (bx, by); the block's distortion is |log(bx / by)| (0 for any similarity),
  weighted by the source saliency where the block comes from. The registration is the method's
  exact mapping (its warp; for seam carving the recovered kept pixels, `carved_registration`).
"""
import numpy as np
import torch
import torch.nn.functional as F

from ...kernels.warp import pixel_grid, remap

PATCH = 5
SIDE = 96
BLOCK = 8
_QUERY_CHUNK = 2048


def _small(image, scale):
    h, w = image.shape[-2:]
    return F.interpolate(image, size=(max(PATCH, round(h * scale)), max(PATCH, round(w * scale))), mode="area")


def _patches(image):
    """`[1,C,H,W]` -> patch vectors `[(H-p+1)(W-p+1), C p^2]` and the patch-centre coordinates `[2,h',w']`."""
    vectors = F.unfold(image, PATCH)[0].T
    h, w = image.shape[-2] - PATCH + 1, image.shape[-1] - PATCH + 1
    return vectors, pixel_grid(h, w)[0] + PATCH // 2


def _nearest(queries, keys):
    """Squared distance and index of the nearest key for every query row."""
    distances, indices = [], []
    key_norms = keys.square().sum(1)
    for start in range(0, queries.shape[0], _QUERY_CHUNK):
        q = queries[start:start + _QUERY_CHUNK]
        d = (q.square().sum(1, keepdim=True) - 2 * q @ keys.T + key_norms).clamp_min(0)
        best = d.min(1)
        distances.append(best.values)
        indices.append(best.indices)
    return torch.cat(distances), torch.cat(indices)


def bidirectional_similarity(source, output, side=SIDE):
    """Source `[1,3,H,W]`, output `[1,3,H',W']` in [0,1] -> dict.

    completeness, coherence: mean squared patch distance per value (lower is better);
    registration: `[1,2,H',W']` source coordinates (full-size pixels) of every output pixel, from the
    coherence nearest neighbours (patch centres; borders take the nearest patch).
    """
    scale = side / max(source.shape[-2:])
    small_source, small_output = _small(source, scale), _small(output, scale)
    source_vectors, source_centres = _patches(small_source)
    output_vectors, output_centres = _patches(small_output)
    stretched = [output_vectors] + [_patches(variant)[0] for variant in _stretched(small_output, source)]
    completeness, _ = _nearest(source_vectors, torch.cat(stretched))
    coherence, matches = _nearest(output_vectors, source_vectors)
    dims = source_vectors.shape[1]
    matched = source_centres.reshape(2, -1)[:, matches].reshape(1, 2, *output_centres.shape[-2:])
    full = matched.new_tensor([source.shape[-1] / small_source.shape[-1], source.shape[-2] / small_source.shape[-2]])
    matched = (matched + 0.5) * full.view(1, 2, 1, 1) - 0.5
    registration = F.interpolate(F.pad(matched, [PATCH // 2] * 4, mode="replicate"), size=output.shape[-2:],
                                 mode="nearest")
    return {"completeness": completeness.mean().item() / dims, "coherence": coherence.mean().item() / dims,
            "registration": registration}


def _stretched(small_output, source):
    """The output stretched along the axis it was squeezed by sqrt(r) and r, r = the aspect change."""
    (h, w), (th, tw) = source.shape[-2:], small_output.shape[-2:]
    change = (w / h) / (tw / th)
    variants = []
    for factor in (abs(change) ** 0.5, change):
        if abs(np.log(factor)) < 0.05:
            continue
        size = (th, max(PATCH, round(tw * factor))) if factor > 1 else (max(PATCH, round(th / factor)), tw)
        variants.append(F.interpolate(small_output, size=size, mode="bilinear", align_corners=False, antialias=True))
    return variants


def carved_registration(source, output):
    """Source x of every output pixel when each output row is the source row with pixels removed
    (seam carving, shrinking the width): `[1,2,H,W']`; found by matching each row as a subsequence.

    source `[1,3,H,W]`, output `[1,3,H,W']` holding exactly the source's values (uint8 round trip).
    Identical neighbours make the match ambiguous within such a run; that only moves a coordinate inside
    a flat region.
    """
    src = (source[0].permute(1, 2, 0).numpy() * 255).round().astype(np.int32)
    out = (output[0].permute(1, 2, 0).numpy() * 255).round().astype(np.int32)
    h, w_out = out.shape[:2]
    xs = np.zeros((h, w_out), dtype=np.float32)
    for y in range(h):
        codes_in = src[y, :, 0] * 65536 + src[y, :, 1] * 256 + src[y, :, 2]
        codes_out = out[y, :, 0] * 65536 + out[y, :, 1] * 256 + out[y, :, 2]
        j = 0
        for k, code in enumerate(codes_out):
            while j < len(codes_in) - 1 and codes_in[j] != code:
                j += 1
            xs[y, k] = j
            j = min(j + 1, len(codes_in) - 1)
    ys = np.repeat(np.arange(h, dtype=np.float32)[:, None], w_out, 1)
    return torch.from_numpy(np.stack((xs, ys)))[None]


def block_scales(registration, block=BLOCK):
    """Registration `[1,2,H',W']` -> local backward scales (bx, by), each `[H'//block, W'//block]`."""
    h, w = (registration.shape[-2] // block) * block, (registration.shape[-1] // block) * block
    blocks = registration[..., :h, :w].unfold(2, block, block).unfold(3, block, block)   # [1,2,bh,bw,b,b]
    values = blocks.reshape(2, h // block, w // block, block * block)
    spread = values.quantile(0.9, dim=-1) - values.quantile(0.1, dim=-1)
    own = pixel_grid(block, block).reshape(2, -1)
    own_spread = own.quantile(0.9, dim=-1) - own.quantile(0.1, dim=-1)
    return spread[0] / own_spread[0], spread[1] / own_spread[1]


def salient_distortion(registration, saliency_map, block=BLOCK):
    """Saliency-weighted mean of |log(bx / by)| over output blocks (0 = every salient block keeps its aspect).

    registration: `[1,2,H',W']` source coordinates; saliency_map: `[1,1,H,W]` on the source.
    """
    bx, by = block_scales(registration, block)
    distortion = (bx.clamp_min(1e-3) / by.clamp_min(1e-3)).log().abs()
    h, w = bx.shape[0] * block, bx.shape[1] * block
    weight = remap(saliency_map, registration[..., :h, :w], padding="border")[0]
    weight = F.avg_pool2d(weight, block)[0, 0]
    return (weight * distortion).sum().item() / weight.sum().clamp_min(1e-8).item()


def mask_box_aspect(mask, threshold=0.5):
    """Width / height of the bounding box of `mask` `[H,W]` > threshold (pixels counted inclusively)."""
    ys, xs = torch.nonzero(mask > threshold, as_tuple=True)
    if ys.numel() == 0:
        raise ValueError("the mask is empty: nothing above the threshold.")
    return (xs.max() - xs.min() + 1).item() / (ys.max() - ys.min() + 1).item()
