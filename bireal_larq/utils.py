"""Small shared pieces every layer of the package uses, importable without TensorFlow.

JSON conversion (:func:`jsonable`), atomic writes (:func:`atomic_path`) and the error a failed
write raises, the dtype-policy scope layers are built in (:func:`dtype_policy`, which imports
TensorFlow only when entered), the derivation of per-purpose seeds from a run's seed
(:func:`derive_seed`), lazy package attributes (:func:`lazy_exports`) and the host's CPU model.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib
import os
import platform
from collections.abc import Callable, Iterator, Mapping
from typing import Any


def jsonable(value: Any) -> Any:
    """``value`` as plain JSON types: dataclasses and dicts as dicts (keys as strings), tuples
    as lists, NumPy scalars and arrays as numbers and lists, anything else as its repr. The one
    conversion behind every JSON file a run directory holds (configs, reports, results)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        value = dataclasses.asdict(value)
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    tolist = getattr(value, "tolist", None)  # NumPy arrays and scalars (no NumPy import needed)
    if callable(tolist) and type(value).__module__ == "numpy":
        return jsonable(tolist())
    return repr(value)


# Seeds of the different random streams of one run are ``seed * SEED_STRIDE + salt``: runs whose
# seeds differ by one never share a stream, and a stream's salt keeps it apart from the others.
SEED_STRIDE = 1_000_003


def derive_seed(seed: int | None, salt: int) -> int | None:
    """The seed of the random stream ``salt`` of a run seeded with ``seed`` (None stays None:
    a nondeterministic stream)."""
    return None if seed is None else int(seed) * SEED_STRIDE + int(salt)


@contextlib.contextmanager
def dtype_policy(name: str = "float32") -> Iterator[None]:
    """Sets Keras's global dtype policy to ``name`` inside the block and restores the previous
    one after it, also on an error.

    Layers take their compute dtype from the global policy when they are built; larq's
    quantizers are layers created inside a binary conv's constructor, so a model built under a
    mixed policy would compute the sign and the mean |W| scale in 16 bits. Models are therefore
    built under ``dtype_policy("float32")`` unless a recipe asks for mixed precision.
    """
    import tensorflow as tf

    previous = tf.keras.mixed_precision.global_policy()
    tf.keras.mixed_precision.set_global_policy(name)
    try:
        yield
    finally:
        tf.keras.mixed_precision.set_global_policy(previous)


def lazy_exports(package: str, exports: Mapping[str, str]) -> tuple[Callable, Callable]:
    """``__getattr__`` and ``__dir__`` for a package whose public names live in submodules.

    ``exports`` maps each public name to the submodule (relative to ``package``) defining it;
    the submodule is imported on the first access of one of its names, so importing the
    package (or a light submodule of it, such as a config module) imports nothing heavy. The
    value is then kept in the package's namespace: later accesses do not reach ``__getattr__``.
    """

    def __getattr__(name: str) -> Any:
        if name not in exports:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(f"{package}.{exports[name]}"), name)
        setattr(importlib.import_module(package), name, value)
        return value

    def __dir__() -> list[str]:
        return sorted(set(exports) | set(vars(importlib.import_module(package))))

    return __getattr__, __dir__


def cpu_model() -> str:
    """The CPU's model name (Linux: /proc/cpuinfo), else what ``platform`` knows of it."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


class WriteError(OSError):
    """A file could not be written (disk full, permission denied, ...); the file it was to
    replace, if any, is unchanged."""


def write_failed(path: str, err: OSError) -> WriteError:
    """The :class:`WriteError` for ``path``: what failed, that nothing was replaced, the remedy."""
    reason = err.strerror or str(err)
    return WriteError(
        err.errno,
        f"Could not write {path}: {reason}. The previous version of the file, if any, is "
        "unchanged. Free disk space or fix the directory's permissions, then run the same "
        "command again (a training run resumes from its last resume point).",
    )


@contextlib.contextmanager
def atomic_path(path: str) -> Iterator[str]:
    """Yields a temporary path beside ``path`` and renames it into place when the block ends
    without an error; on an error the temporary file is removed and ``path`` is untouched.

    Raises:
        WriteError: writing or renaming failed with an ``OSError`` (disk full, permissions).
    """
    directory = os.path.dirname(os.path.abspath(path))
    root, ext = os.path.splitext(path)
    tmp = f"{root}.{os.getpid()}.tmp{ext}"
    try:
        os.makedirs(directory, exist_ok=True)
        yield tmp
        os.replace(tmp, path)
    except OSError as err:
        with contextlib.suppress(OSError):
            os.remove(tmp)
        if isinstance(err, WriteError):
            raise
        raise write_failed(path, err) from None
    except BaseException:
        with contextlib.suppress(OSError):
            os.remove(tmp)
        raise
