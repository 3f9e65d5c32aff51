"""Weight files: the one ``save_weights`` / ``load_weights``, checked against the architecture
a file records; ``transfer_weights``; teachers' files; where a weights file sits in a run
directory; the training throughput of a run's summary."""

from __future__ import annotations

import ast
import dataclasses
import json
import os
import pathlib

import h5py
import numpy as np
import pytest
import tensorflow as tf
from train_support import SHAPE, synthetic_config

import bireal_larq
from bireal_larq import runs
from bireal_larq.models import (
    build_model,
    create_model,
    get_model_config,
    load_weights,
    save_weights,
    transfer_weights,
)
from bireal_larq.models import weights as weights_module
from bireal_larq.training import (
    LossConfig,
    NonFiniteLossError,
    StageConfig,
    TeacherConfig,
    callbacks,
    run_training,
    runner,
)
from bireal_larq.training.rundir import train_throughput

PACKAGE = pathlib.Path(bireal_larq.__file__).parent


def small(name: str = "birealnet18_small", num_classes: int = 4, **overrides):
    return create_model(name, input_shape=SHAPE, num_classes=num_classes, base_filters=8,
                        **overrides)


def assert_unchanged(model, before):
    after = model.get_weights()
    assert len(after) == len(before)
    for a, b in zip(before, after):
        np.testing.assert_array_equal(a, b)


# --------------------------------------------------------------------------- one API
def test_one_save_and_one_load_for_every_caller():
    import bireal_larq.training as training

    assert bireal_larq.load_weights is load_weights is weights_module.load_weights
    assert bireal_larq.save_weights is save_weights is weights_module.save_weights
    assert not hasattr(training, "load_weights") and not hasattr(training, "save_weights")
    for module in (training, callbacks, runner):  # no second definition anywhere
        assert getattr(module, "load_weights", load_weights) is load_weights
        assert getattr(module, "save_weights", save_weights) is save_weights
    # Keras's private HDF5 module is reached in one place only.
    callers = [
        str(path.relative_to(PACKAGE)) for path in PACKAGE.rglob("*.py")
        if path.name != "stack.py" and "hdf5_format" in path.read_text(encoding="utf-8")
    ]
    assert callers == ["models/weights.py"]


def test_weights_module_imports_nothing_that_imports_it():
    tree = ast.parse((PACKAGE / "models" / "weights.py").read_text(encoding="utf-8"))
    imported = {
        node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)
    } | {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import)
         for alias in node.names}
    assert not {m for m in imported if m and m.startswith("bireal_larq.models")} - {
        "bireal_larq.models.config"
    }
    # The architecture files matched by layer order must have: the registry's birealnet18.
    assert weights_module._LARQ_ZOO_CONFIG == get_model_config("birealnet18")


# --------------------------------------------------------------------------- transfer_weights
def test_transfer_between_class_counts_fails_before_changing_the_target():
    source = small(num_classes=10)
    target = small(num_classes=7)
    before = target.get_weights()
    with pytest.raises(ValueError, match=r"shape mismatches.*logits.*10.*7"):
        transfer_weights(source, target)
    assert_unchanged(target, before)


# --------------------------------------------------------------------------- recorded config
@pytest.mark.parametrize("name, differ", [
    ("birealnet18", {"double_skip": (False, True)}),
    ("birealnet18_small", {"double_skip": (False, True), "stem": ("'imagenet'", "'small'")}),
])
def test_a_file_is_compared_by_the_config_it_records(name, differ, tmp_path):
    path = str(tmp_path / "plain.h5")
    kwargs = dict(input_shape=(64, 64, 3), num_classes=3)  # the zoo's width
    save_weights(create_model("birealnet18", double_skip=False, **kwargs), path)
    model = create_model(name, **kwargs)
    before = model.get_weights()
    with pytest.raises(ValueError) as raised:
        load_weights(model, path)
    message = str(raised.value)
    for field, (file_value, model_value) in differ.items():
        assert f"{field}: file {file_value}, model {model_value}" in message, message
        assert f"{field}={file_value}" in message, message  # what would load it
    assert "no layer names" not in message and "axes" not in message, message
    assert_unchanged(model, before)


