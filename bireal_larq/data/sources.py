"""Where examples come from: TFDS preparation (offline, locked), image files, synthetic data.

Also the robust decoding of image files: real ImageNet holds truncated JPEGs, a PNG named .JPEG,
CMYK and grayscale JPEGs. The readable ones decode to the dataset's channel count; an unreadable
one (also: a file that cannot be read, or whose header declares more than ``max_image_pixels``)
either stops the run with an error naming it, or is skipped, counted and reported.
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

from bireal_larq.data import fashion_mnist_files
from bireal_larq.data.info import default_data_dir, is_prepared
from bireal_larq.data.preprocessing import MAX_IMAGE_PIXELS, decode_image, header_refusal
from bireal_larq.data.specs import FASHION_MNIST_DIR, SPECS, DatasetSpec

log = logging.getLogger(__name__)

# The manual files of the TFDS datasets, as their specs list them.
FASHION_MNIST_FILES = SPECS["fashion_mnist"].manual_file_names
IMAGENET_FILES = dict(SPECS["imagenet2012"].manual_files)
CIFAR_ARCHIVES = {name: SPECS[name].manual_file_names[0] for name in ("cifar10", "cifar100")}


class CorruptImageError(ValueError):
    """An image file (or record) that cannot be decoded."""


# How a CorruptImageError of a running pipeline reads in TensorFlow's error text: the message
# of the failed in-graph check ("assertion failed: [CorruptImageError: ...]"), or the text of
# the Python exception of a py_function.
_WRAPPED_CORRUPT_IMAGE = re.compile(r"CorruptImageError: (.*?)\]?[ \t]*$", re.MULTILINE)


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


def manual_dir_of(spec: DatasetSpec, manual_dir: str | None, root: str) -> str:
    """The manual dir a TFDS dataset is prepared from: ``manual_dir`` if given, else the
    spec's default, else ``root/downloads/manual``."""
    return manual_dir or spec.manual_dir or os.path.join(root, "downloads", "manual")


def _checked_manual_dir(spec: DatasetSpec, manual_dir: str | None, root: str) -> str:
    """The manual dir of a TFDS dataset holding every file its spec lists, or an error
    naming the missing ones, where they go and where they come from.

    TFDS takes the files from the manual dir when they are there; without them it would try
    to download them and, offline, hang with no error.
    """
    manual_dir = manual_dir_of(spec, manual_dir, root)
    names = spec.manual_file_names
    missing = [f for f in names if not os.path.isfile(os.path.join(manual_dir, f))]
    if missing:
        them = "it" if len(names) == 1 else "them"
        lines = "\n".join(
            f"  {os.path.join(manual_dir, f)}: {what}" + ("  [MISSING]" if f in missing else "")
            for f, what in spec.manual_files
        )
        raise FileNotFoundError(
            f"{spec.title} is not prepared in {root} and {manual_dir} lacks "
            f"{', '.join(missing)}. Put {them} there (or pass --manual_dir=DIR holding {them}); "
            f"nothing is downloaded at run time. {spec.manual_source}.\n{lines}"
        )
    return manual_dir


# TFDS datasets prepared through a builder of their own instead of TFDS's: local copies of
# Fashion-MNIST are checked by their content, not by their .gz bytes (see fashion_mnist_files).
_BUILDERS = {"fashion_mnist": fashion_mnist_files.builder}


