"""Odd and corrupt files in an image folder (``--dataset=imagefolder``).

Every case either trains (a readable file decodes as the image it is; an unreadable one is
skipped, counted and named with ``skip_corrupt``) or stops the pass naming the file and the
remedy, and none hangs: each iteration runs under a wall-clock bound. The cheap cases run
through ``get_dataset`` in this process, a few through the trainer's command line.
"""

from __future__ import annotations

import io
import json
import logging
import os
import re
import resource
import struct
import subprocess
import sys
import textwrap
import threading

import numpy as np
import pytest
import tensorflow as tf
from data_helpers import (
    gif_bytes,
    jpeg_bytes,
    make_image_folder,
    png_bytes,
    png_header_bytes,
    rgb_array,
    rgba_png_bytes,
    with_jpeg_size,
    write,
)
from PIL import Image

from bireal_larq import data as D
from bireal_larq.data import preprocessing as P

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BOUND = 120  # seconds: an in-process pass over a handful of tiny images that takes longer hangs
CLI_BOUND = 300  # seconds: one tiny training run, start-up included
HUGE = (30000, 20000)  # height, width declared by the crafted headers: 600 million pixels
SKIP_REMEDY = (
    r"Fix or remove the file, or pass skip_corrupt=True \(train, evaluate: --skip_corrupt\)"
)


def _good_jpeg(seed: int = 1) -> bytes:
    return jpeg_bytes(rgb_array(48, 64, seed=seed))


def unreadable_files() -> dict[str, bytes]:
    """Files that are no image: name -> bytes."""
    good = _good_jpeg()
    return {
        "truncated.JPEG": good[: len(good) // 2],
        "empty.JPEG": b"",
        "header_only.JPEG": good[:4],
        "huge_jpeg.JPEG": with_jpeg_size(good, *HUGE),
        "huge_png.JPEG": png_header_bytes(*HUGE),
    }


def readable_files() -> dict[str, tuple[bytes, np.ndarray]]:
    """Odd but readable files: name -> (bytes, the RGB image they hold, to a tolerance)."""
    source = rgb_array(30, 50, seed=3)
    frames = [rgb_array(30, 50, seed=s) for s in (4, 5, 6)]
    gif = gif_bytes(frames)
    first_frame = np.asarray(Image.open(io.BytesIO(gif)).convert("RGB"))  # palette colours
    luma = np.asarray(Image.fromarray(source).convert("L"))
    return {
        "png_named.JPEG": (png_bytes(source), source),
        "gif_named.JPEG": (gif, first_frame),
        "cmyk.JPEG": (jpeg_bytes(source, mode="CMYK"), source),
        "gray.JPEG": (jpeg_bytes(source, mode="L"), np.repeat(luma[..., None], 3, -1)),
        "png16.png": (png_bytes(source, bit_depth=16), source),
        "rgba.png": (rgba_png_bytes(source), source),
    }


# Mean absolute difference allowed from the image a file holds (lossy JPEG re-encodings).
TOLERANCE = {"cmyk.JPEG": 4.0, "gray.JPEG": 4.0}


def bounded(fn, seconds: float = BOUND):
    """``fn()``'s result (or exception), failing the test when it runs longer than ``seconds``.

    It runs in a daemon thread: a hang fails the test instead of stalling the session.
    """
    outcome: dict[str, object] = {}

    def target():
        try:
            outcome["value"] = fn()
        except BaseException as err:  # noqa: BLE001 - re-raised in the test's thread
            outcome["error"] = err

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(seconds)
    if thread.is_alive():
        pytest.fail(f"still running after {seconds} s: a hang")
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]


def folder(tmp_path, files: dict[str, bytes] | None = None, where="train/dog") -> str:
    """A 2-class image folder (3 train, 1 val image per class) with ``files`` added."""
    root = make_image_folder(str(tmp_path / "images"), ("cat", "dog"), per_class=3, val_per_class=1)
    for name, data in (files or {}).items():
        write(os.path.join(root, where, name), data)
    return root


def one_pass(root: str, training: bool = True, **kwargs) -> tuple[int, int, tf.data.Dataset]:
    """(images seen, images listed, dataset) of one bounded pass over a split of ``root``."""
    ds, listed = D.get_dataset(
        "imagefolder",
        "train" if training else "test",
        batch_size=2,
        training=training,
        data_dir=root,
        seed=0,
        image_size=16,
        **kwargs,
    )

    def run():
        with D.corrupt_image_errors():  # the data package's error, as the trainer reports it
            return sum(int(images.shape[0]) for images, _ in ds)

    return bounded(run), listed, ds


