"""Tests of the robust decoding of image files: odd but readable files, unreadable ones that
stop the pass by name or are skipped and counted per pass, and the block-wise decoding
(``sources.decode_robustly``) behind it."""

from __future__ import annotations

import os

import pytest
import tensorflow as tf
from data_helpers import (
    READABLE,
    UNREADABLE,
    bad_image_bytes,
    jpeg_bytes,
    make_image_folder,
    rgb_array,
    write,
)

from bireal_larq import data as D
from bireal_larq.data.sources import SkipReport, decode_robustly

# ------------------------------------------------------------------------------------------
# Image files


def test_load_image_reads_odd_files_and_names_bad_ones(tmp_path):
    files = bad_image_bytes()
    for kind in READABLE:
        path = write(str(tmp_path / f"{kind}.JPEG"), files[kind])
        image = D.load_image(path)
        assert image.dtype == tf.uint8 and image.shape == (30, 50, 3), kind
        assert D.load_image(path, channels=1).shape == (30, 50, 1)
    for kind in UNREADABLE:
        path = write(str(tmp_path / f"{kind}.JPEG"), files[kind])
        with pytest.raises(D.CorruptImageError, match=rf"Cannot decode image .*{kind}\.JPEG"):
            D.load_image(path)
    with pytest.raises(FileNotFoundError, match="missing.JPEG"):
        D.load_image(str(tmp_path / "missing.JPEG"))


# ------------------------------------------------------------------------------------------
# Odd and unreadable files through get_dataset


@pytest.fixture
def dirty_folder(tmp_path):
    root = make_image_folder(str(tmp_path / "dirty"), per_class=6, val_per_class=1)
    files = bad_image_bytes()
    for kind in READABLE:
        write(os.path.join(root, "train", "cat", f"odd_{kind}.JPEG"), files[kind])
    return root, files


