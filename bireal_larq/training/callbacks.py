"""The Keras callbacks of training (checkpoints, resume points, the non-finite loss guard,
progress, throughput, binary weight flips, training points) and the checks and file names
they share.

The files a run's directory holds, and reading its history and points back, are
:mod:`bireal_larq.training.rundir`; the curves drawn from them, :mod:`bireal_larq.plots`."""

from __future__ import annotations

import csv
import os
import re
import sys
import time

import numpy as np
import tensorflow as tf

from bireal_larq.models.weights import save_weights
from bireal_larq.training.model import binary_kernels


class NonFiniteLossError(RuntimeError):
    """The training loss became NaN or infinite; the run stops without saving."""


def assert_finite(model: tf.keras.Model) -> None:
    """Raises :class:`NonFiniteLossError` when any weight of ``model`` is NaN or infinite;
    training calls it before every weights file and resume point it writes."""
    bad = [w.name for w in model.weights if not np.all(np.isfinite(w.numpy()))]
    if bad:
        raise NonFiniteLossError(
            f"Weights became NaN or infinite ({bad[:5]} ...): training stopped; refusing to "
            "save them"
        )


def _is_finite(value) -> bool:
    """Whether a logged value (a tensor, NumPy value or float) is finite; reads it."""
    return bool(np.all(np.isfinite(np.asarray(value))))


def _wait_for(logs) -> None:
    """Blocks until the step that produced ``logs`` has finished on its device (reads one
    value; the device runs the steps in order)."""
    for value in (logs or {}).values():
        if hasattr(value, "numpy"):
            value.numpy()
            return


class FailOnNonFinite(tf.keras.callbacks.Callback):
    """Stops training with :class:`NonFiniteLossError` once the loss is not finite, without
    making the host wait for the device.

    The logged loss is the running mean of the epoch so far (the loss metric's total over its
    count), so it stays non-finite from the first non-finite step to the end of the epoch:
    checking it once per execution covers every step of it. An execution's loss is read when
    the next execution has ended, by which time it has been computed, so the host does not
    wait for the device; after an epoch's last step, whose logs Keras reads anyway, the
    latest loss is checked (before validation and the epoch-end checkpoints). Unlike Keras'
    ``TerminateOnNaN`` it raises, so the process fails, and it must come before any
    checkpointing callback. Saving is guarded separately: every writer checks the weights
    themselves (:func:`assert_finite`), which also catches an update that overflowed while
    its loss was still finite, and a non-finite step not yet checked here.
    """

    def __init__(self):
        super().__init__()
        self._supports_tf_logs = True  # logs stay tensors: no NumPy conversion per step
        self._epoch = 0
        self._pending = None  # (last step of an execution, its loss) not checked yet

    def _check(self, where: str, loss) -> None:
        if loss is not None and not _is_finite(loss):
            raise NonFiniteLossError(
                f"Loss is {float(np.asarray(loss))} {where}: training stopped; no checkpoint "
                "of this state was written"
            )

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch, self._pending = epoch, None

    def on_train_batch_end(self, batch, logs=None):
        if self._pending is not None:
            step, loss = self._pending
            self._check(f"at batch {step} of epoch {self._epoch + 1} or before it", loss)
        loss = (logs or {}).get("loss")
        self._pending = None if loss is None else (batch, loss)
        steps = (self.params or {}).get("steps")
        if steps is not None and batch + 1 >= steps:  # Keras reads these logs next anyway
            self._pending = None
            self._check(f"in epoch {self._epoch + 1}", loss)

    def on_epoch_end(self, epoch, logs=None):
        self._pending = None
        self._check(f"in epoch {epoch + 1}", (logs or {}).get("loss"))


