"""What the rest of the project needs to know about a dataset, and the class-name file.

``DatasetInfo`` answers "what does the model see": class count, input shape after evaluation
preprocessing, normalisation statistics, split names and class names. It never loads images.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field
from typing import Any

DATASETS = ("imagenet2012", "imagefolder", "cifar10", "cifar100", "fashion_mnist", "synthetic")
TFDS_DATASETS = ("imagenet2012", "cifar10", "cifar100", "fashion_mnist")

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
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
        return _replace(self, image_shape=(h, w, self.channels))


def _replace(info: DatasetInfo, **changes: Any) -> DatasetInfo:
    import dataclasses

    return dataclasses.replace(info, **changes)


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
    """``data_dir`` if given, else $TFDS_DATA_DIR if set, else None (TFDS's own default)."""
    return data_dir or os.environ.get("TFDS_DATA_DIR") or None


def check_name(name: str) -> None:
    if name not in DATASETS:
        raise ValueError(f"Unknown dataset {name!r}; valid: {list(DATASETS)}")


# ------------------------------------------------------------------------------------------
# Class names saved with checkpoints


def save_class_names(directory: str, class_names: list[str] | tuple[str, ...]) -> str:
    """Writes ``directory/classes.json`` (index -> class name) and returns its path."""
    names = [str(n) for n in class_names]
    if len(set(names)) != len(names):
        raise ValueError("class_names contains duplicates; each class needs a distinct name")
    os.makedirs(directory, exist_ok=True)
    path = os.path.join(directory, CLASSES_FILE)
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump({"class_names": names}, f, indent=1)
    os.replace(tmp, path)
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
    check_name(name)
    if name == "synthetic":
        known = {"image_shape", "num_classes", "num_examples"}
        unknown = sorted(set(source_kwargs) - known)
        if unknown:
            raise ValueError(f"Unknown synthetic option(s) {unknown}; valid: {sorted(known)}")
        shape = tuple(source_kwargs.get("image_shape") or (224, 224, 3))
        num_classes = source_kwargs.get("num_classes") or 1000
        if len(shape) != 3 or not all(isinstance(d, int) and d > 0 for d in shape):
            raise ValueError(f"image_shape={shape!r} is invalid; valid: (H, W, C) positive ints")
        if not isinstance(num_classes, int) or num_classes < 1:
            raise ValueError(f"num_classes={num_classes!r} is invalid; valid: an int >= 1")
        counts = source_kwargs.get("num_examples") or {"train": 1024, "test": 256}
        if isinstance(counts, int):
            counts = {"train": counts, "test": counts}
        if (
            not isinstance(counts, dict)
            or set(counts) != {"train", "test"}
            or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 1
                       for v in counts.values())
        ):
            raise ValueError(
                f"num_examples={source_kwargs.get('num_examples')!r} is invalid; valid: an int "
                "or {'train': n, 'test': m} with n, m >= 1"
            )
        if shape[-1] == 3:
            mean, std = (0.5, 0.5, 0.5), (0.25, 0.25, 0.25)
        else:
            mean, std = (0.5,) * shape[-1], (0.25,) * shape[-1]
        return DatasetInfo(
            name,
            num_classes,
            shape,
            mean,
            std,
            num_examples=dict(counts),  # type: ignore[arg-type]
        )
    if name == "imagefolder":
        # class_names (e.g. from a run's classes.json) describe the folder without reading it
        names = source_kwargs.get("class_names")
        classes = list(names) if names else imagefolder_classes(data_dir)
        return DatasetInfo(
            name,
            len(classes),
            (224, 224, 3),
            IMAGENET_MEAN,
            IMAGENET_STD,
            train_split="train",
            eval_split="val",
            class_names=tuple(classes),
            resize_eval=True,
        )
    static = {
        "imagenet2012": (1000, (224, 224, 3), IMAGENET_MEAN, IMAGENET_STD, "validation", True),
        "cifar10": (
            10,
            (32, 32, 3),
            (0.4914, 0.4822, 0.4465),
            (0.2470, 0.2435, 0.2616),
            "test",
            False,
        ),
        "cifar100": (
            100,
            (32, 32, 3),
            (0.5071, 0.4865, 0.4409),
            (0.2673, 0.2564, 0.2762),
            "test",
            False,
        ),
        "fashion_mnist": (10, (28, 28, 1), (0.2860,), (0.3530,), "test", False),
    }[name]
    num_classes, shape, mean, std, eval_split, resize_eval = static
    class_names, counts = _tfds_metadata(name, data_dir)
    return DatasetInfo(
        name,
        num_classes,
        shape,
        mean,
        std,
        train_split="train",
        eval_split=eval_split,
        class_names=class_names,
        resize_eval=resize_eval,
        num_examples=counts,
    )


def _tfds_metadata(name: str, data_dir: str | None) -> tuple[tuple[str, ...] | None, dict]:
    """Class names (from the builder's code) and split sizes (only once prepared)."""
    try:
        import tensorflow_datasets as tfds

        builder = tfds.builder(name, data_dir=default_data_dir(data_dir))
        names = tuple(builder.info.features["label"].names)
        counts = {}
        from bireal_larq.data.sources import is_prepared

        if is_prepared(builder):
            counts = {k: int(v.num_examples) for k, v in builder.info.splits.items()}
        return names, counts
    except Exception:  # noqa: BLE001 - metadata is best effort; the loader reports real errors
        return None, {}
