"""Export the scikit-image sample photos used to train the built-in autoencoder (and the held-out
ones used to test it) as PNG files, so the pack itself never imports scikit-image.

Usage: python bench/edit/export_ae_images.py [--out /work/scratch/ae_images]
Writes OUT/train/<name>.png and OUT/heldout/<name>.png (RGB, 8 bit; grey images repeated to RGB,
the RGBA logo is not used). Then: tame train-autoencoder --images OUT/train --steps N --out PATH
"""
import argparse
from pathlib import Path

import numpy as np
from skimage import data, io

# Colour photos, then grey ones (texture variety: grass, gravel, brick, text, coins, ...).
TRAIN_PHOTOS = ("rocket", "immunohistochemistry", "hubble_deep_field", "retina", "motorcycle_left",
                "colorwheel", "camera", "coins", "moon", "page", "text", "grass", "gravel", "brick",
                "cell", "clock")
# Never seen in training: the autoencoder's PSNR is reported on these, and bench/edit renders its
# clips over them.
HELD_OUT_PHOTOS = ("astronaut", "coffee", "chelsea")


def load_photo(name):
    """scikit-image sample `name` -> `[H,W,3]` uint8."""
    if name == "motorcycle_left":
        image = data.stereo_motorcycle()[0]
    else:
        image = getattr(data, name)()
    if image.dtype == bool:
        image = image.astype(np.uint8) * 255
    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, axis=2)
    return np.ascontiguousarray(image[..., :3].astype(np.uint8))


def export(out):
    out = Path(out)
    for folder, names in (("train", TRAIN_PHOTOS), ("heldout", HELD_OUT_PHOTOS)):
        (out / folder).mkdir(parents=True, exist_ok=True)
        for name in names:
            image = load_photo(name)
            io.imsave(out / folder / f"{name}.png", image, check_contrast=False)
            print(f"{folder}/{name}.png {image.shape[1]}x{image.shape[0]}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="/work/scratch/ae_images", help="output folder")
    export(parser.parse_args().out)