class SafeBackupAndRestore(tf.keras.callbacks.BackupAndRestore):
    """Keras' BackupAndRestore counting steps, not executions; with a resume point at every
    epoch's end as well; and never of non-finite weights.

    With ``steps_per_execution`` k, Keras calls the batch hooks once per execution with the
    execution's last step, and its own counter counts executions. Here ``save_freq`` counts
    steps and a backup records the last step of the execution it follows, the step the
    weights are at (Keras' records the first one, where its counters were set), so a resume
    continues at the next step exactly. Backups are taken at execution ends only: with a
    ``save_freq`` that is a multiple of k (``backup_interval``) they fall every ``save_freq``
    steps, after checking the logged loss (the epoch's running mean) as well as the weights.
    The end of every epoch is a resume point too (the epoch's last step, which Keras'
    restore reads as "continue at the next epoch, step 0"): without it a run killed after an
    epoch ended could restart that epoch. A step whose update overflowed still reports the
    finite loss computed before the update, so the weights themselves are checked before
    each backup.
    """

    def __init__(self, backup_dir, save_freq="epoch", **kwargs):
        super().__init__(backup_dir, save_freq=save_freq, **kwargs)
        self._execution_start = 0

    def on_train_batch_begin(self, batch, logs=None):
        super().on_train_batch_begin(batch, logs)
        self._execution_start = batch

    def on_train_batch_end(self, batch, logs=None):
        if self.save_freq == "epoch" or not self.save_freq:
            super().on_train_batch_end(batch, logs)
            return
        self._training_state.backup_if_preempted()
        self._batches_count += batch - self._execution_start + 1  # the execution's steps
        if self._batches_count >= self.save_freq:
            self._batches_count = 0
            loss = (logs or {}).get("loss")  # a backup waits for the device anyway
            if loss is not None and not _is_finite(loss):
                raise NonFiniteLossError(
                    f"Loss is {float(np.asarray(loss))} at batch {batch} of epoch "
                    f"{self._current_epoch + 1} or before it: training stopped; no checkpoint "
                    "of this state was written"
                )
            self._backup(epoch=self._current_epoch, batch=batch)

    def on_epoch_end(self, epoch, logs=None):
        if self.save_freq == "epoch":
            super().on_epoch_end(epoch, logs)
            return
        self._batches_count = 0  # the next step-count backup is save_freq steps from here
        self._backup(epoch=epoch, batch=self.params["steps"] - 1)

    def _backup(self, epoch, batch=0):
        assert_finite(self.model)
        state = self._training_state
        state._ckpt_saved_epoch.assign(epoch)
        state._ckpt_saved_batch.assign(batch)
        super()._backup(epoch, batch)


