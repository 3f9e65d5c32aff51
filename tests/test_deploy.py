"""The inference API: classification of files, arrays and batches, and clear input errors."""

from __future__ import annotations

import io

import larq as lq
import numpy as np
import pytest
import tensorflow as tf
from data_helpers import png_header_bytes
from PIL import Image

from bireal_larq import data, export
from bireal_larq.deploy import Classifier, classify

SHAPE = (8, 8, 3)
CLASSES = 4


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """A tiny binary classifier exported with ``dataset="synthetic"`` in its report."""
    tf.keras.utils.set_random_seed(0)
    x = tf.keras.Input(SHAPE, name="image")
    y = lq.layers.QuantConv2D(
        8,
        3,
        padding="same",
        input_quantizer="approx_sign",
        kernel_quantizer="magnitude_aware_sign",
        use_bias=False,
        name="conv",
    )(x)
    y = tf.keras.layers.BatchNormalization(name="bn")(y)
    y = tf.keras.layers.GlobalAveragePooling2D(name="pool")(y)
    y = tf.keras.layers.Dense(CLASSES, name="logits")(y)
    y = tf.keras.layers.Activation("softmax", name="predictions")(y)
    model = tf.keras.Model(x, y, name="tiny")
    path = tmp_path_factory.mktemp("deploy") / "tiny.tflite"
    export.export_model(model, str(path), verify_samples=0, metadata={"dataset": "synthetic"})
    return model, path


def _images(n, size=SHAPE, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (n, *size), dtype=np.uint8)


def test_classifies_arrays_and_batches_like_keras_with_eval_preprocessing(exported):
    model, path = exported
    clf = Classifier(path)
    assert clf.dataset == "synthetic" and clf.input_shape == SHAPE
    batch = _images(5)
    expected = model(data.eval_preprocess(batch, clf._info), training=False).numpy()
    probabilities = clf.predict(batch)
    np.testing.assert_allclose(probabilities, expected, atol=1e-5)
    predictions = clf.classify(batch, top_k=2)
    assert [p.index for p in predictions] == list(expected.argmax(-1))
    assert all(len(p.top_k) == 2 and p.top_k[0][2] >= p.top_k[1][2] for p in predictions)
    # One image (H, W, C) and a list of images give the same answers as the batch.
    np.testing.assert_allclose(clf.predict(batch[0]), probabilities[:1], atol=1e-6)
    np.testing.assert_allclose(clf.predict(list(batch[:2])), probabilities[:2], atol=1e-6)
    # Images of another size are resized by the eval preprocessing, as in training.
    assert clf.predict(_images(1, (16, 12, 3))).shape == (1, CLASSES)


def test_classifies_image_files(exported, tmp_path):
    _, path = exported
    images = _images(2, seed=3)
    files = []
    for i, image in enumerate(images):
        f = tmp_path / f"img{i}.png"
        f.write_bytes(tf.io.encode_png(image).numpy())
        files.append(str(f))
    clf = Classifier(path)
    np.testing.assert_allclose(clf.predict(files), clf.predict(images), atol=1e-6)
    labels = classify(path, files[0])
    assert len(labels) == 1 and labels[0].label == str(labels[0].index)


