"""What the rest of the project needs to know about a dataset, and the class-name file.

``DatasetInfo`` answers "what does the model see": class count, input shape after evaluation
preprocessing, normalisation statistics, split names and class names. It is built from the
dataset's :class:`~bireal_larq.data.specs.DatasetSpec` and what the source adds without loading
images (an image folder's class folders, a TFDS builder's class names and split sizes). Also
the listing of an image folder's files. Imports nothing of TensorFlow (TFDS is imported only to
describe a TFDS dataset).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from bireal_larq.data.specs import (
    DATASETS,
    IMAGE_FOLDER,
    IMAGENET_MEAN,
    IMAGENET_STD,
    SYNTHETIC,
    SYNTHETIC_NUM_EXAMPLES,
    TFDS,
    TFDS_DATASETS,
    DatasetSpec,
    check_name,
    dataset_spec,
)
from bireal_larq.utils import atomic_path

__all__ = [
    "CLASSES_FILE",
    "DATASETS",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "IMAGE_EXTENSIONS",
    "TFDS_DATASETS",
    "DatasetInfo",
    "check_name",
    "dataset_info",
    "default_data_dir",
    "imagefolder_classes",
    "imagefolder_files",
    "imagefolder_split_dir",
    "is_prepared",
    "load_class_names",
    "save_class_names",
]

IMAGE_EXTENSIONS = (".jpeg", ".jpg", ".png")
log = logging.getLogger(__name__)
CLASSES_FILE = "classes.json"


@dataclass(frozen=True)
class DatasetInfo:
    """Static description of a dataset as the model sees it.

    Attributes:
        name: registered dataset name (one of :data:`DATASETS`).
        num_classes: length of the one-hot labels.
        image_shape: (H, W, C) of the model input after evaluation preprocessing.
        mean, std: per-channel normalisation statistics of [0, 1] pixels.
        train_split, eval_split: source split names behind get_dataset's "train" / "test".
        class_names: index -> name, or None when unknown.
        resize_eval: True for photos of any size (resize the shorter side, centre crop);
            False for fixed-size datasets (resized only if the model input differs).
        num_examples: split name -> example count, where known without reading the data.
    """

    name: str
    num_classes: int
    image_shape: tuple[int, int, int]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    train_split: str = "train"
    eval_split: str = "test"
    class_names: tuple[str, ...] | None = None
    resize_eval: bool = False
    num_examples: dict[str, int] = field(default_factory=dict)

    @classmethod
    def from_spec(cls, spec: DatasetSpec, **changes: Any) -> DatasetInfo:
        """The info of ``spec`` as it stands, with ``changes`` (what the source adds or the
        caller's options set: class names, class count, image shape, split sizes)."""
        values = dict(
            name=spec.name,
            num_classes=spec.num_classes,
            image_shape=spec.image_shape,
            mean=spec.mean,
            std=spec.std,
            train_split=spec.train_split,
            eval_split=spec.eval_split,
            class_names=spec.class_names,
            resize_eval=spec.resize_eval,
        )
        return cls(**{**values, **changes})

    @property
    def channels(self) -> int:
        return self.image_shape[-1]

    def source_split(self, split: str) -> str:
        """Maps get_dataset's "train" / "test" to the source's split name."""
        if split == "train":
            return self.train_split
        if split == "test":
            return self.eval_split
        raise ValueError(
            f"split={split!r} is invalid; valid: 'train' or 'test' ('test' reads the "
            f"{self.name} split {self.eval_split!r})"
        )

    def with_image_size(self, image_size: int | tuple[int, int] | None) -> DatasetInfo:
        """The same info for a model input of another (height, width)."""
        if image_size is None:
            return self
        h, w = _pair(image_size, "image_size")
        return dataclasses.replace(self, image_shape=(h, w, self.channels))


def _pair(value: int | tuple[int, int] | list[int], what: str) -> tuple[int, int]:
    if isinstance(value, int) and not isinstance(value, bool):
        value = (value, value)
    if (
        not isinstance(value, tuple | list)
        or len(value) != 2
        or not all(isinstance(v, int) and v > 0 for v in value)
    ):
        raise ValueError(f"{what}={value!r} is invalid; valid: a positive int or (height, width)")
    return int(value[0]), int(value[1])


def default_data_dir(data_dir: str | None = None) -> str | None:
    """``data_dir`` if given, else $TFDS_DATA_DIR if set, else None (TFDS's default)."""
    return data_dir or os.environ.get("TFDS_DATA_DIR") or None


# ------------------------------------------------------------------------------------------
# Class names saved with checkpoints


def save_class_names(directory: str, class_names: list[str] | tuple[str, ...]) -> str:
    """Writes ``directory/classes.json`` (index -> class name) atomically and returns its path.

    Raises:
        ValueError: two classes share a name.
        bireal_larq.utils.WriteError: the file could not be written (the previous one, if
            any, is unchanged).
    """
    names = [str(n) for n in class_names]
    if len(set(names)) != len(names):
        raise ValueError("class_names contains duplicates; each class needs a distinct name")
    path = os.path.join(directory, CLASSES_FILE)
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as f:
        json.dump({"class_names": names}, f, indent=1)
    return path


def load_class_names(directory: str) -> list[str]:
    """Reads ``directory/classes.json`` written by :func:`save_class_names`.

    Raises:
        FileNotFoundError: the file is missing.
        ValueError: the file is not a class list.
    """
    path = os.path.join(directory, CLASSES_FILE)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"No {CLASSES_FILE} in {directory!r} (written by training)")
    with open(path, encoding="utf-8") as f:
        content = json.load(f)
    names = content.get("class_names") if isinstance(content, dict) else None
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise ValueError(f"{path} is not a class list: expected {{'class_names': [str, ...]}}")
    return names


