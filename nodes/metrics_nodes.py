"""Temporal-quality measurement node: E_warp, colour similarity over time, RWE/PSNR/SSIM, plots, x-t slice."""
from ..kernels.xt_slice import xt_slice
from ..models.metrics.temporal_report import format_report, plot_report, temporal_metrics
from . import host
from .flow_nodes import builtin_estimator
from .tensors import frames_to_image, image_to_frames


class TameTemporalMetrics:
    DESCRIPTION = ("Temporal quality of a video: warping error E_warp (flow estimated on the video itself), "
                   "colour similarity over time S(t); with a reference video also RWE, PSNR and SSIM. "
                   "Outputs a text report, plots and an x-t slice image.")
    CATEGORY = "Tame/metrics"
    FUNCTION = "measure"
    RETURN_TYPES = ("STRING", "IMAGE", "IMAGE")
    RETURN_NAMES = ("report", "plot", "xt_slice")
    OUTPUT_TOOLTIPS = (
        "Text report: E_warp, colour similarity and (with a reference) RWE, PSNR, SSIM.",
        "Plots of the per-pair and per-frame curves.",
        "x-t slice of the video (one row over time): flicker shows as streaks.",
    )
    OUTPUT_NODE = True

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "video": ("IMAGE", {"tooltip": "The video to measure (at least 2 frames)."}),
        }, "optional": {
            "reference": ("IMAGE", {"tooltip": "Ground-truth video of the same length and size (enables RWE, PSNR, SSIM)."}),
            "flow_model": ("TAME_FLOW_MODEL", {"tooltip": "Estimator for E_warp/RWE; default: built-in medium."}),
        }}

    def measure(self, video, reference=None, flow_model=None):
        frames = image_to_frames(video, "video", min_frames=2)
        reference_frames = None if reference is None else image_to_frames(reference, "reference")
        result = temporal_metrics(frames, flow_model or builtin_estimator(), reference_frames,
                                  progress=host.progress(frames.shape[0], "temporal metrics"))
        report = format_report(result)
        plot = plot_report(result)[None]
        slice_image = xt_slice(frames)[None]
        return {"ui": {"text": [report]},
                "result": (report, frames_to_image(plot), frames_to_image(slice_image))}


NODE_CLASS_MAPPINGS = {"TameTemporalMetrics": TameTemporalMetrics}
NODE_DISPLAY_NAME_MAPPINGS = {"TameTemporalMetrics": "Temporal Metrics (Tame)"}