def prepare(name: str, data_dir: str | None = None, manual_dir: str | None = None):
    """Prepares a TFDS dataset offline from its manual dir; a no-op when already prepared.

    Safe to call from concurrent processes (pytest-xdist workers, several trainings): the
    preparation holds an exclusive file lock in the data dir.

    Args:
        name: one of :data:`~bireal_larq.data.specs.TFDS_DATASETS` ("imagenet2012",
            "cifar10", "cifar100", "fashion_mnist").
        data_dir: TFDS data dir; default $TFDS_DATA_DIR, else TFDS's default.
        manual_dir: the directory holding the files of the spec's ``manual_files``
            (ImageNet: ILSVRC2012_img_train.tar and ILSVRC2012_img_val.tar; CIFAR:
            cifar-10-binary.tar.gz or cifar-100-binary.tar.gz; Fashion-MNIST: its four .gz
            files). Default: the spec's ``manual_dir`` (Fashion-MNIST:
            /usr/share/datasets/fashion-mnist, where Debian's dataset-fashion-mnist puts them),
            else DATA_DIR/downloads/manual.

    Returns:
        The prepared ``tfds.core.DatasetBuilder``.

    Raises:
        ValueError: not a TFDS dataset of this project, or preparing it from the manual
            files failed (truncated or corrupt files: the message lists them with sizes).
        FileNotFoundError: the manual files are missing (the message lists them).
    """
    spec = SPECS.get(name)
    if spec is None or not spec.is_tfds:
        valid = [n for n, s in SPECS.items() if s.is_tfds]
        raise ValueError(f"{name!r} is not prepared through TFDS; valid: {valid}")
    tfds = _tfds()
    root = tfds_root(data_dir)
    builder = tfds.builder(name, data_dir=root)
    if is_prepared(builder):
        return builder
    with _file_lock(os.path.join(root, f".{name}.prepare.lock")):
        builder = tfds.builder(name, data_dir=root)  # another process may have finished it
        if is_prepared(builder):
            return builder
        manual = _checked_manual_dir(spec, manual_dir, root)
        log.info("Preparing %s in %s from %s", name, root, manual)
        config = tfds.download.DownloadConfig(manual_dir=manual)
        try:
            if name in _BUILDERS:
                builder = _BUILDERS[name](tfds, root, manual)
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


def check_max_image_pixels(max_image_pixels: int | None) -> None:
    """Raises ``ValueError`` unless ``max_image_pixels`` is None or an int >= 1."""
    if max_image_pixels is not None and (
        isinstance(max_image_pixels, bool) or not isinstance(max_image_pixels, int)
        or max_image_pixels < 1
    ):
        raise ValueError(
            f"max_image_pixels={max_image_pixels!r} is invalid; valid: an int >= 1 (height x "
            f"width; default {MAX_IMAGE_PIXELS:,}) or None for no limit"
        )


def _decode_reason(data: bytes, max_image_pixels: int | None = MAX_IMAGE_PIXELS) -> str | None:
    """None when ``data`` decodes, else what is wrong with it."""
    if not data:
        return "the file is empty"
    refusal = header_refusal(data, max_image_pixels)
    if refusal:
        return refusal
    try:
        tf.io.decode_image(data, channels=3, expand_animations=False)
    except (tf.errors.InvalidArgumentError, tf.errors.UnknownError) as e:
        if not e.message:
            return type(e).__name__
        # TF's op error text without the function-node prefix and the "[Op:...]" suffix
        message = re.sub(r"\{\{function_node [^}]*\}\}\s*", "", e.message.splitlines()[0])
        message = re.sub(r"\s*\[Op:\w+\].*$", "", message) or type(e).__name__
        if data[:3] == b"\xff\xd8\xff" and data[-2:] != b"\xff\xd9":
            message = (
                f"{message.rstrip('.')} (the file is cut short: {len(data):,} bytes, without "
                "the end-of-image marker of a JPEG)"
            )
        return message
    return None