def test_float32_inputs_are_taken_as_preprocessed_and_shape_checked(exported):
    model, path = exported
    clf = Classifier(path)
    x = np.random.default_rng(1).standard_normal((3, *SHAPE)).astype(np.float32)
    np.testing.assert_allclose(clf.predict(x), model(x, training=False).numpy(), atol=1e-5)
    with pytest.raises(ValueError, match=r"float32 input of shape \(3, 9, 8, 3\).*\(N, 8, 8, 3\)"):
        clf.predict(np.zeros((3, 9, 8, 3), np.float32))
    # raw pixels given as float32 are not taken for model inputs (they were, silently)
    raw = _images(2).astype(np.float32)
    with pytest.raises(ValueError, match=r"reaches \|x\| = 2\d\d.*look like raw pixels.*uint8"):
        clf.predict(raw)
    with pytest.raises(ValueError, match=r"NaN or infinity"):
        clf.predict(np.full((1, *SHAPE), np.nan, np.float32))
    # Pixels scaled to [0, 1] (x / 255, plt.imread) are not model inputs either (they were
    # taken for them, silently: other probabilities, another top-1).
    with pytest.raises(ValueError, match=r"within \[0, 1\].*uint8.*preprocessed=True"):
        clf.classify(_images(2).astype(np.float32) / 255)
    # preprocessed=True takes float32 inputs as model inputs whatever their values.
    scaled = _images(2).astype(np.float32) / 255
    np.testing.assert_allclose(clf.predict(scaled, preprocessed=True),
                               model(scaled, training=False).numpy(), atol=1e-5)
    assert clf.classify(raw, preprocessed=True)[0].index in range(CLASSES)
    with pytest.raises(ValueError, match="preprocessed=True, but the input is uint8"):
        clf.predict(_images(1), preprocessed=True)


@pytest.mark.parametrize(
    "bad,message",
    [
        (np.zeros((8, 8), np.uint8), r"rank 2 .*expected a file path, a uint8 image \(H, W, 3\)"),
        (np.zeros((1, 1, 8, 8, 3), np.uint8), "rank 5"),
        (np.zeros((8, 8, 3), np.float64), "dtype float64; expected .*uint8"),
        (np.zeros((8, 8, 3), np.int32), "dtype int32"),
        (np.zeros((8, 8, 5), np.uint8), "5 channels .*expected 1, 3 or 4"),
        (np.zeros((0, 8, 3), np.uint8), "empty"),
        ([], "No images given"),
        (3.5, "float; expected"),
    ],
)
def test_bad_inputs_name_the_expected_input(exported, bad, message):
    _, path = exported
    with pytest.raises(ValueError, match=message):
        Classifier(path).predict(bad)


