"""One :class:`DatasetSpec` per dataset the project reads: the single place a dataset is declared.

A spec holds what is fixed about a dataset before any of its files is read: where its examples
come from (a TFDS builder, an image folder, generated), its split names, class count and the
class names it fixes, the model input shape, the normalisation statistics, the default
augmentation preset, and the files its offline preparation needs. :data:`DATASETS`,
:data:`TFDS_DATASETS`, ``config.DEFAULT_PRESETS``, :class:`~bireal_larq.data.info.DatasetInfo`
and the manual-dir checks of ``sources.prepare`` are all derived from :data:`SPECS`.

This module imports nothing of TensorFlow and nothing else of the package.
"""

from __future__ import annotations

from dataclasses import dataclass

# Source kinds: a TFDS builder prepared offline from its manual dir; a folder of image files
# (train/ and val/, one sub-folder per class); images generated from the example index.
TFDS, IMAGE_FOLDER, SYNTHETIC = "tfds", "imagefolder", "synthetic"
SOURCES = (TFDS, IMAGE_FOLDER, SYNTHETIC)

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
FASHION_MNIST_DIR = "/usr/share/datasets/fashion-mnist"  # Debian's dataset-fashion-mnist


@dataclass(frozen=True)
class DatasetSpec:
    """What is fixed about one dataset. Frozen; invalid values raise ``ValueError``.

    Attributes:
        name: the name ``get_dataset`` and the command lines take.
        title: the name messages show (e.g. "ImageNet 2012").
        source: one of :data:`SOURCES`: "tfds", "imagefolder" or "synthetic".
        image_shape: (H, W, C) of the model input after evaluation preprocessing.
        mean, std: per-channel normalisation statistics of [0, 1] pixels.
        default_preset: the augmentation preset (``config.PRESETS``) training uses when no
            ``AugmentConfig`` is given.
        num_classes: length of the one-hot labels; None: the class list read from the data
            (an image folder's class folders).
        class_names: index -> name when the dataset fixes them; None: read from the source
            (the TFDS builder's label feature, the image folder's class folders) if it has them.
        train_split, eval_split: the source's split names behind get_dataset's "train" and
            "test".
        resize_eval: True for photos of any size (evaluation resizes the shorter side, then
            centre-crops); False for fixed-size images (resized only if the model input
            differs).
        encoded: examples are encoded image files, decoded (robustly) by the input pipeline;
            False: the source gives decoded pixels.
        shuffle_buffer: examples the training shuffle buffer holds (at most the split's size).
        manual_files: (file name, what it is) of each file offline preparation reads from the
            manual dir (TFDS sources).
        manual_dir: the default manual dir; None: DATA_DIR/downloads/manual.
        manual_source: where to get the manual files, for the error naming missing ones.
    """

    name: str
    title: str
    source: str
    image_shape: tuple[int, int, int]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    default_preset: str
    num_classes: int | None = None
    class_names: tuple[str, ...] | None = None
    train_split: str = "train"
    eval_split: str = "test"
    resize_eval: bool = False
    encoded: bool = False
    shuffle_buffer: int = 10_000
    manual_files: tuple[tuple[str, str], ...] = ()
    manual_dir: str | None = None
    manual_source: str = ""

    def __post_init__(self):
        def fail(field: str, valid: str) -> None:
            raise ValueError(
                f"DatasetSpec({self.name!r}).{field}={getattr(self, field)!r} is invalid; "
                f"valid: {valid}"
            )

        if self.source not in SOURCES:
            fail("source", str(list(SOURCES)))
        shape = self.image_shape
        if not (isinstance(shape, tuple) and len(shape) == 3
                and all(isinstance(d, int) and d > 0 for d in shape)):
            fail("image_shape", "(H, W, C) of positive ints")
        for field in ("mean", "std"):
            if len(getattr(self, field)) != shape[-1]:
                fail(field, f"one value per channel ({shape[-1]})")
        if not all(s > 0 for s in self.std):
            fail("std", "positive values")
        if self.num_classes is not None and self.num_classes < 1:
            fail("num_classes", "None or an int >= 1")
        if self.class_names is not None and len(self.class_names) != self.num_classes:
            fail("class_names", f"None or num_classes ({self.num_classes}) names")
        if self.source == TFDS and self.num_classes is None:
            fail("num_classes", "an int >= 1 (a TFDS dataset's class count is fixed)")
        if self.source == TFDS and not self.manual_files:
            fail("manual_files", "the (file name, what it is) pairs a TFDS dataset is prepared "
                 "from")
        if self.shuffle_buffer < 1:
            fail("shuffle_buffer", "an int >= 1")

    @property
    def is_tfds(self) -> bool:
        return self.source == TFDS

    @property
    def manual_file_names(self) -> tuple[str, ...]:
        return tuple(name for name, _ in self.manual_files)


