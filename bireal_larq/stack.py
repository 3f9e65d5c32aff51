"""The software stack bireal_larq runs on, and Keras 2 selected before TensorFlow loads it.

Larq 0.14 is written for Keras 2 (it subclasses ``LocallyConnected1D`` and uses
``tf.keras.optimizers.legacy``). TensorFlow 2.15 carries Keras 2 as ``tf.keras``; from 2.16 on,
``tf.keras`` is Keras 3 unless ``TF_USE_LEGACY_KERAS=1`` is set before ``tf.keras`` is first
touched and the ``tf-keras`` package of the same minor version is installed (larq issues #909 and
#911). Importing ``bireal_larq`` runs :func:`check_installed` (the checks that need no
TensorFlow import, and the variable set); :func:`select_keras2` (those checks, then a look at
what ``tf.keras`` is) runs when TensorFlow is already loaded at that point, when a command
starts, and when a public name of the package is first used. This module is importable without
TensorFlow and imports nothing of the package.

Supported stacks (the lock files under ``locks/`` pin each):

- main: Python 3.10-3.12, TensorFlow 2.18-2.21 with ``tf-keras`` of the same minor, numpy < 2;
- reference: Python 3.10-3.11, TensorFlow 2.15.1 with its own Keras 2.
"""

from __future__ import annotations

import os
import sys

SUPPORTED_PYTHON = ((3, 10), (3, 12))
# TensorFlow minors of the main stack; 2.15 is the reference stack.
MAIN_TF_MINORS = (18, 19, 20, 21)
REFERENCE_TF_MINOR = 15

_RESTART = (
    "Restart the Python process (in a notebook: Runtime > Restart session / Kernel > Restart) "
    "and run `import bireal_larq` before `import tensorflow`, or set the environment variable "
    "TF_USE_LEGACY_KERAS=1 before TensorFlow is imported (os.environ['TF_USE_LEGACY_KERAS'] = "
    "'1' in the first cell)."
)


class StackError(ImportError):
    """The installed packages cannot run bireal_larq; the message says what to change."""


def _tf_minor(version: str) -> tuple[int, int]:
    major, minor = version.split(".")[:2]
    return int(major), int(minor)


def check_python(version_info: tuple[int, ...] = sys.version_info[:2]) -> None:
    """Raises :class:`StackError` outside Python 3.10-3.12."""
    low, high = SUPPORTED_PYTHON
    if not low <= tuple(version_info[:2]) <= high:
        raise StackError(
            f"bireal_larq supports Python 3.10-3.12, not {version_info[0]}.{version_info[1]}: "
            "larq 0.14 requires numpy < 2 and larq-compute-engine 0.16 has wheels for CPython "
            "3.10-3.12 only. Use Python 3.12."
        )


def check_numpy(version: str) -> None:
    """Raises :class:`StackError` for numpy 2 (larq 0.14 is built against numpy 1)."""
    if int(version.split(".")[0]) >= 2:
        raise StackError(
            f"numpy {version} is installed; larq 0.14 requires numpy < 2. Install it with "
            "`pip install 'numpy<2'` (numpy 1.26 supports Python 3.10-3.12)."
        )


def legacy_keras_requested() -> bool:
    """Whether ``TF_USE_LEGACY_KERAS`` asks TensorFlow for Keras 2 (TF reads "1" or "true")."""
    return os.environ.get("TF_USE_LEGACY_KERAS") in ("1", "true", "True")


def installed_tensorflow_version() -> str | None:
    """The version of the installed TensorFlow distribution, read without importing it."""
    from importlib import metadata

    for name in ("tensorflow", "tensorflow-cpu", "tensorflow-intel", "tensorflow-macos"):
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return None


def request_keras2() -> None:
    """Sets ``TF_USE_LEGACY_KERAS=1`` where TensorFlow needs it for Keras 2, unless it is set.

    Not on TensorFlow 2.15, whose built-in Keras 2.15 is the reference stack's Keras (the
    variable would switch it to a tf-keras 2.15 installed beside it). Imports nothing heavy.
    """
    version = installed_tensorflow_version()
    if version is not None and _tf_minor(version) == (2, REFERENCE_TF_MINOR):
        return
    os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")


def _unsupported_tf(version: str) -> StackError | None:
    major, minor = _tf_minor(version)
    if (major, minor) < (2, REFERENCE_TF_MINOR) or major > 2:
        return StackError(
            f"TensorFlow {version} is not supported; bireal_larq runs on TensorFlow "
            "2.18-2.21 (with tf-keras of the same version) or 2.15.1. Install e.g. "
            "`pip install 'tensorflow==2.21.*' 'tf-keras==2.21.*'`."
        )
    return None


def _keras3_requested(version: str, user_value: str | None) -> StackError:
    return StackError(
        f"TF_USE_LEGACY_KERAS={user_value!r} asks TensorFlow {version} for Keras 3, "
        "but larq (and so bireal_larq) needs Keras 2 (tf-keras). Unset the variable or set "
        "it to 1, then restart the Python process."
    )


