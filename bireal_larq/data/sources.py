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

    def bad_examples(
        self, pass_id: tf.Tensor, names: tf.Tensor, payloads: tf.Tensor, is_path
    ) -> bool:
        """Reports examples of pass ``pass_id`` that did not decode (raise, or skip and count)."""
        for name, payload in zip(names, payloads, strict=True):
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


# Keys of examples in flight: (pass id, index in the pass) in 63 bits.
_INDEX_BITS, _MAX_PASSES = 41, 2**22


def decode_robustly(
    ds: tf.data.Dataset, decode_fn, report: SkipReport, is_path: bool
) -> tf.data.Dataset:
    """Maps ((name, payload, label), seed) -> (image, label, seed, aux), handling unreadable
    images.

    ``decode_fn(payload, seed) -> image``: decoding plus whatever per-example work should share
    its parallelism. ``aux`` is an empty tuple, kept so that every source yields the same
    structure.

    Examples are decoded by one parallel, order-keeping map whose errors are dropped. Before
    decoding, an example notes its name and payload under its key (pass id, index in the
    pass) in a hash table; a sequential check right after the map sees the keys come out in
    order, so a jump in the keys names exactly the examples that failed, whose notes it hands
    to ``report`` (raise naming the file, or skip and count). Each key's note is removed once
    the check has passed it; at the end of a pass the notes of that pass still there are those
    of the examples that failed after its last good one. A good example costs two table
    inserts, their removal and a comparison, and its image flows on without a copy. Each iteration
    draws a pass id from ``report``; after the end ``report.finish`` logs the skipped files of
    that pass. A pass abandoned early leaves the notes of the examples it had in flight (a
    parallel map's buffer); a new pass removes those of passes ``SkipReport._OPEN_PASSES``
    or more passes older.
    """
    names = tf.lookup.experimental.MutableHashTable(tf.int64, tf.string, default_value="")
    payloads = tf.lookup.experimental.MutableHashTable(tf.int64, tf.string, default_value="")
    index_mask = tf.constant(2**_INDEX_BITS - 1, tf.int64)

    def exported_keys():
        keys, _ = names.export()
        return tf.reshape(keys, [-1])

    def pass_of(keys):
        return tf.bitwise.right_shift(keys, _INDEX_BITS)

    def forget(keys):
        with tf.control_dependencies([names.remove(keys)]):
            return payloads.remove(keys)

    def one_pass(pass_id):
        first = tf.bitwise.left_shift(pass_id, _INDEX_BITS)

        def decode_one(index, element):
            (name, payload, label), seed = element
            key = first + tf.bitwise.bitwise_and(index, index_mask)
            noted = [names.insert(key[None], name[None]),
                     payloads.insert(key[None], payload[None])]
            with tf.control_dependencies(noted):  # noted before decoding can fail
                payload = tf.identity(payload)
            return decode_fn(payload, seed), label, seed, key

        def report_missing(keys):
            ok = tf.py_function(
                report.bad_examples,
                [pass_id, names.lookup(keys), payloads.lookup(keys), is_path],
                tf.bool,
            )
            ok.set_shape([])
            return ok

        def check(last, element):
            image, label, seed, key = element
            missing = tf.range(last + 1, key)
            reported = tf.cond(
                tf.size(missing) > 0, lambda: report_missing(missing), lambda: tf.constant(True)
            )
            with tf.control_dependencies([reported]):
                done = forget(tf.range(last + 1, key + 1))
            with tf.control_dependencies([done]):
                return tf.identity(key), (image, label, seed, ())

        decoded = (
            ds.enumerate()
            .map(decode_one, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
            .ignore_errors()
            .scan(first - 1, check)
        )

        def finish(*element):
            # The notes of this pass still there: the examples that failed after its last
            # good one (the check removed every key up to that one).
            keys = exported_keys()
            keys = tf.sort(tf.boolean_mask(keys, tf.equal(pass_of(keys), pass_id)))
            reported = tf.cond(
                tf.size(keys) > 0, lambda: report_missing(keys), lambda: tf.constant(True)
            )
            with tf.control_dependencies([reported]):  # looked up before they are removed
                forgotten = forget(keys)
            with tf.control_dependencies([forgotten]):
                done = tf.py_function(report.finish, [pass_id], tf.bool)
            done.set_shape([])
            return tf.logical_and(done, tf.constant(False))

        # After the last example: the end report, which yields nothing.
        dummy = tf.nest.map_structure(
            lambda spec: tf.zeros([d or 1 for d in spec.shape.as_list()], spec.dtype),
            decoded.element_spec,
        )
        return decoded.concatenate(tf.data.Dataset.from_tensors(dummy).filter(finish))

    def new_pass(_):
        pass_id = tf.py_function(report.new_pass, [], tf.int64)
        pass_id.set_shape([])
        # Notes left by passes abandoned long ago (ids wrap around at _MAX_PASSES).
        keys = exported_keys()
        age = tf.math.floormod(pass_id - pass_of(keys), _MAX_PASSES)
        stale = tf.boolean_mask(keys, age >= SkipReport._OPEN_PASSES)
        with tf.control_dependencies([forget(stale)]):
            return tf.identity(pass_id)

    # One element per iteration: a fresh id for the pass, under which its examples and its end
    # report.
    robust = tf.data.Dataset.from_tensors(0).map(new_pass).flat_map(one_pass)
    robust.pending_notes = names  # for tests: the notes of examples in flight
    return robust


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