def backup_interval(every_steps: int, steps_per_execution: int) -> int:
    """``every_steps`` rounded up to a multiple of ``steps_per_execution``: resume points can
    only be taken between executions."""
    return -(-every_steps // steps_per_execution) * steps_per_execution


class EpochCheckpoint(tf.keras.callbacks.Callback):
    """Saves the student's weights at every epoch end as ``epoch_{NNN}.weights.h5``."""

    def __init__(self, student: tf.keras.Model, directory: str, keep: int = 3):
        super().__init__()
        self._supports_tf_logs = True  # reads no logs
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
    """Training images per second, measured over windows rather than per step.

    A window runs from the start of an epoch's first training step (the first after a
    resume point, in a resumed epoch) to the end of its last one, which it waits for on the
    device, once per epoch; it closes early when validation starts or the epoch ends
    otherwise. It holds the steps, their wait for the input pipeline and whatever the
    callbacks do between steps (progress lines, resume points written at step counts), but
    not validation or the epoch-end checkpoints. ``images`` counts the steps of closed
    windows times ``batch_size``; ``seconds`` adds up their lengths.
    """

    clock = staticmethod(time.perf_counter)  # the time source (a test can replace it)

    def __init__(self, batch_size: int):
        super().__init__()
        self._supports_tf_logs = True  # waits for the device once per window only
        self.batch_size = batch_size
        self.images = 0
        self.seconds = 0.0
        self._start = None  # perf_counter() at the window's start; None: no open window
        self._steps = 0  # steps in the open window
        self._execution_start = 0

    def on_train_batch_begin(self, batch, logs=None):
        if self._start is None:
            self._start, self._steps = self.clock(), 0
        self._execution_start = batch

    def on_train_batch_end(self, batch, logs=None):
        self._steps += batch - self._execution_start + 1
        steps = (self.params or {}).get("steps")
        if steps is not None and batch + 1 >= steps:  # the epoch's last step
            _wait_for(logs)
            self._close()

    def on_test_begin(self, logs=None):
        self._close()  # Keras has read the epoch's logs already: the steps are done

    def on_epoch_end(self, epoch, logs=None):
        self._close()

    def _close(self) -> None:
        if self._start is None:
            return
        self.seconds += self.clock() - self._start
        self.images += self._steps * self.batch_size
        self._start = None

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


class BinaryWeightFlips(tf.keras.callbacks.Callback):
    """Writes to TensorBoard (``log_dir``), at each epoch's end, two measures of how the binary
    weights move, per binary layer and over all of them (``<measure>/<layer>``,
    ``<measure>/all``):

    * ``flip_ratio``: larq's ``FlipRatio``, the fraction of a layer's weight signs that one
      training step changed, averaged over the epoch's steps. It is how busy the binary weights
      are from step to step (what a learning rate, Bop's threshold or a clip window acts on).
      The training model updates it in its ``train_step``
      (:attr:`bireal_larq.training.model.RecipeModel.flip_ratios`); this callback restarts it
      at each epoch's start and reads it at its end. A model without ``flip_ratios`` has none.
    * ``binary_weight_flips``: the fraction of a layer's weight signs that differ from those
      at the previous epoch's end: how far the binary network itself moved in the epoch. A
      sign flipped and flipped back within the epoch counts in the first only; their gap is
      the weights' oscillation.

    The binary weights are the kernels of ``model``'s layers with a kernel quantizer; their
    signs (+1 at 0, as larq's sign) are what the exported model keeps. ``model`` is the model
    whose weights train (the student); the training model is the one ``fit`` runs. Place it
    after the callback that restores a resume point: the first epoch compares with the weights
    training starts from.
    """

    def __init__(self, model: tf.keras.Model, log_dir: str):
        super().__init__()
        self.log_dir = log_dir
        self.kernels = binary_kernels(model)
        self._signs: dict[str, np.ndarray] = {}
        self._writer = None

    def _read(self) -> dict[str, np.ndarray]:
        return {name: np.asarray(kernel) >= 0 for name, kernel in self.kernels}

    def _flip_ratios(self) -> dict:
        return getattr(self.model, "flip_ratios", None) or {}

    def on_train_begin(self, logs=None):
        if self.kernels:
            self._signs = self._read()
            self._writer = tf.summary.create_file_writer(self.log_dir)

    def on_epoch_begin(self, epoch, logs=None):
        if self._flip_ratios():
            self.model.restart_flip_ratios()

    def _write(self, measure: str, ratios: dict[str, float], sizes: dict[str, int], epoch):
        for name, ratio in ratios.items():
            tf.summary.scalar(f"{measure}/{name}", ratio, step=epoch)
        total = sum(sizes[name] for name in ratios)
        overall = sum(ratios[name] * sizes[name] for name in ratios) / max(total, 1)
        tf.summary.scalar(f"{measure}/all", overall, step=epoch)

    def on_epoch_end(self, epoch, logs=None):
        if not self.kernels or self._writer is None:
            return
        signs = self._read()
        sizes = {name: now.size for name, now in signs.items()}
        changed = {
            name: np.count_nonzero(now != self._signs[name]) / now.size
            for name, now in signs.items()
        }
        metrics = self._flip_ratios()
        steps = {name: float(m.result()) for name, m in metrics.items() if name in sizes}
        with self._writer.as_default():
            if steps:
                self._write("flip_ratio", steps, sizes, epoch)
            self._write("binary_weight_flips", changed, sizes, epoch)
        self._writer.flush()
        self._signs = signs

    def on_train_end(self, logs=None):
        if self._writer is not None:
            self._writer.close()
            self._writer = None


POINTS = "points.csv"  # a stage's training points within epochs (TrainingPoints)


class TrainingPoints(tf.keras.callbacks.Callback):
    """The training loss and top-1 about ``per_epoch`` times an epoch, for the curves.

    The values are Keras's running means over the epoch so far. Each point is appended to
    ``path`` (CSV: ``epoch`` from 0, ``step`` within it, ``loss``, ``top1``) at the end of
    the execution that reaches the next recording step, at least ``min_steps`` steps apart;
    the logs are read (one wait for the device) only then. Points of an attempt that was
    interrupted stay in the file.
    """

    def __init__(self, path: str, steps_per_epoch: int, per_epoch: int = 20, min_steps: int = 10):
        super().__init__()
        self._supports_tf_logs = True
        self.path = path
        self.every = max(1, min_steps, steps_per_epoch // per_epoch)
        self._epoch, self._next = 0, self.every

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch, self._next = epoch, self.every

    def on_train_batch_end(self, batch, logs=None):
        step = batch + 1
        if step < self._next or not logs or "loss" not in logs:
            return
        self._next = (step // self.every + 1) * self.every
        row = {"epoch": self._epoch, "step": step}
        for key in ("loss", "top1"):
            value = logs.get(key)
            row[key] = "" if value is None else float(np.asarray(value))
        new = not os.path.exists(self.path) or os.path.getsize(self.path) == 0
        with open(self.path, "a", newline="", encoding="utf-8") as f:
            writer = csv.DictWriter(f, fieldnames=list(row))
            if new:
                writer.writeheader()
            writer.writerow(row)


class LineProgress(tf.keras.callbacks.Callback):
    """Progress as plain lines every ``interval`` seconds, for logs and pipes.

    Keras' progress bar redraws one line with carriage returns; written to a file or a pipe
    (``make demo``, CI, a cluster job log) it shows nothing until the epoch ends. Keras calls
    it once per execution (``steps_per_execution`` steps); it reads the logs (waiting for the
    device) only when it prints.
    """

    def __init__(self, steps_per_epoch: int, epochs: int, interval: float = 15.0, stream=None):
        super().__init__()
        self._supports_tf_logs = True  # logs stay tensors until a line is printed
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