# ------------------------------------------------------------------------------------------
# Image folders


def imagefolder_split_dir(root: str, split: str) -> str:
    """``root/train`` or ``root/val`` (the layout of the authors' PyTorch recipe)."""
    return os.path.join(root, {"train": "train", "test": "val"}[split])


def _class_dirs(split_dir: str) -> list[str]:
    """Sub-folders of a split, sorted; hidden ones (``.ipynb_checkpoints``, ``.git``) are not
    classes: they would shift every class index."""
    return sorted(e.name for e in os.scandir(split_dir) if e.is_dir() and e.name[0] != ".")


def imagefolder_classes(root: str | None) -> list[str]:
    """Class folder names of ``root/train`` (else ``root/val``), sorted: index = position."""
    if not root:
        raise ValueError(
            "imagefolder needs data_dir: a directory holding train/ and val/, each with one "
            "sub-folder of JPEGs per class"
        )
    for split in ("train", "test"):
        split_dir = imagefolder_split_dir(root, split)
        if os.path.isdir(split_dir):
            classes = _class_dirs(split_dir)
            if not classes:
                raise ValueError(f"{split_dir} holds no class sub-folders")
            return classes
    raise FileNotFoundError(
        f"{root!r} is not an image folder: it needs train/ and val/ sub-directories, each with "
        "one sub-folder of images per class (e.g. train/n01440764/x.JPEG)"
    )


def imagefolder_files(root: str, split: str, classes: list[str]) -> tuple[list[str], list[int]]:
    """Sorted image paths of one split and their class indices (from the folder names).

    The images of a class are the files directly in its folder whose names end with one of
    :data:`IMAGE_EXTENSIONS` (any case); hidden entries are not read. Anything else in a class
    folder (other files, sub-folders, even one named like an image, links to nothing) is left
    out with a warning naming it. The class index is the folder's position in ``classes``, so
    a class folder of val/ without images shifts nothing.

    Raises:
        FileNotFoundError: the split's folder is missing.
        ValueError: a class folder missing from ``classes``, a class folder of train/ without
            images (the class could never be learnt) or a split without images; the message
            names the folder.
    """
    split_dir = imagefolder_split_dir(root, split)
    if not os.path.isdir(split_dir):
        raise FileNotFoundError(
            f"Image folder split {split!r} is missing: expected the directory {split_dir}"
        )
    index = {c: i for i, c in enumerate(classes)}
    paths, labels, ignored, not_files = [], [], [], []
    for class_dir in _class_dirs(split_dir):
        if class_dir not in index:
            raise ValueError(
                f"{os.path.join(split_dir, class_dir)} is a class missing from the class list "
                f"({len(classes)} classes: train/'s folders, or the run's classes.json when "
                "evaluating a run); valid: class folders the model knows, with the same names"
            )
        found = 0
        for entry in sorted(os.scandir(os.path.join(split_dir, class_dir)), key=lambda e: e.name):
            if entry.name[0] == ".":
                continue
            if not entry.is_file():  # a sub-folder, a link to nothing, a device, ...
                not_files.append(entry.path + ("/" if entry.is_dir() else ""))
                continue
            if entry.name.lower().endswith(IMAGE_EXTENSIONS):
                paths.append(entry.path)
                labels.append(index[class_dir])
                found += 1
            else:
                ignored.append(entry.path)
        if not found and split == "train":
            raise ValueError(
                f"Class folder {os.path.join(split_dir, class_dir)} holds no images "
                f"({'/'.join(IMAGE_EXTENSIONS)} files directly in it): a class the model could "
                "never learn; valid: images in every class folder of train/, or remove the folder"
            )
    if not paths:
        raise ValueError(f"{split_dir} holds no images ({'/'.join(IMAGE_EXTENSIONS)})")
    if ignored:  # not silent: say what was left out and why
        log.warning(
            "%s: ignored %d file(s) that are not %s images, e.g. %s",
            split_dir, len(ignored), "/".join(IMAGE_EXTENSIONS), ignored[:3],
        )
    if not_files:
        log.warning(
            "%s: ignored %d item(s) of class folders that are not files (images are read "
            "from the class folder itself, not from its sub-folders), e.g. %s",
            split_dir, len(not_files), not_files[:3],
        )
    return paths, labels


