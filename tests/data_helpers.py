"""Builders of small image files and ImageNet-format archives for the data tests."""

from __future__ import annotations

import io
import os
import tarfile

import numpy as np
from PIL import Image


def rgb_array(height: int = 40, width: int = 56, seed: int = 0) -> np.ndarray:
    """A smooth random-ish RGB image (compresses like a photo, unlike white noise)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width]
    base = rng.uniform(0, 255, size=3)
    image = np.stack(
        [(base[c] + 3 * x * (c + 1) + 2 * y * (3 - c)) % 256 for c in range(3)], axis=-1
    )
    return image.astype(np.uint8)


def jpeg_bytes(array: np.ndarray, mode: str = "RGB", fmt: str = "JPEG") -> bytes:
    image = Image.fromarray(array)
    if mode != image.mode:
        image = image.convert(mode)
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, quality=90)
    return buffer.getvalue()


def write(path: str, data: bytes) -> str:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)
    return path


def bad_image_bytes() -> dict[str, bytes]:
    """The kinds of odd files real ImageNet holds, keyed by a short name.

    Readable: ``gray`` (1-channel JPEG), ``cmyk`` (CMYK JPEG), ``png`` (a PNG, to be saved
    under a .JPEG name). Unreadable: ``truncated`` (a JPEG cut in half), ``corrupt`` (JPEG
    markers followed by garbage), ``garbage`` (not an image at all), ``empty``.
    """
    good = jpeg_bytes(rgb_array(48, 64, seed=1))
    return {
        "gray": jpeg_bytes(rgb_array(30, 50, seed=2), mode="L"),
        "cmyk": jpeg_bytes(rgb_array(30, 50, seed=3), mode="CMYK"),
        "png": jpeg_bytes(rgb_array(30, 50, seed=4), fmt="PNG"),
        "truncated": good[: len(good) // 2],
        "corrupt": good[:20] + bytes(np.random.default_rng(5).integers(0, 256, 400, np.uint8)),
        "garbage": b"this is not an image" * 10,
        "empty": b"",
    }


READABLE = ("gray", "cmyk", "png")
UNREADABLE = ("truncated", "corrupt", "garbage", "empty")


def make_image_folder(
    root: str, classes=("cat", "dog", "emu"), per_class: int = 4, val_per_class: int = 2
) -> str:
    """root/{train,val}/<class>/<i>.JPEG with small real JPEGs of a few sizes."""
    for split, count in (("train", per_class), ("val", val_per_class)):
        for c, name in enumerate(classes):
            for i in range(count):
                h, w = (40, 56) if i % 2 else (52, 36)
                data = jpeg_bytes(
                    rgb_array(h, w, seed=100 * c + i + (0 if split == "train" else 7))
                )
                write(os.path.join(root, split, name, f"{name}_{i}.JPEG"), data)
    return root


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


def make_imagenet_tars(manual_dir: str, synsets=("n01440764", "n01443537"), per_class=3, val=4):
    """ILSVRC2012_img_train.tar (one nXXXXXXXX.tar per class) and ILSVRC2012_img_val.tar.

    Validation files carry the real names ILSVRC2012_val_00000001.JPEG, ...: TFDS 4.8.3 sorts
    the names in the archive and zips them with its bundled validation_labels.txt, so image k
    gets the k-th label of the real validation set.
    """
    os.makedirs(manual_dir, exist_ok=True)
    with tarfile.open(os.path.join(manual_dir, "ILSVRC2012_img_train.tar"), "w") as outer:
        for c, synset in enumerate(synsets):
            inner_buffer = io.BytesIO()
            with tarfile.open(fileobj=inner_buffer, mode="w") as inner:
                for i in range(per_class):
                    data = jpeg_bytes(rgb_array(60, 80, seed=10 * c + i))
                    _add_bytes(inner, f"{synset}_{i + 1}.JPEG", data)
            _add_bytes(outer, f"{synset}.tar", inner_buffer.getvalue())
    with tarfile.open(os.path.join(manual_dir, "ILSVRC2012_img_val.tar"), "w") as tar:
        for i in range(val):
            data = jpeg_bytes(rgb_array(70, 50, seed=1000 + i), mode="L" if i == 1 else "RGB")
            _add_bytes(tar, f"ILSVRC2012_val_{i + 1:08d}.JPEG", data)
    return manual_dir
