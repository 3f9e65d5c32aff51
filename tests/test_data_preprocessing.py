"""Tests of the pure preprocessing ops: augmentations, AutoAugment, mixing, the evaluation
preprocessing and the fused decode-and-crop.

Every augmentation op runs eagerly and inside ``Dataset.map`` and must give the same result
(stateless seeds).
"""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf
from data_helpers import READABLE, bad_image_bytes, jpeg_bytes, rgb_array
from PIL import Image, ImageOps

from bireal_larq import data as D
from bireal_larq.data import autoaugment as AA
from bireal_larq.data import mixing
from bireal_larq.data import preprocessing as P
from bireal_larq.data.pipeline import eval_resize_size
from bireal_larq.data.specs import IMAGENET_MEAN, IMAGENET_STD

SEED = tf.constant([3, 4], tf.int64)


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
# Evaluation preprocessing


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
    assert eval_resize_size(224, 256 / 224) == 256
    assert eval_resize_size(224, 1.15) == 257
    assert eval_resize_size(224, 1.35) == 302
    # Normalisation: a mid-grey image maps to (0.5 - mean) / std.
    grey = D.eval_preprocess(tf.fill([300, 260, 3], tf.constant(128, tf.uint8)), "imagenet2012")
    expected = (128 / 255 - np.array(IMAGENET_MEAN)) / np.array(IMAGENET_STD)
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


# ------------------------------------------------------------------------------------------
# Decoding


@pytest.mark.parametrize("kind", READABLE)
def test_fused_decode_and_crop_handles_odd_but_readable_files(kind):
    data = tf.constant(bad_image_bytes()[kind])
    crop = P.decode_random_crop(data, SEED)
    assert crop.dtype == tf.uint8 and crop.shape[-1] == 3
    assert 0 < crop.shape[0] <= 30 and 0 < crop.shape[1] <= 50
    assert bool(tf.io.is_jpeg(data)) == (kind != "png")


def test_the_fused_crop_decoder_does_not_miss_a_truncated_jpeg():
    """decode_and_crop_jpeg stops reading at the crop window's last row, so a file cut below
    it decoded without complaint for some seeds (found by a review); a JPEG with bytes after
    its end-of-image marker is a readable file and stays one."""
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
