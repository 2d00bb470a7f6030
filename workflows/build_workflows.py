"""Regenerate the UI-format workflows in this folder from compact descriptions.

Run `python workflows/build_workflows.py` after changing a node's inputs: widget values are written
in INPUT_TYPES order with the node defaults, exactly as ComfyUI's frontend saves a graph.
"""
import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
WIDGET_TYPES = {"INT", "FLOAT", "STRING", "BOOLEAN"}

# name: [(node id, class, {widget: value}), ...], [(from id, from slot, to id, input name), ...]
WORKFLOWS = {
    "video_load_save": (
        "Load a video file and save it again (frame range, stride and size from the loader).",
        [(1, "TameLoadVideo", {"video": "tame_sample.mp4", "frame_count": 16}),
         (2, "TameSaveVideo", {"filename_prefix": "tame/copy", "format": "png"})],
        [(1, 0, 2, "images")]),
    "flow_estimate": (
        "Estimate bidirectional flow on a video, draw it with occluded pixels in black, save flow and pictures.",
        [(1, "TameLoadVideo", {"video": "tame_sample.mp4", "frame_count": 24}),
         (2, "TameLoadFlowModel", {}),
         (3, "TameEstimateFlow", {}),
         (4, "TameFlowConsistency", {}),
         (5, "TameVisualizeFlow", {}),
         (6, "TameSaveVideo", {"filename_prefix": "tame/flow_colors", "format": "mp4", "fps": 8.0}),
         (7, "TameSaveFlow", {"filename_prefix": "tame/flow"})],
        [(1, 0, 3, "images"), (2, 0, 3, "flow_model"), (3, 0, 4, "flow"), (3, 0, 5, "flow"),
         (4, 1, 5, "overlay_mask"), (5, 0, 6, "images"), (3, 0, 7, "flow")]),
    "temporal_report": (
        "Temporal-quality report of a video: E_warp, colour similarity over time, plots and an x-t slice.",
        [(1, "TameLoadVideo", {"video": "tame_sample.mp4", "frame_count": 24}),
         (2, "TameTemporalMetrics", {}),
         (3, "TameSaveVideo", {"filename_prefix": "tame/report_plot", "format": "png"}),
         (4, "TameSaveVideo", {"filename_prefix": "tame/report_xt", "format": "png"})],
        [(1, 0, 2, "video"), (2, 1, 3, "images"), (2, 2, 4, "images")]),
}


def _inputs(cls):
    spec = cls.INPUT_TYPES()
    return {**spec.get("required", {}), **spec.get("optional", {})}


def _is_widget(kind, options):
    return (isinstance(kind, list) or kind in WIDGET_TYPES) and not options.get("forceInput")


def build(name, description, nodes, links, mappings):
    ui_nodes, ui_links = {}, []
    for order, (node_id, class_name, values) in enumerate(nodes):
        cls = mappings[class_name]
        inputs = _inputs(cls)
        unknown = set(values) - set(inputs)
        if unknown:
            raise ValueError(f"{name}: {class_name} has no inputs {sorted(unknown)}")
        widgets = [values.get(k, opts.get("default", kind[0] if isinstance(kind, list) else None))
                   for k, (kind, *rest) in inputs.items() for opts in [rest[0] if rest else {}]
                   if _is_widget(kind, opts)]
        ui_nodes[node_id] = {
            "id": node_id, "type": class_name, "pos": [40 + 360 * order, 80 + 40 * (order % 2)],
            "size": [320, 160], "flags": {}, "order": order, "mode": 0,
            "inputs": [{"name": k, "type": kind, "link": None} for k, (kind, *rest) in inputs.items()
                       if not _is_widget(kind, rest[0] if rest else {})],
            "outputs": [{"name": n, "type": t, "links": [], "slot_index": i}
                        for i, (n, t) in enumerate(zip(cls.RETURN_NAMES, cls.RETURN_TYPES))],
            "properties": {"Node name for S&R": class_name},
            "widgets_values": widgets}
    for link_id, (src, slot, dst, input_name) in enumerate(links, start=1):
        source, target = ui_nodes[src], ui_nodes[dst]
        link_type = source["outputs"][slot]["type"]
        target_slot = next(i for i, s in enumerate(target["inputs"]) if s["name"] == input_name)
        target["inputs"][target_slot]["link"] = link_id
        source["outputs"][slot]["links"].append(link_id)
        ui_links.append([link_id, src, slot, dst, target_slot, link_type])
    return {"last_node_id": max(ui_nodes), "last_link_id": len(ui_links),
            "nodes": list(ui_nodes.values()), "links": ui_links, "groups": [], "config": {},
            "extra": {"tame_description": description}, "version": 0.4}


def main():
    sys.path.insert(0, str(HERE.parent / "tests"))
    import conftest  # noqa: F401  (makes `import tame` work from a checkout)
    from tame import NODE_CLASS_MAPPINGS
    for name, (description, nodes, links) in WORKFLOWS.items():
        graph = build(name, description, nodes, links, NODE_CLASS_MAPPINGS)
        (HERE / f"{name}.json").write_text(json.dumps(graph, indent=1) + "\n")
        print(f"wrote workflows/{name}.json")


if __name__ == "__main__":
    main()
