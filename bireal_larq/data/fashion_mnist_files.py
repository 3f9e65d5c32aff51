"""Fashion-MNIST prepared from local copies of its four files, checked by their content.

TFDS checks each downloaded file against the SHA-256 of the compressed ``.gz`` it registered.
Copies recompressed by a distribution (Debian's ``dataset-fashion-mnist`` ships the same images
and labels in other ``.gz`` bytes) fail that check although their content is the release's. Here
the decompressed content of every file is checked against the Fashion-MNIST release instead;
files that pass are then handed to TFDS's own ``fashion_mnist`` builder with their own ``.gz``
checksums, so the prepared dataset is the one TFDS's builder makes from the release.
"""

from __future__ import annotations

import gzip
import hashlib
import os
from typing import Any

# Size and SHA-256 of each file's decompressed IDX content, as the release repository
# (github.com/zalandoresearch/fashion-mnist, data/fashion/) has them and Debian's package
# dataset-fashion-mnist 0.0~git20200523.55506a9-1 ships them.
CONTENT = {
    "train-images-idx3-ubyte.gz": (
        47040016, "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888"
    ),
    "train-labels-idx1-ubyte.gz": (
        60008, "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9"
    ),
    "t10k-images-idx3-ubyte.gz": (
        7840016, "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b"
    ),
    "t10k-labels-idx1-ubyte.gz": (
        10008, "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34"
    ),
}
# Where TFDS's fashion_mnist builder downloads them from (the keys of its checksums).
URL = "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"


def _digest(path: str, opener) -> tuple[int, str]:
    sha, size = hashlib.sha256(), 0
    with opener(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            sha.update(chunk)
            size += len(chunk)
    return size, sha.hexdigest()


def check_files(manual_dir: str) -> dict[str, tuple[int, str]]:
    """Checks the four files' decompressed content; returns each ``.gz``'s size and SHA-256.

    Raises:
        ValueError: a file is missing, not gzip, truncated or of other content (the message
            names every such file).
    """
    found, bad = {}, []
    for name, (size, sha) in CONTENT.items():
        path = os.path.join(manual_dir, name)
        try:
            content = _digest(path, gzip.open)
        except (OSError, EOFError) as err:
            bad.append(f"{name} ({type(err).__name__}: {err})")
            continue
        if content != (size, sha):
            bad.append(f"{name} (content of {content[0]:,} bytes is not the release's)")
            continue
        found[name] = _digest(path, open)
    if bad:
        raise ValueError(
            f"Fashion-MNIST files in {manual_dir} are not the release's: {'; '.join(bad)}"
        )
    return found


def builder(tfds: Any, data_dir: str, manual_dir: str):
    """TFDS's ``fashion_mnist`` builder, accepting the checked local files of ``manual_dir``.

    Raises:
        ValueError: see :func:`check_files`.
    """
    from tensorflow_datasets.core.download import checksums

    url_infos = {
        URL + name: checksums.UrlInfo(size=size, checksum=sha, filename=name)
        for name, (size, sha) in check_files(manual_dir).items()
    }
    base = type(tfds.builder("fashion_mnist", data_dir=data_dir))

    class FashionMnistFromFiles(base, skip_registration=True):
        name = base.name
        __doc__ = base.__doc__

    FashionMnistFromFiles.url_infos = url_infos  # the checked files' own .gz checksums
    return FashionMnistFromFiles(data_dir=data_dir)
