"""Whole-video procedures that stream or filter over time: the flow-guided temporal filter and the
streaming temporal upscale wrapper."""