# ------------------------------------------------------------------------------------------
# DatasetInfo of a dataset: its spec and what its source adds


def dataset_info(name: str, data_dir: str | None = None, **source_kwargs: Any) -> DatasetInfo:
    """Describes a dataset without loading images.

    Args:
        name: one of :data:`DATASETS`.
        data_dir: the TFDS data dir (TFDS datasets) or the image folder root (``imagefolder``).
        **source_kwargs: ``synthetic`` takes ``image_shape`` (default (224, 224, 3)),
            ``num_classes`` (default 1000) and ``num_examples`` (default {"train": 1024,
            "test": 256}, or one int for both); ``imagefolder`` takes ``class_names`` (then
            ``data_dir`` is not read).

    Raises:
        ValueError: unknown name or invalid keyword.
    """
    spec = dataset_spec(name)
    return _INFO_OF_SOURCE[spec.source](spec, data_dir, source_kwargs)


SYNTHETIC_OPTIONS = ("image_shape", "num_classes", "num_examples")


def _synthetic_info(spec: DatasetSpec, data_dir: str | None, options: dict) -> DatasetInfo:
    """Generated images: the spec's shape and class count unless ``options`` set them."""
    unknown = sorted(set(options) - set(SYNTHETIC_OPTIONS))
    if unknown:
        raise ValueError(
            f"Unknown synthetic option(s) {unknown}; valid: {sorted(SYNTHETIC_OPTIONS)}"
        )
    shape = tuple(options.get("image_shape") or spec.image_shape)
    num_classes = options.get("num_classes") or spec.num_classes
    if len(shape) != 3 or not all(isinstance(d, int) and d > 0 for d in shape):
        raise ValueError(f"image_shape={shape!r} is invalid; valid: (H, W, C) positive ints")
    if not isinstance(num_classes, int) or num_classes < 1:
        raise ValueError(f"num_classes={num_classes!r} is invalid; valid: an int >= 1")
    counts = options.get("num_examples") or SYNTHETIC_NUM_EXAMPLES
    if isinstance(counts, int):
        counts = {"train": counts, "test": counts}
    if (
        not isinstance(counts, dict)
        or set(counts) != {"train", "test"}
        or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 1
                   for v in counts.values())
    ):
        raise ValueError(
            f"num_examples={options.get('num_examples')!r} is invalid; valid: an int "
            "or {'train': n, 'test': m} with n, m >= 1"
        )
    channels = shape[-1]
    same = channels == len(spec.mean)  # else the spec's first channel's statistics for each
    return DatasetInfo.from_spec(
        spec,
        num_classes=num_classes,
        image_shape=shape,
        mean=spec.mean if same else (spec.mean[0],) * channels,
        std=spec.std if same else (spec.std[0],) * channels,
        num_examples=dict(counts),
    )


def _imagefolder_info(spec: DatasetSpec, data_dir: str | None, options: dict) -> DatasetInfo:
    """The classes of the folder: ``class_names`` (e.g. from a run's classes.json) describe
    it without reading it, else the class folders of train/ (else val/)."""
    names = options.get("class_names")
    classes = list(names) if names else imagefolder_classes(data_dir)
    return DatasetInfo.from_spec(spec, num_classes=len(classes), class_names=tuple(classes))


def _tfds_info(spec: DatasetSpec, data_dir: str | None, options: dict) -> DatasetInfo:
    """The spec with the builder's class names (where the spec fixes none) and, once the
    dataset is prepared, its split sizes."""
    class_names, counts = _tfds_metadata(spec.name, data_dir)
    return DatasetInfo.from_spec(
        spec, class_names=spec.class_names or class_names, num_examples=counts
    )


_INFO_OF_SOURCE: dict[str, Callable[[DatasetSpec, str | None, dict], DatasetInfo]] = {
    SYNTHETIC: _synthetic_info,
    IMAGE_FOLDER: _imagefolder_info,
    TFDS: _tfds_info,
}


def is_prepared(builder: Any) -> bool:
    """True once TFDS has finished writing the builder's data: it renames its temporary
    directory to ``builder.data_dir``, ``dataset_info.json`` included, last."""
    from etils import epath  # TFDS's path library: local and remote (gs://) paths alike

    return epath.Path(builder.data_dir, "dataset_info.json").exists()


def _tfds_metadata(name: str, data_dir: str | None) -> tuple[tuple[str, ...] | None, dict]:
    """Class names (from the builder's code) and split sizes (only once prepared)."""
    try:
        import tensorflow_datasets as tfds

        builder = tfds.builder(name, data_dir=default_data_dir(data_dir))
        names = tuple(builder.info.features["label"].names)
        counts = {}
        if is_prepared(builder):
            counts = {k: int(v.num_examples) for k, v in builder.info.splits.items()}
        return names, counts
    except Exception:  # noqa: BLE001 - metadata is best effort; the loader reports real errors
        return None, {}
