"""Callbacks (checkpoints, resume points, progress, throughput) and the artefacts every run
writes (history plot)."""

from __future__ import annotations

import csv
import os
import re
import sys
import time

import numpy as np
import tensorflow as tf

from bireal_larq.models.weights import save_weights


class NonFiniteLossError(RuntimeError):
    """The training loss became NaN or infinite; the run stops without saving."""


def assert_finite(model: tf.keras.Model) -> None:
    """Raises :class:`NonFiniteLossError` when any weight of ``model`` is NaN or infinite;
    training calls it before every weights file and resume point it writes."""
    bad = [w.name for w in model.weights if not np.all(np.isfinite(w.numpy()))]
    if bad:
        raise NonFiniteLossError(f"Refusing to save non-finite weights ({bad[:5]} ...)")


class FailOnNonFinite(tf.keras.callbacks.Callback):
    """Stops training with :class:`NonFiniteLossError` as soon as the loss is not finite.

    Unlike Keras' ``TerminateOnNaN`` it raises, so the process fails, and it must come
    before any checkpointing callback: those never run for the broken batch.
    """

    def on_train_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and not np.isfinite(float(loss)):
            raise NonFiniteLossError(
                f"Loss is {float(loss)} at batch {batch}: training stopped; no checkpoint of "
                "this state was written"
            )


class SafeBackupAndRestore(tf.keras.callbacks.BackupAndRestore):
    """Keras' BackupAndRestore with a resume point at every epoch's end as well, and never
    of non-finite weights.

    With ``save_freq`` a number of steps, Keras backs up only every ``save_freq`` steps, so a
    run killed after an epoch ended could restart that epoch. Here the end of every epoch is
    a resume point too: Keras' counters then hold the epoch's last batch, which its restore
    reads as "continue at the next epoch, step 0". A batch whose update overflowed still
    reports the finite loss computed before the update, so the weights themselves are checked
    before each backup.
    """

    def on_epoch_end(self, epoch, logs=None):
        super().on_epoch_end(epoch, logs)
        if self.save_freq != "epoch":
            self._batches_count = 0  # the next step-count backup is save_freq steps from here
            self._backup(epoch=epoch)

    def _backup(self, epoch, batch=0):
        assert_finite(self.model)
        super()._backup(epoch, batch)


class EpochCheckpoint(tf.keras.callbacks.Callback):
    """Saves the student's weights at every epoch end as ``epoch_{NNN}.weights.h5``."""

    def __init__(self, student: tf.keras.Model, directory: str, keep: int = 3):
        super().__init__()
        self.student = student
        self.directory = directory
        self.keep = keep

    def on_epoch_end(self, epoch, logs=None):
        assert_finite(self.student)
        save_weights(
            self.student, os.path.join(self.directory, f"epoch_{epoch + 1:03d}.weights.h5")
        )
        files = _epoch_files(self.directory)
        for old in files[: -self.keep]:
            os.remove(os.path.join(self.directory, old))


class Throughput(tf.keras.callbacks.Callback):
    """Measures training images per second over the batches run by this process."""

    def __init__(self, batch_size: int):
        super().__init__()
        self.batch_size = batch_size
        self.images = 0
        self.seconds = 0.0
        self._start = None

    def on_train_batch_begin(self, batch, logs=None):
        self._start = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        if self._start is not None:
            self.seconds += time.perf_counter() - self._start
            self.images += self.batch_size

    @property
    def images_per_second(self) -> float:
        return self.images / self.seconds if self.seconds else 0.0


def latest_checkpoint(directory: str) -> str | None:
    """The newest epoch checkpoint in ``directory``, or None."""
    if not os.path.isdir(directory):
        return None
    files = _epoch_files(directory)
    return os.path.join(directory, files[-1]) if files else None


_EPOCH_FILE = re.compile(r"^epoch_(\d+)\.weights\.h5$")


def _epoch_files(directory: str) -> list[str]:
    """The epoch checkpoints in ``directory``, oldest first by epoch number (not by name:
    epoch_1000 sorts before epoch_999 as a string)."""
    found = [(int(m.group(1)), f) for f in os.listdir(directory) if (m := _EPOCH_FILE.match(f))]
    return [f for _, f in sorted(found)]


def read_history(path: str) -> list[dict[str, str]]:
    if not os.path.exists(path):
        return []
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def plot_history(rows: list[dict[str, str]], path: str) -> str:
    """Plots loss and top-1 (train and validation) against the run's epoch as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    x = list(range(1, len(rows) + 1))
    for ax, key in zip(axes, ("loss", "top1")):
        for prefix, style in (("", "-"), ("val_", "--")):
            values = [float(r[prefix + key]) if r.get(prefix + key) else np.nan for r in rows]
            ax.plot(x, values, style, label=("validation " if prefix else "train ") + key)
        ax.set_xlabel("epoch")
        ax.set_title(key)
        ax.legend()
        ax.grid(alpha=0.3)
    stages = [r.get("stage") for r in rows]
    for i in range(1, len(stages)):
        if stages[i] != stages[i - 1]:
            for ax in axes:
                ax.axvline(i + 0.5, color="grey", lw=0.8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


class LineProgress(tf.keras.callbacks.Callback):
    """Progress as plain lines every ``interval`` seconds, for logs and pipes.

    Keras' progress bar redraws one line with carriage returns; written to a file or a pipe
    (``make demo``, CI, a cluster job log) it shows nothing until the epoch ends.
    """

    def __init__(self, steps_per_epoch: int, epochs: int, interval: float = 15.0, stream=None):
        super().__init__()
        self.steps, self.epochs, self.interval = steps_per_epoch, epochs, interval
        self.stream = stream or sys.stdout
        self._epoch = 0
        self._last = 0.0
        self._epoch_start = 0.0

    @staticmethod
    def _metrics(logs) -> str:
        return " - ".join(f"{k}: {float(v):.4f}" for k, v in (logs or {}).items())

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch
        self._epoch_start = self._last = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        now = time.perf_counter()
        if now - self._last < self.interval:
            return
        self._last = now
        done = batch + 1
        eta = (now - self._epoch_start) / done * (self.steps - done)
        print(f"epoch {self._epoch + 1}/{self.epochs} step {done}/{self.steps} "
              f"({100 * done / self.steps:.0f} %, ETA {eta:.0f} s) - {self._metrics(logs)}",
              file=self.stream, flush=True)

    def on_epoch_end(self, epoch, logs=None):
        seconds = time.perf_counter() - self._epoch_start
        print(f"epoch {epoch + 1}/{self.epochs} done in {seconds:.0f} s - {self._metrics(logs)}",
              file=self.stream, flush=True)
