"""Content-aware retargeting (HALO ideas): saliency, two-layer mesh warps, composite, video."""
