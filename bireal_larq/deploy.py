"""Inference API: classify images with an exported ``.tflite`` through LCE's interpreter.

The raw images go through :func:`bireal_larq.data.eval_preprocess`, the function that
evaluation during training uses, so deployment cannot drift from what the model was
validated on::

    from bireal_larq.deploy import Classifier

    clf = Classifier("fmnist.tflite")            # dataset read from the export report
    clf.classify(["shoe.png", "shirt.jpg"])      # file paths
    clf.classify(uint8_image)                    # one (H, W, C) array or a batch (N, H, W, C)
    clf.predict(preprocessed_batch)              # float32 model inputs, shape checked exactly

Float32 inputs that look like pixels rather than normalised model inputs (values above a few
units, or all within [0, 1] as ``x / 255`` or ``plt.imread`` give) are refused: pass such images
as uint8, or ``preprocessed=True`` when they really are model inputs.
"""

from __future__ import annotations

import numbers
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import tensorflow as tf

from bireal_larq import data
from bireal_larq.export.backends import default_backend, interpreter_options
from bireal_larq.export.core import read_report
from bireal_larq.export.flatbuffer import read_flatbuffer
from bireal_larq.export.verify import interpreter as make_interpreter
from bireal_larq.export.verify import run_flatbuffer

ImageInput = str | os.PathLike | np.ndarray | tf.Tensor


@dataclass(frozen=True)
class Prediction:
    """The top classes of one image, best first."""

    index: int
    label: str
    score: float
    top_k: tuple[tuple[int, str, float], ...]


