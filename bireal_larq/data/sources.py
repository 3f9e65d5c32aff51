"""Where examples come from: TFDS preparation (offline, locked), image files, synthetic data.

Also the robust decoding of image files: real ImageNet holds truncated JPEGs, a PNG named .JPEG,
CMYK and grayscale JPEGs. The readable ones decode to the dataset's channel count; an unreadable
one either stops the run with an error naming it, or is skipped, counted and reported.
"""

from __future__ import annotations

import fcntl
import itertools
import logging
import os
import re
import threading
from contextlib import contextmanager
from typing import Any

import tensorflow as tf

from bireal_larq.data.info import TFDS_DATASETS, default_data_dir
from bireal_larq.data.preprocessing import decode_image

log = logging.getLogger(__name__)

FASHION_MNIST_DIR = "/usr/share/datasets/fashion-mnist"
FASHION_MNIST_FILES = (
    "train-images-idx3-ubyte.gz",
    "train-labels-idx1-ubyte.gz",
    "t10k-images-idx3-ubyte.gz",
    "t10k-labels-idx1-ubyte.gz",
)
IMAGENET_FILES = {
    "ILSVRC2012_img_train.tar": "the training images: one nXXXXXXXX.tar of JPEGs per class",
    "ILSVRC2012_img_val.tar": "the 50,000 validation JPEGs ILSVRC2012_val_XXXXXXXX.JPEG",
}


class CorruptImageError(ValueError):
    """An image file (or record) that cannot be decoded."""


_WRAPPED_CORRUPT_IMAGE = re.compile(r"CorruptImageError: (.*)")


@contextmanager
def corrupt_image_errors():
    """Re-raises a :class:`CorruptImageError` raised inside a running input pipeline (where
    TensorFlow wraps it in its own error text) as itself: the file and the remedy, without TF's
    traceback. Wrap every loop, ``fit`` or ``evaluate`` that iterates a dataset."""
    try:
        yield
    except tf.errors.OpError as err:
        found = _WRAPPED_CORRUPT_IMAGE.search(err.message or "")
        if found is None:
            raise
        raise CorruptImageError(found.group(1).strip()) from None


# ------------------------------------------------------------------------------------------
# TFDS


def _tfds():
    import tensorflow_datasets as tfds

    return tfds


def tfds_root(data_dir: str | None = None) -> str:
    """The TFDS data dir actually used: ``data_dir``, $TFDS_DATA_DIR, or TFDS's default."""
    resolved = default_data_dir(data_dir)
    if resolved:
        return os.path.expanduser(resolved)
    from tensorflow_datasets.core import constants

    return os.path.expanduser(str(constants.DATA_DIR))


def is_prepared(builder: Any) -> bool:
    """True once TFDS has finished writing the builder's data (it renames a temp dir last)."""
    return tf.io.gfile.exists(os.path.join(builder.data_dir, "dataset_info.json"))


