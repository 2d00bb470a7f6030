"""ComfyUI node classes of the pack, collected into the mappings ComfyUI reads."""
from . import (
    edit_nodes,
    flow_nodes,
    frequency_nodes,
    longvideo_nodes,
    metrics_nodes,
    retarget_nodes,
    streaming_nodes,
    triplane_nodes,
    upscale_wrapper_nodes,
    video_io,
    vsr_nodes,
)

NODE_CLASS_MAPPINGS = {}
NODE_DISPLAY_NAME_MAPPINGS = {}
for _module in (video_io, flow_nodes, metrics_nodes, frequency_nodes, upscale_wrapper_nodes, vsr_nodes,
                edit_nodes, streaming_nodes, longvideo_nodes, retarget_nodes, triplane_nodes):
    NODE_CLASS_MAPPINGS.update(_module.NODE_CLASS_MAPPINGS)
    NODE_DISPLAY_NAME_MAPPINGS.update(_module.NODE_DISPLAY_NAME_MAPPINGS)