def test_bad_files(exported, tmp_path):
    _, path = exported
    clf = Classifier(path)
    with pytest.raises(FileNotFoundError, match="nope.png"):
        clf.predict(str(tmp_path / "nope.png"))
    corrupt = tmp_path / "corrupt.jpg"
    corrupt.write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    with pytest.raises(ValueError, match="corrupt.jpg"):
        clf.predict(str(corrupt))
    # a JPEG cut short and a PNG header declaring 600 million pixels: the data package's
    # error, naming the file and why, before anything is decoded
    good = io.BytesIO()
    Image.fromarray(_images(1)[0]).save(good, format="JPEG")
    truncated = tmp_path / "truncated.jpg"
    truncated.write_bytes(good.getvalue()[: len(good.getvalue()) // 2])
    with pytest.raises(data.CorruptImageError, match=r"truncated\.jpg: .*the file is cut short"):
        clf.predict(str(truncated))
    huge = tmp_path / "huge.png"
    huge.write_bytes(png_header_bytes(30000, 20000))
    with pytest.raises(data.CorruptImageError, match=r"huge\.png: its header declares 20000x30000"):
        clf.classify([str(huge)])
    not_tflite = tmp_path / "model.tflite"
    not_tflite.write_bytes(b"PK\x03\x04 a zip file, not a flatbuffer")
    with pytest.raises(export.NotAFlatbufferError, match="not a TFLite flatbuffer"):
        Classifier(not_tflite)
    with pytest.raises(FileNotFoundError, match="expected a .tflite file"):
        Classifier(tmp_path / "missing.tflite")


def test_dataset_and_class_name_mismatches(exported, tmp_path):
    _, path = exported
    with pytest.raises(ValueError, match="3 class names given for a model with 4 classes"):
        Classifier(path, class_names=["a", "b", "c"])
    clf = Classifier(path, class_names=["a", "b", "c", "d"])
    assert clf.classify(_images(1))[0].label in "abcd"
    # Without a known dataset raw images cannot be preprocessed; float inputs still work.
    bare = tmp_path / "bare.tflite"
    bare.write_bytes(path.read_bytes())
    clf = Classifier(bare)
    with pytest.raises(ValueError, match="pass Classifier\\(..., dataset=NAME\\)"):
        clf.predict(_images(1))
    assert clf.predict(np.zeros((1, *SHAPE), np.float32)).shape == (1, CLASSES)
    with pytest.raises(ValueError, match="top_k=9 is invalid; valid: an int in 1..4"):
        clf.classify(np.zeros((1, *SHAPE), np.float32), top_k=9)
    for bad in (True, 2.0):
        with pytest.raises(ValueError, match="top_k=.* is invalid"):
            clf.classify(np.zeros((1, *SHAPE), np.float32), top_k=bad)
    assert len(clf.classify(np.zeros((1, *SHAPE), np.float32), top_k=np.int64(2))[0].top_k) == 2


@pytest.mark.parametrize("backend", export.BACKENDS)
def test_every_backend_gives_the_same_answers(exported, backend):
    model, path = exported
    clf = Classifier(path, backend=backend)
    assert clf.backend == backend
    x = np.random.default_rng(2).standard_normal((4, *SHAPE)).astype(np.float32)
    np.testing.assert_allclose(clf.predict(x), model(x, training=False).numpy(), atol=1e-5)


def test_default_backend_and_unknown_backend(exported):
    _, path = exported
    for bad in (0, -5, 2.5, True):
        with pytest.raises(ValueError, match=rf"num_threads={bad!r} is invalid; valid: an int"):
            Classifier(path, num_threads=bad)
    assert Classifier(path, num_threads=np.int64(2)).predict(_images(1)).shape == (1, CLASSES)
    assert Classifier(path).backend == export.default_backend()
    with pytest.raises(ValueError, match=r"backend='fast' is invalid; valid: \['default'"):
        Classifier(path, backend="fast")


def test_the_runs_resize_ratio_and_classes_reach_verification_and_the_inference_api(
    exported, tmp_path
):
    from data_helpers import make_image_folder

    from bireal_larq import runs
    from bireal_larq.export.verify import dataset_images

    # The ratio of a run is its last stage's (or a named stage's); None: the dataset default.
    config = {"stages": [{"name": "a", "augment": {"eval_resize_ratio": 1.35}},
                         {"name": "b", "augment": None}]}
    assert runs.eval_resize_ratio(config) is None
    assert runs.eval_resize_ratio(config, "a") == 1.35
    assert runs.eval_resize_ratio({}) is None

    model, _ = exported
    root = make_image_folder(str(tmp_path / "images"), classes=("a", "b", "c", "d"),
                             per_class=1, val_per_class=2)
    images, _ = dataset_images("imagefolder", 8, SHAPE, data_dir=root, resize_ratio=1.35)
    default, _ = dataset_images("imagefolder", 8, SHAPE, data_dir=root)
    expected = np.concatenate([x.numpy() for x, _ in data.get_dataset(
        "imagefolder", "test", batch_size=8, training=False, data_dir=root, image_size=8,
        augment=data.AugmentConfig(eval_resize_ratio=1.35))[0]])
    np.testing.assert_array_equal(images, expected)
    assert np.abs(images - default).max() > 0.1

    path = tmp_path / "ratio.tflite"
    report = export.export_model(
        model, str(path), verify_dataset="imagefolder", verify_samples=8, data_dir=root,
        metadata={"dataset": "imagefolder", "eval_resize_ratio": 1.35,
                  "class_names": ["w", "x", "y", "z"]},
    )
    assert report["eval_resize_ratio"] == 1.35 and report["verification"]["samples"] == 8
    # The run's class names travel in the report: no image folder is needed to deploy.
    clf = Classifier(path)
    assert clf.resize_ratio == 1.35 and clf.class_names == ("w", "x", "y", "z")
    assert clf.classify(_images(1, (20, 30, 3)))[0].label in "wxyz"
    raw = _images(2, (20, 30, 3))
    np.testing.assert_allclose(
        clf._raw_batch(raw, "images"),
        data.eval_preprocess(raw, clf._info, resize_ratio=1.35).numpy(),
    )
    assert np.abs(clf._raw_batch(raw, "images") - data.eval_preprocess(raw, clf._info)).max() > 0.1