_IMAGENET_SOURCE = "Download them from https://image-net.org"
_CIFAR_SOURCE = "Download it once from https://www.cs.toronto.edu/~kriz/{}"
_FASHION_MNIST_SOURCE = (
    f"Debian's package dataset-fashion-mnist installs them in {FASHION_MNIST_DIR}: run "
    "`apt-get install dataset-fashion-mnist` as root"
)

_SPECS = (
    DatasetSpec(
        name="imagenet2012",
        title="ImageNet 2012",
        source=TFDS,
        image_shape=(224, 224, 3),
        mean=IMAGENET_MEAN,
        std=IMAGENET_STD,
        default_preset="imagenet",
        num_classes=1000,
        eval_split="validation",
        resize_eval=True,
        encoded=True,
        shuffle_buffer=4096,  # encoded JPEGs, ~110 kB each
        manual_files=(
            ("ILSVRC2012_img_train.tar", "the training images: one nXXXXXXXX.tar of JPEGs per "
             "class"),
            ("ILSVRC2012_img_val.tar", "the 50,000 validation JPEGs "
             "ILSVRC2012_val_XXXXXXXX.JPEG"),
        ),
        manual_source=_IMAGENET_SOURCE,
    ),
    DatasetSpec(
        name="imagefolder",
        title="Image folder",
        source=IMAGE_FOLDER,
        image_shape=(224, 224, 3),
        mean=IMAGENET_MEAN,
        std=IMAGENET_STD,
        default_preset="imagenet",
        eval_split="val",  # the layout of liuzechun/Bi-Real-net's PyTorch recipe
        resize_eval=True,
        encoded=True,
    ),
    DatasetSpec(
        name="cifar10",
        title="CIFAR-10",
        source=TFDS,
        image_shape=(32, 32, 3),
        mean=(0.4914, 0.4822, 0.4465),
        std=(0.2470, 0.2435, 0.2616),
        default_preset="cifar",
        num_classes=10,
        manual_files=(("cifar-10-binary.tar.gz", "the CIFAR-10 binary version"),),
        manual_source=_CIFAR_SOURCE.format("cifar-10-binary.tar.gz"),
    ),
    DatasetSpec(
        name="cifar100",
        title="CIFAR-100",
        source=TFDS,
        image_shape=(32, 32, 3),
        mean=(0.5071, 0.4865, 0.4409),
        std=(0.2673, 0.2564, 0.2762),
        default_preset="cifar",
        num_classes=100,
        manual_files=(("cifar-100-binary.tar.gz", "the CIFAR-100 binary version"),),
        manual_source=_CIFAR_SOURCE.format("cifar-100-binary.tar.gz"),
    ),
    DatasetSpec(
        name="fashion_mnist",
        title="Fashion-MNIST",
        source=TFDS,
        image_shape=(28, 28, 1),
        mean=(0.2860,),
        std=(0.3530,),
        default_preset="fashion_mnist",
        num_classes=10,
        class_names=("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
                     "Sneaker", "Bag", "Ankle boot"),  # TFDS's fashion_mnist label names
        manual_files=(
            ("train-images-idx3-ubyte.gz", "the 60,000 training images"),
            ("train-labels-idx1-ubyte.gz", "their labels"),
            ("t10k-images-idx3-ubyte.gz", "the 10,000 test images"),
            ("t10k-labels-idx1-ubyte.gz", "their labels"),
        ),
        manual_dir=FASHION_MNIST_DIR,
        manual_source=_FASHION_MNIST_SOURCE,
    ),
    DatasetSpec(
        name="synthetic",
        title="Synthetic",
        source=SYNTHETIC,
        image_shape=(224, 224, 3),  # the defaults; dataset_info's options override them
        mean=(0.5, 0.5, 0.5),
        std=(0.25, 0.25, 0.25),
        default_preset="none",
        num_classes=1000,
    ),
)

# Name -> spec, in the order above (the order of DATASETS).
SPECS: dict[str, DatasetSpec] = {spec.name: spec for spec in _SPECS}
DATASETS = tuple(SPECS)
TFDS_DATASETS = tuple(name for name, spec in SPECS.items() if spec.is_tfds)

# The default number of examples of each synthetic split (dataset_info's ``num_examples``).
SYNTHETIC_NUM_EXAMPLES = {"train": 1024, "test": 256}


def check_name(name: str) -> None:
    """Raises ``ValueError`` unless ``name`` is one of :data:`DATASETS`."""
    if name not in SPECS:
        raise ValueError(f"Unknown dataset {name!r}; valid: {list(SPECS)}")


def dataset_spec(name: str) -> DatasetSpec:
    """The spec of dataset ``name``.

    Raises:
        ValueError: ``name`` is not one of :data:`DATASETS` (the message lists them).
    """
    check_name(name)
    return SPECS[name]
