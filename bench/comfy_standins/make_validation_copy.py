"""Write a small, CPU-sized copy of workflows/instructpix2pix_consistency.json for a validation run.

The shipped workflow loads 16 frames (max side 512) and samples 20 steps: far too slow on a CPU. This copy
changes widget values only (same nodes, same links): 4 frames, max side 64 (the 320x240 sample becomes
64x48), 2 sampler steps, Temporal Noise frames/width/height to match (the NOISE output takes its shape
from the latent it fills anyway), and optionally fewer epochs for Latent MLP Refine and Generator
Finetune (`--epochs`; 0 keeps the preset's, 5 + 5 epochs in out-of-domain mode).

    python bench/comfy_standins/make_validation_copy.py /tmp/ip2p_validate.json [--epochs 1]

widgets_values follow each node's widget inputs in order (as ComfyUI's editor saves them):
TameLoadVideo [video, start_frame, frame_count, stride, max_side]; BasicScheduler [scheduler, steps,
denoise]; TameTemporalNoise [seed, control_after_generate, frames, start_frame, width, height, ...];
TameLatentMLPRefine / TameGeneratorFinetune [mode, preset, epochs, ...].
"""
import argparse
import json
from pathlib import Path

SHIPPED = Path(__file__).resolve().parents[2] / "workflows" / "instructpix2pix_consistency.json"
# class -> {widget index: (widget name, value)}
CHANGES = {
    "TameLoadVideo": {2: ("frame_count", 4), 4: ("max_side", 64)},
    "BasicScheduler": {1: ("steps", 2)},
    "TameTemporalNoise": {2: ("frames", 4), 4: ("width", 64), 5: ("height", 48)},
}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", help="where to write the copy (outside workflows/)")
    parser.add_argument("--workflow", default=str(SHIPPED))
    parser.add_argument("--epochs", type=int, default=0,
                        help="epochs of Latent MLP Refine and Generator Finetune (0 = the preset's)")
    args = parser.parse_args(argv)
    graph = json.loads(Path(args.workflow).read_text())
    changes = dict(CHANGES)
    if args.epochs:
        changes["TameLatentMLPRefine"] = changes["TameGeneratorFinetune"] = {2: ("epochs", args.epochs)}
    seen = set()
    for node in graph["nodes"]:
        for index, (name, value) in changes.get(node["type"], {}).items():
            old = node["widgets_values"][index]
            if type(old) is not type(value):
                raise ValueError(f"node {node['id']} {node['type']}: widget {index} is {old!r}, expected {name}")
            node["widgets_values"][index] = value
            print(f"node {node['id']} {node['type']}: {name} {old} -> {value}")
        seen.add(node["type"])
    missing = set(changes) - seen
    if missing:
        raise ValueError(f"no {sorted(missing)} node in {args.workflow}")
    Path(args.out).write_text(json.dumps(graph, indent=1) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
