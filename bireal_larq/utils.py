"""Small shared pieces with no TensorFlow: atomic writes, the error a failed write raises, the
host's CPU model."""

from __future__ import annotations

import contextlib
import os
import platform
from collections.abc import Iterator


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