def load_image(
    path: str, channels: int = 3, max_image_pixels: int | None = MAX_IMAGE_PIXELS
) -> tf.Tensor:
    """Decodes an image file robustly to uint8 (H, W, channels).

    Reads JPEG (RGB, grayscale or CMYK), PNG (also when named .JPEG; 8 or 16 bits, alpha
    dropped), GIF (its first frame), BMP and, on TensorFlow >= 2.16, WebP.

    Args:
        path: local or ``tf.io.gfile`` path.
        channels: 3 for RGB, 1 for grayscale.
        max_image_pixels: refuse an image whose header declares more pixels (height x width)
            than this, before decoding it (a guard against decompression bombs, like PIL's);
            None: no limit. At the default, 178,956,970 (where PIL refuses an image, and the
            largest JPEG TensorFlow decodes), and above, the headers of PNGs are read (JPEGs
            are bounded by TensorFlow's decoder); below it, also those of JPEG, GIF (its
            logical screen), BMP and WebP files, as ``get_dataset`` does.

    Raises:
        FileNotFoundError: no such file.
        CorruptImageError: the file is truncated, corrupt, not an image or larger than
            ``max_image_pixels`` (the message names it).
    """
    if channels not in (1, 3):
        raise ValueError(f"channels={channels!r} is invalid; valid: 1 or 3")
    check_max_image_pixels(max_image_pixels)
    if not tf.io.gfile.exists(path):
        raise FileNotFoundError(f"Image file not found: {path}")
    if tf.io.gfile.isdir(path):
        raise CorruptImageError(
            f"Cannot decode image {path}: it is a directory; valid: the path of an image file"
        )
    with tf.io.gfile.GFile(path, "rb") as f:
        data = f.read()
    reason = _decode_reason(data, max_image_pixels)
    if reason:
        raise CorruptImageError(f"Cannot decode image {path}: {reason}")
    return decode_image(data, channels, max_pixels=None)  # checked above


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

    def __init__(
        self,
        total: int,
        skip_corrupt: bool,
        max_skip_fraction: float,
        channels: int,
        max_image_pixels: int | None = MAX_IMAGE_PIXELS,
    ):
        self.total = max(int(total), 1)
        self.skip_corrupt = skip_corrupt
        self.max_skip_fraction = max_skip_fraction
        self.channels = channels
        self.max_image_pixels = max_image_pixels  # the decoder's limit, to say why it failed
        self.last_pass: list[str] = []  # the skipped names of the last finished pass
        # pass id -> (block, index in the block, name) of its skipped files; insertion ordered
        self._passes: dict[int, list[tuple[int, int, str]]] = {}
        self._pass_ids = itertools.count()
        self._lock = threading.Lock()
        self.slow_blocks = 0  # blocks decoded again example by example (their fast path failed)

    def new_pass(self) -> int:
        """A fresh pass id (unique in this process, whatever seeds the run sets)."""
        with self._lock:
            return next(self._pass_ids) % _MAX_PASSES

    def _describe(self, name: str, payload: bytes, is_path: bool) -> str:
        try:
            data = tf.io.gfile.GFile(payload.decode(), "rb").read() if is_path else payload
        except (tf.errors.OpError, OSError) as e:
            detail = getattr(e, "message", None) or str(e)
            detail = (detail.strip().splitlines() or [""])[-1]
            return f"the file cannot be read ({type(e).__name__}: {detail})"
        return _decode_reason(data, self.max_image_pixels) or "undecodable"

    def _bad(
        self, pass_id: int, name: tf.Tensor, payload: tf.Tensor, is_path, where: tuple[int, int]
    ) -> None:
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
            skipped.append((*where, name_s))
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
        self,
        pass_id: tf.Tensor,
        names: tf.Tensor,
        payloads: tf.Tensor,
        missing: tf.Tensor,
        is_path,
        block: tf.Tensor | int = 0,
    ) -> str:
        """Reports the examples of decoding block number ``block`` flagged in ``missing`` (a
        bool mask).

        Returns:
            "" when the pass may go on (the files were skipped and counted), else the error
            that stops it, ``"CorruptImageError: <message>"``. The pipeline fails with it in
            the graph (see :func:`decode_robustly`): an exception raised here would carry a
            Python traceback into TensorFlow's error text and its log.
        """
        with self._lock:
            self.slow_blocks += 1
        examples = zip(names, payloads, missing.numpy(), strict=True)
        try:
            for index, (name, payload, gone) in enumerate(examples):
                if gone:
                    self._bad(int(pass_id), name, payload, is_path, (int(block), index))
        except CorruptImageError as err:
            return f"CorruptImageError: {err}"
        return ""

    def finish(self, pass_id: tf.Tensor) -> bool:
        """Ends pass ``pass_id``: its skipped files become ``last_pass`` and are logged."""
        with self._lock:
            # blocks are checked concurrently: the input order is (block, index)
            entries = sorted(self._passes.pop(int(pass_id), []), key=lambda e: e[:2])  # stable
            skipped = [name for *_, name in entries]
            self.last_pass = skipped
        if skipped:
            shown = ", ".join(skipped[:10]) + (" ..." if len(skipped) > 10 else "")
            log.warning(
                "Skipped %d of %d unreadable images (%.4f%%): %s",
                len(skipped),
                self.total,
                100.0 * len(skipped) / self.total,
                shown,
            )
        return True


# Pass ids cycle through this many values (the report keeps at most _OPEN_PASSES open).
_MAX_PASSES = 2**22


