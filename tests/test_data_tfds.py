"""Tests of the TFDS datasets, prepared offline from their manual files: ImageNet mocked and
from a tiny real archive pair, Fashion-MNIST from Debian's files (skipped where absent), and
the errors naming missing or damaged manual files."""

from __future__ import annotations

import dataclasses
import gzip
import os
import re

import numpy as np
import pytest
from data_helpers import first_batches, make_imagenet_tars, write

from bireal_larq import data as D
from bireal_larq.data import specs

# ------------------------------------------------------------------------------------------
# Manual files: missing or damaged


def test_imagenet_missing_validation_tar_is_an_error(tmp_path):
    manual = tmp_path / "manual"
    write(str(manual / "ILSVRC2012_img_train.tar"), b"")
    with pytest.raises(FileNotFoundError) as error:
        D.prepare("imagenet2012", data_dir=str(tmp_path / "tfds"), manual_dir=str(manual))
    message = str(error.value)
    assert "lacks ILSVRC2012_img_val.tar" in message
    assert f"{manual}/ILSVRC2012_img_val.tar" in message and "[MISSING]" in message
    assert f"{manual}/ILSVRC2012_img_train.tar: the training images" in message


def test_fashion_mnist_missing_files_error_says_how_to_install(tmp_path, monkeypatch):
    # The spec's default manual dir (Debian's) is where the files are looked for by default.
    absent = str(tmp_path / "absent")
    spec = dataclasses.replace(specs.SPECS["fashion_mnist"], manual_dir=absent)
    monkeypatch.setitem(specs.SPECS, "fashion_mnist", spec)
    with pytest.raises(FileNotFoundError) as error:
        D.prepare("fashion_mnist", data_dir=str(tmp_path / "tfds"))
    message = str(error.value)
    assert f"{absent} lacks train-images-idx3-ubyte.gz, " in message
    assert "`apt-get install dataset-fashion-mnist` as root" in message
    assert f"{absent}/t10k-labels-idx1-ubyte.gz: their labels  [MISSING]" in message
    with pytest.raises(FileNotFoundError, match=r"lacks train-images-idx3-ubyte.gz"):
        D.prepare("fashion_mnist", data_dir=str(tmp_path / "tfds"), manual_dir=str(tmp_path))


def test_cifar_without_its_archive_is_an_error_not_a_download(tmp_path):
    # Offline, TFDS's download would hang; the archive's place and source are named instead.
    manual = os.path.join(str(tmp_path / "tfds"), "downloads", "manual", "cifar-10-binary.tar.gz")
    with pytest.raises(FileNotFoundError) as error:
        D.get_dataset("cifar10", "train", batch_size=8, training=True,
                      data_dir=str(tmp_path / "tfds"))
    message = str(error.value)
    assert re.search(re.escape(manual) + r": .*\[MISSING\]", message), message
    assert "https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz" in message
    assert "nothing is downloaded at run time" in message
    with pytest.raises(FileNotFoundError, match=r"lacks cifar-100-binary.tar.gz\. Put it there"):
        D.prepare("cifar100", data_dir=str(tmp_path / "tfds"), manual_dir=str(tmp_path))


def test_truncated_manual_files_are_named_not_a_tfds_traceback(tmp_path):
    manual = tmp_path / "manual"
    manual.mkdir()
    for name in ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
                 "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"):
        (manual / name).write_bytes(gzip.compress(bytes(range(256)) * 64)[:200])  # cut short
    with pytest.raises(ValueError, match=r"Preparing fashion_mnist from .*manual failed .*"
                       r"probably truncated or corrupt: t10k-images-idx3-ubyte\.gz \(200 bytes\)"):
        D.prepare("fashion_mnist", data_dir=str(tmp_path / "tfds"), manual_dir=str(manual))


# ------------------------------------------------------------------------------------------
# TFDS ImageNet: mocked, and a tiny real archive pair


