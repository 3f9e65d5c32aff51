"""Plain-line progress for logs and pipes (where Keras' redrawn bar shows nothing)."""

import io

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