# ------------------------------------------------------------------------------------------
# Unreadable files: stop naming the file, or skip and count them


REASONS = {
    "truncated.JPEG": r"the file is cut short: [\d,]+ bytes, without the end-of-image marker",
    "empty.JPEG": r"the file is empty",
    "header_only.JPEG": r"the file is cut short: 4 bytes",
    "huge_jpeg.JPEG": r"its header declares 20000x30000 pixels \(width x height, 600,000,000 in "
    r"all\), more than max_image_pixels=178,956,970 \(a decompression bomb",
    "huge_png.JPEG": r"its header declares 20000x30000 pixels",
}


@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
@pytest.mark.parametrize("name", list(REASONS))
def test_an_unreadable_file_stops_the_pass_naming_it_why_and_the_remedy(tmp_path, name, training):
    split = "train" if training else "val"
    root = folder(tmp_path, {name: unreadable_files()[name]}, f"{split}/dog")
    path = os.path.join(root, split, "dog", name)
    with pytest.raises(D.CorruptImageError) as caught:
        one_pass(root, training)
    message = str(caught.value)
    assert message.startswith(f"Cannot decode image {path}: "), message
    assert re.search(REASONS[name], message), message
    assert re.search(SKIP_REMEDY, message), message
    with pytest.raises(D.CorruptImageError, match=REASONS[name]):  # the same in load_image
        D.load_image(path)


def test_skip_corrupt_skips_counts_and_names_every_unreadable_file(tmp_path, caplog):
    bad = unreadable_files()
    root = folder(tmp_path, bad)
    with caplog.at_level(logging.WARNING):
        seen, listed, ds = one_pass(root, skip_corrupt=True, max_skip_fraction=0.5)
    assert listed == 6 + len(bad)
    assert seen == 6  # the good ones, in full batches of 2
    skipped = sorted(os.path.basename(p) for p in ds.skip_report.last_pass)
    assert skipped == sorted(bad)
    assert f"Skipped {len(bad)} of {listed} unreadable images" in caplog.text
    for name, reason in REASONS.items():
        path = os.path.join(root, "train", "dog", name)
        assert re.search(rf"Skipping unreadable image {re.escape(path)} \(.*{reason}",
                         caplog.text), name
    # The budget still holds: 5 of 11 is more than 40 %.
    with pytest.raises(D.CorruptImageError, match=r"5 of 11 images were unreadable"):
        one_pass(root, skip_corrupt=True, max_skip_fraction=0.4)


# ------------------------------------------------------------------------------------------
# Odd but readable files: decoded as the images they are


def test_odd_but_readable_files_decode_to_rgb_uint8_as_the_images_they_are(tmp_path):
    for name, (data, expected) in readable_files().items():
        path = write(str(tmp_path / name), data)
        image = D.load_image(path)
        assert image.dtype == tf.uint8 and image.shape == (30, 50, 3), name
        error = np.abs(image.numpy().astype(int) - expected.astype(int)).mean()
        assert error <= TOLERANCE.get(name, 0.0), (name, error)
        gray = D.load_image(path, channels=1)
        assert gray.dtype == tf.uint8 and gray.shape == (30, 50, 1), name
        # The training decoder (RandomResizedCrop fused into the JPEG decoder where it can).
        crop = P.decode_random_crop(tf.constant(data), tf.constant([3, 7], tf.int64))
        assert crop.dtype == tf.uint8 and crop.shape[-1] == 3, name
        assert 0 < crop.shape[0] <= 30 and 0 < crop.shape[1] <= 50, name


@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
def test_odd_but_readable_files_go_through_the_pipeline_unskipped(tmp_path, training):
    files = {name: data for name, (data, _) in readable_files().items()}
    root = folder(tmp_path, files, "train/dog" if training else "val/dog")
    seen, listed, _ = one_pass(root, training)  # without skip_corrupt: any failure raises
    assert (listed, seen) == ((12, 12) if training else (8, 8))


# ------------------------------------------------------------------------------------------
# Huge images by their header


