"""Plain-line progress for logs and pipes (where Keras' redrawn bar shows nothing)."""

import io
import os
import re
import sys
import threading

import numpy as np
import tensorflow as tf

from bireal_larq.training.callbacks import LineProgress, Throughput


def test_line_progress_prints_steps_and_epoch_ends():
    model = tf.keras.Sequential([tf.keras.layers.Dense(2, input_shape=(3,))])
    model.compile("sgd", "mse")
    stream = io.StringIO()
    x, y = np.zeros((8, 3), "float32"), np.zeros((8, 2), "float32")
    model.fit(x, y, batch_size=2, epochs=2, verbose=0,
              callbacks=[LineProgress(steps_per_epoch=4, epochs=2, interval=0.0, stream=stream)])
    lines = stream.getvalue().splitlines()
    assert "epoch 1/2 step 1/4 (25 %" in lines[0] and "loss:" in lines[0]
    assert sum(line.startswith("epoch 2/2 done in") for line in lines) == 1
    assert len([line for line in lines if " step " in line]) == 8


def _grouped_fit(callback, epochs=2):
    """7 steps per epoch in executions of 3 (3 + 3 + a partial 1), with validation."""
    model = tf.keras.Sequential([tf.keras.layers.Dense(2, input_shape=(3,))])
    model.compile("sgd", "mse", steps_per_execution=3)
    x, y = np.ones((14, 3), "float32"), np.zeros((14, 2), "float32")
    model.fit(x, y, batch_size=2, epochs=epochs, verbose=0, validation_data=(x, y),
              callbacks=[callback])


def test_line_progress_reports_the_last_step_of_each_execution():
    stream = io.StringIO()
    _grouped_fit(LineProgress(steps_per_epoch=7, epochs=2, interval=0.0, stream=stream))
    steps = [line.split(" step ")[1].split(" ")[0] for line in stream.getvalue().splitlines()
             if " step " in line]
    assert steps == ["3/7", "6/7", "7/7"] * 2


def test_throughput_counts_every_step_of_an_execution_over_windows():
    throughput = Throughput(batch_size=2)
    _grouped_fit(throughput)
    assert throughput.images == 2 * 7 * 2  # 3 hook calls per epoch, 7 steps
    assert throughput.seconds > 0
    assert throughput.images_per_second == throughput.images / throughput.seconds
    assert throughput._supports_tf_logs and LineProgress(1, 1)._supports_tf_logs


def _drawn(ax) -> bool:
    """Whether an axis shows data: a line through two finite points, or a marker at one."""
    for line in ax.get_lines():
        finite = int(np.isfinite(np.asarray(line.get_ydata(), dtype=float)).sum())
        if finite >= 2 or (finite >= 1 and line.get_marker() not in (None, "None", "", " ")):
            return True
    return False


def test_curves_of_a_one_epoch_run_show_data(tmp_path):
    import matplotlib.pyplot as plt

    from bireal_larq.plots import history_figure

    row = {"stage": "binary", "loss": "1.2", "top1": "0.6", "val_loss": "1.1", "val_top1": "0.7"}
    for points in ((), [(0.5, 1.8, 0.3), (1.0, 1.2, 0.6)]):  # epoch ends only, and within
        fig = history_figure([row], points)
        assert all(_drawn(ax) for ax in fig.axes[:2])
        plt.close(fig)


def test_training_points_are_recorded_within_epochs_and_drawn(tmp_path):
    from bireal_larq.plots import history_figure
    from bireal_larq.training.callbacks import TrainingPoints
    from bireal_larq.training.rundir import read_points

    path = str(tmp_path / "points.csv")
    model = tf.keras.Sequential([tf.keras.layers.Dense(2, input_shape=(3,))])
    model.compile("sgd", "mse", metrics=[tf.keras.metrics.MeanAbsoluteError(name="top1")],
                  steps_per_execution=2)
    x, y = np.ones((16, 3), "float32"), np.zeros((16, 2), "float32")
    model.fit(x, y, batch_size=2, epochs=1, verbose=0,
              callbacks=[TrainingPoints(path, steps_per_epoch=8, per_epoch=4, min_steps=1)])
    points = read_points(path, offset=1.0, steps_per_epoch=8)  # the run's second epoch
    assert [p[0] for p in points] == [1.25, 1.5, 1.75, 2.0]
    assert all(np.isfinite(p[1]) and np.isfinite(p[2]) for p in points)
    fig = history_figure([], points)  # no epoch row yet: the points alone show the run
    assert all(_drawn(ax) for ax in fig.axes[:2])
    # short epochs: never more often than min_steps (the default 10) steps apart
    short = str(tmp_path / "short.csv")
    model.fit(x, y, batch_size=2, epochs=1, verbose=0,
              callbacks=[TrainingPoints(short, steps_per_epoch=8)])
    assert not os.path.exists(short)  # 8 steps: no point before step 10


class _Terminal(io.StringIO):
    """A stream that says it is a terminal."""

    def isatty(self):
        return True


def _train_printing_to(stdout, tmp_path, monkeypatch) -> None:
    """A one-epoch run of 4 steps at the train command's verbosity, its stdout ``stdout``."""
    from train_support import synthetic_config

    from bireal_larq.training import run_training

    monkeypatch.setattr(sys, "stdout", stdout)
    run_training(synthetic_config(), str(tmp_path / "run"))


def test_training_in_a_terminal_shows_keras_progress_bar(tmp_path, monkeypatch):
    terminal = _Terminal()
    _train_printing_to(terminal, tmp_path, monkeypatch)
    out = terminal.getvalue()
    assert "\r" in out and re.search(r"4/4 \[=+\]", out), out
    assert "epoch 1/1 done in" not in out, out


def test_training_into_a_pipe_prints_plain_lines(tmp_path, monkeypatch):
    read, write = os.pipe()
    chunks: list[bytes] = []
    reader = threading.Thread(target=lambda: chunks.extend(iter(lambda: os.read(read, 4096),
                                                                  b"")))
    reader.start()
    with os.fdopen(write, "w", encoding="utf-8") as pipe:
        _train_printing_to(pipe, tmp_path, monkeypatch)
        monkeypatch.undo()
    reader.join(timeout=60)
    os.close(read)
    out = b"".join(chunks).decode("utf-8")
    assert "\r" not in out and "\b" not in out and "[=" not in out, repr(out)
    assert re.search(r"^epoch 1/1 done in \d+ s - loss: [\d.]+ - top1: [\d.]+", out, re.M), out
