"""Input pipelines: sources, pure preprocessing ops and the one ``get_dataset`` function.

Public API (the contract training, export and deploy code against):

* :func:`get_dataset` -> (batched ``tf.data.Dataset`` of (image, one-hot label), example count)
* :class:`AugmentConfig` / :func:`preset`: every augmentation choice, one preset per recipe
* :func:`dataset_info` -> :class:`DatasetInfo`
* :func:`eval_preprocess`: raw uint8 image -> model input (also used by export and deploy)
* :func:`load_image`: robust decoding of an image file; :data:`MAX_IMAGE_PIXELS`, the default
  limit on the pixels an image file may declare (``max_image_pixels`` of ``get_dataset``)
* :func:`save_class_names` / :func:`load_class_names`: ``classes.json`` next to checkpoints
* :func:`prepare` / :func:`prepare_fashion_mnist`: offline, locked TFDS preparation
"""

from bireal_larq.data.config import DEFAULT_PRESETS, PRESETS, AugmentConfig, default_augment, preset
from bireal_larq.data.info import (
    CLASSES_FILE,
    DATASETS,
    DatasetInfo,
    dataset_info,
    load_class_names,
    save_class_names,
)
from bireal_larq.data.pipeline import (
    eval_preprocess,
    get_dataset,
    train_geometry,
    train_photometric,
    train_preprocess,
)
from bireal_larq.data.sources import (
    FASHION_MNIST_DIR,
    MAX_IMAGE_PIXELS,
    CorruptImageError,
    corrupt_image_errors,
    fashion_mnist_available,
    load_image,
    prepare,
    prepare_fashion_mnist,
)

__all__ = [
    "CLASSES_FILE",
    "DATASETS",
    "DEFAULT_PRESETS",
    "FASHION_MNIST_DIR",
    "MAX_IMAGE_PIXELS",
    "PRESETS",
    "AugmentConfig",
    "CorruptImageError",
    "corrupt_image_errors",
    "DatasetInfo",
    "dataset_info",
    "default_augment",
    "eval_preprocess",
    "fashion_mnist_available",
    "get_dataset",
    "load_class_names",
    "load_image",
    "prepare",
    "prepare_fashion_mnist",
    "preset",
    "save_class_names",
    "train_geometry",
    "train_photometric",
    "train_preprocess",
]
