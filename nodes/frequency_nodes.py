"""Frequency building blocks of video super-resolution: anti-aliased downsampling and LF/HF split/merge."""

from ..kernels.frequency import blur_downsample, merge_frequencies, split_frequencies
from .tensors import frames_to_image, image_to_frames

CATEGORY = "Tame/upscale"
# IMAGE values must lie in [0,1]; the high band (roughly -0.5..0.5) is stored shifted by this much.
HIGH_OFFSET = 0.5


class TameAntiAliasDownsample:
    DESCRIPTION = ("Anti-aliased downsampling (BlurPool): binomial [1,4,6,4,1]/16 blur, then keep every 2nd "
                   "pixel, repeated for 4x and 8x. Fine patterns fade to their average instead of turning "
                   "into moire. Each halving keeps pixels 0, 2, 4, ... (a side of n px becomes ceil(n/2)).")
    CATEGORY = CATEGORY
    FUNCTION = "downsample"
    RETURN_TYPES = ("IMAGE",)
    RETURN_NAMES = ("image",)
    OUTPUT_TOOLTIPS = ("The downsampled images.",)

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "image": ("IMAGE", {"tooltip": "Images or video frames to shrink."}),
            "factor": (["2", "4", "8"], {"default": "2", "tooltip": "Downsampling factor per side."}),
        }}

    def downsample(self, image, factor):
        return (frames_to_image(blur_downsample(image_to_frames(image, "image"), int(factor))),)


class TameSplitFrequencies:
    DESCRIPTION = ("Split images into a low band (binomial blur) and the high band = image - low. IMAGE values "
                   "must stay in [0,1], so the high band is output shifted by +0.5 (0.5 = no detail); values "
                   "beyond +-0.5 are clipped. Merge Frequencies undoes the shift.")
    CATEGORY = CATEGORY
    FUNCTION = "split"
    RETURN_TYPES = ("IMAGE", "IMAGE")
    RETURN_NAMES = ("low", "high")
    OUTPUT_TOOLTIPS = ("The low band (binomial blur).", "The high band, shifted by +0.5 so it fits an IMAGE.")

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "image": ("IMAGE", {"tooltip": "Images or video frames to split."}),
            "passes": ("INT", {"default": 1, "min": 1, "max": 64,
                               "tooltip": "Blur passes of the low band: p passes = Gaussian-like blur of "
                                          "variance p px^2, so more passes move more detail into high."}),
        }}

    def split(self, image, passes):
        low, high = split_frequencies(image_to_frames(image, "image"), passes=passes)
        return (frames_to_image(low), frames_to_image(high + HIGH_OFFSET))


class TameMergeFrequencies:
    DESCRIPTION = ("Recombine a low band and a +0.5-shifted high band from Split Frequencies: "
                   "image = low + (high - 0.5), clipped to [0,1].")
    CATEGORY = CATEGORY
    FUNCTION = "merge"
    RETURN_TYPES = ("IMAGE",)
    RETURN_NAMES = ("image",)
    OUTPUT_TOOLTIPS = ("low + (high - 0.5), clipped to [0,1].",)

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "low": ("IMAGE", {"tooltip": "Low band (from Split Frequencies, possibly edited)."}),
            "high": ("IMAGE", {"tooltip": "High band stored with the +0.5 offset (0.5 = no detail)."}),
        }}

    def merge(self, low, high):
        low_frames, high_frames = image_to_frames(low, "low"), image_to_frames(high, "high")
        if low_frames.shape != high_frames.shape:
            raise ValueError(f"low {tuple(low.shape)} and high {tuple(high.shape)} must have the same frame "
                             f"count and size; split them from the same images.")
        return (frames_to_image(merge_frequencies(low_frames, high_frames - HIGH_OFFSET)),)


NODE_CLASS_MAPPINGS = {cls.__name__: cls for cls in (TameAntiAliasDownsample, TameSplitFrequencies,
                                                     TameMergeFrequencies)}
NODE_DISPLAY_NAME_MAPPINGS = {
    "TameAntiAliasDownsample": "Anti-Alias Downsample (Tame)",
    "TameSplitFrequencies": "Split Frequencies (Tame)",
    "TameMergeFrequencies": "Merge Frequencies (Tame)",
}
