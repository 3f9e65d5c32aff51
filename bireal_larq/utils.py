"""Small shared pieces with no TensorFlow: atomic writes and the error a failed write raises."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator


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