def check_installed() -> None:
    """The checks that need no import of TensorFlow: Python, numpy, the TensorFlow version and
    its Keras 2 (from the installed distributions' metadata), and ``TF_USE_LEGACY_KERAS``.

    Sets ``TF_USE_LEGACY_KERAS=1`` where TensorFlow needs it (:func:`request_keras2`).

    Raises:
        StackError: naming what to change.
    """
    from importlib import metadata

    check_python()
    try:
        check_numpy(metadata.version("numpy"))
    except metadata.PackageNotFoundError:
        pass  # importing numpy will say so
    user_value = os.environ.get("TF_USE_LEGACY_KERAS")
    request_keras2()
    version = installed_tensorflow_version()
    if version is None or _tf_minor(version) == (2, REFERENCE_TF_MINOR):
        return
    error = _unsupported_tf(version)
    if error is not None:
        raise error
    if not legacy_keras_requested():
        raise _keras3_requested(version, user_value)
    major, minor = _tf_minor(version)
    try:
        metadata.version("tf-keras")
    except metadata.PackageNotFoundError:
        raise StackError(
            f"TensorFlow {version} needs the tf-keras package for Keras 2, which is not "
            f"installed. Install it with `pip install 'tf-keras=={major}.{minor}.*'`."
        ) from None


def select_keras2() -> None:
    """Makes ``tf.keras`` Keras 2 for this process, or raises :class:`StackError` saying why not.

    Runs :func:`check_installed`, then imports TensorFlow and checks what ``tf.keras`` is.
    """
    user_value = os.environ.get("TF_USE_LEGACY_KERAS")
    check_installed()
    import numpy

    check_numpy(numpy.__version__)
    tf_imported_before = "tensorflow" in sys.modules

    import tensorflow as tf

    major, minor = _tf_minor(tf.__version__)
    if (major, minor) == (2, REFERENCE_TF_MINOR):
        return  # tf.keras is Keras 2.15 whatever the variable says
    error = _unsupported_tf(tf.__version__)
    if error is not None:
        raise error
    if not legacy_keras_requested():
        raise _keras3_requested(tf.__version__, user_value)
    # TensorFlow decides at its import which Keras `from tensorflow.keras import ...` reaches (it
    # records the choice in _tf_uses_legacy_keras) and at the first use of tf.keras what that
    # attribute is: both must be Keras 2.
    if tf_imported_before and getattr(tf, "_tf_uses_legacy_keras", True) is False:
        raise StackError(
            f"bireal_larq needs Keras 2, but TensorFlow {tf.__version__} was imported before "
            "bireal_larq without TF_USE_LEGACY_KERAS=1, so it serves Keras 3 and cannot switch "
            f"in this process. {_RESTART}"
        )
    try:
        keras_package = tf.keras.layers.Layer.__module__.split(".")[0]
    except ImportError as err:  # TF's lazy loader: tf-keras is not installed
        raise StackError(
            f"TensorFlow {tf.__version__} needs the tf-keras package for Keras 2 ({err}). "
            f"Install it with `pip install 'tf-keras=={major}.{minor}.*'`."
        ) from None
    if keras_package != "tf_keras":
        when = (
            "TensorFlow was imported and tf.keras used before bireal_larq"
            if tf_imported_before
            else "tf.keras resolved to Keras 3"
        )
        raise StackError(
            f"bireal_larq needs Keras 2, but tf.keras is already Keras 3 (from the "
            f"{keras_package!r} package): {when}, and TensorFlow {tf.__version__} chooses its "
            f"Keras once per process. {_RESTART}"
        )


def keras_package() -> str:
    """The package ``tf.keras`` comes from: "tf_keras", or "keras" (TF 2.15's own Keras 2)."""
    import tensorflow as tf

    return tf.keras.layers.Layer.__module__.split(".")[0]


def hdf5_format():
    """The legacy HDF5 reader/writer module (by-name weight loading) of the Keras in use."""
    import importlib

    return importlib.import_module(f"{keras_package()}.src.saving.legacy.hdf5_format")


def keras_version() -> str:
    """The version of the Keras 2 that ``tf.keras`` is (tf-keras, or TF 2.15's keras)."""
    import importlib

    return importlib.import_module(keras_package()).__version__


# Platforms with larq-compute-engine 0.16 wheels (CPython 3.10-3.12); setup.py installs it there.
LCE_PLATFORMS = "Linux x86-64, macOS and Windows"


class LceUnavailableError(RuntimeError):
    """Larq Compute Engine (converter and interpreter) is not installed on this machine."""


def import_lce(module: str = "larq_compute_engine"):
    """Imports ``module`` of Larq Compute Engine, or says why export cannot run here.

    Raises:
        LceUnavailableError: the package is not installed; the message names the platforms it
            has wheels for and what to do instead.
    """
    import importlib
    import platform

    try:
        return importlib.import_module(module)
    except ImportError as err:
        here = f"{platform.system()} {platform.machine()}, Python {platform.python_version()}"
        raise LceUnavailableError(
            f"Larq Compute Engine is not installed ({err}), so export and LCE inference cannot "
            f"run here ({here}). larq-compute-engine 0.16 publishes wheels for CPython "
            f"3.10-3.12 on {LCE_PLATFORMS} only. Training works here; export on one of those "
            "machines (pip install larq-compute-engine==0.16.0) and run the .tflite on the "
            "device with lce_benchmark_model."
        ) from None
