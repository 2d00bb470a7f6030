"""Video super-resolution: the TameVSRNet architecture, chunked/tiled/streamed inference, weight I/O."""
from .arch import SUPPORTED_SCALES, PropagationState, TameVSRNet
from .inference import upscale_video, upscale_video_stream
from .weights import VSRModel, check_scale, load_vsr_weights, save_vsr_weights

__all__ = ["SUPPORTED_SCALES", "PropagationState", "TameVSRNet", "upscale_video", "upscale_video_stream",
           "VSRModel", "check_scale", "load_vsr_weights", "save_vsr_weights"]
