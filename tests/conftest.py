"""Shared test set-up: quiet TensorFlow, deterministic seeds, tidy Keras state."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# Keras 2 (tf-keras) for TensorFlow >= 2.16, as `import bireal_larq` selects it: test modules
# import tensorflow and larq before the package. tests/test_stack.py checks the import order.
from bireal_larq.stack import request_keras2  # noqa: E402  (imports no TensorFlow)

request_keras2()
# Tests that prepare TFDS data share one copy (the Makefile exports the same default).
os.environ.setdefault(
    "TFDS_DATA_DIR",
    os.path.join(os.path.dirname(os.path.dirname(__file__)), ".cache", "tensorflow_datasets"),
)

import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402


@pytest.fixture(autouse=True)
def _fresh_keras_state():
    tf.keras.backend.clear_session()
    tf.keras.utils.set_random_seed(0)
    yield