@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
def test_huge_images_are_skipped_by_their_header_with_skip_corrupt(tmp_path, training):
    files = {"huge_jpeg.JPEG": unreadable_files()["huge_jpeg.JPEG"],
             "huge_png.JPEG": unreadable_files()["huge_png.JPEG"]}
    root = folder(tmp_path, files, "train/dog" if training else "val/dog")
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # kB
    seen, listed, ds = one_pass(root, training, skip_corrupt=True, max_skip_fraction=0.5)
    assert (listed, seen) == ((8, 6) if training else (4, 2))
    assert sorted(os.path.basename(p) for p in ds.skip_report.last_pass) == sorted(files)
    # 600 million RGB pixels are 1.8 GB: no image of that size was written.
    grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
    assert grown < 500_000, f"peak memory grew by {grown} kB"


def test_the_pixel_limit_is_configurable_on_every_decoding_path(tmp_path):
    # train: four 52x36 JPEGs (1872 pixels), two of 40x56 (2240), PNGs of 30x50 (1500) and
    # 40x60 (2400); val: two 52x36 JPEGs and a 40x56 JPEG or PNG
    pngs = {"small.JPEG": png_bytes(rgb_array(30, 50)), "large.JPEG": png_bytes(rgb_array(40, 60))}
    root = folder(tmp_path, pngs)
    # the fused crop decoder, the full decoder; JPEG and PNG headers
    for training, wide in ((True, None), (False, jpeg_bytes), (False, png_bytes)):
        if wide is not None:
            write(os.path.join(root, "val", "cat", "wide.JPEG"), wide(rgb_array(40, 56)))
        with pytest.raises(D.CorruptImageError, match=r"declares (56x40|60x40) pixels .*=2,000"):
            one_pass(root, training, max_image_pixels=2000)
    seen, listed, ds = one_pass(root, skip_corrupt=True, max_skip_fraction=0.5,
                                max_image_pixels=2000)
    assert (listed, seen) == (8, 4) and len(ds.skip_report.last_pass) == 3
    assert one_pass(root, max_image_pixels=None)[0] == 8  # no limit
    huge = write(str(tmp_path / "huge.JPEG"), unreadable_files()["huge_png.JPEG"])
    with pytest.raises(D.CorruptImageError, match=r"Cannot decode image .*huge\.JPEG: its header"):
        D.load_image(huge)
    with pytest.raises(D.CorruptImageError, match=r"max_image_pixels=1,499"):
        D.load_image(os.path.join(root, "train", "dog", "small.JPEG"), max_image_pixels=1499)
    # a GIF's logical screen is read below the default limit only (its frame is what TF decodes)
    gif = write(str(tmp_path / "screen.gif"), _huge_headers()["gif"])
    assert D.load_image(gif).shape == (30, 50, 3)
    with pytest.raises(D.CorruptImageError, match=r"declares 60000x60000 pixels .*=100,000,000"):
        D.load_image(gif, max_image_pixels=10**8)
    for wrong in (0, -5, 2.5, True, "many"):
        with pytest.raises(ValueError, match=rf"max_image_pixels={wrong!r} is invalid; valid"):
            D.get_dataset("imagefolder", "train", batch_size=2, training=True, data_dir=root,
                          max_image_pixels=wrong)


def _huge_headers() -> dict[str, bytes]:
    """Files whose headers declare far more pixels than they hold: name -> bytes."""
    gif = bytearray(gif_bytes([rgb_array(30, 50)]))
    gif[6:10] = struct.pack("<HH", 60000, 60000)  # the logical screen; the frame is 50x30
    buffer = io.BytesIO()
    Image.fromarray(rgb_array(30, 50)).save(buffer, format="BMP")
    bmp = buffer.getvalue()[:18] + struct.pack("<ii", 20000, -30000) + buffer.getvalue()[26:]
    return {"png": png_header_bytes(*HUGE), "jpeg": with_jpeg_size(_good_jpeg(), *HUGE),
            "gif": bytes(gif), "bmp": bmp}


