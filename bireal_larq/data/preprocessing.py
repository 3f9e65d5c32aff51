"""Pure preprocessing ops on image tensors.

Every random op takes an explicit ``seed``: an int32/int64 tensor of shape [2] for the
``tf.random.stateless_*`` family. The pipeline derives these seeds from the run seed (one per
example, or per batch or per chunk of examples for vectorised draws), which makes the output
independent of thread scheduling (deterministic given the seed).

Geometric ops keep the pixel scale [0, 255] (uint8 or float32); photometric ops work on float32
images in [0, 1]. Sources are cited as in :mod:`bireal_larq.data.config`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import tensorflow as tf

# Lighting (Training-Tricks-for-BNNs item 9, after fb.resnet.torch): the ImageNet PCA of RGB
# pixels in [0, 1], eigen values and eigen vectors (rows).
IMAGENET_EIGVAL = (0.2175, 0.0188, 0.0045)
IMAGENET_EIGVEC = (
    (-0.5675, 0.7192, 0.4009),
    (-0.5808, -0.0045, -0.8140),
    (-0.5836, -0.6948, 0.4203),
)
_GRAY_WEIGHTS = (0.299, 0.587, 0.114)  # ITU-R 601-2 luma, what PIL's convert("L") uses


def split_seed(seed: tf.Tensor, num: int) -> list[tf.Tensor]:
    """``num`` independent stateless seeds derived from one."""
    return tf.unstack(tf.random.experimental.stateless_split(seed, num))


# ------------------------------------------------------------------------------------------
# Decoding


# The largest image (height x width) decoded by default: where PIL refuses an image as a
# decompression bomb (2 * PIL.Image.MAX_IMAGE_PIXELS), and the largest JPEG TensorFlow's
# decoder accepts at all (it refuses 2**29 bytes of RGB or more).
MAX_IMAGE_PIXELS = 178_956_970
_JPEG_DECODER_MAX_PIXELS = (2**29 - 1) // 3  # = MAX_IMAGE_PIXELS
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _big_endian(offset: int, size: int) -> list[tuple[int, int, int, int]]:
    return [(offset + i, 0, 255, 256 ** (size - 1 - i)) for i in range(size)]


def _little_endian(offset: int, size: int) -> list[tuple[int, int, int, int]]:
    return [(offset + i, 0, 255, 256**i) for i in range(size)]


# Where the formats other than JPEG state their size in their first bytes: (magic bytes by
# offset, height, width, what to add to both); a size is a sum of terms (byte >> shift & mask)
# * weight, each term (byte offset, shift, mask, weight).
_HEADERS = (
    ({0: _PNG_SIGNATURE}, _big_endian(20, 4), _big_endian(16, 4), 0),  # IHDR
    ({0: b"GIF8"}, _little_endian(8, 2), _little_endian(6, 2), 0),  # the logical screen
    ({0: b"BM"}, _little_endian(22, 4), _little_endian(18, 4), 0),  # BITMAPINFOHEADER
    ({8: b"WEBPVP8X"}, _little_endian(27, 3), _little_endian(24, 3), 1),  # extended WebP
    ({8: b"WEBPVP8 "}, [(28, 0, 255, 1), (29, 0, 0x3F, 256)],  # lossy: 14 bits
     [(26, 0, 255, 1), (27, 0, 0x3F, 256)], 0),
    ({8: b"WEBPVP8L"}, [(22, 6, 3, 1), (23, 0, 255, 4), (24, 0, 15, 1024)],  # lossless
     [(21, 0, 255, 1), (22, 0, 0x3F, 256)], 1),
)
_HEADER_BYTES = 32  # the first bytes, enough for every size field above
# (size index: 2 * format + 0 for the height, 1 for the width, byte, shift, mask, weight)
_SIZE_TERMS = [
    (2 * k + axis, *term)
    for k, (_, *sizes, _) in enumerate(_HEADERS)
    for axis, terms in enumerate(sizes)
    for term in terms
]
# (format, byte offset, value) of every magic byte
_MAGIC_BYTES = [
    (k, offset + i, value)
    for k, (magic, *_) in enumerate(_HEADERS)
    for offset, text in magic.items()
    for i, value in enumerate(text)
]


def _other_declared_size(encoded: tf.Tensor) -> tf.Tensor:
    """(height, width) from the header of a PNG, GIF (its logical screen), BMP or WebP, int64
    [2]; (0, 0) for other data. A few vector ops for every format at once."""
    head = tf.cast(tf.io.decode_raw(encoded, tf.uint8, fixed_length=_HEADER_BYTES), tf.int64)
    index, offset, shift, mask, weight = zip(*_SIZE_TERMS, strict=True)
    terms = tf.bitwise.bitwise_and(tf.bitwise.right_shift(tf.gather(head, offset), shift), mask)
    sizes = tf.math.unsorted_segment_sum(terms * weight, index, 2 * len(_HEADERS))
    sizes += [add for *_, add in _HEADERS for _ in range(2)]
    sizes = tf.minimum(sizes, 2**32 - sizes)  # BMP: a negative height (rows stored top-down)
    fmt, offset, value = zip(*_MAGIC_BYTES, strict=True)
    same = tf.cast(tf.equal(tf.gather(head, offset), value), tf.int64)
    is_format = tf.math.unsorted_segment_min(same, fmt, len(_HEADERS))  # 1: all magic bytes
    return tf.reduce_sum(tf.reshape(sizes, [-1, 2]) * is_format[:, None], axis=0)


def declared_size(encoded: tf.Tensor) -> tf.Tensor:
    """The (height, width) an encoded image's header declares, without decoding the image.

    Reads JPEG, PNG, GIF (its logical screen), BMP and WebP headers.

    Returns:
        int64 [2]; (0, 0) for data of another format.

    Raises:
        tf.errors.InvalidArgumentError: a JPEG whose header cannot be read.
    """
    return tf.cond(
        tf.io.is_jpeg(encoded),
        lambda: tf.cast(tf.image.extract_jpeg_shape(encoded)[:2], tf.int64),
        lambda: _other_declared_size(encoded),
    )


def _headers_read(max_pixels: int | None) -> str:
    """Which headers the decoders read for the limit ``max_pixels``: "none", "png" (the
    default limit and above: TensorFlow's JPEG decoder refuses larger JPEGs itself) or "all"
    (JPEG, PNG, GIF, BMP and WebP, for a lower limit)."""
    if max_pixels is None:
        return "none"
    return "all" if max_pixels < _JPEG_DECODER_MAX_PIXELS else "png"


def check_size(encoded: tf.Tensor, max_pixels: int | None) -> tf.Tensor:
    """``encoded``, passed on by an op that fails (``tf.errors.InvalidArgumentError``) when its
    header declares more than ``max_pixels`` (height x width): decode the result, and a huge
    image fails before any decoder allocates it. ``max_pixels`` None: no check.

    At :data:`MAX_IMAGE_PIXELS` and above, only a PNG's header is read, in a handful of ops
    (TensorFlow's JPEG decoder refuses a larger JPEG itself); below it, the headers of JPEG,
    PNG, GIF (its logical screen), BMP and WebP data. Every op of a decoding function costs
    each image a few microseconds, also in a branch not taken.
    """
    kind = _headers_read(max_pixels)
    if kind == "none":
        return encoded
    if kind == "all":
        size = declared_size(encoded)
        return _refuse_if(encoded, tf.reduce_prod(size) > max_pixels)
    is_png = tf.equal(tf.strings.substr(encoded, 0, len(_PNG_SIGNATURE)), _PNG_SIGNATURE)
    # the first 24 bytes (zero-padded) as big-endian words: IHDR's width and height are the
    # last two (at most 2**31 - 1 each)
    words = tf.io.decode_raw(encoded, tf.int32, little_endian=False, fixed_length=24)
    pixels = tf.reduce_prod(tf.cast(words[4:], tf.int64))
    return _refuse_if(encoded, tf.logical_and(is_png, pixels > max_pixels))


def header_refusal(data: bytes, max_pixels: int | None) -> str | None:
    """Why the decoders refuse the image ``data`` by its header (what :func:`check_size` and
    TensorFlow's JPEG decoder check), or None. Eager, for messages."""
    try:
        height, width = (int(v) for v in declared_size(data).numpy())
    except tf.errors.OpError:  # a JPEG without a readable header: the decoder says why
        return None
    pixels = height * width
    declares = f"its header declares {width}x{height} pixels (width x height, {pixels:,} in all)"
    is_jpeg = data[:3] == b"\xff\xd8\xff"
    read = _headers_read(max_pixels)
    if read != "none" and pixels > max_pixels and (
        read == "all" or is_jpeg or data.startswith(_PNG_SIGNATURE)
    ):
        return (
            f"{declares}, more than max_image_pixels={max_pixels:,} (a decompression bomb or "
            "a damaged header; a real image this large needs a higher max_image_pixels)"
        )
    if is_jpeg and pixels > _JPEG_DECODER_MAX_PIXELS:
        limit = _JPEG_DECODER_MAX_PIXELS
        return f"{declares}, more than TensorFlow's JPEG decoder takes ({limit:,})"
    return None


def _refuse_if(value: tf.Tensor, condition: tf.Tensor) -> tf.Tensor:
    """``value``, passed on by an op that fails when ``condition`` (a bool scalar) holds.

    A stateless data dependency: a stateful ``Assert`` makes every decoding function
    stateful, which costs tf.data more, and a check no value depends on is pruned by
    TensorFlow's graph optimiser. (Passing a string on copies it: about 1 % of the time a JPEG
    of ImageNet's size takes to decode.)
    """
    # element 1 of a stack of 1 when the condition holds: "indices = 1 is not in [0, 1)"
    return tf.gather(tf.expand_dims(value, 0), tf.cast(condition, tf.int32))


def decode_image(
    encoded: tf.Tensor, channels: int = 3, max_pixels: int | None = MAX_IMAGE_PIXELS
) -> tf.Tensor:
    """Decodes JPEG (RGB, grayscale or CMYK), PNG (8 or 16 bits, with or without alpha), GIF
    (its first frame), BMP or, where TensorFlow reads it, WebP bytes to uint8 (H, W, channels).

    Alpha is dropped; 16-bit samples are scaled to [0, 255].

    Args:
        encoded: the file's bytes, a scalar string tensor.
        channels: 3 for RGB, 1 for grayscale.
        max_pixels: fail (``tf.errors.InvalidArgumentError``) when the header declares more
            pixels (height x width) than this, before decoding (see :func:`check_size`);
            None: no limit.
    """
    encoded = check_size(encoded, max_pixels)
    # TF cannot turn a CMYK JPEG into one channel directly: go through RGB.
    image = tf.io.decode_image(encoded, channels=3, expand_animations=False)
    return _rgb_to_channels(image, channels)


def _rgb_to_channels(image: tf.Tensor, channels: int) -> tf.Tensor:
    """A decoded RGB uint8 image with ``channels`` channels (1: luminance, rounded)."""
    if channels == 1:
        image = tf.cast(tf.round(grayscale(tf.cast(image, tf.float32))), tf.uint8)
    image.set_shape([None, None, channels])
    return image


def _crop_box(
    shape: tf.Tensor,
    seed: tf.Tensor,
    area_range: Sequence[float],
    aspect_ratio_range: Sequence[float],
) -> tuple[tf.Tensor, tf.Tensor]:
    """Offset (y, x, 0) and size (h, w, -1: every channel) of a random crop with the given
    area fraction and aspect ratio: the arguments of ``tf.slice``."""
    begin, size, _ = tf.image.stateless_sample_distorted_bounding_box(
        image_size=shape,
        bounding_boxes=tf.constant([[[0.0, 0.0, 1.0, 1.0]]]),
        seed=seed,
        min_object_covered=0.0,  # the whole-image box; area_range alone bounds the crop
        aspect_ratio_range=list(aspect_ratio_range),
        area_range=list(area_range),
        max_attempts=10,  # torchvision's RandomResizedCrop also tries 10 times
        use_image_if_no_bounding_boxes=True,
    )
    return begin, size


def decode_random_crop(
    encoded: tf.Tensor,
    seed: tf.Tensor,
    area_range: Sequence[float] = (0.08, 1.0),
    aspect_ratio_range: Sequence[float] = (3 / 4, 4 / 3),
    channels: int = 3,
    max_pixels: int | None = MAX_IMAGE_PIXELS,
) -> tf.Tensor:
    """The crop of RandomResizedCrop, decoded without decoding the rest of the image.

    JPEGs go through ``decode_and_crop_jpeg``, which decodes only the crop window; other
    formats (a PNG saved as .JPEG exists in ImageNet) are fully decoded, then cropped. So is
    a JPEG that does not end with its end-of-image marker: the crop decoder stops reading at
    the window's last row and would not notice a file cut short below it (the full decoder
    fails on a truncated file and reads one with bytes after the marker). An image whose
    header declares more than ``max_pixels`` (height x width; None: no limit) fails before
    it is decoded, as in :func:`decode_image`.

    Returns:
        uint8 (h, w, channels): the crop, not yet resized.
    """
    # Few ops in either branch: each costs every image, also where its branch is not taken.

    def fused():
        shape = tf.image.extract_jpeg_shape(encoded)
        if _headers_read(max_pixels) == "all":  # else TF's JPEG decoder refuses a larger one
            pixels = tf.reduce_prod(tf.cast(shape[:2], tf.int64))
            shape = _refuse_if(shape, pixels > max_pixels)
        begin, size = _crop_box(shape, seed, area_range, aspect_ratio_range)
        window = tf.gather(tf.concat([begin, size], 0), [0, 1, 3, 4])  # y, x, h, w
        return tf.image.decode_and_crop_jpeg(encoded, window, channels=3)

    def fallback():
        image = decode_image(encoded, 3, max_pixels)
        return tf.slice(image, *_crop_box(tf.shape(image), seed, area_range, aspect_ratio_range))

    last_two = tf.strings.substr(encoded, tf.maximum(tf.strings.length(encoded) - 2, 0), 2)
    complete_jpeg = tf.logical_and(tf.io.is_jpeg(encoded), tf.equal(last_two, b"\xff\xd9"))
    return _rgb_to_channels(tf.cond(complete_jpeg, fused, fallback), channels)


def random_resized_crop(
    image: tf.Tensor,
    seed: tf.Tensor,
    area_range: Sequence[float] = (0.08, 1.0),
    aspect_ratio_range: Sequence[float] = (3 / 4, 4 / 3),
) -> tf.Tensor:
    """The window of RandomResizedCrop on an already decoded image (not yet resized)."""
    return tf.slice(image, *_crop_box(tf.shape(image), seed, area_range, aspect_ratio_range))


# ------------------------------------------------------------------------------------------
# Geometry (pixel scale)


def resize(image: tf.Tensor, size: Sequence[int], antialias: bool = False) -> tf.Tensor:
    """Bilinear resize to (height, width); float32 in the input's pixel scale.

    Without anti-aliasing this is ``tf.image.resize(method="bilinear")`` minus its wrapper
    ops (the raw kernel reads uint8 directly), which is measurably faster per example.
    """
    if antialias:
        return tf.image.resize(image, size, method="bilinear", antialias=True)
    batch = image if image.shape.rank == 4 else image[tf.newaxis]
    out = tf.raw_ops.ResizeBilinear(images=batch, size=size, half_pixel_centers=True)
    return out if image.shape.rank == 4 else out[0]


def resize_to_cover(image: tf.Tensor, size: Sequence[int], antialias: bool = True) -> tf.Tensor:
    """Resizes, keeping the aspect ratio, to the smallest image that covers (height, width).

    The side that binds gets its target exactly, the other ``floor(side * target / binding
    side)`` in integer arithmetic. For a square size ``s`` this is torchvision's ``Resize(s)``:
    shorter side ``s``, longer ``int(s * long / short)``; for a non-square size no side comes
    out shorter than the crop that follows.
    """
    shape = tf.shape(image)
    h, w = tf.cast(shape[-3], tf.int64), tf.cast(shape[-2], tf.int64)
    target_h, target_w = tf.constant(size[0], tf.int64), tf.constant(size[1], tf.int64)
    height_binds = target_h * w >= target_w * h  # target_h / h >= target_w / w
    new_h = tf.where(height_binds, target_h, h * target_w // w)
    new_w = tf.where(height_binds, w * target_h // h, target_w)
    return resize(image, tf.cast(tf.stack([new_h, new_w]), tf.int32), antialias=antialias)


def center_crop(image: tf.Tensor, size: Sequence[int]) -> tf.Tensor:
    """The central (height, width) window (rounded like torchvision's CenterCrop)."""
    shape = tf.shape(image)
    top = tf.cast(tf.round(tf.cast(shape[-3] - size[0], tf.float32) / 2.0), tf.int32)
    left = tf.cast(tf.round(tf.cast(shape[-2] - size[1], tf.float32) / 2.0), tf.int32)
    return image[..., top : top + size[0], left : left + size[1], :]


def random_crop(image: tf.Tensor, seed: tf.Tensor, size: Sequence[int]) -> tf.Tensor:
    """A uniformly placed (height, width) window."""
    channels = image.shape[-1] or tf.shape(image)[-1]
    return tf.image.stateless_random_crop(image, [size[0], size[1], channels], seed=seed)


def pad_random_crop(image: tf.Tensor, seed: tf.Tensor, pad: int) -> tf.Tensor:
    """Zero-pads ``pad`` pixels on every side, then crops the original size back at random."""
    if pad == 0:
        return image
    shape = tf.shape(image)
    padded = tf.pad(image, [[pad, pad], [pad, pad], [0, 0]])
    return tf.image.stateless_random_crop(padded, shape, seed=seed)


def random_flip(image: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
    """Left-right flip with probability 1/2."""
    return tf.image.stateless_random_flip_left_right(image, seed=seed)


def affine_transform(
    image: tf.Tensor,
    matrix: tf.Tensor,
    fill_value: float = 0.0,
    interpolation: str = "BILINEAR",
) -> tf.Tensor:
    """Applies the 8-parameter projective map (output -> input coordinates) to one image."""
    shape = tf.shape(image)
    out = tf.raw_ops.ImageProjectiveTransformV3(
        images=image[tf.newaxis],
        transforms=tf.reshape(tf.cast(matrix, tf.float32), [1, 8]),
        output_shape=shape[:2],
        fill_value=tf.cast(fill_value, tf.float32),
        interpolation=interpolation,
        fill_mode="CONSTANT",
    )
    return out[0]


def rotation_matrix(angle: tf.Tensor, height: tf.Tensor, width: tf.Tensor) -> tf.Tensor:
    """Map of a rotation by ``angle`` radians (counter-clockwise) about the image centre."""
    cy = (tf.cast(height, tf.float32) - 1.0) / 2.0
    cx = (tf.cast(width, tf.float32) - 1.0) / 2.0
    cos, sin = tf.cos(angle), tf.sin(angle)
    # input = R^-1 (output - c) + c
    return tf.stack(
        [cos, -sin, cx - cos * cx + sin * cy, sin, cos, cy - sin * cx - cos * cy, 0.0, 0.0]
    )


def random_rotation(
    image: tf.Tensor, seed: tf.Tensor, max_degrees: float, fill_value: float = 0.0
) -> tf.Tensor:
    """Rotation by a uniform angle in [-max_degrees, max_degrees]; corners are filled."""
    if max_degrees == 0:
        return image
    limit = max_degrees * math.pi / 180.0
    angle = tf.random.stateless_uniform([], seed, -limit, limit)
    shape = tf.shape(image)
    out = affine_transform(image, rotation_matrix(angle, shape[0], shape[1]), fill_value)
    out.set_shape(image.shape)
    return out


def cutout(image: tf.Tensor, seed: tf.Tensor, size: int, fill=0.0) -> tf.Tensor:
    """Cutout [CO]: in each image, a ``size`` x ``size`` square, its centre uniform over the
    image and the square clipped at the borders (so it can be smaller), is set to ``fill``
    (a scalar or one value per channel). The pipeline applies it to normalised images with
    fill 0, as the paper does.

    Args:
        image: (H, W, C) or a batch (N, H, W, C), independent squares per image.
    """
    if size == 0:
        return image
    shape = tf.shape(image)
    height, width = shape[-3], shape[-2]
    u = tf.random.stateless_uniform(tf.concat([shape[:-3], [2]], 0), seed)
    cy = tf.cast(tf.floor(u[..., 0] * tf.cast(height, tf.float32)), tf.int32)[..., None]
    cx = tf.cast(tf.floor(u[..., 1] * tf.cast(width, tf.float32)), tf.int32)[..., None]
    half = size // 2
    rows = (tf.range(height) >= cy - half) & (tf.range(height) < cy + size - half)
    cols = (tf.range(width) >= cx - half) & (tf.range(width) < cx + size - half)
    inside = rows[..., :, None] & cols[..., None, :]
    fill = tf.cast(tf.broadcast_to(tf.constant(fill, tf.float32), shape[-1:]), image.dtype)
    return tf.where(inside[..., None], fill, image)


# ------------------------------------------------------------------------------------------
# Photometric ([0, 1] float32)


def to_unit_range(image: tf.Tensor) -> tf.Tensor:
    """Pixel scale [0, 255] (any dtype) -> float32 [0, 1]."""
    return tf.cast(image, tf.float32) / 255.0


def grayscale(image: tf.Tensor) -> tf.Tensor:
    """Luma of an RGB image, keeping a channel axis of 1."""
    return tf.tensordot(image, tf.constant(_GRAY_WEIGHTS, image.dtype), [[-1], [0]])[..., None]


def _per_image_uniform(image: tf.Tensor, seed: tf.Tensor, low, high) -> tf.Tensor:
    """One uniform draw per image of an (H, W, C) image or (N, H, W, C) batch, broadcastable."""
    lead = tf.shape(image)[:-3]
    draw = tf.random.stateless_uniform(lead, seed, low, high)
    return tf.reshape(draw, tf.concat([lead, [1, 1, 1]], 0))


def color_jitter(
    image: tf.Tensor,
    seed: tf.Tensor,
    brightness: float = 0.4,
    contrast: float = 0.4,
    saturation: float = 0.4,
    hue: float = 0.1,
) -> tf.Tensor:
    """torchvision's ColorJitter semantics in a fixed order (brightness, contrast, saturation,
    hue): factors are uniform in [1-s, 1+s], the hue shift in [-hue, hue] of the circle.

    Works on one (H, W, 3) image or a (N, H, W, 3) batch (independent draws per image).
    """
    seeds = split_seed(seed, 4)
    if brightness > 0:
        factor = _per_image_uniform(image, seeds[0], 1.0 - brightness, 1.0 + brightness)
        image = tf.clip_by_value(image * factor, 0.0, 1.0)
    if contrast > 0:
        factor = _per_image_uniform(image, seeds[1], 1.0 - contrast, 1.0 + contrast)
        mean = tf.reduce_mean(grayscale(image), axis=[-3, -2, -1], keepdims=True)
        image = tf.clip_by_value(mean + (image - mean) * factor, 0.0, 1.0)
    if saturation > 0:
        factor = _per_image_uniform(image, seeds[2], 1.0 - saturation, 1.0 + saturation)
        gray = grayscale(image)
        image = tf.clip_by_value(gray + (image - gray) * factor, 0.0, 1.0)
    if hue > 0:
        shift = _per_image_uniform(image, seeds[3], -hue, hue)[..., 0]
        hsv = tf.image.rgb_to_hsv(image)
        h = tf.math.floormod(hsv[..., 0] + shift, 1.0)
        image = tf.image.hsv_to_rgb(tf.stack([h, hsv[..., 1], hsv[..., 2]], axis=-1))
    return image


def lighting_shift(
    image: tf.Tensor,
    seed: tf.Tensor,
    alphastd: float = 0.1,
    eigval: Sequence[float] = IMAGENET_EIGVAL,
    eigvec: Sequence[Sequence[float]] = IMAGENET_EIGVEC,
) -> tf.Tensor:
    """The PCA lighting offset eigvec @ (alpha * eigval), alpha ~ N(0, alphastd), per image,
    shaped to broadcast against ``image`` ((H, W, 3) or (N, H, W, 3))."""
    lead = tf.shape(image)[:-3]
    alpha = tf.random.stateless_normal(tf.concat([lead, [3]], 0), seed, stddev=alphastd)
    rgb = tf.linalg.matvec(tf.constant(eigvec, tf.float32), alpha * tf.constant(eigval))
    return rgb[..., tf.newaxis, tf.newaxis, :]


def lighting(
    image: tf.Tensor,
    seed: tf.Tensor,
    alphastd: float = 0.1,
    eigval: Sequence[float] = IMAGENET_EIGVAL,
    eigvec: Sequence[Sequence[float]] = IMAGENET_EIGVEC,
) -> tf.Tensor:
    """AlexNet-style PCA lighting noise on [0, 1] images (the scale of the eigen values, [FB]);
    not clipped, as there. One draw per image of a batch."""
    if alphastd == 0:
        return image
    return image + lighting_shift(image, seed, alphastd, eigval, eigvec)


def normalize(image: tf.Tensor, mean: Sequence[float], std: Sequence[float]) -> tf.Tensor:
    """(image - mean) / std per channel, for [0, 1] float images."""
    mean = tf.constant(mean, tf.float32)
    inv_std = 1.0 / tf.constant(std, tf.float32)
    return (image - mean) * inv_std