def _usable_cpus() -> int:
    """The CPUs this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def decode_robustly(
    ds: tf.data.Dataset,
    decode_fn,
    report: SkipReport,
    is_path: bool,
    batch_size: int,
    preprocess_fn=None,
    drop_remainder: bool = False,
) -> tf.data.Dataset:
    """((name, payload, label), seed) examples -> batches of (images, labels), in input order,
    handling unreadable images.

    ``decode_fn(payload, seed) -> image`` decodes (and may fail on an unreadable file);
    ``preprocess_fn(image, label, seed) -> (image, label)`` is the rest of the per-example work
    (default: none). The images it gives must share one shape: they are batched here.

    Each batch of examples is one block. Its fast path is a plain parallel map and batch
    (no bookkeeping on the way); if anything in it fails, the block is done again on a slow
    path that decodes each example on its own, drops the unreadable ones and asks ``report``
    about them (raise naming the file, or skip and count). Errors of ``preprocess_fn`` are not
    unreadable images: on the slow path they stop the pass, as do errors from before the
    decoder (e.g. a damaged TFRecord). The slow path runs only for a block whose fast path
    failed, so good data costs what a plain map and batch does. Two blocks are decoded at a
    time: the warning for each skipped file may come out of input order, the end-of-pass
    report and ``report.last_pass`` are in input order. Each iteration draws a
    pass id from ``report``; after the last block ``report.finish`` logs the skipped files of
    that pass.

    With skipped files, the short blocks are rebatched to ``batch_size`` (one more copy of
    every image, only when ``report.skip_corrupt``). With ``drop_remainder`` every batch has
    exactly ``batch_size`` examples (static shape); else the last one may be smaller.
    """
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size={batch_size!r} is invalid; valid: an int >= 1")
    if preprocess_fn is None:
        preprocess_fn = lambda image, label, seed: (image, label)  # noqa: E731
    block = _Block(decode_fn, preprocess_fn, report, is_path, batch_size, _usable_cpus())

    def one_pass(pass_id):
        return _one_pass(ds, pass_id, block, report)

    # One element per iteration: a fresh id for the pass, under which its blocks and its end
    # report.
    out = _pass_ids(report).flat_map(one_pass)
    return _full_batches(out, report.skip_corrupt, batch_size, drop_remainder)


class _Block:
    """The decoding of one block (one batch of examples) of :func:`decode_robustly`: its fast
    path, and the slow path that runs only when the fast one gave no whole batch."""

    def __init__(self, decode_fn, preprocess_fn, report: SkipReport, is_path: bool,
                 batch_size: int, parallel: int):
        self.decode_fn, self.preprocess_fn = decode_fn, preprocess_fn
        self.report, self.is_path = report, is_path
        self.batch_size, self.parallel = batch_size, parallel

    def __call__(self, pass_id, number, example, seeds) -> tf.data.Dataset:
        """Block ``number`` of pass ``pass_id`` -> one batch of (images, labels)."""
        names, payloads, labels = example
        k = tf.shape(names, out_type=tf.int64)[0]
        fast = self.fast(payloads, labels, seeds, k)
        slow = self.slow(pass_id, number, names, payloads, labels, seeds, k)
        return fast.concatenate(slow).take(1)

    def _work(self, payload, label, seed):
        return self.preprocess_fn(self.decode_fn(payload, seed), label, seed)

    def fast(self, payloads, labels, seeds, k) -> tf.data.Dataset:
        """The block as one batch, or nothing when any example of it failed."""
        # Only a whole block counts: fused (tf.data's default), a failing map fails its batch;
        # unfused (the fusion turned off, tf.data's debug mode), the batch would drop what it
        # had collected and go on with a short batch of the rest.
        return (
            tf.data.Dataset.from_tensor_slices((payloads, labels, seeds))
            .map(self._work, num_parallel_calls=self.parallel)
            .batch(self.batch_size)
            .ignore_errors()
            .filter(lambda images, labels: tf.shape(labels, out_type=tf.int64)[0] == k)
        )

    def slow(self, pass_id, number, names, payloads, labels, seeds, k) -> tf.data.Dataset:
        """The block decoded example by example: one batch of the readable examples, after
        ``report`` was told of the others (it may stop the pass)."""
        decode_fn, preprocess_fn = self.decode_fn, self.preprocess_fn

        def decode_one(key, payload, label, seed):
            return key, decode_fn(payload, seed), label, seed

        def preprocess_one(key, image, label, seed):
            return (key, *preprocess_fn(image, label, seed))

        decoded = (
            tf.data.Dataset.from_tensor_slices((tf.range(k), payloads, labels, seeds))
            .map(decode_one)
            .ignore_errors()  # only decoding errors: this dataset's source cannot fail
            .map(preprocess_one)
            .batch(self.batch_size)
        )
        empty = tf.nest.map_structure(
            lambda spec: tf.zeros([0] + [d or 1 for d in spec.shape.as_list()[1:]], spec.dtype),
            decoded.element_spec,
        )

        def check(keys, images, labels):
            # the examples of the block that did not come out of the decoder
            missing = tf.reduce_all(tf.not_equal(tf.range(k)[:, None], keys[None, :]), axis=1)
            error = tf.py_function(
                self.report.bad_block,
                [pass_id, names, payloads, missing, self.is_path, number],
                tf.string,
            )
            error.set_shape([])
            # fails the pass with the report's message alone: InvalidArgumentError "assertion
            # failed: [CorruptImageError: ...]"
            stop = tf.debugging.Assert(tf.equal(error, ""), [error], summarize=1)
            with tf.control_dependencies([stop]):
                return tf.identity(images), tf.identity(labels)

        # concatenate opens the slow path's iterator only once the fast path has ended, and
        # the block's take(1) ends the block before that when the fast path gave its batch.
        return decoded.concatenate(tf.data.Dataset.from_tensors(empty)).take(1).map(check)


def _one_pass(ds: tf.data.Dataset, pass_id, block: _Block, report: SkipReport):
    """The blocks of one pass in order, then its end report (which yields nothing)."""
    # Blocks in order; two at a time, each mapped on all usable CPUs: fewer images in flight
    # than one block per CPU, as fast on 1 and 2 cores.
    blocks = ds.batch(block.batch_size).enumerate().interleave(
        lambda number, batch: block(pass_id, number, *batch),
        cycle_length=2,
        block_length=1,
        num_parallel_calls=tf.data.AUTOTUNE,
        deterministic=True,
    )
    return blocks.concatenate(_end_of_pass(report, pass_id, blocks.element_spec))


def _end_of_pass(report: SkipReport, pass_id, element_spec) -> tf.data.Dataset:
    """A dataset of no element that, iterated after the last block, has ``report`` log the
    skipped files of pass ``pass_id``."""

    def finish(*element):
        done = tf.py_function(report.finish, [pass_id], tf.bool)
        done.set_shape([])
        return tf.logical_and(done, tf.constant(False))

    dummy = tf.nest.map_structure(
        lambda spec: tf.zeros([d or 1 for d in spec.shape.as_list()], spec.dtype), element_spec
    )
    return tf.data.Dataset.from_tensors(dummy).filter(finish)


def _pass_ids(report: SkipReport) -> tf.data.Dataset:
    """One element, drawn anew at each iteration: the id of the pass from ``report``."""

    def new_pass(_):
        pass_id = tf.py_function(report.new_pass, [], tf.int64)
        pass_id.set_shape([])
        return pass_id

    return tf.data.Dataset.from_tensors(0).map(new_pass)


def _full_batches(
    out: tf.data.Dataset, skip_corrupt: bool, batch_size: int, drop_remainder: bool
) -> tf.data.Dataset:
    """The blocks as batches of ``batch_size``: with skipping, short or empty blocks are
    rebatched; with ``drop_remainder``, only full batches, of a static size."""
    if skip_corrupt:  # blocks with skipped files are short, or empty
        out = out.filter(lambda images, labels: tf.shape(labels)[0] > 0)
        return out.rebatch(batch_size, drop_remainder=drop_remainder)
    if drop_remainder:  # only the last block can be short

        def static(images, labels):
            return (
                tf.ensure_shape(images, [batch_size, *images.shape[1:]]),
                tf.ensure_shape(labels, [batch_size, *labels.shape[1:]]),
            )

        out = out.filter(lambda images, labels: tf.shape(labels)[0] == batch_size)
        out = out.map(static)
    return out


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