@pytest.mark.parametrize("training", [True, False])
def test_readable_odd_files_go_through_the_pipeline(dirty_folder, training):
    root, _ = dirty_folder
    split = "train" if training else "test"
    for kind in READABLE:
        write(os.path.join(root, "val", "cat", f"odd_{kind}.JPEG"), bad_image_bytes()[kind])
    ds, n = D.get_dataset(
        "imagefolder", split, batch_size=3, training=training, data_dir=root, seed=0, image_size=16
    )
    total = sum(x.shape[0] for x, _ in ds)
    assert total == (n // 3) * 3 if training else total == n
    assert n == (21 if training else 6)


@pytest.mark.parametrize("kind", UNREADABLE)
@pytest.mark.parametrize("training", [True, False])
def test_unreadable_file_stops_with_its_name(dirty_folder, kind, training):
    root, files = dirty_folder
    split_dir = "train" if training else "val"
    write(os.path.join(root, split_dir, "dog", f"broken_{kind}.JPEG"), files[kind])
    ds, _ = D.get_dataset(
        "imagefolder",
        "train" if training else "test",
        batch_size=2,
        training=training,
        data_dir=root,
        seed=0,
        image_size=16,
    )
    with pytest.raises(Exception, match=rf"Cannot decode image .*broken_{kind}\.JPEG"):
        for _ in ds:
            pass


def test_skip_corrupt_counts_reports_and_enforces_the_budget(dirty_folder, caplog):
    root, files = dirty_folder
    for kind in ("truncated", "garbage"):
        write(os.path.join(root, "train", "dog", f"broken_{kind}.JPEG"), files[kind])
    # 23 files, 2 unreadable: within a 10 % budget.
    ds, n = D.get_dataset(
        "imagefolder",
        "train",
        batch_size=1,
        training=True,
        data_dir=root,
        seed=0,
        image_size=16,
        skip_corrupt=True,
        max_skip_fraction=0.1,
    )
    with caplog.at_level("WARNING"):
        seen = sum(x.shape[0] for x, _ in ds)
    assert (n, seen) == (23, 21)
    report = ds.skip_report
    assert sorted(os.path.basename(p) for p in report.last_pass) == [
        "broken_garbage.JPEG",
        "broken_truncated.JPEG",
    ]
    assert "Skipped 2 of 23 unreadable images" in caplog.text
    # A second pass counts afresh.
    assert sum(x.shape[0] for x, _ in ds) == 21 and len(report.last_pass) == 2
    # Over budget: 2 / 23 > 5 %.
    ds, _ = D.get_dataset(
        "imagefolder",
        "train",
        batch_size=1,
        training=True,
        data_dir=root,
        seed=0,
        image_size=16,
        skip_corrupt=True,
        max_skip_fraction=0.05,
    )
    with pytest.raises(Exception, match=r"2 of 23 images were unreadable.*max_skip_fraction=0.05"):
        for _ in ds:
            pass


# ------------------------------------------------------------------------------------------
# decode_robustly: blocks, their fast and slow paths, passes


def _robust_examples(payloads):
    names = [f"img_{i}.JPEG" for i in range(len(payloads))]
    labels = tf.range(len(payloads), dtype=tf.int64)
    examples = tf.data.Dataset.from_tensor_slices((names, payloads, labels))
    return tf.data.Dataset.zip((examples, tf.data.Dataset.random(seed=0).batch(2)))


def test_skip_counts_are_per_pass_even_when_a_pass_is_abandoned(caplog):
    """A pass left before its end (Keras stops after a known step count; a ``take``) never
    reaches its end report; the next pass must count afresh, not add to it."""
    good = jpeg_bytes(rgb_array(8, 8, seed=1))
    payloads = [bad_image_bytes()["garbage"]] + [good] * 300
    # 1 unreadable of 301 is within the budget; a second count would not be.
    report = SkipReport(len(payloads), skip_corrupt=True, max_skip_fraction=0.005, channels=3)
    ds = decode_robustly(
        _robust_examples(payloads), lambda payload, _: tf.io.decode_jpeg(payload, 3), report,
        False, batch_size=1,
    )
    for _ in range(3):
        # The first batch out comes after the unreadable one's block was checked (and
        # counted); the other 299 blocks are far from done, so is the end of the pass.
        next(iter(ds))
    with caplog.at_level("WARNING"):
        assert sum(1 for _ in ds) == 300
    assert report.last_pass == ["img_0.JPEG"]
    assert "Skipped 1 of 301 unreadable images" in caplog.text


@pytest.mark.parametrize("skip", [False, True])
def test_robust_decoding_keeps_the_order_across_blocks(skip):
    """Blocks are decoded in parallel, but examples come out in input order (evaluation relies
    on it); a skipped one leaves just a gap."""
    payloads = [jpeg_bytes(rgb_array(8, 8, seed=1))] * 40
    if skip:
        payloads[5] = bad_image_bytes()["garbage"]
    report = SkipReport(40, skip_corrupt=skip, max_skip_fraction=0.1, channels=3)
    ds = decode_robustly(
        _robust_examples(payloads), lambda payload, _: tf.io.decode_jpeg(payload, 3), report,
        False, batch_size=3,
    )
    batches = [labels.numpy().tolist() for _, labels in ds]
    kept = [i for i in range(40) if not (skip and i == 5)]
    # skipping one example shifts the rest by one place: full batches all the same
    assert batches == [kept[i : i + 3] for i in range(0, len(kept), 3)]


@pytest.mark.parametrize("skip", [False, True])
def test_robust_decoding_reports_runs_of_bad_examples_and_the_last_ones(skip):
    """Two unreadable examples in a row, and two at the very end of the pass: all are
    reported, in order."""
    good, bad = jpeg_bytes(rgb_array(8, 8, seed=1)), bad_image_bytes()["garbage"]
    bad_at = [3, 4, 10, 11]
    payloads = [bad if i in bad_at else good for i in range(12)]
    report = SkipReport(12, skip_corrupt=skip, max_skip_fraction=0.5, channels=3)
    ds = decode_robustly(
        _robust_examples(payloads), lambda payload, _: tf.io.decode_jpeg(payload, 3), report,
        False, batch_size=4,
    )
    if not skip:
        with pytest.raises(Exception, match=r"Cannot decode image img_3\.JPEG"):
            list(ds)
        return
    labels = [int(label) for _, batch in ds for label in batch]
    assert labels == [i for i in range(12) if i not in bad_at]
    assert report.last_pass == [f"img_{i}.JPEG" for i in bad_at]


@pytest.mark.parametrize("skip", [False, True])
def test_robust_decoding_does_not_swallow_errors_from_before_the_decoder(skip, tmp_path):
    """A damaged TFRecord (a TFDS shard whose record fails its checksum) is not an unreadable
    image to skip: its error must stop the pass, not lose examples silently."""
    path = str(tmp_path / "shard.tfrecord")
    good = jpeg_bytes(rgb_array(8, 8, seed=1))
    with tf.io.TFRecordWriter(path) as writer:
        for _ in range(4):
            writer.write(good)
    data = bytearray(open(path, "rb").read())
    data[len(data) // 4 * 2 + 40] ^= 0xFF  # inside the third record: its checksum fails
    open(path, "wb").write(bytes(data))
    records = tf.data.TFRecordDataset(path).map(lambda r: (tf.constant("x.JPEG"), r, 0))
    examples = tf.data.Dataset.zip((records, tf.data.Dataset.random(seed=0).batch(2)))
    report = SkipReport(4, skip_corrupt=skip, max_skip_fraction=1.0, channels=3)
    ds = decode_robustly(
        examples, lambda payload, _: tf.io.decode_jpeg(payload, 3), report, False, batch_size=2
    )
    with pytest.raises(tf.errors.DataLossError):
        list(ds)


@pytest.mark.parametrize("skip", [False, True])
def test_robust_decoding_redoes_only_the_blocks_that_failed(skip):
    """Good blocks go through the plain map and batch only; a block with an unreadable
    example is decoded again example by example (the slow path), and only that block."""
    good, bad = jpeg_bytes(rgb_array(8, 8, seed=1)), bad_image_bytes()["garbage"]
    payloads = [good] * 40

    def run(payloads):
        report = SkipReport(40, skip_corrupt=skip, max_skip_fraction=0.1, channels=3)
        ds = decode_robustly(
            _robust_examples(payloads), lambda payload, _: tf.io.decode_jpeg(payload, 3),
            report, False, batch_size=4,
        )
        return report, ds

    report, ds = run(payloads)
    assert sum(int(labels.shape[0]) for _, labels in ds) == 40
    assert report.slow_blocks == 0
    payloads[9] = bad
    report, ds = run(payloads)
    if skip:
        assert sum(int(labels.shape[0]) for _, labels in ds) == 39
    else:
        with pytest.raises(Exception, match=r"Cannot decode image img_9\.JPEG"):
            list(ds)
    assert report.slow_blocks == 1


@pytest.mark.parametrize("skip", [False, True])
def test_robust_decoding_does_not_skip_errors_of_the_preprocessing(skip):
    """Only unreadable images are skipped: an error of the per-example work after decoding
    (a bug, not bad data) stops the pass even with skip_corrupt."""
    def preprocess(image, label, seed):
        # fails for label 6: the index is out of range
        return tf.image.resize(image, (4, 4)), tf.gather(tf.range(6, dtype=tf.int64), label)

    report = SkipReport(8, skip_corrupt=skip, max_skip_fraction=1.0, channels=3)
    ds = decode_robustly(
        _robust_examples([jpeg_bytes(rgb_array(8, 8, seed=1))] * 8),
        lambda payload, _: tf.io.decode_jpeg(payload, 3), report, False, batch_size=4,
        preprocess_fn=preprocess,
    )
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"indices\[?.*6"):
        list(ds)
    assert report.last_pass == []


@pytest.mark.parametrize("skip", [False, True])
def test_robust_decoding_gives_full_batches_of_a_static_size_when_dropping_the_rest(skip):
    payloads = [jpeg_bytes(rgb_array(8, 8, seed=1))] * 11
    if skip:
        payloads[2] = bad_image_bytes()["garbage"]  # 10 readable: 2 full batches of 4
    report = SkipReport(11, skip_corrupt=skip, max_skip_fraction=0.5, channels=3)
    ds = decode_robustly(
        _robust_examples(payloads), lambda payload, _: tf.io.decode_jpeg(payload, 3),
        report, False, batch_size=4, drop_remainder=True,
    )
    assert ds.element_spec[0].shape[0] == 4 and ds.element_spec[1].shape == [4]
    batches = [labels.numpy().tolist() for _, labels in ds]
    assert batches == ([[0, 1, 3, 4], [5, 6, 7, 8]] if skip else [[0, 1, 2, 3], [4, 5, 6, 7]])


@pytest.mark.parametrize("skip", [False, True])
def test_robust_decoding_loses_nothing_without_tf_datas_map_and_batch_fusion(skip):
    """Unfused (the fusion turned off, or tf.data's debug mode), a batch whose map fails drops
    what it had collected and goes on with a short batch: the fast path must not take that for
    a block (found by a review: examples 4 and 5 were lost silently)."""
    payloads = [jpeg_bytes(rgb_array(8, 8, seed=1))] * 12
    payloads[5] = bad_image_bytes()["garbage"]
    report = SkipReport(12, skip_corrupt=skip, max_skip_fraction=0.5, channels=3)
    ds = decode_robustly(
        _robust_examples(payloads), lambda payload, _: tf.io.decode_jpeg(payload, 3),
        report, False, batch_size=4,
    )
    options = tf.data.Options()
    options.experimental_optimization.map_and_batch_fusion = False
    ds = ds.with_options(options)
    if not skip:
        with pytest.raises(Exception, match=r"Cannot decode image img_5\.JPEG"):
            list(ds)
        return
    batches = [labels.numpy().tolist() for _, labels in ds]
    assert batches == [[0, 1, 2, 3], [4, 6, 7, 8], [9, 10, 11]]
    assert report.last_pass == ["img_5.JPEG"]


def test_skip_report_keeps_passes_apart():
    report = SkipReport(total=10, skip_corrupt=True, max_skip_fraction=0.15, channels=3)
    first, second = report.new_pass(), report.new_pass()
    assert first != second
    names = tf.constant(["a.JPEG", "b.JPEG"])
    payloads = tf.constant([b"not an image", b"nor this"])
    one_missing = tf.constant([True, False])
    assert report.bad_block(first, names, payloads, one_missing, False) == ""
    assert report.bad_block(second, names, payloads, one_missing, False) == ""  # 1 each: ok
    error = report.bad_block(second, names, payloads, tf.constant([False, True]), False)
    assert error.startswith("CorruptImageError: 2 of 10 images were unreadable"), error
    report.finish(first)
    assert report.last_pass == ["a.JPEG"]
    report.finish(second)
    assert report.last_pass == ["a.JPEG", "b.JPEG"]


def test_a_long_pass_keeps_its_count_while_many_short_ones_come_and_go():
    """A training pass can span several Keras epochs, each with a validation pass that is
    abandoned; forgetting stale passes must not forget one still skipping files."""
    report = SkipReport(total=1000, skip_corrupt=True, max_skip_fraction=0.5, channels=3)
    payloads, bad = tf.constant([b"not an image"]), tf.constant([True])
    training = report.new_pass()
    rounds = 2 * SkipReport._OPEN_PASSES
    for i in range(rounds):
        report.bad_block(training, tf.constant([f"t{i}.JPEG"]), payloads, bad, False)
        validation = report.new_pass()  # one skip each, never finished
        report.bad_block(validation, tf.constant(["v.JPEG"]), payloads, bad, False)
    report.finish(training)
    assert report.last_pass == [f"t{i}.JPEG" for i in range(rounds)]