@contextmanager
def _file_lock(path: str):
    """An exclusive ``fcntl.flock`` on ``path``, so concurrent processes prepare one at a time."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "a") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


CIFAR_ARCHIVES = {"cifar10": "cifar-10-binary.tar.gz", "cifar100": "cifar-100-binary.tar.gz"}


def _manual_dir(name: str, manual_dir: str | None, root: str) -> str | None:
    """The checked manual dir of a dataset, or an error saying exactly which files go where."""
    if name == "imagenet2012":
        manual_dir = manual_dir or os.path.join(root, "downloads", "manual")
        missing = [f for f in IMAGENET_FILES if not os.path.isfile(os.path.join(manual_dir, f))]
        if missing:
            lines = "\n".join(
                f"  {os.path.join(manual_dir, f)}: {what}" + ("  [MISSING]" if f in missing else "")
                for f, what in IMAGENET_FILES.items()
            )
            raise FileNotFoundError(
                f"ImageNet 2012 is not prepared in {root} and the manual dir lacks "
                f"{' and '.join(missing)}. Put both archives (from https://image-net.org) here "
                f"(or pass --manual_dir=DIR holding them):\n{lines}"
            )
        return manual_dir
    if name == "fashion_mnist":
        explicit = manual_dir is not None
        manual_dir = manual_dir or FASHION_MNIST_DIR
        missing = [
            f for f in FASHION_MNIST_FILES if not os.path.isfile(os.path.join(manual_dir, f))
        ]
        if missing:
            hint = (
                ""
                if explicit
                else " Debian's package dataset-fashion-mnist provides them: run "
                "`apt-get install dataset-fashion-mnist` as root."
            )
            raise FileNotFoundError(
                f"Fashion-MNIST is not prepared in {root} and {manual_dir} lacks "
                f"{', '.join(missing)} (needed: {', '.join(FASHION_MNIST_FILES)}).{hint}"
            )
        return manual_dir
    # CIFAR: TFDS takes the archive from the manual dir when it is there; without it TFDS
    # would try to download and, offline, hang with no error.
    manual_dir = manual_dir or os.path.join(root, "downloads", "manual")
    archive = CIFAR_ARCHIVES[name]
    if not os.path.isfile(os.path.join(manual_dir, archive)):
        raise FileNotFoundError(
            f"{name} is not prepared in {root} and {os.path.join(manual_dir, archive)} is "
            f"missing. Download it once (https://www.cs.toronto.edu/~kriz/{archive}) into "
            f"{manual_dir} (or pass --manual_dir=DIR holding it); nothing is downloaded at run "
            "time"
        )
    return manual_dir


def prepare(name: str, data_dir: str | None = None, manual_dir: str | None = None):
    """Prepares a TFDS dataset offline from its manual dir; a no-op when already prepared.

    Safe to call from concurrent processes (pytest-xdist workers, several trainings): the
    preparation holds an exclusive file lock in the data dir.

    Args:
        name: one of "imagenet2012", "cifar10", "cifar100", "fashion_mnist".
        data_dir: TFDS data dir; default $TFDS_DATA_DIR, else TFDS's default.
        manual_dir: the directory holding the downloaded files. ImageNet: default
            DATA_DIR/downloads/manual, holding ILSVRC2012_img_train.tar and ILSVRC2012_img_val.tar;
            Fashion-MNIST: default /usr/share/datasets/fashion-mnist (Debian's
            dataset-fashion-mnist); CIFAR: default DATA_DIR/downloads/manual, holding
            cifar-10-binary.tar.gz or cifar-100-binary.tar.gz.

    Returns:
        The prepared ``tfds.core.DatasetBuilder``.

    Raises:
        ValueError: not a TFDS dataset of this project, or preparing it from the manual
            files failed (truncated or corrupt files: the message lists them with sizes).
        FileNotFoundError: the manual files are missing (the message lists them).
    """
    if name not in TFDS_DATASETS:
        raise ValueError(f"{name!r} is not prepared through TFDS; valid: {list(TFDS_DATASETS)}")
    tfds = _tfds()
    root = tfds_root(data_dir)
    builder = tfds.builder(name, data_dir=root)
    if is_prepared(builder):
        return builder
    with _file_lock(os.path.join(root, f".{name}.prepare.lock")):
        builder = tfds.builder(name, data_dir=root)  # another process may have finished it
        if is_prepared(builder):
            return builder
        manual = _manual_dir(name, manual_dir, root)
        log.info("Preparing %s in %s from %s", name, root, manual)
        config = tfds.download.DownloadConfig(manual_dir=manual)
        try:
            builder.download_and_prepare(download_config=config)
        except FileNotFoundError:
            raise
        except Exception as e:  # noqa: BLE001 - TFDS raises many kinds for damaged files
            files = ", ".join(
                f"{entry.name} ({entry.stat().st_size:,} bytes)"
                for entry in sorted(os.scandir(manual), key=lambda e: e.name) if entry.is_file()
            ) if os.path.isdir(manual) else "none"
            detail = (str(e).strip().splitlines() or [""])[-1][:300]
            raise ValueError(
                f"Preparing {name} from {manual} failed ({type(e).__name__}: {detail}). The "
                f"files there are probably truncated or corrupt: {files}; download them again "
                "(or reinstall the package that provides them)"
            ) from e
    return builder


def prepare_fashion_mnist(data_dir: str | None = None, manual_dir: str | None = None):
    """:func:`prepare` for Fashion-MNIST (the offline default of the demo and the tests)."""
    return prepare("fashion_mnist", data_dir=data_dir, manual_dir=manual_dir)


def fashion_mnist_available(manual_dir: str = FASHION_MNIST_DIR) -> bool:
    """True when Debian's Fashion-MNIST files are installed."""
    return all(os.path.isfile(os.path.join(manual_dir, f)) for f in FASHION_MNIST_FILES)