@pytest.mark.parametrize("fused", [True, False], ids=["crop_decoder", "full_decoder"])
def test_the_decoders_refuse_a_huge_header_before_decoding(fused):
    """Inside a tf.data map (graph mode, optimised) the check runs before TF's decoder, whose
    own errors ("Invalid PNG data", ...) would mean it went on to allocate the image. At the
    default limit the PNG headers are read (TF's JPEG decoder refuses the JPEG itself, and
    decodes the GIF: its frame is small); below it, every header is."""
    refused = r"indices = 1 is not in \[0, 1\)"  # the check, not a decoder
    seed = tf.constant([1, 2], tf.int64)

    def decode(data, limit):
        if fused:
            fn = lambda e: P.decode_random_crop(e, seed, max_pixels=limit)  # noqa: E731
        else:
            fn = lambda e: P.decode_image(e, max_pixels=limit)  # noqa: E731
        ds = tf.data.Dataset.from_tensors(tf.constant(data)).map(fn)
        return bounded(lambda: [image.shape for image in ds])

    files = _huge_headers()
    for limit, checked in ((P.MAX_IMAGE_PIXELS, ["png"]), (10**8, list(files))):
        for kind, data in files.items():
            if kind in checked:
                with pytest.raises(tf.errors.InvalidArgumentError, match=refused):
                    decode(data, limit)
            elif kind == "gif":
                assert decode(data, limit)[0][-1] == 3
            else:  # TensorFlow's decoder refuses it
                with pytest.raises(tf.errors.InvalidArgumentError) as caught:
                    decode(data, limit)
                assert not re.search(refused, str(caught.value))
    assert P.decode_image(tf.constant(files["gif"]), max_pixels=None).shape == (30, 50, 3)


def test_declared_size_reads_the_header_of_each_format():
    from PIL import features

    source = rgb_array(30, 50, seed=2)

    def saved(fmt, array=source, **kwargs):
        buffer = io.BytesIO()
        Image.fromarray(array).save(buffer, format=fmt, **kwargs)
        return buffer.getvalue()

    files = {"jpeg": jpeg_bytes(source), "png": png_bytes(source), "gif": saved("GIF"),
             "bmp": saved("BMP"), "huge png": png_header_bytes(*HUGE)}
    if features.check("webp"):
        with_alpha = np.concatenate([source, np.full((30, 50, 1), 9, np.uint8)], axis=-1)
        files.update({"webp lossy": saved("WEBP"), "webp lossless": saved("WEBP", lossless=True),
                      "webp extended": saved("WEBP", with_alpha)})
        assert files["webp extended"][12:16] == b"VP8X"
    for kind, data in files.items():
        expected = list(HUGE) if kind == "huge png" else [30, 50]
        assert P.declared_size(tf.constant(data)).numpy().tolist() == expected, kind
    for other in (b"", b"GIF8", b"not an image at all, but longer than a header is"):
        assert P.declared_size(tf.constant(other)).numpy().tolist() == [0, 0]


# ------------------------------------------------------------------------------------------
# What an image folder lists


def test_a_folder_named_like_an_image_is_not_read_as_one(tmp_path, caplog):
    root = folder(tmp_path)
    inside = write(os.path.join(root, "train", "dog", "folder.JPEG", "x.JPEG"), _good_jpeg())
    with caplog.at_level(logging.WARNING):
        seen, listed, _ = one_pass(root)
    assert (listed, seen) == (6, 6)
    assert "ignored 1 item(s) of class folders that are not files" in caplog.text
    assert os.path.join(root, "train", "dog", "folder.JPEG") + "/" in caplog.text
    with pytest.raises(D.CorruptImageError, match=r"folder\.JPEG: it is a directory"):
        D.load_image(os.path.dirname(inside))
    # A class folder holding only such a folder holds no images.
    os.makedirs(os.path.join(root, "train", "emu", "nested.JPEG"))
    with pytest.raises(ValueError, match=r"Class folder .*/train/emu holds no images"):
        one_pass(root)


def test_a_train_class_folder_without_images_is_an_error_naming_it(tmp_path):
    root = folder(tmp_path)
    os.makedirs(os.path.join(root, "train", "bee"))
    write(os.path.join(root, "train", "bee", "notes.txt"), b"no image")
    with pytest.raises(ValueError, match=rf"Class folder {root}/train/bee holds no images .*"
                       r"valid: images in every class folder of train/, or remove the folder"):
        D.get_dataset("imagefolder", "train", batch_size=2, training=True, data_dir=root)


def test_a_val_class_folder_without_images_shifts_no_label(tmp_path):
    """Labels index train/'s class list: a class without validation images is only absent."""
    root = make_image_folder(str(tmp_path / "images"), ("ant", "bee", "cat"), per_class=1,
                             val_per_class=2)
    for name in os.listdir(os.path.join(root, "val", "bee")):
        os.remove(os.path.join(root, "val", "bee", name))
    ds, listed = D.get_dataset("imagefolder", "test", batch_size=4, training=False,
                               data_dir=root, image_size=16)
    labels = bounded(lambda: np.concatenate([y.numpy().argmax(-1) for _, y in ds]))
    assert listed == 4 and labels.tolist() == [0, 0, 2, 2]


# ------------------------------------------------------------------------------------------
# Files that cannot be read


