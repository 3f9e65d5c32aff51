"""AutoAugment's CIFAR-10 policy [AA], written with TF ops (usable inside ``Dataset.map``).

The policy table is the one published with the paper (25 sub-policies of two operations, each
with a probability and a magnitude bin 0-9). Operations follow the PIL semantics the paper used
(PIL.ImageOps / ImageEnhance), on uint8 RGB images; geometric ones fill with grey (128).

``tf-models-official`` has a maintained implementation, but installing it replaces this
project's pinned TensorFlow (it depends on the full ``tensorflow`` package and ``tf-keras``), so
this module implements the policy itself.
"""

from __future__ import annotations

import math

import tensorflow as tf

from bireal_larq.data.preprocessing import affine_transform, rotation_matrix, split_seed

NUM_BINS = 10
_FILL = 128.0

# [AA] CIFAR-10 policy: ((op, probability, magnitude bin), (op, probability, magnitude bin)).
CIFAR10_POLICY = (
    (("Invert", 0.1, 7), ("Contrast", 0.2, 6)),
    (("Rotate", 0.7, 2), ("TranslateX", 0.3, 9)),
    (("Sharpness", 0.8, 1), ("Sharpness", 0.9, 3)),
    (("ShearY", 0.5, 8), ("TranslateY", 0.7, 9)),
    (("AutoContrast", 0.5, 8), ("Equalize", 0.9, 2)),
    (("ShearY", 0.2, 7), ("Posterize", 0.3, 7)),
    (("Color", 0.4, 3), ("Brightness", 0.6, 7)),
    (("Sharpness", 0.3, 9), ("Brightness", 0.7, 9)),
    (("Equalize", 0.6, 5), ("Equalize", 0.5, 1)),
    (("Contrast", 0.6, 7), ("Sharpness", 0.6, 5)),
    (("Color", 0.7, 7), ("TranslateX", 0.5, 8)),
    (("Equalize", 0.3, 7), ("AutoContrast", 0.4, 8)),
    (("TranslateY", 0.4, 3), ("Sharpness", 0.2, 6)),
    (("Brightness", 0.9, 6), ("Color", 0.2, 8)),
    (("Solarize", 0.5, 2), ("Invert", 0.0, 3)),
    (("Equalize", 0.2, 0), ("AutoContrast", 0.6, 0)),
    (("Equalize", 0.2, 8), ("Equalize", 0.6, 4)),
    (("Color", 0.9, 9), ("Equalize", 0.6, 6)),
    (("AutoContrast", 0.8, 4), ("Solarize", 0.2, 8)),
    (("Brightness", 0.1, 3), ("Color", 0.7, 0)),
    (("Solarize", 0.4, 5), ("AutoContrast", 0.9, 3)),
    (("TranslateY", 0.9, 9), ("TranslateY", 0.7, 9)),
    (("AutoContrast", 0.9, 2), ("Solarize", 0.8, 3)),
    (("Equalize", 0.8, 8), ("Invert", 0.1, 3)),
    (("TranslateY", 0.7, 9), ("AutoContrast", 0.9, 1)),
)


def _level(bin_: int, low: float, high: float) -> float:
    """Value of magnitude bin ``bin_`` on a linear scale of NUM_BINS bins from low to high."""
    return low + (high - low) * bin_ / (NUM_BINS - 1)


def _random_sign(value: float, seed: tf.Tensor) -> tf.Tensor:
    flip = tf.random.stateless_uniform([], seed) < 0.5
    return tf.where(flip, -value, value)


def _to_uint8(image: tf.Tensor) -> tf.Tensor:
    return tf.cast(tf.clip_by_value(tf.round(image), 0.0, 255.0), tf.uint8)


def _blend(degenerate: tf.Tensor, image: tf.Tensor, factor: tf.Tensor) -> tf.Tensor:
    """PIL.ImageEnhance: degenerate + factor * (image - degenerate), clipped to uint8."""
    image = tf.cast(image, tf.float32)
    return _to_uint8(degenerate + factor * (image - degenerate))


