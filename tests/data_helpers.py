"""Builders of small image files and ImageNet-format archives for the data tests."""

from __future__ import annotations

import io
import os
import struct
import tarfile
import zlib

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


def _png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def png_bytes(array: np.ndarray, bit_depth: int = 8) -> bytes:
    """A PNG of an (H, W, 3) or (H, W, 4) uint8 array, written by hand: with ``bit_depth=16``
    each sample v is stored as v * 257 (PIL writes no 16-bit colour PNG)."""
    height, width, channels = array.shape
    if bit_depth == 16:
        samples = (array.astype(np.uint16) * 257).astype(">u2")  # big-endian, as PNG stores
    else:
        samples = array.astype(np.uint8)
    rows = b"".join(b"\x00" + samples[y].tobytes() for y in range(height))
    color_type = {3: 2, 4: 6}[channels]
    header = struct.pack(">IIBBBBB", width, height, bit_depth, color_type, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", header)
        + _png_chunk(b"IDAT", zlib.compress(rows)) + _png_chunk(b"IEND", b"")
    )


def png_header_bytes(height: int, width: int) -> bytes:
    """A PNG whose header (valid CRC) declares an RGB image of height x width, followed by
    the pixel data of a few rows only: a decompression bomb's header without its size."""
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    rows = zlib.compress(b"\x00" * (3 * 8 + 1) * 4)
    return (
        b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", header) + _png_chunk(b"IDAT", rows)
        + _png_chunk(b"IEND", b"")
    )


def with_jpeg_size(data: bytes, height: int, width: int) -> bytes:
    """A JPEG whose start-of-frame marker declares height x width (the data stays as it is)."""
    position = 2
    while position < len(data):
        marker = data[position + 1]
        (length,) = struct.unpack(">H", data[position + 2 : position + 4])
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            size = struct.pack(">HH", height, width)
            return data[: position + 5] + size + data[position + 9 :]
        position += 2 + length
    raise ValueError("no start-of-frame marker")


def gif_bytes(frames: list[np.ndarray]) -> bytes:
    """An (animated, with several frames) GIF of RGB arrays, each quantised to a palette."""
    images = [Image.fromarray(frame).convert("P") for frame in frames]
    buffer = io.BytesIO()
    images[0].save(buffer, format="GIF", save_all=len(images) > 1, append_images=images[1:])
    return buffer.getvalue()


def rgba_png_bytes(array: np.ndarray, alpha: int = 128) -> bytes:
    """A PNG with an alpha channel (constant ``alpha``) over the RGB ``array``."""
    rgba = np.concatenate([array, np.full(array.shape[:2] + (1,), alpha, np.uint8)], axis=-1)
    buffer = io.BytesIO()
    Image.fromarray(rgba, "RGBA").save(buffer, format="PNG")
    return buffer.getvalue()


def first_batches(ds, n: int = 2) -> list[tuple[np.ndarray, np.ndarray]]:
    """The first ``n`` (images, labels) batches of a dataset, as NumPy arrays."""
    return [(x.numpy(), y.numpy()) for x, y in ds.take(n)]
