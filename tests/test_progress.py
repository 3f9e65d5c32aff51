"""Plain-line progress for logs and pipes (where Keras' redrawn bar shows nothing)."""

import io

import numpy as np
import tensorflow as tf

from bireal_larq.training.callbacks import LineProgress


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
