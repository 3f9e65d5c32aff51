"""Input pipelines: dataset specs, sources, pure preprocessing ops and the one ``get_dataset``.

Public API (the contract training, export and deploy code against):

* :func:`get_dataset` -> (batched ``tf.data.Dataset`` of (image, one-hot label), example count)
* :class:`DatasetSpec` / :func:`dataset_spec`: what is fixed about each dataset, declared once
  in ``specs.py`` (:data:`DATASETS`, :data:`DEFAULT_PRESETS` and :class:`DatasetInfo` follow
  from the specs)
* :class:`AugmentConfig` / :func:`preset`: every augmentation choice, one preset per recipe
* :func:`dataset_info` -> :class:`DatasetInfo`
* :func:`eval_preprocess`: raw uint8 image -> model input (also used by export and deploy)
* :func:`load_image`: robust decoding of an image file; :data:`MAX_IMAGE_PIXELS`, the default
  limit on the pixels an image file may declare (``max_image_pixels`` of ``get_dataset``)
* :func:`save_class_names` / :func:`load_class_names`: ``classes.json`` next to checkpoints
* :func:`prepare` / :func:`prepare_fashion_mnist`: offline, locked TFDS preparation

The names are loaded on first use: importing ``bireal_larq.data.specs``, ``.config`` or
``.info`` (or one of their names from here) does not import TensorFlow.
"""

from bireal_larq.utils import lazy_exports

# Public name -> the submodule defining it.
_EXPORTS = {
    "DATASETS": "specs",
    "DatasetSpec": "specs",
    "dataset_spec": "specs",
    "DEFAULT_PRESETS": "config",
    "PRESETS": "config",
    "AugmentConfig": "config",
    "default_augment": "config",
    "preset": "config",
    "CLASSES_FILE": "info",
    "DatasetInfo": "info",
    "dataset_info": "info",
    "load_class_names": "info",
    "save_class_names": "info",
    "eval_preprocess": "pipeline",
    "get_dataset": "pipeline",
    "train_geometry": "pipeline",
    "train_photometric": "pipeline",
    "train_preprocess": "pipeline",
    "FASHION_MNIST_DIR": "sources",
    "MAX_IMAGE_PIXELS": "sources",
    "CorruptImageError": "sources",
    "corrupt_image_errors": "sources",
    "fashion_mnist_available": "sources",
    "load_image": "sources",
    "prepare": "sources",
    "prepare_fashion_mnist": "sources",
}

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)

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
    "DatasetSpec",
    "dataset_info",
    "dataset_spec",
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