def test_a_recorded_file_loads_into_its_variant_and_training_fields_may_differ(tmp_path):
    model = small("birealnet18_react_small")
    path = str(tmp_path / "w.weights.h5")
    assert save_weights(model, path) == path
    clone = small("birealnet18_react_small", bn_momentum=0.5, weight_clip=None, weights=path)
    x = np.random.default_rng(0).normal(size=(2, *SHAPE)).astype("float32")
    np.testing.assert_array_equal(clone(x).numpy(), model(x).numpy())


def test_layers_that_do_not_fit_are_named_and_nothing_is_loaded(tmp_path):
    path = str(tmp_path / "w.h5")
    save_weights(small(num_classes=10), path)
    model = small(num_classes=7)
    before = model.get_weights()
    with pytest.raises(ValueError, match=r"weight shapes differ in 1 layer\(s\) \(logits: file "
                       r"\[\(64, 10\), \(10,\)\], model \[\(64, 7\), \(7,\)\]\).*num_classes"):
        load_weights(model, path)
    assert_unchanged(model, before)
    headless = small(include_top=False)
    with pytest.raises(ValueError, match=r"unexpected e\.g\. \['logits'\].*include_top"):
        load_weights(headless, path)


def test_a_tf_checkpoint_that_does_not_fit_leaves_the_model_unchanged(tmp_path):
    prefix = str(tmp_path / "ckpt")
    small(num_classes=10).save_weights(prefix, save_format="tf")
    model = small(num_classes=7)
    before = model.get_weights()
    with pytest.raises(ValueError, match=r"TF checkpoint .*ckpt does not fit model"):
        load_weights(model, prefix)
    assert_unchanged(model, before)


def test_a_file_without_a_config_matched_by_order_is_checked_before_loading(tmp_path):
    # Keras's own save_weights records no config; other layer names, the same count: the
    # file is matched by order, and its shapes do not fit.
    path = str(tmp_path / "keras.h5")
    kwargs = dict(input_shape=(64, 64, 3), num_classes=3)
    create_model("birealnet18", double_skip=False, **kwargs).save_weights(path)
    model = create_model("birealnet18", **kwargs)
    before = model.get_weights()
    with pytest.raises(ValueError, match=r"does not fit model 'birealnet18': weight shapes "
                       r"differ .*file layer"):
        load_weights(model, path)
    assert_unchanged(model, before)


def test_a_field_the_file_does_not_record_is_read_at_its_default(tmp_path):
    path = str(tmp_path / "w.h5")
    save_weights(small(), path)
    with h5py.File(path, "a") as f:
        recorded = json.loads(f.attrs["bireal_config"])
        del recorded["padding_alignment"]
        f.attrs["bireal_config"] = json.dumps(recorded)
    load_weights(small(), path)
    with pytest.raises(ValueError, match=r"padding_alignment: file 'tf', model 'torch'"):
        load_weights(small(padding_alignment="torch"), path)


def test_a_model_without_a_config_cannot_take_a_recorded_file(tmp_path):
    path = str(tmp_path / "w.h5")
    model = small()
    save_weights(model, path)
    clone = tf.keras.models.clone_model(model)  # the same layers, no bireal_config
    with pytest.raises(ValueError, match=r"has no bireal_config.*create_model"):
        load_weights(clone, path)


def test_a_model_from_build_model_records_and_checks_its_config(tmp_path):
    path = str(tmp_path / "built.h5")
    config = get_model_config("birealnet18_small", base_filters=8)
    model = build_model(config, input_shape=SHAPE, num_classes=4)
    assert model.bireal_config == config
    save_weights(model, path)
    with h5py.File(path, "r") as f:
        assert json.loads(f.attrs["bireal_config"])["base_filters"] == 8
    other = build_model(dataclasses.replace(config, double_skip=False), input_shape=SHAPE,
                        num_classes=4)
    with pytest.raises(ValueError, match=r"double_skip: file True, model False"):
        load_weights(other, path)
    load_weights(build_model(config, input_shape=SHAPE, num_classes=4), path)


def test_epoch_checkpoints_refuse_non_finite_weights(tmp_path):
    model = small()
    kernel = model.get_layer("logits").kernel
    kernel.assign(tf.fill(kernel.shape, float("nan")))
    checkpoint = callbacks.EpochCheckpoint(model, str(tmp_path))
    with pytest.raises(NonFiniteLossError, match="NaN or infinite"):
        checkpoint.on_epoch_end(0)
    assert os.listdir(tmp_path) == []


