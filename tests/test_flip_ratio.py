"""larq's FlipRatio of the binary weights: updated at every training step by the training
model, written to TensorBoard per binary layer next to the sign changes over each epoch, and
kept out of the model's weights, its files and the logged metrics."""

from __future__ import annotations

import csv
import os

import larq as lq
import numpy as np
import tensorflow as tf
from train_support import SHAPE, synthetic_config, weight_arrays

from bireal_larq.models import create_model, load_weights, save_weights
from bireal_larq.training import StageConfig, compile_for_recipe, run_training
from bireal_larq.training.callbacks import BinaryWeightFlips
from bireal_larq.training.model import binary_kernels


def _tiny_model() -> tf.keras.Model:
    return create_model("birealnet18_small", input_shape=SHAPE, num_classes=4, base_filters=8)


def _data(batches: int, batch: int = 8):
    rng = np.random.default_rng(0)
    x = rng.uniform(size=(batches * batch, *SHAPE)).astype("float32")
    y = np.eye(4, dtype="float32")[rng.integers(0, 4, batches * batch)]
    return x, y


class _SignsAfterEachStep(tf.keras.callbacks.Callback):
    """The binary kernels' signs before training and after every step (one step per
    execution)."""

    def __init__(self, student):
        super().__init__()
        self.kernels = binary_kernels(student)
        self.signs: list[dict[str, np.ndarray]] = []

    def _record(self):
        self.signs.append({name: np.asarray(k) >= 0 for name, k in self.kernels})

    def on_train_begin(self, logs=None):
        self._record()

    def on_train_batch_end(self, batch, logs=None):
        self._record()


def test_the_training_model_updates_larqs_flip_ratio_at_every_step(tmp_path):
    student = _tiny_model()
    names = [name for name, _ in binary_kernels(student)]
    trainer = compile_for_recipe(student, StageConfig("binary", 1), batch_size=8,
                                 steps_per_epoch=6)
    assert len(names) == 16 and list(trainer.flip_ratios) == names
    assert all(isinstance(m, lq.metrics.FlipRatio) for m in trainer.flip_ratios.values())
    recorder = _SignsAfterEachStep(student)
    x, y = _data(6)
    history = trainer.fit(x, y, batch_size=8, epochs=1, verbose=0, callbacks=[
        BinaryWeightFlips(student, str(tmp_path / "logs")), recorder])
    # each step's fraction of changed signs, averaged over the epoch's 6 steps
    steps = recorder.signs
    assert len(steps) == 7
    for name in names:
        size = steps[0][name].size
        want = np.mean([np.count_nonzero(b[name] != a[name]) / size
                        for a, b in zip(steps, steps[1:])])
        got = float(trainer.flip_ratios[name].result())
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-7, err_msg=name)
    assert max(float(m.result()) for m in trainer.flip_ratios.values()) > 0
    # the logged metrics are the model's own; evaluation leaves the flip ratios alone
    assert sorted(history.history) == ["loss", "top1", "top5"]
    before = {name: float(m.result()) for name, m in trainer.flip_ratios.items()}
    trainer.evaluate(x, y, batch_size=8, verbose=0)
    assert {name: float(m.result()) for name, m in trainer.flip_ratios.items()} == before


def test_the_flip_ratio_counts_every_step_of_an_execution():
    student = _tiny_model()
    trainer = compile_for_recipe(student, StageConfig("binary", 1), batch_size=8,
                                 steps_per_epoch=7, steps_per_execution=3)
    trainer.restart_flip_ratios()
    x, y = _data(7)
    trainer.fit(x, y, batch_size=8, epochs=1, verbose=0)
    # the reference plus 7 steps (executions of 3, 3 and 1)
    assert {float(m.count.numpy()) for m in trainer.flip_ratios.values()} == {8.0}


def _events(directory: str) -> dict[str, list[tuple[int, float]]]:
    """tag -> [(step, value)] of the scalars in the TensorBoard event files under
    ``directory``."""
    found: dict[str, list] = {}
    for root, _, files in os.walk(directory):
        for name in files:
            if name.startswith("events.out.tfevents"):
                for event in tf.compat.v1.train.summary_iterator(os.path.join(root, name)):
                    for value in event.summary.value:
                        if value.metadata.plugin_data.plugin_name == "scalars":
                            found.setdefault(value.tag, []).append(
                                (event.step, float(tf.make_ndarray(value.tensor))))
    return found


def test_a_run_writes_the_flip_ratio_of_every_binary_layer_and_unchanged_weights(tmp_path):
    run = tmp_path / "run"
    run_training(synthetic_config(stages=(StageConfig("binary", 2),)), str(run), verbose=0)
    events = _events(str(run / "logs" / "binary"))
    names = [name for name, _ in binary_kernels(_tiny_model())]
    for name in [*names, "all"]:
        ratios = events.get(f"flip_ratio/{name}")
        assert ratios and [step for step, _ in ratios] == [0, 1], (name, sorted(events))
        assert all(0.0 <= r <= 1.0 for _, r in ratios), (name, ratios)
    assert max(r for _, r in events["flip_ratio/all"]) > 0
    # A sign that differs after an epoch changed at one of its 4 steps at least.
    for name in [*names, "all"]:
        for (_, per_step), (_, per_epoch) in zip(events[f"flip_ratio/{name}"],
                                                 events[f"binary_weight_flips/{name}"]):
            assert 4 * per_step >= per_epoch - 1e-6, name
    # The model's other metrics are logged as before, and only they.
    for tag in ("epoch_loss", "epoch_top1", "epoch_top5"):
        assert tag in events, sorted(events)
    with open(run / "history.csv", newline="", encoding="utf-8") as f:
        columns = next(csv.reader(f))
    assert not [c for c in columns if "flip" in c], columns

    # The weights file has the layout of a model built for inference, and loads into one.
    fresh = _tiny_model()
    save_weights(fresh, str(tmp_path / "fresh.weights.h5"))
    trained = weight_arrays(str(run / "model.weights.h5"))
    untrained = weight_arrays(str(tmp_path / "fresh.weights.h5"))
    assert {k: v.shape for k, v in trained.items()} == {k: v.shape for k, v in untrained.items()}
    load_weights(fresh, str(run / "model.weights.h5"))
    for name, kernel in binary_kernels(fresh):
        assert np.any(np.asarray(kernel) != untrained[f"{name}/{name}/kernel:0"]), name