def _gray(image: tf.Tensor) -> tf.Tensor:
    weights = tf.constant([0.299, 0.587, 0.114])
    return tf.tensordot(tf.cast(image, tf.float32), weights, [[-1], [0]])[..., None]


# --- operations: (uint8 image, magnitude bin, seed) -> uint8 image ----------------------------


def _geometric(image, matrix):
    return affine_transform(image, matrix, fill_value=_FILL, interpolation="NEAREST")


def shear_x(image, bin_, seed):
    s = _random_sign(_level(bin_, 0.0, 0.3), seed)
    return _geometric(image, tf.stack([1.0, s, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0]))


def shear_y(image, bin_, seed):
    s = _random_sign(_level(bin_, 0.0, 0.3), seed)
    return _geometric(image, tf.stack([1.0, 0.0, 0.0, s, 1.0, 0.0, 0.0, 0.0]))


def translate_x(image, bin_, seed):
    width = tf.cast(tf.shape(image)[1], tf.float32)
    t = _random_sign(_level(bin_, 0.0, 150 / 331), seed) * width
    return _geometric(image, tf.stack([1.0, 0.0, t, 0.0, 1.0, 0.0, 0.0, 0.0]))


def translate_y(image, bin_, seed):
    height = tf.cast(tf.shape(image)[0], tf.float32)
    t = _random_sign(_level(bin_, 0.0, 150 / 331), seed) * height
    return _geometric(image, tf.stack([1.0, 0.0, 0.0, 0.0, 1.0, t, 0.0, 0.0]))


def rotate(image, bin_, seed):
    angle = _random_sign(_level(bin_, 0.0, 30.0) * math.pi / 180.0, seed)
    shape = tf.shape(image)
    return _geometric(image, rotation_matrix(angle, shape[0], shape[1]))


def color(image, bin_, seed):
    factor = 1.0 + _random_sign(_level(bin_, 0.0, 0.9), seed)
    return _blend(_gray(image), image, factor)


def contrast(image, bin_, seed):
    factor = 1.0 + _random_sign(_level(bin_, 0.0, 0.9), seed)
    return _blend(tf.round(tf.reduce_mean(_gray(image))), image, factor)


def brightness(image, bin_, seed):
    factor = 1.0 + _random_sign(_level(bin_, 0.0, 0.9), seed)
    return _blend(tf.constant(0.0), image, factor)


def sharpness(image, bin_, seed):
    factor = 1.0 + _random_sign(_level(bin_, 0.0, 0.9), seed)
    x = tf.cast(image, tf.float32)[tf.newaxis]
    kernel = tf.constant([[1.0, 1.0, 1.0], [1.0, 5.0, 1.0], [1.0, 1.0, 1.0]]) / 13.0
    kernel = tf.tile(kernel[:, :, None, None], [1, 1, 3, 1])
    smooth = tf.nn.depthwise_conv2d(x, kernel, [1, 1, 1, 1], "VALID")[0]
    # PIL's SMOOTH filter leaves the one-pixel border unchanged.
    degenerate = tf.pad(smooth, [[1, 1], [1, 1], [0, 0]])
    mask = tf.pad(tf.ones_like(smooth), [[1, 1], [1, 1], [0, 0]])
    degenerate = mask * degenerate + (1.0 - mask) * x[0]
    return _blend(degenerate, image, factor)


def posterize(image, bin_, seed):
    del seed
    bits = int(round(_level(bin_, 8.0, 4.0)))
    mask = tf.constant((0xFF << (8 - bits)) & 0xFF, tf.uint8)
    return tf.bitwise.bitwise_and(image, mask)


def solarize(image, bin_, seed):
    del seed
    threshold = _level(bin_, 256.0, 0.0)
    return tf.where(tf.cast(image, tf.float32) < threshold, image, 255 - image)


def invert(image, bin_, seed):
    del bin_, seed
    return 255 - image


