"""Tests of bireal_larq.data: configs, preprocessing ops, sources, get_dataset, bad input.

Every augmentation op runs eagerly and inside ``Dataset.map`` and must give the same result
(stateless seeds). TFDS ImageNet is exercised through ``tfds.testing.mock_data`` and through a
tiny real ILSVRC2012 tar pair; Fashion-MNIST through Debian's files (skipped where absent).
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import tensorflow as tf
from data_helpers import (
    READABLE,
    UNREADABLE,
    bad_image_bytes,
    make_image_folder,
    make_imagenet_tars,
    rgb_array,
    write,
)
from PIL import Image, ImageOps

from bireal_larq import data as D
from bireal_larq.data import autoaugment as AA
from bireal_larq.data import mixing
from bireal_larq.data import preprocessing as P

SEED = tf.constant([3, 4], tf.int64)
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _batches(ds, n=2):
    return [(x.numpy(), y.numpy()) for x, y in ds.take(n)]


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return make_image_folder(str(tmp_path_factory.mktemp("imagefolder")))


# ------------------------------------------------------------------------------------------
# Configs and infos


def test_augment_config_rejects_bad_values_naming_field_and_valid_values():
    with pytest.raises(ValueError, match=r"AugmentConfig.crop='center'.*random_resized"):
        D.AugmentConfig(crop="center")
    with pytest.raises(ValueError, match=r"AugmentConfig.area_range.*0 < lo <= hi <= 1"):
        D.AugmentConfig(area_range=(0.5, 0.1))
    with pytest.raises(ValueError, match=r"AugmentConfig.hue"):
        D.AugmentConfig(hue=0.7)
    with pytest.raises(ValueError, match=r"AugmentConfig.eval_resize_ratio"):
        D.AugmentConfig(eval_resize_ratio=0.9)
    for bad in (-1, 8.5, True):
        with pytest.raises(ValueError, match=r"AugmentConfig.cutout=.*an integer >= 0"):
            D.AugmentConfig(cutout=bad)
    with pytest.raises(ValueError, match=r"Unknown AugmentConfig field\(s\) \['flipp'\]"):
        D.AugmentConfig.from_dict({"flipp": True})
    with pytest.raises(ValueError, match=r"Unknown augmentation preset 'imagenet_v9'"):
        D.preset("imagenet_v9")


def test_presets_follow_the_recipes():
    default = D.AugmentConfig()  # the authors' PyTorch ImageNet recipe
    assert (default.crop, default.area_range, default.lighting_alphastd) == (
        "random_resized",
        (0.08, 1.0),
        0.1,
    )
    assert not default.color_jitter and default.flip
    jitter = D.preset("imagenet_jitter")
    assert (jitter.brightness, jitter.contrast, jitter.saturation, jitter.hue) == (
        0.4,
        0.4,
        0.4,
        0.1,
    )
    assert D.preset("imagenet_caffe").crop == "resize_random_crop"
    cifar = D.default_augment("cifar100")
    assert (cifar.crop, cifar.pad, cifar.rotation_degrees, cifar.flip) == (
        "pad_random_crop",
        4,
        15.0,
        True,
    )
    assert D.preset("digits").flip is False
    assert D.preset("cifar_autoaugment").autoaugment == "cifar10"
    assert D.preset("cifar_autoaugment").cutout == 16  # AutoAugment's CIFAR recipe
    assert {D.preset(p).cutout for p in D.PRESETS if p != "cifar_autoaugment"} == {0}
    assert D.preset("imagenet", eval_resize_ratio=1.35).eval_resize_ratio == 1.35
    config = D.preset("cifar_mixup")
    assert D.AugmentConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.flip = False  # type: ignore[misc]


def test_dataset_info_shapes_and_splits():
    fmnist = D.dataset_info("fashion_mnist")
    assert (fmnist.num_classes, fmnist.image_shape, fmnist.eval_split) == (10, (28, 28, 1), "test")
    assert fmnist.class_names is not None and fmnist.class_names[0] == "T-shirt/top"
    assert D.dataset_info("cifar10").image_shape == (32, 32, 3)
    assert D.dataset_info("cifar100").num_classes == 100
    imagenet = D.dataset_info("imagenet2012")
    assert (imagenet.image_shape, imagenet.eval_split, imagenet.resize_eval) == (
        (224, 224, 3),
        "validation",
        True,
    )
    assert imagenet.class_names[0] == "n01440764"
    synthetic = D.dataset_info("synthetic", image_shape=(16, 20, 3), num_classes=7)
    assert (synthetic.image_shape, synthetic.num_classes) == ((16, 20, 3), 7)
    with pytest.raises(ValueError, match=r"Unknown dataset 'mnist'.*fashion_mnist"):
        D.dataset_info("mnist")
    with pytest.raises(ValueError, match=r"split='val' is invalid; valid: 'train' or 'test'"):
        imagenet.source_split("val")


def test_imagefolder_info_and_classes_json_round_trip(folder, tmp_path):
    info = D.dataset_info("imagefolder", data_dir=folder)
    assert info.class_names == ("cat", "dog", "emu")  # sorted folder names
    assert (info.image_shape, info.eval_split) == ((224, 224, 3), "val")
    path = D.save_class_names(str(tmp_path / "ckpt"), info.class_names)
    assert os.path.basename(path) == D.CLASSES_FILE
    assert D.load_class_names(str(tmp_path / "ckpt")) == ["cat", "dog", "emu"]
    with pytest.raises(FileNotFoundError, match="No classes.json"):
        D.load_class_names(str(tmp_path / "nowhere"))
    write(str(tmp_path / "bad" / "classes.json"), b"[1, 2]")
    with pytest.raises(ValueError, match="is not a class list"):
        D.load_class_names(str(tmp_path / "bad"))
    with pytest.raises(ValueError, match="duplicates"):
        D.save_class_names(str(tmp_path / "dup"), ["a", "a"])
    with pytest.raises(FileNotFoundError, match="needs train/ and val/"):
        D.dataset_info("imagefolder", data_dir=str(tmp_path))


def test_imagefolder_skips_hidden_folders_and_says_what_it_ignores(tmp_path, caplog):
    from data_helpers import jpeg_bytes, make_image_folder, rgb_array

    root = make_image_folder(str(tmp_path / "f"), classes=("cat", "dog"), per_class=2)
    # A notebook's checkpoint folder is no class: indices stay cat 0, dog 1.
    os.makedirs(os.path.join(root, "train", ".ipynb_checkpoints"))
    write(os.path.join(root, "train", "dog", "notes.txt"), b"not an image")
    write(os.path.join(root, "train", "dog", ".DS_Store"), b"x")
    assert D.info.imagefolder_classes(root) == ["cat", "dog"]
    with caplog.at_level("WARNING"):
        paths, labels = D.info.imagefolder_files(root, "train", ["cat", "dog"])
    assert labels == [0, 0, 1, 1] and len(paths) == 4
    assert "ignored 1 file(s)" in caplog.text and "notes.txt" in caplog.text
    # A class folder without images is an error, not a class that never appears.
    os.makedirs(os.path.join(root, "train", "emu"))
    write(os.path.join(root, "val", "emu", "e.JPEG"), jpeg_bytes(rgb_array(8, 8)))
    with pytest.raises(ValueError, match=r"train/emu holds no images .*a class the model"):
        D.info.imagefolder_files(root, "train", D.info.imagefolder_classes(root))


# ------------------------------------------------------------------------------------------
# Ops: eagerly and inside Dataset.map, same result


def _uint8_image(h=32, w=32):
    return tf.constant(rgb_array(h, w, seed=9))


def _float01(h=32, w=32):
    return P.to_unit_range(_uint8_image(h, w))


OPS = {
    "random_resized_crop": lambda im, s: P.resize(P.random_resized_crop(im, s), (24, 24)),
    "resize_random_crop": lambda im, s: P.random_crop(P.resize_to_cover(im, (36, 36)), s, (24, 24)),
    "pad_random_crop": lambda im, s: P.pad_random_crop(im, s, 4),
    "flip": P.random_flip,
    "rotation": lambda im, s: P.random_rotation(tf.cast(im, tf.float32), s, 15.0),
    "color_jitter": lambda im, s: P.color_jitter(P.to_unit_range(im), s),
    "lighting": lambda im, s: P.lighting(P.to_unit_range(im), s, 0.1),
    "autoaugment": lambda im, s: AA.autoaugment(im, s),
    "cutout": lambda im, s: P.cutout(tf.cast(im, tf.float32), s, 8, [1.0, 2.0, 3.0]),
    **{
        f"aa_{op}": (lambda name: lambda im, s: AA.apply_operation(im, name, 7, s))(op)
        for op in AA.OPERATIONS
    },
}


@pytest.mark.parametrize("op", sorted(OPS))
def test_op_eager_equals_dataset_map(op):
    fn = OPS[op]
    image = _uint8_image()
    eager = fn(image, SEED).numpy()
    ds = tf.data.Dataset.from_tensors((image, SEED)).map(fn)
    mapped = next(iter(ds)).numpy()
    assert eager.shape == mapped.shape and eager.shape[-1] == 3
    np.testing.assert_allclose(eager, mapped, atol=1e-5)
    assert np.isfinite(eager).all()
    if op == "color_jitter":
        assert eager.min() >= 0.0 and eager.max() <= 1.0 + 1e-6
    elif op != "lighting":  # geometric ops keep the pixel scale; lighting is unclipped
        assert eager.min() >= 0 and eager.max() <= 255 + 1e-3


def test_same_seed_same_output_different_seed_different():
    image = _uint8_image(48, 64)
    a = P.resize(P.random_resized_crop(image, SEED), (16, 16)).numpy()
    b = P.resize(P.random_resized_crop(image, SEED), (16, 16)).numpy()
    c = P.resize(P.random_resized_crop(image, SEED + 1), (16, 16)).numpy()
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_flip_and_rotation_semantics():
    image = _uint8_image()
    outs = [P.random_flip(image, tf.constant([i, 0])).numpy() for i in range(8)]
    assert any(np.array_equal(o, image.numpy()[:, ::-1]) for o in outs)
    assert any(np.array_equal(o, image.numpy()) for o in outs)
    same = P.random_rotation(tf.cast(image, tf.float32), SEED, 0.0)
    np.testing.assert_array_equal(same, tf.cast(image, tf.float32))
    # Up to 15 degrees: the image turns (by a different angle per seed) about its centre.
    turned = [P.random_rotation(tf.cast(image, tf.float32), tf.constant([i, 3]), 15.0).numpy()
              for i in range(4)]
    for out in turned:
        assert not np.allclose(out, image.numpy(), atol=1.0)
        assert np.abs(out[14:18, 14:18] - image.numpy()[14:18, 14:18]).mean() < np.abs(
            out - image.numpy()).mean()  # the centre moves least
    assert not np.allclose(turned[0], turned[1])
    quarter = P.affine_transform(tf.cast(image, tf.float32), P.rotation_matrix(np.pi / 2, 32, 32))
    np.testing.assert_allclose(
        quarter.numpy(), np.rot90(image.numpy()).astype(np.float32), atol=1e-3
    )


def test_cutout_fills_one_clipped_square_with_the_fill():
    image = tf.constant(np.full((12, 10, 3), 200.0, np.float32))
    fill = [10.0, 20.0, 30.0]
    centres, sizes = set(), set()
    for i in range(40):
        out = P.cutout(image, tf.constant([i, 5]), 4, fill).numpy()
        hit = (out != 200.0).any(axis=-1)
        np.testing.assert_array_equal(out[hit], np.broadcast_to(fill, (hit.sum(), 3)))
        rows, cols = np.nonzero(hit.any(axis=1))[0], np.nonzero(hit.any(axis=0))[0]
        # one axis-aligned rectangle: at most 4 x 4, clipped at the borders
        assert hit.sum() == len(rows) * len(cols) and 1 <= len(rows) <= 4 and len(cols) <= 4
        assert np.array_equal(rows, np.arange(rows[0], rows[-1] + 1))
        centres.add((rows[0], cols[0]))
        sizes.add(hit.sum())
    assert len(centres) > 10 and 16 in sizes and min(sizes) < 16  # moves; clipped at a border
    np.testing.assert_array_equal(P.cutout(image, SEED, 0, fill), image)
    # a batch: one square per image, each where that image's own draw puts it
    batch = P.cutout(tf.stack([image] * 6), SEED, 4, 0.0).numpy()
    squares = {tuple(np.argwhere((b == 0).any(-1))[0]) for b in batch}
    assert len(squares) > 1 and all(((b == 0).all(-1).sum() <= 16) for b in batch)


def test_pad_random_crop_keeps_size_and_shifts_at_most_pad():
    image = _uint8_image(8, 8).numpy()
    padded = np.pad(image, [(2, 2), (2, 2), (0, 0)])  # zero padding, as the recipes use
    shifts = set()
    for i in range(16):
        out = P.pad_random_crop(tf.constant(image), tf.constant([i, 7]), 2).numpy()
        assert out.shape == (8, 8, 3)
        # The output is one 8x8 window of the padded image, offset by at most the padding.
        found = [(dy, dx) for dy in range(5) for dx in range(5)
                 if np.array_equal(out, padded[dy:dy + 8, dx:dx + 8])]
        assert found, f"seed {i}: not a window of the padded image"
        shifts.add(found[0])
    assert len(shifts) > 3  # the crop really moves


def test_lighting_adds_one_pca_colour_shift():
    image = tf.fill([4, 4, 3], 0.5)
    out = P.lighting(image, SEED, 0.1).numpy()
    shift = out - 0.5
    np.testing.assert_allclose(shift, np.broadcast_to(shift[0, 0], shift.shape), atol=1e-6)
    alpha = tf.random.stateless_normal([3], SEED, stddev=0.1).numpy()
    expected = np.array(P.IMAGENET_EIGVEC) @ (alpha * np.array(P.IMAGENET_EIGVAL))
    np.testing.assert_allclose(shift[0, 0], expected, atol=1e-6)
    assert np.abs(shift).max() > 0


def test_color_jitter_changes_image_within_range():
    image = _float01()
    out = P.color_jitter(image, SEED, 0.4, 0.4, 0.4, 0.1).numpy()
    assert out.shape == (32, 32, 3) and 0 <= out.min() and out.max() <= 1
    assert np.abs(out - image.numpy()).max() > 0.01


@pytest.mark.parametrize(
    "name, pil_fn",
    [
        ("Invert", ImageOps.invert),
        ("AutoContrast", ImageOps.autocontrast),
        ("Equalize", ImageOps.equalize),
        ("Posterize", lambda im: ImageOps.posterize(im, 5)),  # bin 7 -> 5 bits
        ("Solarize", lambda im: ImageOps.solarize(im, 256 - 256 * 7 / 9)),
    ],
)
def test_autoaugment_ops_match_pil(name, pil_fn):
    array = rgb_array(24, 20, seed=4)
    array[:, :, 2] = array[:, :, 2] // 3 + 40  # a channel with a narrow range
    ours = AA.apply_operation(tf.constant(array), name, 7, SEED).numpy()
    theirs = np.asarray(pil_fn(Image.fromarray(array)))
    np.testing.assert_array_equal(ours, theirs)


def test_autoaugment_policy_is_the_published_table():
    assert len(AA.CIFAR10_POLICY) == 25
    assert all(len(sub) == 2 for sub in AA.CIFAR10_POLICY)
    assert {op for sub in AA.CIFAR10_POLICY for op, _, _ in sub} <= set(AA.OPERATIONS)
    assert AA.CIFAR10_POLICY[0] == (("Invert", 0.1, 7), ("Contrast", 0.2, 6))
    with pytest.raises(ValueError, match="expects a uint8 image"):
        AA.autoaugment(tf.zeros([8, 8, 3]), SEED)
    outs = {AA.autoaugment(_uint8_image(), tf.constant([i, 1])).numpy().tobytes() for i in range(6)}
    assert len(outs) > 1


@pytest.mark.parametrize("kind", ["mixup", "cutmix", "both"])
def test_mixing_gives_soft_labels_that_sum_to_one(kind):
    images = tf.stack([tf.fill([8, 8, 3], float(i)) for i in range(4)])
    labels = tf.one_hot([0, 1, 2, 3], 5)
    mixup_alpha = 0.0 if kind == "cutmix" else 1.0
    cutmix_alpha = 0.0 if kind == "mixup" else 1.0

    def fn(x, y, s):
        return mixing.mix_batch(x, y, s, mixup_alpha, cutmix_alpha)

    eager = fn(images, labels, SEED)
    mapped = next(iter(tf.data.Dataset.from_tensors((images, labels, SEED)).map(fn)))
    for a, b in zip(eager, mapped, strict=True):
        np.testing.assert_allclose(a, b, atol=1e-6)
    x, y = (t.numpy() for t in eager)
    assert x.shape == (4, 8, 8, 3) and y.shape == (4, 5) and y.dtype == np.float32
    np.testing.assert_allclose(y.sum(axis=1), 1.0, atol=1e-5)
    assert (y[:, 4] == 0).all()  # class 4 is absent from the batch
    if kind == "cutmix":
        # Pixels come from the image itself or its partner; label weights = pixel shares.
        own = (x == images.numpy()).all(axis=-1).mean(axis=(1, 2))
        np.testing.assert_allclose(y[np.arange(4), np.arange(4)], own, atol=1e-5)


def test_mixup_actually_mixes():
    images = tf.stack([tf.fill([2, 2, 1], float(i)) for i in range(8)])
    labels = tf.one_hot(tf.range(8), 8)
    seeds = [tf.constant([i, 5]) for i in range(4)]
    soft = [mixing.mixup(images, labels, s, 1.0)[1].numpy().max() < 0.999 for s in seeds]
    assert any(soft)


# ------------------------------------------------------------------------------------------
# Evaluation preprocessing and image loading


def test_eval_preprocess_imagenet_resize_and_centre_crop():
    image = tf.constant(rgb_array(375, 500, seed=3))
    out = D.eval_preprocess(image, "imagenet2012")
    assert out.shape == (224, 224, 3) and out.dtype == tf.float32
    # The same function on a batch; the resize ratios of Training-Tricks-for-BNNs item 18 give
    # other crops.
    batch = D.eval_preprocess(tf.stack([image, image]), D.dataset_info("imagenet2012"))
    np.testing.assert_allclose(batch[0], out, atol=1e-5)
    wide = D.eval_preprocess(image, "imagenet2012", resize_ratio=1.35)
    assert wide.shape == (224, 224, 3) and not np.allclose(wide, out)
    assert D.pipeline.eval_resize_size(224, 256 / 224) == 256
    assert D.pipeline.eval_resize_size(224, 1.15) == 257
    assert D.pipeline.eval_resize_size(224, 1.35) == 302
    # Normalisation: a mid-grey image maps to (0.5 - mean) / std.
    grey = D.eval_preprocess(tf.fill([300, 260, 3], tf.constant(128, tf.uint8)), "imagenet2012")
    expected = (128 / 255 - np.array(D.info.IMAGENET_MEAN)) / np.array(D.info.IMAGENET_STD)
    np.testing.assert_allclose(grey.numpy()[100, 100], expected, atol=1e-4)
    small = D.eval_preprocess(tf.zeros([10, 10, 3], tf.uint8), "imagenet2012", image_size=64)
    assert small.shape == (64, 64, 3)


def test_resizes_round_like_torchvision_and_cover_non_square_crops():
    # torchvision's Resize(256) of a 206x309 image: int(256 * 309 / 206) = 384 exactly (a
    # float scale factor gives 383.99... -> 383).
    # A square target is torchvision's Resize(256): shorter side 256, longer int(256*long/short).
    for shape, expected in [
        ([206, 309, 3], (256, 384, 3)),
        ([309, 206, 3], (384, 256, 3)),
        ([375, 500, 3], (256, 341, 3)),
        ([500, 375, 3], (341, 256, 3)),
        ([300, 300, 3], (256, 256, 3)),
    ]:
        assert P.resize_to_cover(tf.zeros(shape, tf.uint8), (256, 256)).shape == expected
    # A non-square model input: portrait and landscape photos both come out the right size
    # (scaling only the shorter side left a portrait photo narrower than the crop).
    assert P.resize_to_cover(tf.zeros([400, 300, 3], tf.uint8), (256, 365)).shape == (486, 365, 3)
    for shape in ([400, 300, 3], [300, 400, 3], [100, 900, 3]):
        out = D.eval_preprocess(tf.constant(rgb_array(*shape[:2], seed=1)), "imagenet2012",
                                image_size=(224, 320))
        assert out.shape == (224, 320, 3)
        caffe = D.train_geometry(tf.constant(rgb_array(*shape[:2], seed=1)), tf.constant([1, 2]),
                                 D.dataset_info("imagenet2012").with_image_size((224, 320)),
                                 D.preset("imagenet_caffe"))
        assert caffe.shape == (224, 320, 3)


def test_eval_preprocess_small_datasets_and_channels():
    fm = D.eval_preprocess(tf.zeros([28, 28, 1], tf.uint8), "fashion_mnist")
    assert fm.shape == (28, 28, 1)
    np.testing.assert_allclose(fm.numpy(), (0 - 0.2860) / 0.3530, atol=1e-5)
    rgb_to_gray = D.eval_preprocess(tf.zeros([40, 40, 3], tf.uint8), "fashion_mnist")
    assert rgb_to_gray.shape == (28, 28, 1)
    gray_to_rgb = D.eval_preprocess(tf.zeros([32, 32, 1], tf.uint8), "cifar10")
    assert gray_to_rgb.shape == (32, 32, 3)
    with pytest.raises(ValueError, match=r"expects \(H, W, C\)"):
        D.eval_preprocess(tf.zeros([28, 28], tf.uint8), "fashion_mnist")


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


@pytest.mark.parametrize("kind", READABLE)
def test_fused_decode_and_crop_handles_odd_but_readable_files(kind):
    data = tf.constant(bad_image_bytes()[kind])
    crop = P.decode_random_crop(data, SEED)
    assert crop.dtype == tf.uint8 and crop.shape[-1] == 3
    assert 0 < crop.shape[0] <= 30 and 0 < crop.shape[1] <= 50
    assert bool(tf.io.is_jpeg(data)) == (kind != "png")


# ------------------------------------------------------------------------------------------
# get_dataset: synthetic and image folders


def test_get_dataset_rejects_bad_arguments(folder):
    with pytest.raises(ValueError, match=r"Unknown dataset 'imagenet'"):
        D.get_dataset("imagenet", "train", batch_size=2, training=True)
    with pytest.raises(ValueError, match=r"split='validation' is invalid"):
        D.get_dataset("synthetic", "validation", batch_size=2, training=False)
    with pytest.raises(ValueError, match=r"batch_size=0 is invalid"):
        D.get_dataset("synthetic", "train", batch_size=0, training=True)
    with pytest.raises(ValueError, match=r"num_classes=5 does not match imagefolder"):
        D.get_dataset(
            "imagefolder", "train", batch_size=2, training=True, data_dir=folder, num_classes=5
        )
    with pytest.raises(ValueError, match=r"Unknown option\(s\) \['colour'\]"):
        D.get_dataset(
            "imagefolder", "train", batch_size=2, training=True, data_dir=folder, colour=True
        )
    with pytest.raises(ValueError, match=r"need RGB images.*fashion_mnist"):
        D.get_dataset(
            "fashion_mnist", "train", batch_size=2, training=True, augment=D.preset("imagenet")
        )
    with pytest.raises(ValueError, match=r"augment=.* is invalid"):
        D.get_dataset("synthetic", "train", batch_size=2, training=True, augment="cifar")
    for kwargs, message in [
        (dict(seed="a"), r"seed='a' is invalid; valid: None or an int"),
        (dict(image_size=(32, 32, 3)), r"image_size=\(32, 32, 3\) is invalid; valid: one int"),
        (dict(shuffle_buffer=-3), r"shuffle_buffer=-3 is invalid; valid: an int >= 1"),
        (dict(num_examples={"train": 64}), r"num_examples=\{'train': 64\} is invalid"),
        (dict(num_examples=-4), r"num_examples=-4 is invalid"),
    ]:
        with pytest.raises(ValueError, match=message):
            D.get_dataset("synthetic", "train", batch_size=2, training=True, **kwargs)


def test_cutout_in_the_pipeline_sets_a_square_of_the_normalised_image_to_zero():
    # after normalisation and PCA lighting (on here), as the paper zeroes normalised pixels
    kwargs = dict(batch_size=4, training=True, seed=3, image_size=16, num_classes=2,
                  num_examples=8)
    augment = D.AugmentConfig(crop="none", flip=False, lighting_alphastd=0.1)
    plain, _ = D.get_dataset("synthetic", "train", augment=augment, **kwargs)
    cut, _ = D.get_dataset("synthetic", "train", **kwargs,
                           augment=dataclasses.replace(augment, cutout=6))
    x0, x1 = _batches(plain, 1)[0][0], _batches(cut, 1)[0][0]
    changed = (x0 != x1).any(axis=-1)
    for image, mask in zip(x1, changed):
        assert 9 <= mask.sum() <= 36
        np.testing.assert_array_equal(image[mask], 0.0)
    assert len({tuple(np.argwhere(m)[0]) for m in changed}) > 1  # a square of its own each
    np.testing.assert_array_equal(x1[~changed], x0[~changed])  # nothing else moved


def test_synthetic_train_and_eval_batches():
    ds, n = D.get_dataset(
        "synthetic",
        "train",
        batch_size=4,
        training=True,
        seed=0,
        image_size=16,
        num_classes=5,
        num_examples=10,
    )
    batches = _batches(ds, 10)
    assert n == 10 and len(batches) == 2  # drop_remainder
    x, y = batches[0]
    assert x.shape == (4, 16, 16, 3) and x.dtype == np.float32
    assert y.shape == (4, 5) and y.dtype == np.float32
    np.testing.assert_array_equal(y.sum(axis=1), 1.0)
    ds, n = D.get_dataset(
        "synthetic",
        "test",
        batch_size=4,
        training=False,
        image_shape=(8, 8, 1),
        num_classes=3,
        num_examples=10,
    )
    sizes = [x.shape[0] for x, _ in ds]
    assert sizes == [4, 4, 2]  # eval keeps the remainder
    assert ds.element_spec[0].shape.as_list() == [None, 8, 8, 1]


@pytest.mark.parametrize("preset", ["imagenet", "imagenet_caffe", "imagenet_jitter"])
def test_imagefolder_training_batches(folder, preset):
    augment = D.preset(preset, mixup_alpha=0.2) if preset == "imagenet" else D.preset(preset)
    ds, n = D.get_dataset(
        "imagefolder",
        "train",
        batch_size=4,
        training=True,
        data_dir=folder,
        seed=1,
        image_size=32,
        augment=augment,
    )
    assert n == 12
    batches = _batches(ds, 10)
    assert len(batches) == 3
    x, y = batches[0]
    assert x.shape == (4, 32, 32, 3) and x.dtype == np.float32 and np.isfinite(x).all()
    assert -3.0 < x.min() and x.max() < 3.5  # normalised
    assert y.shape == (4, 3)
    np.testing.assert_allclose(y.sum(axis=1), 1.0, atol=1e-5)


def test_fast_training_tail_is_resize_flip_lighting_and_normalisation():
    """The fast path's per-example tail (flip of the crop, resize, then a multiply-add on rows
    of width x channels values against tiled per-channel constants) with its chunked draws
    computes the reference maths: resize, flip when the example's uniform draw is below 1/2,
    then normalize(x / 255 + PCA lighting shift). Non-square crop and output, so
    that a mix-up of height and width or of the channel order in the tiled rows shows."""
    from bireal_larq.data import pipeline
    from bireal_larq.data import preprocessing as P

    # ImageNet's mean / std: three different values per channel (synthetic data has equal ones)
    info = dataclasses.replace(
        D.dataset_info("imagefolder", class_names=["a", "b"]), image_shape=(6, 10, 3)
    )
    augment = D.preset("imagenet")
    tail = pipeline._fused_tail(info, augment, normalise=True)
    chunk = 4
    draws = list(pipeline._fast_draws(5, 0, info, augment, chunk=chunk).take(2 * chunk))
    # the same random stream, drawn again by hand: 2 * chunk crop seed values, then the seed
    # of the flips and the seed of the lighting alphas
    stream = tf.data.Dataset.random(seed=5 * 1_000_003, rerandomize_each_iteration=True)
    values = np.concatenate([v.numpy() for v in stream.batch(2 * chunk + 4).take(2)])
    crop = tf.cast(tf.random.stateless_uniform((9, 13, 3), [1, 2], 0, 256, tf.int32), tf.uint8)
    eigvec, eigval = np.array(P.IMAGENET_EIGVEC), np.array(P.IMAGENET_EIGVAL)
    flips = set()
    for i, (crop_seed, flip, row_offset) in enumerate(draws):
        c, j = divmod(i, chunk)
        first = c * (2 * chunk + 4)
        np.testing.assert_array_equal(crop_seed, values[first + 2 * j : first + 2 * j + 2])
        seeds = values[first + 2 * chunk : first + 2 * chunk + 4]
        flipped = bool(tf.random.stateless_uniform([chunk], seeds[:2]).numpy()[j] < 0.5)
        alpha = tf.random.stateless_normal(
            [chunk, 3], seeds[2:], stddev=augment.lighting_alphastd
        ).numpy()[j]
        assert bool(flip) == flipped
        flips.add(flipped)
        resized = P.resize(crop, (6, 10)).numpy()
        source = resized[:, ::-1] if flipped else resized  # flipped after the resize here
        shift = eigvec @ (alpha * eigval)
        expected = (source / 255.0 + shift - np.array(info.mean)) / np.array(info.std)
        got = tail(crop, flip, row_offset).numpy()
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-4)
    assert flips == {False, True}  # both branches were compared


def test_imagefolder_eval_labels_follow_sorted_folders(folder):
    ds, n = D.get_dataset("imagefolder", "test", batch_size=4, training=False, data_dir=folder)
    assert n == 6
    batches = list(ds)
    assert [x.shape[0] for x, _ in batches] == [4, 2]
    labels = np.concatenate([y.numpy().argmax(axis=1) for _, y in batches])
    np.testing.assert_array_equal(labels, [0, 0, 1, 1, 2, 2])  # cat, dog, emu; not shuffled
    x = batches[0][0].numpy()
    assert x.shape == (4, 224, 224, 3)
    # The eval pipeline is exactly eval_preprocess of the decoded file.
    first = D.load_image(os.path.join(folder, "val", "cat", "cat_0.JPEG"))
    np.testing.assert_allclose(
        x[0], D.eval_preprocess(first, "imagefolder", data_dir=folder), atol=1e-5
    )


def test_training_is_deterministic_given_a_seed(folder):
    def first_batches(seed):
        ds, _ = D.get_dataset(
            "imagefolder",
            "train",
            batch_size=4,
            training=True,
            data_dir=folder,
            seed=seed,
            image_size=24,
            augment=D.preset("imagenet_jitter", cutmix_alpha=1.0),
        )
        return _batches(ds, 2)

    a, b, c = first_batches(7), first_batches(7), first_batches(8)
    for (xa, ya), (xb, yb) in zip(a, b, strict=True):
        np.testing.assert_array_equal(xa, xb)
        np.testing.assert_array_equal(ya, yb)
    assert not np.array_equal(a[0][0], c[0][0])


def test_training_reshuffles_every_epoch(folder):
    ds, _ = D.get_dataset(
        "imagefolder",
        "train",
        batch_size=12,
        training=True,
        data_dir=folder,
        seed=3,
        image_size=8,
        augment=D.preset("none"),
    )
    epoch1 = [x.numpy() for x, _ in ds]
    epoch2 = [x.numpy() for x, _ in ds]
    assert len(epoch1) == len(epoch2) == 1  # one pass is one epoch: no repeat
    # The same 12 images (no augmentation: each image is fixed), in another order.
    first, second = epoch1[0], epoch2[0]
    assert sorted(map(bytes, first)) == sorted(map(bytes, second))
    assert len({bytes(image) for image in first}) == 12  # distinct images: order is visible
    assert not np.array_equal(first, second)


# ------------------------------------------------------------------------------------------
# Bad input through the pipeline


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


def _robust_examples(payloads):
    names = [f"img_{i}.JPEG" for i in range(len(payloads))]
    labels = tf.range(len(payloads), dtype=tf.int64)
    examples = tf.data.Dataset.from_tensor_slices((names, payloads, labels))
    return tf.data.Dataset.zip((examples, tf.data.Dataset.random(seed=0).batch(2)))


def test_skip_counts_are_per_pass_even_when_a_pass_is_abandoned(caplog):
    """A pass left before its end (Keras stops after a known step count; a ``take``) never
    reaches its end report; the next pass must count afresh, not add to it."""
    from data_helpers import jpeg_bytes

    from bireal_larq.data.sources import SkipReport, decode_robustly

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
    from data_helpers import jpeg_bytes

    from bireal_larq.data.sources import SkipReport, decode_robustly

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
    from data_helpers import jpeg_bytes

    from bireal_larq.data.sources import SkipReport, decode_robustly

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
    from data_helpers import jpeg_bytes

    from bireal_larq.data.sources import SkipReport, decode_robustly

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
    from data_helpers import jpeg_bytes

    from bireal_larq.data.sources import SkipReport, decode_robustly

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
    from data_helpers import jpeg_bytes

    from bireal_larq.data.sources import SkipReport, decode_robustly

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
    from data_helpers import jpeg_bytes

    from bireal_larq.data.sources import SkipReport, decode_robustly

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
    from data_helpers import jpeg_bytes

    from bireal_larq.data.sources import SkipReport, decode_robustly

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


def test_the_fused_crop_decoder_does_not_miss_a_truncated_jpeg():
    """decode_and_crop_jpeg stops reading at the crop window's last row, so a file cut below
    it decoded without complaint for some seeds (found by a review); a JPEG with bytes after
    its end-of-image marker is a readable file and stays one."""
    from data_helpers import jpeg_bytes

    from bireal_larq.data import preprocessing as P

    good = jpeg_bytes(rgb_array(64, 64, seed=1))
    assert good.endswith(b"\xff\xd9")
    cut = tf.constant(good[: int(len(good) * 0.9)])
    padded = tf.constant(good + b"\x00" * 7)
    for s in range(12):
        seed = tf.constant([s, 7], tf.int64)
        with pytest.raises(tf.errors.InvalidArgumentError):
            P.decode_random_crop(cut, seed)
        for short in (b"", b"\xff"):  # the decoder's error, not one of the end-marker check
            with pytest.raises(tf.errors.InvalidArgumentError, match=r"(?i)image|empty|input"):
                P.decode_random_crop(tf.constant(short), seed)
        # read whole, then cropped: the same window as the fused decoder would take
        full = P.decode_image(tf.constant(good))
        np.testing.assert_array_equal(
            P.decode_random_crop(padded, seed), P.random_resized_crop(full, seed)
        )


def test_skip_report_keeps_passes_apart():
    from bireal_larq.data.sources import SkipReport

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
    from bireal_larq.data.sources import SkipReport

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


# ------------------------------------------------------------------------------------------
# TFDS ImageNet: mocked, and a tiny real archive pair


def test_imagenet_missing_validation_tar_is_an_error(tmp_path):
    manual = tmp_path / "manual"
    write(str(manual / "ILSVRC2012_img_train.tar"), b"")
    with pytest.raises(FileNotFoundError) as error:
        D.prepare("imagenet2012", data_dir=str(tmp_path / "tfds"), manual_dir=str(manual))
    message = str(error.value)
    assert "lacks ILSVRC2012_img_val.tar" in message
    assert f"{manual}/ILSVRC2012_img_val.tar" in message and "[MISSING]" in message
    assert f"{manual}/ILSVRC2012_img_train.tar: the training images" in message


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
        batches = _batches(ds, 5)
        ev, _ = D.get_dataset(
            "imagenet2012",
            "test",
            batch_size=4,
            training=False,
            data_dir=str(tmp_path / "tfds"),
            manual_dir=str(manual),
        )
        eval_batches = _batches(ev, 5)
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
    x = np.concatenate([b[0] for b in _batches(ev, 5)])
    y = np.concatenate([b[1] for b in _batches(ev, 5)])
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
    x, y = _batches(ds, 1)[0]
    assert x.shape == (8, 28, 28, 1) and x.dtype == np.float32
    assert -1.0 < x.min() and x.max() < 2.1  # (0 - 0.286) / 0.353 .. (1 - 0.286) / 0.353
    assert y.shape == (8, 10) and set(np.unique(y)) <= {0.0, 1.0}
    ev, n_test = D.get_dataset("fashion_mnist", "test", batch_size=1000, training=False)
    assert n_test == 10_000
    labels = np.concatenate([y.numpy().argmax(1) for _, y in ev])
    assert labels.shape == (10_000,) and set(labels) == set(range(10))


def test_fashion_mnist_missing_files_error_says_how_to_install(tmp_path, monkeypatch):
    monkeypatch.setattr(D.sources, "FASHION_MNIST_DIR", str(tmp_path / "absent"))
    with pytest.raises(FileNotFoundError, match=r"`apt-get install dataset-fashion-mnist` as root"):
        D.prepare("fashion_mnist", data_dir=str(tmp_path / "tfds"))
    with pytest.raises(FileNotFoundError, match=r"lacks train-images-idx3-ubyte.gz"):
        D.prepare("fashion_mnist", data_dir=str(tmp_path / "tfds"), manual_dir=str(tmp_path))


def test_cifar_without_its_archive_is_an_error_not_a_download(tmp_path):
    # Offline, TFDS's download would hang; the archive's place is named instead.
    manual = os.path.join(str(tmp_path / "tfds"), "downloads", "manual", "cifar-10-binary.tar.gz")
    with pytest.raises(FileNotFoundError, match=re.escape(manual) + r" is missing"):
        D.get_dataset("cifar10", "train", batch_size=8, training=True,
                      data_dir=str(tmp_path / "tfds"))
    with pytest.raises(FileNotFoundError, match=r"cifar-100-binary.tar.gz is missing"):
        D.prepare("cifar100", data_dir=str(tmp_path / "tfds"), manual_dir=str(tmp_path))


# ------------------------------------------------------------------------------------------
# Distribution: two replicas on logical CPU devices (needs a fresh process)

_DISTRIBUTED = textwrap.dedent(
    """
    import sys
    import numpy as np
    import tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    from bireal_larq import data as D
    folder = sys.argv[1]
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    assert strategy.num_replicas_in_sync == 2
    for name, kwargs in [
        ("synthetic", dict(image_size=8, num_classes=4, num_examples=16)),
        ("imagefolder", dict(data_dir=folder, image_size=16)),
    ]:
        def fn(ctx, name=name, kwargs=kwargs):
            ds, _ = D.get_dataset(name, "train", batch_size=4, training=True, seed=1,
                                  input_context=ctx, **kwargs)
            return ds
        dist = strategy.distribute_datasets_from_function(fn)
        batch = next(iter(dist))
        xs = strategy.experimental_local_results(batch[0])
        ys = strategy.experimental_local_results(batch[1])
        assert len(xs) == 2, len(xs)
        assert all(x.shape[0] == 2 for x in xs), [x.shape for x in xs]  # global 4 -> 2 each
        assert not np.array_equal(xs[0].numpy(), xs[1].numpy())
        assert all(np.allclose(y.numpy().sum(1), 1) for y in ys)
        steps = sum(1 for _ in dist)
        print(name, "steps", steps)
    print("OK")
    """
)


def test_pipeline_under_two_replica_strategy(folder):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    result = subprocess.run(
        [sys.executable, "-c", _DISTRIBUTED, folder],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        cwd=REPO,
    )
    assert result.returncode == 0, result.stdout + result.stderr[-3000:]
    # synthetic: 16 examples, 2 pipelines of 8, 2 per replica -> 4 steps; folder: 12 -> 3.
    assert "synthetic steps 4" in result.stdout and "imagefolder steps 3" in result.stdout
    assert result.stdout.strip().endswith("OK")


def test_imagefolder_labels_index_the_given_class_list(folder, tmp_path):
    # A run's classes.json, not the folders that happen to be in this val/, fixes the labels.
    names = ["ant", "cat", "dog", "emu"]
    ds, n = D.get_dataset("imagefolder", "test", batch_size=8, training=False, data_dir=folder,
                          image_size=16, num_classes=4, class_names=names)
    (_, y), = list(ds)
    assert n == 6 and y.shape == (6, 4)
    np.testing.assert_array_equal(y.numpy().argmax(axis=1), [1, 1, 2, 2, 3, 3])
    # A folder the class list lacks is refused by name, never given another class's index.
    with pytest.raises(ValueError, match=r"val/emu is a class missing from the class list"):
        D.get_dataset("imagefolder", "test", batch_size=8, training=False, data_dir=folder,
                      class_names=["cat", "dog"])
    for bad in ("cat", [], ["cat", "cat"], ["cat", 1]):
        with pytest.raises(ValueError, match="class_names=.* is invalid"):
            D.get_dataset("imagefolder", "test", batch_size=8, training=False,
                          data_dir=folder, class_names=bad)
    with pytest.raises(ValueError, match=r"Unknown option\(s\) \['class_names'\] for 'cifar10'"):
        D.get_dataset("cifar10", "test", batch_size=8, training=False, class_names=names)
    with pytest.raises(ValueError, match="imagefolder needs data_dir"):
        D.get_dataset("imagefolder", "test", batch_size=8, training=False, class_names=names)


def test_truncated_manual_files_are_named_not_a_tfds_traceback(tmp_path):
    import gzip

    manual = tmp_path / "manual"
    manual.mkdir()
    for name in ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
                 "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"):
        (manual / name).write_bytes(gzip.compress(bytes(range(256)) * 64)[:200])  # cut short
    with pytest.raises(ValueError, match=r"Preparing fashion_mnist from .*manual failed .*"
                       r"probably truncated or corrupt: t10k-images-idx3-ubyte\.gz \(200 bytes\)"):
        D.prepare("fashion_mnist", data_dir=str(tmp_path / "tfds"), manual_dir=str(manual))