# ------------------------------------------------------------------------------------------
# Image files


def _decode_reason(data: bytes, channels: int = 3) -> str | None:
    """None when ``data`` decodes, else the decoder's complaint."""
    del channels  # decoding always goes through RGB (see preprocessing.decode_image)
    if not data:
        return "the file is empty"
    try:
        tf.io.decode_image(data, channels=3, expand_animations=False)
    except (tf.errors.InvalidArgumentError, tf.errors.UnknownError) as e:
        if not e.message:
            return type(e).__name__
        # TF's op error text without the function-node prefix and the "[Op:...]" suffix
        message = re.sub(r"\{\{function_node [^}]*\}\}\s*", "", e.message.splitlines()[0])
        return re.sub(r"\s*\[Op:\w+\]\s*$", "", message) or type(e).__name__
    return None


def load_image(path: str, channels: int = 3) -> tf.Tensor:
    """Decodes an image file robustly to uint8 (H, W, channels).

    Reads JPEG (RGB, grayscale or CMYK), PNG (also when named .JPEG), GIF and BMP.

    Args:
        path: local or ``tf.io.gfile`` path.
        channels: 3 for RGB, 1 for grayscale.

    Raises:
        FileNotFoundError: no such file.
        CorruptImageError: the file is truncated, corrupt or not an image (message names it).
    """
    if channels not in (1, 3):
        raise ValueError(f"channels={channels!r} is invalid; valid: 1 or 3")
    if not tf.io.gfile.exists(path):
        raise FileNotFoundError(f"Image file not found: {path}")
    with tf.io.gfile.GFile(path, "rb") as f:
        data = f.read()
    reason = _decode_reason(data, channels)
    if reason:
        raise CorruptImageError(f"Cannot decode image {path}: {reason}")
    return decode_image(data, channels)


