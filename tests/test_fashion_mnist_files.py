"""Local Fashion-MNIST files are checked by their decompressed content, not their .gz bytes."""

import gzip
import os
import shutil

import pytest

from bireal_larq.data import fashion_mnist_files
from bireal_larq.data.sources import FASHION_MNIST_DIR, fashion_mnist_available

pytestmark = pytest.mark.skipif(not fashion_mnist_available(),
                                reason="Debian's dataset-fashion-mnist is not installed")


def _copy(tmp_path, level: int | None = None):
    """The four files, as they are or recompressed at another gzip level (other .gz bytes)."""
    for name in fashion_mnist_files.CONTENT:
        source, target = os.path.join(FASHION_MNIST_DIR, name), tmp_path / name
        if level is None:
            shutil.copy(source, target)
        else:
            with gzip.open(source, "rb") as f:
                target.write_bytes(gzip.compress(f.read(), compresslevel=level))
    return tmp_path


def test_recompressed_files_of_the_release_are_accepted_with_their_own_checksums(tmp_path):
    original = fashion_mnist_files.check_files(FASHION_MNIST_DIR)
    recompressed = fashion_mnist_files.check_files(str(_copy(tmp_path, level=1)))
    assert original.keys() == recompressed.keys() == fashion_mnist_files.CONTENT.keys()
    for name in original:  # other .gz bytes, the same content
        assert original[name] != recompressed[name]
        assert recompressed[name][0] == (tmp_path / name).stat().st_size


def test_truncated_or_other_files_are_refused_by_name(tmp_path):
    directory = _copy(tmp_path)
    labels = directory / "t10k-labels-idx1-ubyte.gz"
    labels.write_bytes(labels.read_bytes()[:-100])  # cut short
    images = directory / "train-labels-idx1-ubyte.gz"
    images.write_bytes(gzip.compress(b"\0" * 60008))  # a gzip file of other content
    (directory / "t10k-images-idx3-ubyte.gz").unlink()
    with pytest.raises(ValueError) as err:
        fashion_mnist_files.check_files(str(directory))
    message = str(err.value)
    assert "t10k-labels-idx1-ubyte.gz (EOFError" in message
    assert "train-labels-idx1-ubyte.gz (content of 60,008 bytes is not the release's)" in message
    assert "t10k-images-idx3-ubyte.gz (FileNotFoundError" in message
    assert "train-images-idx3-ubyte.gz" not in message