def test_imagenet_through_tfds_mock_data(tmp_path):
    # tfds.testing imports dill, which TFDS does not require: setup.py's test extra installs it.
    import tensorflow_datasets as tfds

    manual = tmp_path / "manual"
    for f in ("ILSVRC2012_img_train.tar", "ILSVRC2012_img_val.tar"):
        write(str(manual / f), b"")
    with tfds.testing.mock_data(num_examples=6):
        ds, n = D.get_dataset(
            "imagenet2012",
            "train",
            batch_size=2,
            training=True,
            seed=0,
            data_dir=str(tmp_path / "tfds"),
            manual_dir=str(manual),
            image_size=32,
        )
        batches = first_batches(ds, 5)
        ev, _ = D.get_dataset(
            "imagenet2012",
            "test",
            batch_size=4,
            training=False,
            data_dir=str(tmp_path / "tfds"),
            manual_dir=str(manual),
        )
        eval_batches = first_batches(ev, 5)
    assert n == 6 and len(batches) == 3
    x, y = batches[0]
    assert x.shape == (2, 32, 32, 3) and y.shape == (2, 1000)
    assert [b[0].shape for b in eval_batches] == [(4, 224, 224, 3), (2, 224, 224, 3)]


@pytest.fixture(scope="module")
def tiny_imagenet(tmp_path_factory):
    root = tmp_path_factory.mktemp("imagenet")
    manual = make_imagenet_tars(str(root / "manual"))
    data_dir = str(root / "tfds")
    D.prepare("imagenet2012", data_dir=data_dir, manual_dir=manual)
    return data_dir, manual


def test_imagenet_tiny_real_archives(tiny_imagenet):
    data_dir, manual = tiny_imagenet
    D.prepare("imagenet2012", data_dir=data_dir, manual_dir=manual)  # idempotent no-op
    ds, n = D.get_dataset(
        "imagenet2012",
        "train",
        batch_size=2,
        training=True,
        seed=0,
        data_dir=data_dir,
        image_size=32,
    )
    assert n == 6
    labels = np.concatenate([y.numpy().argmax(1) for _, y in ds])
    assert sorted(labels) == [0, 0, 0, 1, 1, 1]  # n01440764, n01443537: the first two synsets
    ev, n_val = D.get_dataset(
        "imagenet2012", "test", batch_size=3, training=False, data_dir=data_dir
    )
    assert n_val == 4
    x = np.concatenate([b[0] for b in first_batches(ev, 5)])
    y = np.concatenate([b[1] for b in first_batches(ev, 5)])
    assert x.shape == (4, 224, 224, 3)
    # Labels of validation images 1-4 come from TFDS's bundled list, in file-name order.
    from tensorflow_datasets.datasets.imagenet2012 import imagenet_common

    names = D.dataset_info("imagenet2012").class_names
    with open(imagenet_common.tfds.core.tfds_path(imagenet_common._VALIDATION_LABELS_FNAME)) as f:
        first = [line.strip() for line in f.readlines()[:4]]
    assert sorted(y.argmax(1)) == sorted(names.index(s) for s in first)


# ------------------------------------------------------------------------------------------
# Fashion-MNIST from Debian's files


@pytest.fixture(scope="module")
def fashion_mnist():
    if not D.fashion_mnist_available():
        pytest.skip(
            f"Fashion-MNIST files are absent from {D.FASHION_MNIST_DIR}: "
            "`apt-get install dataset-fashion-mnist` (as root) provides them"
        )
    return D.prepare_fashion_mnist()  # locked: safe from concurrent xdist workers


@pytest.mark.xdist_group("fashion_mnist")
def test_fashion_mnist_from_debian_files(fashion_mnist):
    ds, n = D.get_dataset("fashion_mnist", "train", batch_size=8, training=True, seed=0)
    assert n == 60_000
    x, y = first_batches(ds, 1)[0]
    assert x.shape == (8, 28, 28, 1) and x.dtype == np.float32
    assert -1.0 < x.min() and x.max() < 2.1  # (0 - 0.286) / 0.353 .. (1 - 0.286) / 0.353
    assert y.shape == (8, 10) and set(np.unique(y)) <= {0.0, 1.0}
    ev, n_test = D.get_dataset("fashion_mnist", "test", batch_size=1000, training=False)
    assert n_test == 10_000
    labels = np.concatenate([y.numpy().argmax(1) for _, y in ev])
    assert labels.shape == (10_000,) and set(labels) == set(range(10))