# --------------------------------------------------------------------------- teachers
@pytest.mark.parametrize("role, variant", [
    ("teacher", {"pad_values": 1.0}),
    ("refinery", {"padding_alignment": "torch"}),
])
def test_a_teacher_file_of_another_variant_is_refused(role, variant, tmp_path):
    path = str(tmp_path / "teacher.h5")
    save_weights(small(**variant), path)
    teacher = TeacherConfig("registry", model="birealnet18_small", weights=path,
                            model_overrides={"base_filters": 8})
    loss = (LossConfig(teacher=teacher, kd_weight=1.0) if role == "teacher"
            else LossConfig(refinery=teacher))
    config = synthetic_config(stages=(StageConfig("kd", 1, loss=loss),))
    field, value = next(iter(variant.items()))
    with pytest.raises(ValueError, match=rf"{field}: file {value!r}.*stage 'kd'.s {role}"):
        run_training(config, str(tmp_path / "run"), verbose=0)
    assert not (tmp_path / "run").exists()  # refused before the run directory is written


# --------------------------------------------------------------------------- find_run
def test_only_children_of_stages_are_stages(tmp_path):
    run = tmp_path / "01_baseline"  # a run directory named like a stage
    for sub in ("stages/02_binary/checkpoints", "extra/03_other"):
        (run / sub).mkdir(parents=True)
    runs.write_run_config(str(run), {"model": "birealnet18_small", "input_shape": [16, 16, 1],
                                      "num_classes": 4})
    files = {
        "model.weights.h5": None,
        "stages/02_binary/stage.weights.h5": "binary",
        "stages/02_binary/checkpoints/epoch_001.weights.h5": "binary",
        "extra/03_other/w.h5": None,
    }
    for relative, stage in files.items():
        (run / relative).write_bytes(b"")
        found = runs.find_run(str(run / relative))
        assert found == (str(run), str(run / relative), stage), relative


# --------------------------------------------------------------------------- throughput
class _Clock:
    """A clock that gives ``times`` one after the other."""

    def __init__(self, *times: float):
        self.times = list(times)

    def __call__(self) -> float:
        return self.times.pop(0)


def test_train_throughput_adds_images_and_seconds():
    stages = [
        {"epochs": 1, "steps_per_epoch": 100, "wall_time_s": 500.0,
         "train_images": 1600, "train_seconds": 10.0, "train_images_per_s": 160.0},
        {"epochs": 2, "steps_per_epoch": 5, "wall_time_s": 1.0,
         "train_images": 160, "train_seconds": 10.0, "train_images_per_s": 16.0},
        # a record with its rate only: epochs x steps x batch images at that rate
        {"epochs": 1, "steps_per_epoch": 10, "wall_time_s": 9.0, "train_images_per_s": 32.0},
    ]
    assert train_throughput(stages, batch_size=16) == {
        "train_images": 1600 + 160 + 160,
        "train_seconds": pytest.approx(25.0),
        "train_images_per_s": pytest.approx(1920 / 25.0),
    }
    assert train_throughput([], batch_size=16)["train_images_per_s"] == 0.0


def test_train_images_per_s_is_images_over_seconds(monkeypatch, tmp_path):
    # Two stages of 4 batches of 16, each one window (its start and end read the clock): the
    # first 4 s long, the second 1 s: 128 images in 5 s.
    monkeypatch.setattr(callbacks.Throughput, "clock", staticmethod(_Clock(0.0, 4.0, 10.0, 11.0)))
    config = synthetic_config(stages=(StageConfig("a", 1), StageConfig("b", 1)))
    summary = run_training(config, str(tmp_path), verbose=0)
    assert [s["steps_per_epoch"] for s in summary["stages"]] == [4, 4]
    assert [s["train_images_per_s"] for s in summary["stages"]] == pytest.approx([16.0, 64.0])
    assert summary["train_images_per_s"] == pytest.approx(128 / 5)
    assert summary["train_images"] == 128 and summary["train_seconds"] == pytest.approx(5.0)
    with open(os.path.join(tmp_path, "summary.json"), encoding="utf-8") as f:
        assert json.load(f)["train_images_per_s"] == pytest.approx(128 / 5)
