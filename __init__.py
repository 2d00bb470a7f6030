"""Tame: temporally consistent video tools for ComfyUI (optical flow, warping, metrics, video I/O).

ComfyUI imports this file as the package of the custom node; everything inside is imported relatively.
"""
from .nodes import NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS
from .nodes.host import register_model_folders

register_model_folders()

__all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS"]