class SkipReport:
    """Counts the unreadable images of each pipeline pass and enforces the skip budget.

    Every pass (one iteration of the dataset) has its own id, and its count is its own: a pass
    abandoned before its end (an evaluation cut off after a fixed number of steps, whose
    prefetching never reached the end) cannot add to the next one. Its methods run inside
    ``tf.py_function`` and only for bad files and once at the end of a pass, so they cost
    nothing on good data.
    """

    # Unfinished passes remembered, the least recently active dropped first. A pass with one
    # early skip then outlives 63 abandoned passes that skipped files (e.g. validations).
    _OPEN_PASSES = 64

    def __init__(self, total: int, skip_corrupt: bool, max_skip_fraction: float, channels: int):
        self.total = max(int(total), 1)
        self.skip_corrupt = skip_corrupt
        self.max_skip_fraction = max_skip_fraction
        self.channels = channels
        self.last_pass: list[str] = []  # the skipped names of the last finished pass
        self._passes: dict[int, list[str]] = {}  # pass id -> skipped names, insertion ordered
        self._pass_ids = itertools.count()
        self._lock = threading.Lock()

    def new_pass(self) -> int:
        """A fresh pass id (unique in this process, whatever seeds the run sets)."""
        with self._lock:
            return next(self._pass_ids) % _MAX_PASSES

    def _describe(self, name: str, payload: bytes, is_path: bool) -> str:
        try:
            data = tf.io.gfile.GFile(payload.decode(), "rb").read() if is_path else payload
        except (tf.errors.OpError, OSError) as e:
            return f"cannot be read ({type(e).__name__})"
        return _decode_reason(data, self.channels) or "undecodable"

    def _bad(self, pass_id: int, name: tf.Tensor, payload: tf.Tensor, is_path) -> None:
        name_s = name.numpy().decode("utf-8", "replace")
        reason = self._describe(name_s, payload.numpy(), bool(is_path))
        if not self.skip_corrupt:
            raise CorruptImageError(
                f"Cannot decode image {name_s}: {reason.rstrip('.')}. Fix or remove the file, "
                "or pass skip_corrupt=True (train, evaluate: --skip_corrupt) to skip unreadable "
                "images"
            )
        with self._lock:
            # Most recently active last: a long training pass outlives many short ones.
            skipped = self._passes[pass_id] = self._passes.pop(pass_id, [])
            skipped.append(name_s)
            count = len(skipped)
            while len(self._passes) > self._OPEN_PASSES:
                del self._passes[next(iter(self._passes))]
        log.warning("Skipping unreadable image %s (%s)", name_s, reason)
        if count > self.max_skip_fraction * self.total:
            raise CorruptImageError(
                f"{count} of {self.total} images were unreadable (last: {name_s}), more than "
                f"max_skip_fraction={self.max_skip_fraction}; the data is damaged"
            )

    def bad_block(
        self, pass_id: tf.Tensor, names: tf.Tensor, payloads: tf.Tensor, missing: tf.Tensor, is_path
    ) -> bool:
        """Reports the examples of a decoding block flagged in ``missing`` (a bool mask)."""
        for name, payload, gone in zip(names, payloads, missing.numpy(), strict=True):
            if gone:
                self._bad(int(pass_id), name, payload, is_path)
        return False

    def finish(self, pass_id: tf.Tensor) -> bool:
        """Ends pass ``pass_id``: its skipped files become ``last_pass`` and are logged."""
        with self._lock:
            self.last_pass = self._passes.pop(int(pass_id), [])
        if self.last_pass:
            shown = ", ".join(self.last_pass[:10]) + (" ..." if len(self.last_pass) > 10 else "")
            log.warning(
                "Skipped %d of %d unreadable images (%.4f%%): %s",
                len(self.last_pass),
                self.total,
                100.0 * len(self.last_pass) / self.total,
                shown,
            )
        return True


DECODE_BLOCK = 16
# Keys of decoded examples: (pass id, block number, index in the block) in 63 bits.
_INDEX_BITS, _BLOCK_BITS, _MAX_PASSES = 11, 30, 2**22