def autocontrast(image, bin_, seed):
    """Per channel, stretches [min, max] to [0, 255] (PIL ImageOps.autocontrast, cutoff 0)."""
    del bin_, seed
    x = tf.cast(image, tf.float64)  # PIL builds its lookup table in double precision
    lo = tf.reduce_min(x, axis=[0, 1])
    hi = tf.reduce_max(x, axis=[0, 1])
    scale = tf.where(hi > lo, 255.0 / tf.maximum(hi - lo, 1.0), 1.0)
    offset = tf.where(hi > lo, -lo * scale, 0.0)
    out = tf.clip_by_value(tf.math.floor(x * scale + offset), 0.0, 255.0)
    return tf.cast(out, tf.uint8)


def _equalize_channel(channel: tf.Tensor) -> tf.Tensor:
    values = tf.cast(channel, tf.int32)
    hist = tf.math.bincount(values, minlength=256, maxlength=256)
    last = tf.gather(hist, tf.reduce_max(values))  # count of the brightest value present
    step = (tf.reduce_sum(hist) - last) // 255

    def equalized():
        lut = (tf.cumsum(hist, exclusive=True) + step // 2) // tf.maximum(step, 1)
        return tf.cast(tf.gather(tf.clip_by_value(lut, 0, 255), values), tf.uint8)

    return tf.cond(step == 0, lambda: channel, equalized)


def equalize(image, bin_, seed):
    """Per-channel histogram equalisation (PIL ImageOps.equalize)."""
    del bin_, seed
    return tf.stack([_equalize_channel(image[:, :, c]) for c in range(3)], axis=-1)


OPERATIONS = {
    "ShearX": shear_x,
    "ShearY": shear_y,
    "TranslateX": translate_x,
    "TranslateY": translate_y,
    "Rotate": rotate,
    "Color": color,
    "Contrast": contrast,
    "Brightness": brightness,
    "Sharpness": sharpness,
    "Posterize": posterize,
    "Solarize": solarize,
    "Invert": invert,
    "AutoContrast": autocontrast,
    "Equalize": equalize,
}


def apply_operation(image: tf.Tensor, name: str, bin_: int, seed: tf.Tensor) -> tf.Tensor:
    """One named operation at magnitude bin ``bin_`` on a uint8 RGB image."""
    if name not in OPERATIONS:
        raise ValueError(f"Unknown AutoAugment operation {name!r}; valid: {sorted(OPERATIONS)}")
    out = OPERATIONS[name](image, bin_, seed)
    out.set_shape(image.shape)
    return out


def autoaugment(image: tf.Tensor, seed: tf.Tensor, policy=CIFAR10_POLICY) -> tf.Tensor:
    """Applies one uniformly chosen sub-policy of ``policy`` to a uint8 RGB image.

    Args:
        image: uint8 (H, W, 3).
        seed: stateless seed, shape [2].
        policy: sub-policies as in :data:`CIFAR10_POLICY`.

    Returns:
        uint8 (H, W, 3).
    """
    if image.dtype != tf.uint8:
        raise ValueError(f"autoaugment expects a uint8 image, got {image.dtype.name}")
    choice_seed, *op_seeds = split_seed(seed, 5)
    index = tf.random.stateless_uniform([], choice_seed, 0, len(policy), dtype=tf.int32)

    def branch(sub_policy):
        def run():
            out = image
            for k, (name, prob, bin_) in enumerate(sub_policy):
                apply_seed, magnitude_seed = op_seeds[2 * k], op_seeds[2 * k + 1]
                if prob <= 0:
                    continue
                apply = tf.random.stateless_uniform([], apply_seed) < prob
                out = tf.cond(
                    apply,
                    lambda out=out, name=name, bin_=bin_, ms=magnitude_seed: apply_operation(
                        out, name, bin_, ms
                    ),
                    lambda out=out: out,
                )
            return out

        return run

    out = tf.switch_case(index, [branch(p) for p in policy])
    out.set_shape(image.shape)
    return out
