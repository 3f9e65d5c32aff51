"""The one input pipeline: ``get_dataset`` and the per-example train / eval preprocessing.

Op order of a training example (fixed; random ops draw from per-example / per-batch seeds):

  1. decode (+ the RandomResizedCrop window, fused into the JPEG decoder) or source tensor
  2. crop / resize to the model input
  3. horizontal flip            4. rotation          5. AutoAugment (uint8)
  then per batch (one pass over the batch, independent draws per image):
  6. -> float32 [0, 1]           7. colour jitter     8. PCA lighting
  9. mean / std normalisation    9b. Cutout (a square of the normalised image set to 0)
  10. one-hot label             11. mixup / cutmix (soft labels)

The fast path of photo recipes (fused crop, no rotation, AutoAugment or Cutout) runs 2 and 3
per example with the decoding, and 6-9 there too unless colour jitter is on (see
``_fused_tail``; the flip before the resize, which commute), with its own draws
(``_fast_draws``): the same images in distribution, not the same draws as
``train_preprocess`` for a given seed.

Evaluation: decode -> resize the shorter side to image_size * r -> centre crop -> normalise.
That same :func:`eval_preprocess` is what export verification and the inference API call.

``get_dataset`` runs the stages in this order, each a function of its own: the source
(``_SOURCES``, by the spec's source kind; shuffled when training), decoding (``_decoder``, for
encoded images) and the per-example steps (``_example_steps``, or ``_fast_path``), the batch
(``decode_robustly`` for encoded images), and the per-batch steps (``_per_batch``). Shuffling,
per-example draws and per-batch draws use three streams of the run seed
(``bireal_larq.utils.derive_seed`` with salts 1, 2 and 3); each input pipeline of a
distributed run adds 7 times its id to the salts.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple

import tensorflow as tf

from bireal_larq.data import preprocessing as P
from bireal_larq.data.autoaugment import autoaugment
from bireal_larq.data.config import AugmentConfig, default_augment
from bireal_larq.data.info import DatasetInfo, dataset_info, imagefolder_files
from bireal_larq.data.mixing import mix_batch
from bireal_larq.data.sources import (
    MAX_IMAGE_PIXELS,
    SkipReport,
    check_max_image_pixels,
    decode_robustly,
    prepare,
    synthetic_examples,
    tfds_split_shards,
)
from bireal_larq.data.specs import (
    IMAGE_FOLDER,
    SYNTHETIC,
    TFDS,
    DatasetSpec,
    check_name,
    dataset_spec,
)
from bireal_larq.utils import derive_seed

# The salts of the random streams drawn from a run's seed (bireal_larq.utils.derive_seed):
# shuffling, per-example draws, per-batch draws. Input pipeline number i adds
# PIPELINE_SALT * i to each, so each pipeline draws other numbers.
SHUFFLE_SALT, EXAMPLE_SALT, BATCH_SALT = 1, 2, 3
PIPELINE_SALT = 7


def _info_of(info_or_name: DatasetInfo | str, **kwargs: Any) -> DatasetInfo:
    if isinstance(info_or_name, DatasetInfo):
        return info_or_name
    return dataset_info(info_or_name, **kwargs)


def _match_channels(image: tf.Tensor, channels: int) -> tf.Tensor:
    have = image.shape[-1]
    if have is None or have == channels:
        return image
    if have == 4:  # RGBA / CMYK already converted: drop the alpha channel
        image, have = image[..., :3], 3
    if have == 1 and channels == 3:
        return tf.image.grayscale_to_rgb(image)
    if have == 3 and channels == 1:
        return tf.cast(tf.round(P.grayscale(tf.cast(image, tf.float32))), image.dtype)
    if have != channels:
        raise ValueError(f"Cannot convert a {have}-channel image to {channels} channels")
    return image


def eval_resize_size(image_size: int, ratio: float) -> int:
    """Shorter side before the centre crop: int(image_size * ratio) (torchvision's rounding)."""
    return int(math.floor(image_size * ratio + 1e-6))


def eval_preprocess(
    image: tf.Tensor,
    info_or_name: DatasetInfo | str,
    *,
    image_size: int | tuple[int, int] | None = None,
    resize_ratio: float | None = None,
    data_dir: str | None = None,
    **source_kwargs: Any,
) -> tf.Tensor:
    """Raw decoded image(s) -> model input, exactly as ``get_dataset(training=False)`` does.

    Args:
        image: uint8 (H, W, C) or a batch (N, H, W, C) of same-sized images.
        info_or_name: a :class:`DatasetInfo` or a dataset name.
        image_size: model input (height, width) or one int; default the dataset's.
        resize_ratio: photos are resized to cover image_size * r (for a square size: the
            shorter side becomes image_size * r) before the centre crop ([BR] 256/224;
            Training-Tricks-for-BNNs item 18: 1.15 or 1.35). Default 256/224.
        data_dir, source_kwargs: passed to :func:`dataset_info` when given a name.

    Returns:
        float32 (..., height, width, C), normalised with the dataset's mean / std.
    """
    info = _info_of(info_or_name, data_dir=data_dir, **source_kwargs).with_image_size(image_size)
    image = tf.convert_to_tensor(image)
    if image.shape.rank not in (3, 4):
        raise ValueError(f"eval_preprocess expects (H, W, C) or (N, H, W, C), got {image.shape}")
    height, width, channels = info.image_shape
    image = _match_channels(image, channels)
    if info.resize_eval:
        ratio = AugmentConfig().eval_resize_ratio if resize_ratio is None else resize_ratio
        if ratio < 1:
            raise ValueError(f"resize_ratio={ratio} is invalid; valid: >= 1")
        cover = (eval_resize_size(height, ratio), eval_resize_size(width, ratio))
        image = P.resize_to_cover(image, cover, True)
        image = P.center_crop(image, (height, width))
    else:
        shape = tf.shape(image)
        image = tf.cond(
            tf.logical_and(shape[-3] == height, shape[-2] == width),
            lambda: tf.cast(image, tf.float32),
            lambda: P.resize(image, (height, width), antialias=True),
        )
    image = P.normalize(P.to_unit_range(image), info.mean, info.std)
    image.set_shape(image.shape[:-3].concatenate([height, width, channels]))
    return image


def _check_augment(augment: AugmentConfig, info: DatasetInfo) -> None:
    if info.channels != 3:
        needs_rgb = [
            f
            for f, on in (
                ("autoaugment", augment.autoaugment != "none"),
                ("brightness/contrast/saturation/hue", augment.color_jitter),
                ("lighting_alphastd", augment.lighting_alphastd > 0),
            )
            if on
        ]
        if needs_rgb:
            raise ValueError(
                f"AugmentConfig {needs_rgb} need RGB images, but {info.name} has "
                f"{info.channels} channel(s); valid: turn them off (e.g. preset('fashion_mnist'))"
            )


def train_geometry(
    image: tf.Tensor,
    seed: tf.Tensor,
    info: DatasetInfo,
    augment: AugmentConfig,
    cropped: bool = False,
) -> tf.Tensor:
    """Steps 2-5 of one training example: crop / resize, flip, rotation, AutoAugment.

    Args:
        image: (H, W, C) in [0, 255] (uint8 or float32).
        seed: stateless seed, shape [2].
        info: the dataset (model input shape).
        augment: the recipe.
        cropped: ``image`` is already the RandomResizedCrop window (fused decode).

    Returns:
        float32 (height, width, C) in [0, 255].
    """
    height, width, channels = info.image_shape
    s = P.split_seed(seed, 4)
    image = _match_channels(image, channels)
    # 2. crop / resize
    if augment.crop == "random_resized":
        if not cropped:
            image = P.random_resized_crop(
                image, s[0], augment.area_range, augment.aspect_ratio_range
            )
        image = P.resize(image, (height, width), augment.antialias)
    elif augment.crop == "resize_random_crop":
        ratio = augment.train_resize_ratio
        cover = (eval_resize_size(height, ratio), eval_resize_size(width, ratio))
        image = P.resize_to_cover(image, cover, augment.antialias)
        image = P.random_crop(image, s[0], (height, width))
    else:
        shape = tf.shape(image)
        same = tf.logical_and(shape[0] == height, shape[1] == width)
        image = tf.cond(
            same,
            lambda: tf.cast(image, tf.float32),
            lambda: P.resize(image, (height, width), augment.antialias),
        )
        if augment.crop == "pad_random_crop":
            image = P.pad_random_crop(image, s[0], augment.pad)
    image.set_shape([height, width, channels])
    # 3-4. flip, rotation
    if augment.flip:
        image = P.random_flip(image, s[1])
    if augment.rotation_degrees > 0:
        image = P.random_rotation(image, s[2], augment.rotation_degrees)
    # 5. AutoAugment works on uint8 pixels, as the PIL implementation it follows
    if augment.autoaugment == "cifar10":
        pixels = tf.cast(tf.clip_by_value(tf.round(image), 0.0, 255.0), tf.uint8)
        image = tf.cast(autoaugment(pixels, s[3]), tf.float32)
    image.set_shape([height, width, channels])
    return image


def train_photometric(
    images: tf.Tensor, seed: tf.Tensor, info: DatasetInfo, augment: AugmentConfig
) -> tf.Tensor:
    """Steps 6-9b on one image or a whole batch (independent draws per image).

    Run per batch, these element-wise ops cost one pass over the batch instead of several
    small ops per example. Without colour jitter, [0, 1] scaling, lighting and normalisation
    fold into one multiply-add.

    Args:
        images: (H, W, C) or (N, H, W, C) float32 in [0, 255].
        seed: stateless seed, shape [2].

    Returns:
        normalised float32, same shape.
    """
    # (the first two seeds are those of a split in two: adding Cutout moved no other draw)
    jitter_seed, light_seed, cutout_seed = P.split_seed(seed, 3)
    mean = tf.constant(info.mean, tf.float32)
    inv_std = 1.0 / tf.constant(info.std, tf.float32)
    if augment.color_jitter:
        images = P.color_jitter(
            P.to_unit_range(images),
            jitter_seed,
            augment.brightness,
            augment.contrast,
            augment.saturation,
            augment.hue,
        )
        scale = inv_std
    else:
        scale = inv_std / 255.0
    offset = -mean * inv_std
    if augment.lighting_alphastd > 0:
        offset = offset + P.lighting_shift(images, light_seed, augment.lighting_alphastd) * inv_std
    images = images * scale + offset
    if augment.cutout > 0:  # [CO] on the normalised image, filled with 0 as in the paper
        images = P.cutout(images, cutout_seed, augment.cutout, 0.0)
    return images


def train_preprocess(
    image: tf.Tensor,
    seed: tf.Tensor,
    info: DatasetInfo,
    augment: AugmentConfig,
    cropped: bool = False,
) -> tf.Tensor:
    """One training example end to end (steps 2-9): pixel image -> normalised model input.

    ``get_dataset`` runs the same two halves, the photometric one per batch, except on its
    fast path (see the module docstring).
    """
    geometry_seed, photometric_seed = P.split_seed(seed, 2)
    image = train_geometry(image, geometry_seed, info, augment, cropped)
    return train_photometric(image, photometric_seed, info, augment)


# ------------------------------------------------------------------------------------------


def _seed_stream(seed: int | None, salt: int, width: int = 2) -> tf.data.Dataset:
    """Endless int64 [width] seeds; a fixed ``seed`` gives the same stream in every fresh run."""
    stream = tf.data.Dataset.random(seed=derive_seed(seed, salt), rerandomize_each_iteration=True)
    return stream.batch(width)


def _validate_args(name, split, batch_size, augment, max_skip_fraction, seed=None,
                   image_size=None, shuffle_buffer=None) -> None:
    check_name(name)
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        raise ValueError(f"seed={seed!r} is invalid; valid: None or an int")
    if image_size is not None:
        sizes = (image_size,) if isinstance(image_size, int) else tuple(image_size)
        if len(sizes) not in (1, 2) or not all(
            isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in sizes
        ):
            raise ValueError(
                f"image_size={image_size!r} is invalid; valid: one int or (height, width) of "
                "positive ints (the channels come from the dataset)"
            )
    if shuffle_buffer is not None and (
        isinstance(shuffle_buffer, bool) or not isinstance(shuffle_buffer, int)
        or shuffle_buffer < 1
    ):
        raise ValueError(f"shuffle_buffer={shuffle_buffer!r} is invalid; valid: an int >= 1")
    if split not in ("train", "test"):
        raise ValueError(
            f"split={split!r} is invalid; valid: 'train' or 'test' ('test' is the evaluation "
            "split: ImageNet / imagefolder validation)"
        )
    if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
        raise ValueError(f"batch_size={batch_size!r} is invalid; valid: an int >= 1 (global)")
    if augment is not None and not isinstance(augment, AugmentConfig):
        raise ValueError(
            f"augment={augment!r} is invalid; valid: None or a bireal_larq.data.AugmentConfig"
        )
    if not 0.0 <= max_skip_fraction <= 1.0:
        raise ValueError(f"max_skip_fraction={max_skip_fraction} is invalid; valid: [0, 1]")


def get_dataset(
    name: str,
    split: str,
    *,
    batch_size: int,
    training: bool,
    data_dir: str | None = None,
    manual_dir: str | None = None,
    seed: int | None = None,
    augment: AugmentConfig | None = None,
    input_context: tf.distribute.InputContext | None = None,
    image_size: int | tuple[int, int] | None = None,
    num_classes: int | None = None,
    skip_corrupt: bool = False,
    max_skip_fraction: float = 0.01,
    max_image_pixels: int | None = MAX_IMAGE_PIXELS,
    **source_kwargs: Any,
) -> tuple[tf.data.Dataset, int]:
    """A batched, prefetched dataset of (image, one-hot label) and the split's example count.

    Training datasets are shuffled, batched with ``drop_remainder=True`` and not repeated (one
    pass is one epoch); evaluation datasets keep their order and the last partial batch.

    Args:
        name: "imagenet2012", "imagefolder", "cifar10", "cifar100", "fashion_mnist" or
            "synthetic".
        split: "train" or "test" (the evaluation split: ImageNet / imagefolder validation).
        batch_size: the GLOBAL batch size; with ``input_context`` each replica gets its share.
        training: apply training augmentation, shuffle, drop the remainder.
        data_dir: TFDS data dir (default $TFDS_DATA_DIR, else TFDS's); for imagefolder the
            directory holding train/ and val/.
        manual_dir: TFDS manual dir (ImageNet tars; Fashion-MNIST .gz files).
        seed: makes shuffling and augmentation reproducible (same seed, same batches).
        augment: the recipe; None: the dataset's default (see ``config.DEFAULT_PRESETS``) when
            training, else evaluation preprocessing only. Its ``eval_resize_ratio`` is also
            used when ``training=False``.
        input_context: from ``strategy.distribute_datasets_from_function``: the pipeline reads
            its shard only and batches per replica.
        image_size: model input (height, width) or one int; default the dataset's.
        num_classes: synthetic: the class count; others: must equal the dataset's.
        skip_corrupt: skip unreadable images (counted, reported at the end of each pass)
            instead of failing on the first one.
        max_skip_fraction: with ``skip_corrupt``, fail once more than this fraction of the
            images of a pass was unreadable.
        max_image_pixels: imagefolder and ImageNet: an image whose header declares more
            pixels (height x width) than this is unreadable (a guard against decompression
            bombs, like PIL's), refused before it is decoded; None: no limit. At the default,
            178,956,970 (where PIL refuses an image, and the largest JPEG TensorFlow decodes),
            and above, the decoders read the headers of PNGs (JPEGs are bounded by
            TensorFlow's decoder); below it, also those of JPEG, GIF (its logical screen), BMP
            and WebP files, at some cost per image. A training config sets it in
            ``dataset_kwargs``.
        **source_kwargs: synthetic: ``image_shape``, ``num_examples``; imagefolder:
            ``class_names`` (the class list the labels index, e.g. a run's ``classes.json``;
            default the folders of train/, else val/); all: ``shuffle_buffer``.

    Returns:
        (dataset, number of examples in the split).

    Raises:
        ValueError: invalid arguments (the message names the valid values).
        FileNotFoundError: missing data (the message says which files go where).

    Iterating the dataset (a loop, ``model.fit``) over an unreadable image without
    ``skip_corrupt``, or over more than ``max_skip_fraction`` of them with it, raises
    ``tf.errors.InvalidArgumentError`` whose message holds ``CorruptImageError: Cannot decode
    image <path>: <why>. <remedy>``; inside ``with bireal_larq.data.corrupt_image_errors():``
    it is a :class:`~bireal_larq.data.CorruptImageError` with that message alone. The
    pipeline's threads end with the iteration.
    """
    shuffle_buffer = source_kwargs.pop("shuffle_buffer", None)
    _validate_args(
        name, split, batch_size, augment, max_skip_fraction, seed, image_size, shuffle_buffer
    )
    check_max_image_pixels(max_image_pixels)
    spec = dataset_spec(name)
    info = _info_for(spec, data_dir, image_size, num_classes, source_kwargs)
    if training:
        augment = augment or default_augment(name)
        _check_augment(augment, info)
    plan = _Plan.of(spec, info, split, training, augment, seed, input_context, batch_size,
                    max_image_pixels)

    source = _SOURCES[spec.source](plan, data_dir, manual_dir)  # 1. source
    ds = _shuffled(source, plan, shuffle_buffer)
    steps = _fast_path(plan) if plan.fast else _example_steps(plan)  # 2-5 and their draws
    ds = tf.data.Dataset.zip((ds, steps.draws))
    if spec.encoded:  # 1. decode, 2-5, batch
        report = SkipReport(
            source.shard_count, skip_corrupt, max_skip_fraction, info.channels, max_image_pixels
        )
        ds = _decoded_batches(ds, plan, steps, report)
    else:  # 2-5, batch
        ds = _batches(ds, plan, steps)
    ds = _per_batch(ds, plan)  # 6-11
    if spec.encoded:
        ds.skip_report = report  # the unreadable files of the last finished pass
    return ds, source.count


def _info_for(
    spec: DatasetSpec,
    data_dir: str | None,
    image_size: int | tuple[int, int] | None,
    num_classes: int | None,
    options: dict[str, Any],
) -> DatasetInfo:
    """The DatasetInfo of get_dataset's arguments; ``options`` are its source keywords."""
    name = spec.name
    if spec.source == SYNTHETIC:
        options.setdefault("num_classes", num_classes)
        if image_size is not None and "image_shape" not in options:
            h, w = (image_size, image_size) if isinstance(image_size, int) else image_size
            options["image_shape"] = (h, w, 3)
    elif spec.source == IMAGE_FOLDER and set(options) <= {"class_names"}:
        names = options.get("class_names")
        if names is not None and (
            isinstance(names, str) or not names or not all(isinstance(n, str) for n in names)
            or len(set(names)) != len(names)
        ):
            raise ValueError(f"class_names={names!r} is invalid; valid: a list of distinct "
                             "folder names (index = position), e.g. a run's classes.json")
    elif options:
        valid = "shuffle_buffer" + (", class_names" if spec.source == IMAGE_FOLDER else "")
        raise ValueError(f"Unknown option(s) {sorted(options)} for {name!r}; valid: {valid}")
    info = dataset_info(name, data_dir=data_dir, **options).with_image_size(image_size)
    if num_classes is not None and num_classes != info.num_classes:
        raise ValueError(
            f"num_classes={num_classes} does not match {name}, which has {info.num_classes} "
            "classes; valid: None or that number"
        )
    return info


@dataclass(frozen=True)
class _Plan:
    """The choices of one get_dataset call that every stage reads."""

    spec: DatasetSpec
    info: DatasetInfo  # at the model input's size
    split: str
    training: bool
    augment: AugmentConfig | None  # training: the recipe; evaluation: None or its resize ratio
    seed: int | None
    pipeline_salt: int  # PIPELINE_SALT * this input pipeline's id: added to each stream's salt
    num_pipelines: int
    pipeline_id: int
    input_context: tf.distribute.InputContext | None
    batch_size: int  # per replica
    max_image_pixels: int | None

    @classmethod
    def of(cls, spec, info, split, training, augment, seed, input_context, batch_size,
           max_image_pixels) -> _Plan:
        ctx = input_context
        return cls(
            spec=spec,
            info=info,
            split=split,
            training=training,
            augment=augment,
            seed=seed,
            pipeline_salt=PIPELINE_SALT * (ctx.input_pipeline_id if ctx else 0),
            num_pipelines=ctx.num_input_pipelines if ctx else 1,
            pipeline_id=ctx.input_pipeline_id if ctx else 0,
            input_context=ctx,
            batch_size=ctx.get_per_replica_batch_size(batch_size) if ctx else batch_size,
            max_image_pixels=max_image_pixels,
        )

    @property
    def eval_ratio(self) -> float:
        return (self.augment or AugmentConfig()).eval_resize_ratio

    @property
    def fused_crop(self) -> bool:
        """The decoder decodes only the RandomResizedCrop window of an encoded image."""
        return self.spec.encoded and self.training and self.augment.crop == "random_resized"

    @property
    def fast(self) -> bool:
        """The fast path of photo recipes (ImageNet's), see :func:`_fast_path`."""
        a = self.augment
        return self.fused_crop and a.rotation_degrees == 0 and a.autoaugment == "none" and (
            a.cutout == 0)

    @property
    def per_batch_photometric(self) -> bool:
        """Steps 6-9 run per batch: always when training, except on the fast path without
        colour jitter (where they run per example)."""
        return self.training and not (self.fast and not self.augment.color_jitter)

    def stream_seed(self, salt: int) -> int | None:
        """The seed of this pipeline's random stream ``salt`` (SHUFFLE_SALT, ...)."""
        return derive_seed(self.seed, self.pipeline_salt + salt)


# ------------------------------------------------------------------------------------------
# 1. Sources: the split's examples, this input pipeline's shard of them


class _Source(NamedTuple):
    ds: tf.data.Dataset  # (name, payload, label) of encoded images, else (image, label)
    count: int  # examples of the split
    shard_count: int  # examples of this input pipeline's shard
    buffer: int  # the default training shuffle buffer


def _shard(ds: tf.data.Dataset, plan: _Plan, count: int) -> tuple[tf.data.Dataset, int]:
    """This input pipeline's elements of ``ds`` (of ``count``) and their number."""
    if plan.num_pipelines > 1:
        ds = ds.shard(plan.num_pipelines, plan.pipeline_id)
    return ds, len(range(plan.pipeline_id, count, plan.num_pipelines))


def _imagefolder_source(plan: _Plan, data_dir: str | None, manual_dir: str | None) -> _Source:
    """(path, path, label) of each image file of the split; the class list is the info's (a
    run's classes.json when given, else train/'s folders)."""
    if not data_dir:
        raise ValueError("imagefolder needs data_dir: a directory holding train/ and val/, "
                         "each with one sub-folder of images per class")
    paths, labels = imagefolder_files(data_dir, plan.split, list(plan.info.class_names))
    ds, shard_count = _shard(tf.data.Dataset.from_tensor_slices((paths, paths, labels)), plan,
                             len(paths))
    return _Source(ds, len(paths), shard_count, shard_count)  # file names: shuffle them all


def _synthetic_source(plan: _Plan, data_dir: str | None, manual_dir: str | None) -> _Source:
    """Generated (image, label) examples, a pure function of the split and the index."""
    info = plan.info
    count = info.num_examples.get(plan.split, 0)
    split_seed = 0 if plan.split == "train" else 1
    ds = synthetic_examples(count, info.image_shape, info.num_classes, split_seed)
    ds, shard_count = _shard(ds, plan, count)
    return _Source(ds, count, shard_count, min(shard_count, plan.spec.shuffle_buffer))


def _tfds_source(plan: _Plan, data_dir: str | None, manual_dir: str | None) -> _Source:
    """The TFDS split (prepared offline on first use): (file name, encoded image, label) for
    encoded datasets, else (image, label); sharded by file where each pipeline gets one."""
    import tensorflow_datasets as tfds

    name, split, ctx = plan.spec.name, plan.info.source_split(plan.split), plan.input_context
    builder = prepare(name, data_dir=data_dir, manual_dir=manual_dir)
    # File-level sharding needs at least one file per pipeline; else shard by element.
    by_file = plan.num_pipelines > 1 and tfds_split_shards(builder, split) >= plan.num_pipelines
    read_config = tfds.ReadConfig(
        input_context=ctx if by_file else None,
        shuffle_seed=plan.seed,
        try_autocache=False,
    )
    decoders = {"image": tfds.decode.SkipDecoding()} if plan.spec.encoded else None
    ds = builder.as_dataset(
        split=split, shuffle_files=plan.training, decoders=decoders, read_config=read_config
    )
    try:
        count = int(builder.info.splits[split].num_examples)
    except Exception:  # noqa: BLE001 - mocked builders have no split metadata
        count = int(ds.cardinality())
    if plan.num_pipelines > 1 and not by_file:
        ds = ds.shard(plan.num_pipelines, plan.pipeline_id)
    shard_count = max(1, count // plan.num_pipelines)
    if plan.spec.encoded:
        ds = ds.map(lambda ex: (ex["file_name"], ex["image"], ex["label"]))
    else:
        ds = ds.map(lambda ex: (ex["image"], ex["label"]))
    return _Source(ds, count, shard_count, min(shard_count, plan.spec.shuffle_buffer))


_SOURCES: dict[str, Callable[[_Plan, str | None, str | None], _Source]] = {
    TFDS: _tfds_source,
    IMAGE_FOLDER: _imagefolder_source,
    SYNTHETIC: _synthetic_source,
}


def _shuffled(source: _Source, plan: _Plan, shuffle_buffer: int | None) -> tf.data.Dataset:
    """Training: the source reshuffled at every pass; evaluation: in its order."""
    if not plan.training:
        return source.ds
    buffer = max(1, shuffle_buffer or source.buffer)
    return source.ds.shuffle(
        buffer, seed=plan.stream_seed(SHUFFLE_SALT), reshuffle_each_iteration=True
    )


# ------------------------------------------------------------------------------------------
# 2-5. Decoding and per-example work, with the per-example draws they use


class _ExampleSteps(NamedTuple):
    """The per-example work of a pipeline and the draws it uses."""

    draws: tf.data.Dataset  # one element per example, zipped with it
    # draw -> seed of the RandomResizedCrop window the decoder decodes; None: whole images
    crop_seed: Callable[[Any], tf.Tensor] | None
    transform: Callable  # (image, label, draw) -> (image, label), image of the model's shape


def _example_steps(plan: _Plan) -> _ExampleSteps:
    """Evaluation (eval_preprocess) and training off the fast path (train_geometry): one
    seed per example, split as train_preprocess splits it."""
    info, augment = plan.info, plan.augment
    draws = _seed_stream(plan.seed, plan.pipeline_salt + EXAMPLE_SALT)
    if not plan.training:
        eval_ratio = plan.eval_ratio

        def evaluate(image, label, s):
            return eval_preprocess(image, info, resize_ratio=eval_ratio), label

        return _ExampleSteps(draws, None, evaluate)
    fused_crop = plan.fused_crop

    def crop_seed(s):  # the seed train_geometry would draw its crop window from
        return P.split_seed(P.split_seed(s, 2)[0], 4)[0]

    def geometry(image, label, s):
        return train_geometry(image, P.split_seed(s, 2)[0], info, augment, fused_crop), label

    return _ExampleSteps(draws, crop_seed if fused_crop else None, geometry)


_DRAW_CHUNK = 64


def _fast_draws(
    seed: int | None, salt: int, info: DatasetInfo, augment: AugmentConfig, chunk: int = _DRAW_CHUNK
) -> tf.data.Dataset:
    """Endless per-example draws of the fast path, made ``chunk`` examples at a time:
    (crop seed int64 [2], flip bool, row offset float32 [width * channels]).

    The row offset is the PCA lighting shift minus the mean, over the std, tiled to one image
    row of (width x channels) values: with the per-channel scale (see ``_fused_tail``) it turns
    a resized [0, 255] image into the normalised one. Drawing a chunk at a time spares each
    example about ten small ops (a few % of its CPU time). A fixed ``seed`` gives the same
    stream in every fresh run.
    """
    _, width, channels = info.image_shape
    inv_std = 1.0 / tf.constant(info.std, tf.float32)
    base_offset = -tf.constant(info.mean, tf.float32) * inv_std

    def draw(s):  # int64 [2 * chunk + 4]: the crop seeds, then a flip and a lighting seed
        crop_seeds = tf.reshape(s[: 2 * chunk], [chunk, 2])
        flip_seed, light_seed = s[2 * chunk : 2 * chunk + 2], s[2 * chunk + 2 :]
        flips = tf.random.stateless_uniform([chunk], flip_seed) < 0.5
        if not augment.flip:
            flips = tf.zeros([chunk], tf.bool)
        offsets = tf.broadcast_to(base_offset, [chunk, channels])
        if augment.lighting_alphastd > 0:  # RGB only (checked by get_dataset)
            # the per-image lighting of train_photometric, for a chunk of 1x1 images
            shift = P.lighting_shift(
                tf.zeros([chunk, 1, 1, channels]), light_seed, augment.lighting_alphastd
            )
            offsets += tf.reshape(shift, [chunk, channels]) * inv_std
        return crop_seeds, flips, tf.tile(offsets, [1, width])

    stream = tf.data.Dataset.random(seed=derive_seed(seed, salt), rerandomize_each_iteration=True)
    return stream.batch(2 * chunk + 4).map(draw).unbatch()


def _fused_tail(info: DatasetInfo, augment: AugmentConfig, normalise: bool):
    """Steps 2-3 (and, with ``normalise``, 6-9) of one fast-path example: its decoded
    RandomResizedCrop window (uint8) -> flip, resize and PCA lighting + [0, 1] scaling +
    mean / std, with the draws of :func:`_fast_draws`.

    For recipes without rotation, AutoAugment or Cutout; with colour jitter (``normalise``
    off) steps 6-9 run per batch instead. The flip runs on the crop, before the resize (the
    same image up to float rounding: the bilinear resize samples mirror-symmetric points; for
    photos of ImageNet's size the uint8 crop is smaller than the float output). The rest is
    one multiply-add on the image as rows of width x channels values,
    against the per-channel scale tiled to a row: TF's kernels broadcast a long row several
    times faster than a vector of three channels (and, per image, faster than an XLA-compiled
    function, whose launch alone costs as much).
    """
    height, width, channels = info.image_shape
    row_scale = tf.tile(1.0 / (255.0 * tf.constant(info.std, tf.float32)), [width])

    def tail(crop, flip, row_offset):
        if augment.flip:
            crop = tf.cond(flip, lambda: tf.reverse(crop, [1]), lambda: crop)
        image = P.resize(crop, (height, width), augment.antialias)
        if not normalise:
            return image
        rows = tf.reshape(image, [height, width * channels])
        return tf.reshape(rows * row_scale + row_offset, info.image_shape)

    return tail


def _fast_path(plan: _Plan) -> _ExampleSteps:
    """The fast path of photo recipes (fused crop; no rotation, AutoAugment or Cutout): the
    decoder decodes only the crop window; flip, resize and, without colour jitter, lighting
    and normalisation follow in the same map (:func:`_fused_tail`), with chunked draws
    (:func:`_fast_draws`): (crop seed, flip, lighting + normalisation row offset)."""
    info, augment = plan.info, plan.augment
    draws = _fast_draws(plan.seed, plan.pipeline_salt + EXAMPLE_SALT, info, augment)
    tail = _fused_tail(info, augment, normalise=not plan.per_batch_photometric)

    def crop_seed(s):
        return s[0]

    def fused(image, label, s):
        image = tail(image, *s[1:])
        image.set_shape(info.image_shape)
        return image, label

    return _ExampleSteps(draws, crop_seed, fused)


def _decoder(plan: _Plan, crop_seed: Callable[[Any], tf.Tensor] | None):
    """(payload, draw) -> uint8 image: an image file's path (imagefolder) or its bytes,
    decoded whole or, with ``crop_seed``, only its RandomResizedCrop window."""
    channels, limit, augment = plan.info.channels, plan.max_image_pixels, plan.augment
    is_path = plan.spec.source == IMAGE_FOLDER

    def decode(payload, s):
        data = tf.io.read_file(payload) if is_path else payload
        if crop_seed is not None:
            return P.decode_random_crop(
                data,
                crop_seed(s),
                augment.area_range,
                augment.aspect_ratio_range,
                channels,
                limit,
            )
        return P.decode_image(data, channels, limit)

    return decode


# ------------------------------------------------------------------------------------------
# Batches


def _decoded_batches(
    ds: tf.data.Dataset, plan: _Plan, steps: _ExampleSteps, report: SkipReport
) -> tf.data.Dataset:
    """Encoded examples -> batches: the decoding and the per-example steps in one map per
    batch, robustly (:func:`~bireal_larq.data.sources.decode_robustly`, which tells ``report``
    of unreadable files). One map right before the batch copies each image into its batch
    while still in the cache (about 0.1 ms less CPU time per 224 px image than a separate
    batch, benchmarks/input_pipeline.py, 1 core)."""
    return decode_robustly(
        ds,
        _decoder(plan, steps.crop_seed),
        report,
        is_path=plan.spec.source == IMAGE_FOLDER,
        batch_size=plan.batch_size,
        preprocess_fn=steps.transform,
        drop_remainder=plan.training,
    )


def _batches(ds: tf.data.Dataset, plan: _Plan, steps: _ExampleSteps) -> tf.data.Dataset:
    """Decoded examples -> batches, after the per-example steps; training drops the last
    partial batch."""
    ds = ds.map(lambda example, s: steps.transform(*example, s),
                num_parallel_calls=tf.data.AUTOTUNE)
    return ds.batch(plan.batch_size, drop_remainder=plan.training)


# ------------------------------------------------------------------------------------------
# 6-11. Per batch


def _per_batch(ds: tf.data.Dataset, plan: _Plan) -> tf.data.Dataset:
    """Batches -> (images, one-hot labels), with (training) the photometric steps where they
    run per batch and mixup / cutmix, one seed per batch; prefetched."""
    info, augment, training = plan.info, plan.augment, plan.training
    per_batch_photometric = plan.per_batch_photometric

    def per_batch(batch, s):
        images, labels = batch[:2]
        labels = tf.one_hot(tf.cast(labels, tf.int32), info.num_classes, dtype=tf.float32)
        if not training:
            return images, labels
        photometric_seed, mix_seed = P.split_seed(s, 2)
        if per_batch_photometric:
            images = train_photometric(images, photometric_seed, info, augment)
        if augment.mixes_batches:
            images, labels = mix_batch(
                images,
                labels,
                mix_seed,
                augment.mixup_alpha,
                augment.cutmix_alpha,
                augment.cutmix_prob,
            )
        return images, labels

    ds = tf.data.Dataset.zip((ds, _seed_stream(plan.seed, plan.pipeline_salt + BATCH_SALT)))
    ds = ds.map(per_batch, num_parallel_calls=tf.data.AUTOTUNE)
    return ds.prefetch(tf.data.AUTOTUNE)