def _read_fails(monkeypatch, locked: str) -> None:
    """Reading ``locked`` fails with "Permission denied", as a file of mode 000 does for a user
    other than root (here root may be running the tests); other files read as usual."""
    read_file, gfile = tf.io.read_file, tf.io.gfile.GFile

    def fake_read_file(filename, name=None):
        is_locked = tf.equal(filename, locked)
        return read_file(tf.where(is_locked, "/nonexistent/permission/denied", filename), name)

    def fake_gfile(path, mode="r"):
        if path == locked:
            raise tf.errors.PermissionDeniedError(None, None, f"{path}; Permission denied")
        return gfile(path, mode)

    monkeypatch.setattr(tf.io, "read_file", fake_read_file)
    monkeypatch.setattr(tf.io.gfile, "GFile", fake_gfile)


def test_a_file_that_cannot_be_read_stops_the_pass_naming_it_or_is_skipped(
    tmp_path, monkeypatch
):
    root = folder(tmp_path, {"locked.JPEG": _good_jpeg()})
    locked = os.path.join(root, "train", "dog", "locked.JPEG")
    _read_fails(monkeypatch, locked)
    reason = r"the file cannot be read \(PermissionDeniedError: .*Permission denied\)"
    with pytest.raises(D.CorruptImageError, match=rf"Cannot decode image {locked}: {reason}"):
        one_pass(root)
    seen, listed, ds = one_pass(root, skip_corrupt=True, max_skip_fraction=0.5)
    assert (listed, seen, ds.skip_report.last_pass) == (7, 6, [locked])


def test_a_file_without_read_permission_stops_the_pass_naming_it_or_is_skipped(tmp_path):
    root = folder(tmp_path, {"locked.JPEG": _good_jpeg()})
    locked = os.path.join(root, "train", "dog", "locked.JPEG")
    os.chmod(locked, 0)
    try:
        try:
            open(locked, "rb").close()
        except PermissionError:
            pass
        else:  # root (CAP_DAC_OVERRIDE): the simulated unreadable file above covers this case
            pytest.skip(f"user {os.geteuid()} reads files of mode 000 (root)")
        with pytest.raises(D.CorruptImageError, match=rf"Cannot decode image {locked}: the "
                           r"file cannot be read \(PermissionDeniedError: .*Permission denied"):
            one_pass(root)
        seen, listed, ds = one_pass(root, skip_corrupt=True, max_skip_fraction=0.5)
        assert (listed, seen, ds.skip_report.last_pass) == (7, 6, [locked])
    finally:
        os.chmod(locked, 0o644)


# ------------------------------------------------------------------------------------------
# End to end: the trainer's command line

EXPERIMENT = '''
"""A tiny image-folder run: 16x16 RGB inputs, 8 base filters."""
from bireal_larq.training import StageConfig, TrainConfig

MODELS = ("birealnet18_small",)


def get_config(model):
    return TrainConfig(
        model=model,
        dataset="imagefolder",
        model_overrides={"base_filters": 8},
        input_shape=(16, 16, 3),
        image_size=16,
        batch_size=2,
        stages=(StageConfig("binary", 1),),
    )
'''


def train_cli(tmp_path, root: str, *flags: str) -> subprocess.CompletedProcess:
    """``python -m bireal_larq.train`` on ``root`` for one epoch, bounded in time."""
    experiment = tmp_path / "tiny_imagefolder.py"
    experiment.write_text(textwrap.dedent(EXPERIMENT))
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONHASHSEED="0")
    env.pop("TF_CONFIG", None)
    command = [
        sys.executable, "-m", "bireal_larq.train", f"--experiment={experiment}",
        "--model=birealnet18_small", "--dataset=imagefolder", f"--data_dir={root}",
        "--epochs=1", "--batch_size=2", f"--output_dir={tmp_path / 'run'}", *flags,
    ]
    return subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=CLI_BOUND)


@pytest.mark.parametrize("name", ["huge_png.JPEG", "truncated.JPEG"])
def test_the_trainer_stops_at_an_unreadable_image_with_exit_4_naming_it(tmp_path, name):
    root = folder(tmp_path, {name: unreadable_files()[name]})
    run = train_cli(tmp_path, root)  # bounded: a hang fails the test
    assert run.returncode == 4, run.stderr[-3000:]
    path = os.path.join(root, "train", "dog", name)
    assert re.search(f"ERROR: Cannot decode image {re.escape(path)}: .*{REASONS[name]}",
                     run.stderr), run.stderr[-3000:]
    assert "--skip_corrupt" in run.stderr
    assert "Traceback" not in run.stdout + run.stderr