def _decode_cycle_length() -> int:
    """Blocks decoded at once: the CPUs this process may use, at least 2."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cpus = os.cpu_count() or 1
    return max(2, cpus)


def decode_robustly(
    ds: tf.data.Dataset,
    decode_fn,
    report: SkipReport,
    is_path: bool,
    image_spec: tf.TensorSpec | None = None,
    block: int = DECODE_BLOCK,
) -> tf.data.Dataset:
    """Maps ((name, payload, label), seed) -> (image, label, seed, aux), handling unreadable
    images.

    ``decode_fn(payload, seed) -> image`` (of ``image_spec``; default uint8 (H, W, channels)):
    decoding plus whatever per-example work should share its parallelism. ``aux`` is an empty
    tuple, kept so that every source yields the same structure.

    Examples are decoded in blocks of ``block``, several blocks at once, and come out in input
    order. Each block is a small dataset whose errors are dropped. A successful decode records
    its key (pass id, block number, index) in a hash table; after the block's last example a
    check looks its keys up and removes them, and only when one is missing is ``report`` asked
    about those files (raise naming the file, or skip and count). A good example costs one
    table insert and nothing else on its way (the check yields no element, so nothing filters
    the images); the nested datasets are amortised over the block. Each iteration draws a pass
    id from ``report``; after the last block ``report.finish`` logs the skipped files of that
    pass. A pass abandoned early leaves the keys of its unchecked blocks in the table (at most
    a few blocks' worth per abandoned pass).
    """
    if not 0 < block < 2**_INDEX_BITS:
        raise ValueError(f"block={block} is invalid; valid: 1..{2**_INDEX_BITS - 1}")
    if image_spec is None:
        image_spec = tf.TensorSpec([None, None, report.channels], tf.uint8)
    marker_image = tf.zeros([d or 1 for d in image_spec.shape.as_list()], image_spec.dtype)
    # Decoded keys of the blocks in flight. Keys hold the pass id, so passes running at the
    # same time or one abandoned half-way (its blocks never checked) never share a key.
    decoded = tf.lookup.experimental.MutableHashTable(tf.int64, tf.int64, default_value=0)

    def per_block(pass_id, number, example, seeds):
        names, payloads, labels = example
        k = tf.shape(names, out_type=tf.int64)[0]
        block_id = tf.bitwise.left_shift(pass_id, _BLOCK_BITS) + number % 2**_BLOCK_BITS
        keys = tf.bitwise.left_shift(block_id, _INDEX_BITS) + tf.range(k)

        def decode_one(key, payload, label, seed):
            image = decode_fn(payload, seed)
            with tf.control_dependencies([image]):  # recorded only once decoding succeeded
                done = decoded.insert(key[tf.newaxis], tf.ones([1], tf.int64))
            with tf.control_dependencies([done]):
                return tf.identity(image), label, seed, ()

        good = (
            tf.data.Dataset.from_tensor_slices((keys, payloads, labels, seeds))
            .map(decode_one)
            .ignore_errors()
        )

        def check(*_):
            came_out = tf.equal(decoded.lookup(keys), 1)
            with tf.control_dependencies([came_out]):
                removed = decoded.remove(keys)

            def ask():
                missing = tf.logical_not(came_out)
                ok = tf.py_function(
                    report.bad_block, [pass_id, names, payloads, missing, is_path], tf.bool
                )
                ok.set_shape([])
                return ok

            with tf.control_dependencies([removed]):
                return tf.cond(tf.reduce_all(came_out), lambda: tf.constant(False), ask)

        # After the block's examples: the check, which yields nothing.
        end = tf.data.Dataset.from_tensors((marker_image, labels[0], seeds[0], ())).filter(check)
        return good.concatenate(end)

    def one_pass(pass_id):
        # A whole block at a time, in block order: the examples keep their order. One block
        # per usable CPU in flight: tf.data's AUTOTUNE cycle length left the second core of a
        # 2-core machine idle (benchmarks/input_pipeline.py --cores=2).
        decoded_ds = ds.batch(block).enumerate().interleave(
            lambda number, batch: per_block(pass_id, number, *batch),
            cycle_length=_decode_cycle_length(),
            block_length=block,
            num_parallel_calls=tf.data.AUTOTUNE,
            deterministic=True,
        )

        def finish(*element):
            done = tf.py_function(report.finish, [pass_id], tf.bool)
            done.set_shape([])
            return tf.logical_and(done, tf.constant(False))

        # After the last block: log the pass's skipped files; yields nothing.
        dummy = tf.nest.map_structure(
            lambda spec: tf.zeros([d or 1 for d in spec.shape.as_list()], spec.dtype),
            decoded_ds.element_spec,
        )
        return decoded_ds.concatenate(tf.data.Dataset.from_tensors(dummy).filter(finish))

    def new_pass(_):
        pass_id = tf.py_function(report.new_pass, [], tf.int64)
        pass_id.set_shape([])
        return pass_id

    # One element per iteration: a fresh id for the pass, under which its blocks and its end
    # report.
    return tf.data.Dataset.from_tensors(0).map(new_pass).flat_map(one_pass)


def synthetic_examples(
    num_examples: int, image_shape: tuple[int, int, int], num_classes: int, split_seed: int
) -> tf.data.Dataset:
    """A dataset of (uint8 image, int label), a pure function of the example index."""

    def make(i):
        image = tf.random.stateless_uniform(
            image_shape, tf.stack([tf.constant(split_seed, tf.int64), i]), 0, 256, tf.int32
        )
        label = tf.random.stateless_uniform(
            [], tf.stack([tf.constant(split_seed + 7919, tf.int64), i]), 0, num_classes, tf.int32
        )
        return tf.cast(image, tf.uint8), label

    return tf.data.Dataset.range(num_examples).map(make, num_parallel_calls=tf.data.AUTOTUNE)


def tfds_split_shards(builder: Any, split: str) -> int:
    try:
        return int(builder.info.splits[split].num_shards)
    except Exception:  # noqa: BLE001 - unknown (e.g. mocked): shard by element instead
        return 0
