"""Still images from files: one reader (PyAV, as the pack's video files) and folder listing."""
from pathlib import Path

import av
import torch

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff")


def read_image(path):
    """One image file -> `[3,h,w]` float32 in [0,1] (grey and RGBA become RGB)."""
    try:
        with av.open(str(path)) as container:
            array = next(container.decode(video=0)).to_ndarray(format="rgb24")
    except (av.FFmpegError, StopIteration, OSError) as error:
        raise ValueError(f"'{path}' could not be read as an image ({error}); remove it from the folder or "
                         f"convert it to PNG.") from error
    return torch.from_numpy(array).permute(2, 0, 1).float() / 255.0


def images_in(folder):
    """The image files of `folder` (IMAGE_SUFFIXES, any case), sorted by name -> list of Paths."""
    return sorted(p for p in Path(folder).iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def image_files(folder):
    """`images_in(folder)`, with an error that says what to give when the folder is missing or empty."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"image folder {folder} does not exist; give a folder of .png/.jpg photos "
                                f"(bench/edit/export_ae_images.py writes the ones the pack was trained on).")
    paths = images_in(folder)
    if not paths:
        raise FileNotFoundError(f"no image files ({', '.join(IMAGE_SUFFIXES)}) in {folder}.")
    return paths


def load_image_folder(folder):
    """Every image file of `folder` (see `image_files`) -> list of `[3,h,w]` float32 in [0,1]."""
    return [read_image(path) for path in image_files(folder)]
