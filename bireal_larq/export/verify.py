"""Running a flatbuffer in LCE's interpreter and comparing it with the Keras model.

Whole networks are compared by top-1 agreement: a pre-activation close to 0 can change sign
after LCE folds BatchNorm into the binary conv, which flips one binary activation and moves the
output a little. Single layers are compared tightly in the tests.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import tensorflow as tf

from bireal_larq import console, data
from bireal_larq.export.backends import default_backend, interpreter_options
from bireal_larq.stack import import_lce

_DTYPES = {np.dtype(np.float32): "float32", np.dtype(np.int8): "int8", np.dtype(np.uint8): "uint8"}


def interpreter(flatbuffer: bytes, num_threads: int = 1, backend: str | None = None):
    """LCE's interpreter on ``flatbuffer`` with a backend (default: the host's, see
    :mod:`bireal_larq.export.backends`).

    Raises:
        ValueError: unknown backend.
    """
    Interpreter = import_lce("larq_compute_engine.tflite.python.interpreter").Interpreter

    options = interpreter_options(backend or default_backend())
    with console.held_if_quiet():  # TFLite's note on the XNNPACK delegate, in a command
        return Interpreter(flatbuffer, num_threads=num_threads, **options)


def _dtype_name(dtype) -> str:
    dtype = np.dtype(dtype)
    return _DTYPES.get(dtype, dtype.name)


def io_types(flatbuffer: bytes) -> dict[str, Any]:
    """Input/output dtypes and shapes of a flatbuffer, as its interpreter sees them."""
    it = interpreter(flatbuffer)
    return {
        "input_type": _dtype_name(it.input_types[0]),
        "output_type": _dtype_name(it.output_types[0]),
        "input_shape": list(it.input_shapes[0]),
        "output_shape": list(it.output_shapes[0]),
    }


def _quantize(x: np.ndarray, scale, zero_point) -> np.ndarray:
    q = np.round(x / np.asarray(scale, np.float32)) + np.asarray(zero_point, np.float32)
    return np.clip(q, -128, 127).astype(np.int8)


def run_flatbuffer(it, images: np.ndarray) -> np.ndarray:
    """Runs ``images`` (float32, ``(N, H, W, C)``) one by one through interpreter ``it``.

    int8 inputs and outputs are (de)quantized with the flatbuffer's scales, so the result is
    comparable with the float Keras model either way.
    """
    x = np.asarray(images, np.float32)
    if np.dtype(it.input_types[0]) == np.int8:
        x = _quantize(x, it.input_scales[0], it.input_zero_points[0])
    y = it.predict(x)
    if np.dtype(it.output_types[0]) == np.int8:
        scale = np.asarray(it.output_scales[0], np.float32)
        y = (y.astype(np.float32) - np.asarray(it.output_zero_points[0], np.float32)) * scale
    return np.asarray(y, np.float32)


def random_images(shape: Sequence[int], n: int, seed: int = 0) -> np.ndarray:
    """``n`` standard-normal images: about the range of normalised inputs."""
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, *shape)).astype(np.float32)


def _batch_from(items) -> tuple[np.ndarray, np.ndarray | None]:
    images, labels = [], []
    for item in items:
        if isinstance(item, tuple | list):
            images.append(np.asarray(item[0]))
            if len(item) > 1:
                labels.append(np.asarray(item[1]))
        else:
            images.append(np.asarray(item))
    x = np.stack(images).astype(np.float32)
    y = np.stack(labels) if labels and len(labels) == len(images) else None
    return x, y


def images_from(data: np.ndarray | tf.data.Dataset, n: int) -> tuple[np.ndarray, np.ndarray | None]:
    """The first ``n`` images (and labels, if any) of an array or an unbatched dataset.

    Raises:
        ValueError: the data is not an array of rank 4 or a dataset of rank-3 images.
    """
    if isinstance(data, tf.data.Dataset):
        spec = data.element_spec
        image_spec = spec[0] if isinstance(spec, tuple) else spec
        if image_spec.shape.rank == 4:
            data = data.unbatch()
        elif image_spec.shape.rank != 3:
            raise ValueError(
                f"Verification dataset elements have shape {image_spec.shape}; expected images "
                "(H, W, C) or batches (N, H, W, C), optionally paired with labels"
            )
        return _batch_from(data.take(n).as_numpy_iterator())
    array = np.asarray(data)
    if array.ndim != 4:
        raise ValueError(
            f"Verification images have shape {array.shape}; expected (N, H, W, C) float32"
        )
    return array[:n].astype(np.float32), None


def dataset_images(
    name: str,
    n: int,
    image_shape: Sequence[int],
    data_dir: str | None = None,
    resize_ratio: float | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """The first ``n`` test images of dataset ``name``, preprocessed for evaluation.

    Uses ``bireal_larq.data.get_dataset(name, "test", training=False)``: the same eval
    preprocessing as training's evaluation, at the model's input size, with the run's
    ``resize_ratio`` (None: the dataset's default).

    Raises:
        ValueError: the dataset's images do not have the model's channel count.
    """
    augment = None if resize_ratio is None else data.AugmentConfig(eval_resize_ratio=resize_ratio)
    dataset, _ = data.get_dataset(
        name,
        "test",
        batch_size=min(n, 64),
        training=False,
        data_dir=data_dir,
        image_size=tuple(image_shape[:2]),
        augment=augment,
    )
    channels = dataset.element_spec[0].shape[-1]
    if channels is not None and channels != image_shape[-1]:
        raise ValueError(
            f"Dataset {name!r} gives {channels}-channel images but the model takes "
            f"{image_shape[-1]} channels (input {tuple(image_shape)})"
        )
    images, labels = images_from(dataset, n)
    if labels is None:
        raise ValueError(f"Dataset {name!r} gave no labels")
    return images, labels


def _labels_to_index(labels: np.ndarray | None) -> np.ndarray | None:
    if labels is None:
        return None
    labels = np.asarray(labels)
    return labels.argmax(-1) if labels.ndim == 2 else labels.astype(np.int64)


def compare(
    model: tf.keras.Model,
    flatbuffer: bytes,
    images: np.ndarray,
    labels: np.ndarray | None = None,
    backend: str | None = None,
) -> dict[str, Any]:
    """Runs Keras (inference mode) and LCE on ``images`` and compares their outputs.

    LCE runs with ``backend`` (default: the host's, the one the inference API uses).

    Returns:
        ``samples``, ``top1_agreement`` (fraction of images with the same arg-max),
        ``max_output_difference`` (largest |difference| of the model outputs, the softmax
        probabilities), ``mean_output_difference``, and, with labels, both accuracies.
    """
    keras_out = model.predict(images, batch_size=32, verbose=0).astype(np.float32)
    backend = backend or default_backend()
    lce_out = run_flatbuffer(interpreter(flatbuffer, backend=backend), images)
    if keras_out.shape != lce_out.shape:
        raise ValueError(f"Keras gives outputs {keras_out.shape}, LCE {lce_out.shape}")
    keras_top1, lce_top1 = keras_out.argmax(-1), lce_out.argmax(-1)
    diff = np.abs(keras_out - lce_out)
    result: dict[str, Any] = {
        "samples": int(len(images)),
        "top1_agreement": float(np.mean(keras_top1 == lce_top1)),
        "disagreements": int(np.sum(keras_top1 != lce_top1)),
        "max_output_difference": float(diff.max()),
        "mean_output_difference": float(diff.mean()),
        "output": "softmax probabilities",
        "backend": backend,
    }
    index = _labels_to_index(labels)
    if index is not None:
        result["keras_top1_accuracy"] = float(np.mean(keras_top1 == index))
        result["lce_top1_accuracy"] = float(np.mean(lce_top1 == index))
    return result