class Classifier:
    """An exported Bi-Real Net ready to classify raw images.

    Args:
        tflite_path: the ``.tflite`` written by :func:`bireal_larq.export.export_model`.
        dataset: the dataset whose eval preprocessing (size, mean/std) the model expects;
            default: the ``dataset`` recorded in the export report beside the file.
        class_names: labels by index; default: the run's class names recorded in the export
            report, else the dataset's, else the indices.
        num_threads: interpreter threads.
        backend: LCE bgemm kernel with or without XNNPACK (one of
            :data:`bireal_larq.export.BACKENDS`); default: the host's.
        data_dir: data directory for :func:`bireal_larq.data.dataset_info` (not needed for
            an image-folder run whose report records its class names).

    Raises:
        FileNotFoundError: the file does not exist.
        NotAFlatbufferError: the file is not a TFLite flatbuffer.
        ValueError: the dataset's images do not fit the model input (channel count), or an
            unknown backend.
    """

    def __init__(
        self,
        tflite_path: str | os.PathLike,
        *,
        dataset: str | None = None,
        class_names: Sequence[str] | None = None,
        num_threads: int = 1,
        backend: str | None = None,
        data_dir: str | None = None,
    ):
        self.path = os.fspath(tflite_path)
        if isinstance(num_threads, bool) or not isinstance(num_threads, numbers.Integral) or not (
            num_threads >= 1 or num_threads == -1
        ):
            raise ValueError(
                f"num_threads={num_threads!r} is invalid; valid: an int >= 1, or -1 (the "
                "interpreter's default)"
            )
        num_threads = int(num_threads)
        flatbuffer = read_flatbuffer(self.path)
        self.backend = backend or default_backend()
        interpreter_options(self.backend)  # an unknown backend is a ValueError of its own
        try:
            self._interpreter = make_interpreter(
                flatbuffer, num_threads=num_threads, backend=self.backend
            )
        except Exception as e:  # the interpreter's own message is terse
            raise ValueError(f"{self.path!r} could not be loaded by LCE's interpreter: {e}") from e
        shape = tuple(int(v) for v in self._interpreter.input_shapes[0])
        if len(shape) != 4:
            raise ValueError(
                f"{self.path!r} takes inputs of shape {shape}; expected an image model"
            )
        self.input_shape: tuple[int, int, int] = shape[1:]  # type: ignore[assignment]
        self.num_classes = int(self._interpreter.output_shapes[0][-1])
        report = read_report(self.path) or {}
        self.dataset = dataset or report.get("dataset")
        # The run's evaluation resize ratio (Training-Tricks-for-BNNs item 18), as the export
        # recorded it.
        same = self.dataset == report.get("dataset")
        self.resize_ratio = report.get("eval_resize_ratio") if same else None
        self._data_dir = data_dir
        self._info = None
        if self.dataset is not None:
            recorded = report.get("class_names") if same else None
            if self.dataset == "imagefolder" and data_dir is None and recorded:
                # the run's classes, recorded by the export: no image folder needed
                info = data.dataset_info("imagefolder", class_names=recorded)
            else:
                info = data.dataset_info(self.dataset, data_dir=data_dir)
            info = info.with_image_size(self.input_shape[:2])
            if info.channels != self.input_shape[-1]:
                raise ValueError(
                    f"Dataset {self.dataset!r} has {info.channels}-channel images but the model "
                    f"takes {self.input_shape[-1]} channels (input {self.input_shape})"
                )
            self._info = info
            if class_names is None:
                class_names = recorded or info.class_names
        if class_names is not None and len(class_names) != self.num_classes:
            raise ValueError(
                f"{len(class_names)} class names given for a model with {self.num_classes} classes"
            )
        self.class_names = tuple(class_names) if class_names else None

    # ----------------------------------------------------------------------------------
    def _expected(self) -> str:
        h, w, c = self.input_shape
        return (
            f"a file path, a uint8 image (H, W, {c}) or batch (N, H, W, {c}), a list of these, "
            f"or float32 preprocessed model inputs (N, {h}, {w}, {c})"
        )

    def _raw_batch(self, array: np.ndarray, what: str) -> np.ndarray:
        """uint8 (H, W, C) or (N, H, W, C) -> preprocessed float32 (N, h, w, c)."""
        if array.ndim not in (3, 4):
            raise ValueError(
                f"{what} has rank {array.ndim} (shape {array.shape}); expected {self._expected()}"
            )
        channels = array.shape[-1]
        if channels not in (1, 3, 4):
            raise ValueError(
                f"{what} has {channels} channels (shape {array.shape}); expected 1, 3 or 4 "
                f"channels (converted to the model's {self.input_shape[-1]})"
            )
        if 0 in array.shape:
            raise ValueError(f"{what} is empty (shape {array.shape}); expected {self._expected()}")
        if self._info is None:
            raise ValueError(
                f"{self.path!r} does not record its dataset, so raw images cannot be "
                "preprocessed: pass Classifier(..., dataset=NAME) or give float32 model inputs"
            )

        batch = array if array.ndim == 4 else array[np.newaxis]
        return data.eval_preprocess(batch, self._info, resize_ratio=self.resize_ratio).numpy()

    def _as_array(self, item: Any, what: str) -> np.ndarray:
        if isinstance(item, str | os.PathLike):
            channels = 1 if self.input_shape[-1] == 1 else 3
            try:
                return data.load_image(os.fspath(item), channels=channels).numpy()
            except (FileNotFoundError, ValueError):
                raise
            except Exception as e:  # noqa: BLE001 - name the file whatever TF raised
                raise ValueError(f"Cannot read image {os.fspath(item)!r}: {e}") from e
        if isinstance(item, tf.Tensor):
            item = item.numpy()
        if not isinstance(item, np.ndarray):
            raise ValueError(f"{what} is a {type(item).__name__}; expected {self._expected()}")
        return item

    def preprocess(
        self, images: ImageInput | Sequence[ImageInput], *, preprocessed: bool = False
    ) -> np.ndarray:
        """Any accepted input -> float32 model inputs ``(N, H, W, C)``.

        ``preprocessed=True`` says float32 inputs are model inputs whatever their values
        (only their shape is checked); by default float32 inputs that look like pixels (far
        beyond the normalised range, or all within [0, 1]) are refused.

        Raises:
            ValueError: wrong rank, dtype, size or channel count, or an unreadable file (the
                message names the expected input).
            FileNotFoundError: a path that does not exist.
        """
        if isinstance(images, list | tuple):
            if not images:
                raise ValueError(f"No images given; expected {self._expected()}")
            return np.concatenate([
                self.preprocess(self._as_array(x, f"images[{i}]"), preprocessed=preprocessed)
                for i, x in enumerate(images)
            ])
        array = self._as_array(images, "the input")
        if array.dtype == np.uint8:
            if preprocessed:
                raise ValueError("preprocessed=True, but the input is uint8 (raw pixels); "
                                 "valid: float32 model inputs, or preprocessed=False")
            return self._raw_batch(array, "the image")
        if array.dtype == np.float32:
            return self._check_model_input(array, preprocessed)
        raise ValueError(
            f"The input has dtype {array.dtype}; expected {self._expected()} (raw images must be "
            "uint8 in [0, 255])"
        )

    def _input_limit(self) -> tuple[float, float]:
        """(the largest |value| the eval normalisation gives, the limit above which float32
        inputs are refused as raw pixels). Normalised pixels, (x / 255 - mean) / std, stay
        within a few units; raw [0, 255] pixels reach far beyond. The limit leaves room for
        inputs perturbed on purpose."""
        if self._info is None:
            return 10.0, 20.0
        bound = max(
            max(m, 1.0 - m) / s for m, s in zip(self._info.mean, self._info.std, strict=True)
        )
        return bound, max(20.0, 4.0 * bound)

    def _check_model_input(self, array: np.ndarray, preprocessed: bool) -> np.ndarray:
        batch = array[np.newaxis] if array.ndim == 3 else array
        if batch.ndim != 4 or tuple(batch.shape[1:]) != self.input_shape:
            raise ValueError(
                f"float32 input of shape {array.shape} does not match the model input "
                f"(N, {', '.join(map(str, self.input_shape))}); expected {self._expected()}"
            )
        peak = float(np.max(np.abs(batch))) if batch.size else 0.0
        if not np.isfinite(peak):
            raise ValueError("float32 input holds NaN or infinity; expected finite model inputs")
        if preprocessed:
            return batch
        bound, limit = self._input_limit()
        # (All zeros, the mean image in model inputs, is the one such input taken as is.)
        if 0.0 < peak <= 1.0 and float(np.min(batch)) >= 0.0:
            raise ValueError(
                "float32 input lies within [0, 1]: that looks like pixels scaled to [0, 1] "
                "(x / 255, plt.imread, tf.image.convert_image_dtype), not model inputs, which "
                f"are mean/std normalised (about [-{bound:.3g}, {bound:.3g}]); pass raw images "
                "as uint8 in [0, 255] (e.g. np.round(x * 255).astype(np.uint8)), or "
                "preprocessed=True if these are model inputs"
            )
        if peak > limit:
            raise ValueError(
                f"float32 input reaches |x| = {peak:.4g}, but preprocessed model inputs lie "
                f"within about [-{bound:.3g}, {bound:.3g}] (mean/std normalised): these look "
                "like raw pixels; pass raw images as uint8 in [0, 255], or preprocess them "
                "with Classifier.preprocess (or preprocessed=True if these are model inputs)"
            )
        return batch

    def predict(
        self, images: ImageInput | Sequence[ImageInput], *, preprocessed: bool = False
    ) -> np.ndarray:
        """Class probabilities ``(N, num_classes)`` for any accepted input (``preprocessed``:
        see :meth:`preprocess`)."""
        return run_flatbuffer(
            self._interpreter, self.preprocess(images, preprocessed=preprocessed)
        )

    def classify(
        self, images: ImageInput | Sequence[ImageInput], top_k: int = 1, *,
        preprocessed: bool = False,
    ) -> list[Prediction]:
        """The top ``top_k`` classes of every image (one :class:`Prediction` per image)."""
        if (not isinstance(top_k, numbers.Integral) or isinstance(top_k, bool)
                or not 1 <= top_k <= self.num_classes):
            raise ValueError(f"top_k={top_k!r} is invalid; valid: an int in "
                             f"1..{self.num_classes}")
        probabilities = self.predict(images, preprocessed=preprocessed)
        predictions = []
        for row in probabilities:
            order = np.argsort(-row, kind="stable")[:top_k]
            top = tuple((int(i), self._label(int(i)), float(row[i])) for i in order)
            predictions.append(Prediction(*top[0], top_k=top))
        return predictions

    def _label(self, index: int) -> str:
        return self.class_names[index] if self.class_names else str(index)


def classify(
    tflite_path: str | os.PathLike,
    images: ImageInput | Sequence[ImageInput],
    *,
    dataset: str | None = None,
    top_k: int = 1,
    preprocessed: bool = False,
) -> list[Prediction]:
    """One-shot :meth:`Classifier.classify`."""
    return Classifier(tflite_path, dataset=dataset).classify(
        images, top_k=top_k, preprocessed=preprocessed
    )