def test_the_trainer_skips_every_unreadable_file_with_skip_corrupt_and_names_them(tmp_path):
    bad = unreadable_files()
    files = {**bad, **{name: data for name, (data, _) in readable_files().items()}}
    root = folder(tmp_path, files)
    os.makedirs(os.path.join(root, "train", "cat", "folder.JPEG"))
    run = train_cli(tmp_path, root, "--skip_corrupt", "--max_skip_fraction=0.5")
    assert run.returncode == 0, run.stderr[-3000:]
    assert "Traceback" not in run.stdout + run.stderr
    listed = 6 + len(files)
    report = f"Skipped {len(bad)} of {listed} unreadable images"
    assert report in run.stderr, run.stderr[-3000:]
    line = next(line for line in run.stderr.splitlines() if report in line)
    for name in bad:
        assert os.path.join(root, "train", "dog", name) in line, name
    assert "top-1" in run.stdout  # the run's result


def test_the_trainer_names_a_class_folder_without_images_and_runs_nothing(tmp_path):
    root = folder(tmp_path)
    os.makedirs(os.path.join(root, "train", "emu"))
    run = train_cli(tmp_path, root)
    assert run.returncode == 1, run.stderr[-3000:]
    assert f"Class folder {root}/train/emu holds no images" in run.stderr
    assert "Traceback" not in run.stdout + run.stderr
    assert not os.path.exists(tmp_path / "run")


# ------------------------------------------------------------------------------------------
# The Python API: the documented error, no thread left behind, a prompt exit

API_SCRIPT = r'''
import gc, json, os, sys, time
sys.path.insert(0, {tests!r})
import bireal_larq
import tensorflow as tf
from bireal_larq import data as D

def threads():
    return len(os.listdir("/proc/self/task"))  # the process's OS threads, TF's included

def iterate(ds):
    return sum(int(labels.shape[0]) for _, labels in ds)

good, _ = D.get_dataset("imagefolder", "train", batch_size=2, training=True,
                        data_dir={good!r}, image_size=16, seed=0)
iterate(good); iterate(good)  # TF's own thread pools exist from here on
del good; gc.collect()
before = threads()
ds, _ = D.get_dataset("imagefolder", "train", batch_size=2, training=True,
                      data_dir={bad!r}, image_size=16, seed=0)
out = {{}}
try:
    iterate(ds)
except tf.errors.InvalidArgumentError as err:  # the documented error of an iteration
    out["raw"] = err.message
try:
    with D.corrupt_image_errors():
        iterate(ds)
except D.CorruptImageError as err:
    out["converted"] = str(err)
del ds; gc.collect()
deadline = time.monotonic() + 30  # tf.data stops its threads asynchronously
while threads() > before and time.monotonic() < deadline:
    time.sleep(0.2)
out["before"], out["after"] = before, threads()
print(json.dumps(out), flush=True)
'''


def test_get_dataset_raises_the_documented_error_and_leaves_no_thread_behind(tmp_path):
    """A notebook user iterating ``get_dataset`` over an unreadable file gets an error naming
    it and the remedy, without a Python traceback inside it or in TensorFlow's log; the
    pipeline's threads end with it, and the process then exits by itself."""
    good = folder(tmp_path / "good")
    bad = folder(tmp_path / "bad", {"truncated.JPEG": unreadable_files()["truncated.JPEG"]})
    script = API_SCRIPT.format(tests=os.path.dirname(__file__), good=good, bad=bad)
    env = dict(os.environ)
    env.pop("TF_CPP_MIN_LOG_LEVEL", None)  # TensorFlow's own warnings are shown here
    run = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=BOUND)
    assert run.returncode == 0, run.stderr[-3000:]
    out = json.loads(run.stdout.strip().splitlines()[-1])
    path = os.path.join(bad, "train", "dog", "truncated.JPEG")
    expected = f"Cannot decode image {re.escape(path)}: .*{REASONS['truncated.JPEG']}.*"
    assert re.search(expected, out["raw"]), out["raw"]
    assert re.search(SKIP_REMEDY, out["raw"]), out["raw"]
    assert re.fullmatch(expected + SKIP_REMEDY + " to skip unreadable images",
                        out["converted"]), out["converted"]
    assert "Traceback" not in out["raw"] + run.stdout + run.stderr, run.stderr[-3000:]
    assert out["after"] <= out["before"], out
