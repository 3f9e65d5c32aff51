"""Export to Larq Compute Engine: conversion, fusion check, verification, report, CLI.

Conversions are slow on a small CPU, so the models here are tiny (single layers) or 32x32
variants with 10 classes; the loop over every registered model keeps a representative subset
in the default run and marks the rest slow.
"""

from __future__ import annotations

import json
import os
import warnings

import larq as lq
import numpy as np
import pytest
import tensorflow as tf

from bireal_larq import export
from bireal_larq.export import core, verify
from bireal_larq.models import create_model, get_entry, list_models
from bireal_larq.models.registry import ModelEntry

SHAPE = (32, 32, 3)
CLASSES = 10


def _bconv(x, name, pad_values=0.0, input_quantizer="approx_sign", strides=1):
    return lq.layers.QuantConv2D(
        8,
        3,
        strides=strides,
        padding="same",
        pad_values=pad_values,
        input_quantizer=input_quantizer,
        kernel_quantizer="magnitude_aware_sign",
        kernel_constraint="weight_clip",
        use_bias=False,
        name=name,
    )(x)


def _randomize_bn(model, seed=0):
    """Non-trivial BN statistics, so that folding BN into the bconv is really tested."""
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if isinstance(layer, tf.keras.layers.BatchNormalization):
            gamma, beta, mean, var = layer.get_weights()
            layer.set_weights(
                [
                    rng.uniform(0.5, 1.5, gamma.shape),
                    rng.normal(0, 0.5, beta.shape),
                    rng.normal(0, 2.0, mean.shape),
                    rng.uniform(1.0, 4.0, var.shape),
                ]
            )


def _single_bconv_model(pad_values, strides=1):
    x = tf.keras.Input((9, 9, 5), name="image")
    y = _bconv(x, "only_conv", pad_values=pad_values, strides=strides)
    y = tf.keras.layers.BatchNormalization(name="only_bn")(y)
    model = tf.keras.Model(x, y, name="single")
    _randomize_bn(model)
    return model


@pytest.mark.parametrize("pad_values,strides", [(0.0, 1), (1.0, 1), (0.0, 2)])
@pytest.mark.parametrize("backend", export.BACKENDS)
def test_single_binary_conv_matches_keras_tightly(pad_values, strides, backend):
    model = _single_bconv_model(pad_values, strides)
    flatbuffer = export.convert(model)
    assert export.op_table(flatbuffer).get("LceBconv2d") == 1
    images = verify.random_images((9, 9, 5), 8, seed=1)
    lce_out = export.run_flatbuffer(export.interpreter(flatbuffer, backend=backend), images)
    keras_out = model(images, training=False).numpy()
    assert lce_out.shape == keras_out.shape
    np.testing.assert_allclose(lce_out, keras_out, atol=1e-5, rtol=0)


def _half_binary_model():
    """One fusable binary conv, and one with binary weights but real inputs (not fusable)."""
    x = tf.keras.Input((8, 8, 4), name="image")
    y = _bconv(x, "fused_conv")
    y = tf.keras.layers.BatchNormalization(name="fused_bn")(y)
    y = _bconv(y, "weights_only_conv", input_quantizer=None)
    y = tf.keras.layers.GlobalAveragePooling2D(name="pool")(y)
    y = tf.keras.layers.Dense(3, activation="softmax", name="predictions")(y)
    return tf.keras.Model(x, y, name="half_binary")


def test_unfused_binary_conv_fails_naming_the_layer(tmp_path):
    model = _half_binary_model()
    assert export.binary_conv_layers(model) == ["fused_conv", "weights_only_conv"]
    output = tmp_path / "half.tflite"
    with pytest.raises(export.ExportError, match="weights_only_conv") as info:
        export.export_model(model, str(output), verify_samples=0)
    assert "fused_conv," not in str(info.value)
    assert "--allow_float_fallback" in str(info.value)
    assert not output.exists(), "a model that failed the check must not be written"
    report = json.loads((tmp_path / "half.failed.json").read_text())
    assert report["status"] == "failed"
    assert report["float_fallback_layers"] == ["weights_only_conv"]
    assert report["lce_bconv2d_ops"] == 1 and report["binary_layers"] == 2
    # A good export at that path keeps its report when a later attempt fails, and a later
    # success clears the failure's report.
    good = export.export_model(model, str(output), allow_float_fallback=True, verify_samples=0)
    assert not (tmp_path / "half.failed.json").exists()
    with pytest.raises(export.ExportError, match="earlier export at that path is left"):
        export.export_model(model, str(output), verify_samples=0)
    assert json.loads((tmp_path / "half.json").read_text()) == json.loads(json.dumps(good))
    assert export.read_report(str(output))["status"] == "ok"


def test_allow_float_fallback_turns_the_failure_into_a_warning(tmp_path):
    model = _half_binary_model()
    output = tmp_path / "half.tflite"
    report = export.export_model(model, str(output), allow_float_fallback=True, verify_samples=4)
    assert output.exists()
    assert report["status"] == "ok"
    assert any("weights_only_conv" in w for w in report["warnings"])
    assert report["verification"]["real_images"] is False
    assert report["verification"]["samples"] == 4
    # verified on the backend that the inference API runs by default
    assert report["verification"]["backend"] == export.default_backend()


def _fake_eval_dataset(n=12, shape=(8, 8, 4), classes=3, seed=0):
    rng = np.random.default_rng(seed)
    images = rng.standard_normal((n, *shape)).astype(np.float32)
    labels = tf.one_hot(rng.integers(0, classes, n), classes)
    return tf.data.Dataset.from_tensor_slices((images, labels)).batch(5)


def test_verification_on_given_real_images_and_the_agreement_threshold(tmp_path, monkeypatch):
    model = _single_classifier()
    data = _fake_eval_dataset()
    report = export.export_model(model, str(tmp_path / "a.tflite"), verify_images=data)
    v = report["verification"]
    assert v["real_images"] is True and v["samples"] == 12
    assert v["top1_agreement"] >= 0.99
    assert 0.0 <= v["keras_top1_accuracy"] <= 1.0 and "lce_top1_accuracy" in v

    # Below the threshold on real images, export fails and says by how much.
    real_compare = verify.compare

    def disagreeing(*args, **kwargs):
        return {**real_compare(*args, **kwargs), "top1_agreement": 0.9}

    monkeypatch.setattr(verify, "compare", disagreeing)
    with pytest.raises(export.ExportError, match=r"90\.00% of 12 .*99%"):
        export.export_model(model, str(tmp_path / "b.tflite"), verify_images=data)
    assert not (tmp_path / "b.tflite").exists()
    # ... but random inputs only report the agreement.
    report = export.export_model(model, str(tmp_path / "c.tflite"), verify_samples=3)
    assert report["verification"]["top1_agreement"] == 0.9


def _single_classifier(shape=(8, 8, 4)):
    x = tf.keras.Input(shape, name="image")
    y = _bconv(x, "conv")
    y = tf.keras.layers.BatchNormalization(name="bn")(y)
    y = tf.keras.layers.GlobalAveragePooling2D(name="pool")(y)
    y = tf.keras.layers.Dense(3, name="logits")(y)
    y = tf.keras.layers.Activation("softmax", name="predictions")(y)
    model = tf.keras.Model(x, y, name="classifier")
    _randomize_bn(model)
    return model


def test_verification_with_a_named_dataset_uses_the_data_contract(tmp_path, monkeypatch):
    calls = []

    def get_dataset(name, split, *, batch_size, training, data_dir=None, image_size=None,
                    augment=None):
        ratio = augment and augment.eval_resize_ratio
        calls.append((name, split, training, data_dir, image_size, ratio))
        return _fake_eval_dataset(n=20), 20

    import bireal_larq.data as data

    monkeypatch.setattr(data, "get_dataset", get_dataset)
    report = export.export_model(
        _single_classifier(),
        str(tmp_path / "m.tflite"),
        verify_dataset="cifar10",
        verify_samples=7,
        data_dir="/somewhere",
        metadata={"eval_resize_ratio": 1.15},  # the run's (Training-Tricks-for-BNNs item 18)
    )
    assert calls == [("cifar10", "test", False, "/somewhere", (8, 8), 1.15)]
    assert report["verification"]["samples"] == 7
    assert report["verification"]["source"] == "cifar10 test split"


@pytest.fixture
def lce_conversions(monkeypatch):
    """Counts the conversions LCE runs: of the SavedModel, or of its traced-graph fallback."""
    from larq_compute_engine.mlir.python import converter

    calls = {"saved_model": 0, "graphdef": 0}

    def counted(key, function):
        def wrapper(*args, **kwargs):
            calls[key] += 1
            return function(*args, **kwargs)

        return wrapper

    monkeypatch.setattr(converter, "convert_saved_model",
                        counted("saved_model", converter.convert_saved_model))
    monkeypatch.setattr(converter, "convert_graphdef_to_tflite_flatbuffer",
                        counted("graphdef", converter.convert_graphdef_to_tflite_flatbuffer))
    return calls


def test_int8_request_on_an_unquantized_model_is_reported(tmp_path, lce_conversions):
    report = export.export_model(
        _single_classifier(), str(tmp_path / "m.tflite"), int8=True, verify_samples=2
    )
    # converted from the SavedModel, not by LCE's fallback (which int8 I/O used to trigger)
    assert lce_conversions == {"saved_model": 1, "graphdef": 0}
    assert report["io"]["input_type"] == "float32"
    assert any("int8" in w for w in report["warnings"])


@pytest.mark.parametrize("int8", [False, True])
def test_a_registered_model_converts_through_the_saved_model_fully_fused(
        int8, tmp_path, lce_conversions):
    # int8 I/O on a model without quantization ranges used to send LCE down its fallback.
    model = create_model("birealnet18_small", input_shape=(24, 24, 3), num_classes=CLASSES)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        report = export.export_model(model, str(tmp_path / "m.tflite"), int8=int8,
                                     verify_samples=2)
    assert lce_conversions == {"saved_model": 1, "graphdef": 0}
    assert not [w for w in caught if core.LCE_FALLBACK_WARNING in str(w.message)]
    assert report["binary_layers"] == 16 == report["lce_bconv2d_ops"], report["op_table"]
    assert report["float_fallback_layers"] == []
    assert report["io"]["input_type"] == "float32"


def _failing(error):
    def fail(*args, **kwargs):
        raise error

    return fail


@pytest.mark.parametrize("step", ["save", "convert"])
def test_a_failing_saved_model_step_is_an_error_naming_its_cause(
        step, tmp_path, monkeypatch, lce_conversions):
    from larq_compute_engine.mlir.python import converter

    model = _single_classifier()
    if step == "save":
        cause = NotImplementedError("Layer Odd has arguments in `__init__`: override get_config")
        monkeypatch.setattr(model, "save", _failing(cause))
        expected = (r"could not be written as a SavedModel.*NotImplementedError: Layer Odd has "
                    r"arguments.*Make model\.save\(directory, save_format='tf'\) succeed")
    else:
        cause = RuntimeError("'tf.OddOp' op is neither a custom op nor a flex op")
        monkeypatch.setattr(converter, "convert_saved_model_to_tflite_flatbuffer",
                            _failing(cause))
        expected = (r"converter failed on the SavedModel.*RuntimeError: 'tf\.OddOp' op is "
                    r"neither.*Replace the layer or op")
    with pytest.raises(export.ExportError, match=expected) as info:
        export.convert(model)
    assert info.value.__cause__ is cause
    assert "traced from the Keras model" in str(info.value)

    output = tmp_path / "m.tflite"
    with pytest.raises(export.ExportError, match=expected) as info:
        export.export_model(model, str(output), verify_samples=0)
    assert info.value.__cause__ is cause
    assert lce_conversions["graphdef"] == 0, "LCE's fallback conversion ran"
    assert not output.exists()
    report = json.loads((tmp_path / "m.failed.json").read_text())
    assert report["status"] == "failed" and str(cause) in report["errors"][0]


def test_a_fallback_warning_without_a_cause_is_still_an_error(monkeypatch):
    import larq_compute_engine as lce

    def warns(*args, **kwargs):
        warnings.warn(f"{core.LCE_FALLBACK_WARNING}, falling back to graphdef-based conversion.",
                      UserWarning, stacklevel=2)
        return b""

    monkeypatch.setattr(lce, "convert_keras_model", warns)
    with pytest.raises(export.ExportError, match="failed without naming the cause") as info:
        export.convert(_single_classifier())
    assert info.value.__cause__ is None


def _fake_quantized_classifier():
    """A binary conv between int8 fake-quantization ranges: LCE quantizes the float layers."""

    def fake_quant(t):
        return tf.quantization.fake_quant_with_min_max_args(t, -4.0, 4.0)

    x = tf.keras.Input((8, 8, 4), name="image")
    y = tf.keras.layers.Lambda(fake_quant, name="fq_in")(x)
    y = _bconv(y, "conv", pad_values=1.0)
    y = tf.keras.layers.BatchNormalization(name="bn")(y)
    y = tf.keras.layers.Lambda(fake_quant, name="fq_bn")(y)
    y = tf.keras.layers.GlobalAveragePooling2D(name="pool")(y)
    y = tf.keras.layers.Lambda(fake_quant, name="fq_out")(y)
    return tf.keras.Model(x, y, name="quantized")


def test_int8_io_on_a_model_with_quantization_ranges(tmp_path, lce_conversions):
    import larq_compute_engine as lce

    model = _fake_quantized_classifier()
    flatbuffer = export.convert(model, int8=True)
    assert flatbuffer == lce.convert_keras_model(
        model, inference_input_type=tf.int8, inference_output_type=tf.int8)
    assert verify.io_types(flatbuffer)["input_type"] == "int8"
    assert {"QUANTIZE", "DEQUANTIZE"}.isdisjoint(export.op_table(flatbuffer))
    report = export.export_model(model, str(tmp_path / "q.tflite"), int8=True, verify_samples=4)
    assert report["io"]["input_type"] == report["io"]["output_type"] == "int8"
    assert not any("int8" in w for w in report["warnings"])
    assert report["lce_bconv2d_ops"] == 1
    assert lce_conversions["graphdef"] == 0


def test_bad_arguments_are_named(tmp_path):
    model = _single_classifier()
    with pytest.raises(ValueError, match="target='x86'.*'arm', 'xcore'"):
        export.export_model(model, str(tmp_path / "m.tflite"), target="x86")
    with pytest.raises(ValueError, match=r"\.tflite"):
        export.export_model(model, str(tmp_path / "m.bin"))
    with pytest.raises(ValueError, match="verify_samples"):
        export.export_model(model, str(tmp_path / "m.tflite"), verify_samples=-1)
    with pytest.raises(ValueError, match="Unknown model 'nope'"):
        export.export_model(model, str(tmp_path / "m.tflite"), model_name="nope")
    policy_model = None
    tf.keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        policy_model = _single_classifier()
    finally:
        tf.keras.mixed_precision.set_global_policy("float32")
    with pytest.raises(ValueError, match="float32"):
        export.convert(policy_model)
    with pytest.raises(export.NotAFlatbufferError):
        export.op_table(b"definitely not a flatbuffer")
    not_tflite = tmp_path / "x.tflite"
    not_tflite.write_bytes(b"\x00" * 64)
    with pytest.raises(export.NotAFlatbufferError, match="not a TFLite flatbuffer"):
        export.read_flatbuffer(not_tflite)


def test_registry_marked_incompatible_model_fails_with_its_reason(tmp_path, monkeypatch):
    entry = ModelEntry(
        name="birealnet18_small",
        config_fn=get_entry("birealnet18_small").config_fn,
        source="test",
        lce_compatible=False,
        lce_reason="a reason only this test gives",
    )
    monkeypatch.setattr(core, "get_entry", lambda name: entry)
    model = _single_classifier()
    with pytest.raises(export.ExportError, match="a reason only this test gives"):
        export.export_model(
            model, str(tmp_path / "m.tflite"), model_name="birealnet18_small", verify_samples=0
        )
    assert json.loads((tmp_path / "m.failed.json").read_text())["status"] == "failed"
    assert not (tmp_path / "m.json").exists()


# ----------------------------------------------------------------------------- loading


def test_load_model_for_export_argument_errors(tmp_path):
    with pytest.raises(ValueError, match="Nothing to export"):
        export.load_model_for_export()
    weights = tmp_path / "w.h5"
    create_model("birealnet18_small", input_shape=SHAPE, num_classes=CLASSES).save_weights(
        str(weights)
    )
    with pytest.raises(ValueError, match="pass model"):
        export.load_model_for_export(checkpoint=str(weights))
    with pytest.raises(FileNotFoundError, match="not found"):
        export.load_model_for_export(checkpoint=str(tmp_path / "missing.h5"), model="birealnet18")
    model, meta = export.load_model_for_export(
        checkpoint=str(weights), model="birealnet18_small", input_shape=SHAPE, num_classes=CLASSES
    )
    assert model.output_shape == (None, CLASSES) and meta["model"] == "birealnet18_small"


def test_load_model_for_export_from_a_mixed_precision_run_dir(tmp_path):
    from bireal_larq import runs


    tf.keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        trained = create_model("birealnet18_small", input_shape=SHAPE, num_classes=CLASSES)
    finally:
        tf.keras.mixed_precision.set_global_policy("float32")
    # The run-directory contract: by-name HDF5, written through a ".h5" name (Keras 2.15 would
    # write its position-based format for a name ending in ".weights.h5").
    trained.save_weights(str(tmp_path / "final.h5"))
    os.replace(tmp_path / "final.h5", tmp_path / runs.FINAL_WEIGHTS)
    runs.write_run_config(
        str(tmp_path),
        {
            "model": "birealnet18_small",
            "input_shape": list(SHAPE),
            "num_classes": CLASSES,
            "dataset": "fashion_mnist",
        },
    )
    model, meta = export.load_model_for_export(checkpoint=str(tmp_path))
    assert model.dtype_policy.name == "float32"
    assert meta["dataset"] == "fashion_mnist" and meta["model"] == "birealnet18_small"
    np.testing.assert_allclose(
        model.get_layer("stage1_block1_conv").kernel.numpy(),
        trained.get_layer("stage1_block1_conv").kernel.numpy().astype(np.float32),
    )
    with pytest.raises(ValueError, match="fixes input_shape"):
        export.load_model_for_export(checkpoint=str(tmp_path), num_classes=3)


def test_a_stage_checkpoint_inside_a_run_dir_is_rebuilt_from_the_run(tmp_path):
    from bireal_larq import data, runs

    # A two-stage run whose first stage is the real-valued twin at another width.
    twin = {"base_filters": 8, "input_quantizer": None, "kernel_quantizer": None}
    stage_dir = tmp_path / "stages" / "01_twin"
    stage_dir.mkdir(parents=True)
    trained = create_model("birealnet18_small", input_shape=SHAPE, num_classes=CLASSES, **twin)
    trained.save_weights(str(stage_dir / "stage.h5"))
    os.replace(stage_dir / "stage.h5", stage_dir / "stage.weights.h5")
    runs.write_run_config(str(tmp_path), {
        "model": "birealnet18_small", "input_shape": list(SHAPE), "num_classes": CLASSES,
        "dataset": "imagefolder", "model_overrides": {"base_filters": 8},
        "stage_model_overrides": {"twin": twin, "binary": {"base_filters": 8}},
        "stages": [{"name": "twin", "augment": {"eval_resize_ratio": 1.35}},
                   {"name": "binary", "augment": None}],
    })
    data.save_class_names(str(tmp_path), [f"c{i}" for i in range(CLASSES)])
    model, meta = export.load_model_for_export(checkpoint=str(stage_dir / "stage.weights.h5"))
    np.testing.assert_allclose(
        model.get_layer("stage1_block1_conv").kernel.numpy(),
        trained.get_layer("stage1_block1_conv").kernel.numpy(),
    )
    assert meta["model_overrides"] == twin and meta["eval_resize_ratio"] == 1.35
    assert meta["dataset"] == "imagefolder"
    assert meta["class_names"] == [f"c{i}" for i in range(CLASSES)]
    with pytest.raises(ValueError, match="fixes input_shape"):
        export.load_model_for_export(checkpoint=str(stage_dir / "stage.weights.h5"),
                                     input_shape=SHAPE)


def test_an_unfinished_run_names_the_flag_that_takes_its_checkpoints(tmp_path):
    from bireal_larq.runs import model_from_run

    (tmp_path / "config.json").write_text(json.dumps(
        {"model": "birealnet18_small", "input_shape": [16, 16, 3], "num_classes": 3}))
    with pytest.raises(FileNotFoundError, match=r"has not finished.*as --checkpoint.*"
                       r"stages/NN_<stage>/stage\.weights\.h5"):
        model_from_run(str(tmp_path))


def test_an_unknown_verify_dataset_is_refused_before_converting(tmp_path, monkeypatch):
    from bireal_larq.export import core

    def no_conversion(*args, **kwargs):
        raise AssertionError("converted before checking the dataset name")

    monkeypatch.setattr(core, "convert", no_conversion)
    model = create_model("birealnet18_small", input_shape=SHAPE, num_classes=CLASSES)
    with pytest.raises(ValueError, match="nosuch"):
        export.export_model(model, str(tmp_path / "m.tflite"), verify_dataset="nosuch")


# ----------------------------------------------------------------------------- CLI


@pytest.mark.smoke
def test_cli_exports_a_registered_model_with_its_report(tmp_path, capsys):
    from bireal_larq.export import __main__ as cli

    output = tmp_path / "bireal.tflite"
    argv = [
        "export",
        "--model=birealnet18_small",
        "--input_shape=32,32,3",
        "--num_classes=10",
        f"--output={output}",
        "--verify_samples=3",
    ]
    cli.FLAGS.unparse_flags()
    cli.FLAGS(argv)
    try:
        assert cli.main(argv[:1]) == 0
    finally:
        cli.FLAGS.unparse_flags()
    report = json.loads((tmp_path / "bireal.json").read_text())
    assert report["status"] == "ok"
    assert report["file_size_bytes"] == output.stat().st_size
    assert report["binary_layers"] == 16 == report["lce_bconv2d_ops"]
    assert report["op_table"]["LceBconv2d"] == 16
    assert report["op_table"]["LceQuantize"] == 16
    assert {"CONV_2D", "ADD", "FULLY_CONNECTED", "SOFTMAX"} <= set(report["op_table"])
    assert set(report["versions"]) >= {"larq_compute_engine", "larq"}
    assert report["versions"]["larq_compute_engine"] == "0.16.0"
    assert report["verification"]["samples"] == 3
    assert report["input_shape"] == list(SHAPE) and report["num_classes"] == CLASSES
    assert "LceBconv2d" in capsys.readouterr().out


def test_cli_reports_bad_flags_clearly(tmp_path, capsys):
    from absl import app

    from bireal_larq.cli import Failure
    from bireal_larq.export import __main__ as cli

    cli.FLAGS.unparse_flags()
    cli.FLAGS(["export", "--model=no_such_model", f"--output={tmp_path / 'm.tflite'}"])
    try:
        with pytest.raises(Failure) as failure:
            cli.main(["export"])
        assert failure.value.code == 1
        assert "Unknown model 'no_such_model'" in failure.value.message
        cli.FLAGS(["export", "--input_shape=32,32"])
        with pytest.raises(app.UsageError, match="H,W,C"):
            cli.main(["export"])
    finally:
        cli.FLAGS.unparse_flags()


# ----------------------------------------------------------------------------- the zoo

# Representative of the default run: the base layout, the catalogue layout and the 50-layer
# bottleneck at small inputs. Every other name runs with -m slow.
_FAST = {"birealnet18_lce_small", "birealnet18_tricks_small", "birealnet50_small"}


def _zoo_params():
    return [
        pytest.param(name, marks=() if name in _FAST else pytest.mark.slow)
        for name in list_models()
    ]


@pytest.mark.parametrize("name", _zoo_params())
def test_every_registered_model_exports_fused_or_is_marked(name, tmp_path):
    entry = get_entry(name)
    # The smallest input whose last stage is still 3x3 (LCE needs it with zero padding).
    size = 96 if entry.config.stem == "imagenet" else 24
    model = create_model(name, input_shape=(size, size, 3), num_classes=CLASSES)
    output = tmp_path / f"{name}.tflite"
    if entry.lce_compatible:
        report = export.export_model(model, str(output), model_name=name, verify_samples=0)
        assert report["binary_layers"] > 0
        assert report["lce_bconv2d_ops"] == report["binary_layers"], report["op_table"]
        assert report["float_fallback_layers"] == []
        assert output.exists()
    else:
        assert entry.lce_reason
        with pytest.raises(export.ExportError, match="not LCE-compatible") as info:
            export.export_model(model, str(output), model_name=name, verify_samples=0)
        assert entry.lce_reason in str(info.value)


def test_the_authors_weight_gradient_exports_the_same_fused_convs(tmp_path):
    # magnitude_aware_sign_unscaled changes only the gradient: LCE sees the same binary convs
    model = create_model("birealnet18_small", input_shape=(24, 24, 3), num_classes=CLASSES,
                         base_filters=32, kernel_quantizer="magnitude_aware_sign_unscaled")
    report = export.export_model(model, str(tmp_path / "m.tflite"), verify_samples=0)
    assert report["binary_layers"] == 16 == report["lce_bconv2d_ops"], report["op_table"]


@pytest.mark.smoke
def test_verification_on_the_synthetic_dataset_end_to_end(tmp_path):
    model = _single_classifier(shape=(8, 8, 3))
    report = export.export_model(
        model, str(tmp_path / "m.tflite"), verify_dataset="synthetic", verify_samples=6
    )
    assert report["verification"]["real_images"] is True
    assert report["verification"]["samples"] == 6
    assert report["verification"]["top1_agreement"] >= 0.99


# ----------------------------------------------------------------------------- LCE limits
@pytest.mark.parametrize("size, pad_values, broken", [(2, 0.0, True), (3, 0.0, False),
                                                      (2, 1.0, False)])
@pytest.mark.parametrize("backend", export.KERNELS)
def test_lce_zero_padding_below_the_kernel_size_evidence(size, pad_values, broken, backend):
    """Why export refuses zero-padded binary convs on tiny maps (rerun when LCE changes)."""
    rng = np.random.default_rng(0)
    inputs = tf.keras.Input((size, size, 16))
    y = lq.layers.QuantConv2D(32, 3, padding="same", pad_values=pad_values, use_bias=False,
                              input_quantizer="ste_sign",
                              kernel_quantizer="magnitude_aware_sign")(inputs)
    model = tf.keras.Model(inputs, y)
    x = rng.normal(size=(4, size, size, 16)).astype("float32")
    diff = np.abs(model.predict(x, verbose=0)
                  - verify.run_flatbuffer(verify.interpreter(core.convert(model), backend=backend),
                                          x)).max()
    assert bool(diff > 0.1) == broken, diff
    assert bool(core.zero_padding_below_kernel(model)) is broken


def test_export_refuses_zero_padding_on_maps_smaller_than_the_kernel(tmp_path):
    # ImageNet stem at 32 px: the last stage runs its 3x3 binary convs on 1x1 maps.
    model = create_model("birealnet18", input_shape=(32, 32, 3), num_classes=CLASSES,
                         base_filters=8)
    with pytest.raises(export.ExportError, match=r"stage4_block2_conv \(1x1 input.*pad_values=1"):
        export.export_model(model, str(tmp_path / "m.tflite"), verify_samples=0)
    assert not (tmp_path / "m.tflite").exists()
    # One-padding is computed correctly at any size.
    ok = create_model("birealnet18_lce", input_shape=(32, 32, 3), num_classes=CLASSES,
                      base_filters=8)
    report = export.export_model(ok, str(tmp_path / "ok.tflite"), verify_samples=4)
    assert report["lce_bconv2d_ops"] == 16


def _grouped_model(in_channels, groups):
    x = tf.keras.Input((8, 8, in_channels), name="image")
    y = lq.layers.QuantConv2D(
        in_channels, 3, padding="same", groups=groups, input_quantizer="approx_sign",
        kernel_quantizer="magnitude_aware_sign", kernel_constraint="weight_clip",
        use_bias=False, name="grouped_conv",
    )(x)
    y = tf.keras.layers.BatchNormalization(name="bn")(y)
    return tf.keras.Model(x, y)


@pytest.mark.parametrize("in_channels,groups,fused", [(64, 2, True), (32, 2, False),
                                                      (96, 3, True), (64, 4, False)])
def test_lce_fuses_grouped_binary_convs_only_with_32_channels_per_group(
        in_channels, groups, fused, tmp_path):
    """Evidence for export.GROUP_CHANNEL_MULTIPLE, measured on LCE's converter."""
    model = _grouped_model(in_channels, groups)
    assert export.grouped_convs_lce_cannot_fuse(model) == ([] if fused else ["grouped_conv"])
    output = str(tmp_path / "g.tflite")
    if fused:
        report = export.export_model(model, output, verify_samples=2)
        assert report["lce_bconv2d_ops"] == 1
        assert report["verification"]["max_output_difference"] < 1e-3
    else:
        with pytest.raises(export.ExportError, match="multiple of 32; not so in grouped_conv"):
            export.export_model(model, output, verify_samples=0)
        report = export.export_model(model, output, verify_samples=2, allow_float_fallback=True)
        assert report["float_fallback_layers"] == ["grouped_conv"]
        # The float fallback still computes the binary layer's function.
        assert report["verification"]["max_output_difference"] < 1e-3


def test_xcore_binary_dense_and_directory_outputs(tmp_path):
    model = create_model("birealnet18_small", input_shape=(32, 32, 3), num_classes=4,
                         base_filters=8, binary_last_layer=True)
    binary = len(core.binary_conv_layers(model))
    # xcore: LCE leaves binary convs as LceQuantize + CONV_2D (no LceBconv2d to count); the
    # export is not refused for it, and the report says what was and was not checked.
    report = export.export_model(model, str(tmp_path / "x.tflite"), target="xcore",
                                 verify_samples=4)
    assert report["status"] == "ok" and report["lce_bconv2d_ops"] == 0
    assert report["op_table"][core.QUANTIZE_OP] >= binary
    assert any("target xcore" in w and "not checked here" in w for w in report["warnings"])
    # The binary classifier runs as a float FULLY_CONNECTED: said, not hidden behind "ok".
    assert any("no binary dense op" in w for w in report["warnings"])
    (tmp_path / "dir.tflite").mkdir()
    with pytest.raises(ValueError, match=r"not a directory"):
        export.export_model(model, str(tmp_path / "dir.tflite"), verify_samples=0)


def test_xcore_refuses_a_binary_conv_on_real_inputs_unless_allowed(tmp_path):
    # The weights-only conv gets no LceQuantize: on xcore it would run on real inputs.
    model = _half_binary_model()
    output = tmp_path / "x.tflite"
    with pytest.raises(export.ExportError, match=r"target xcore: 1 LceQuantize ops for 2 binary "
                       r"convs: some run on real inputs; pass --allow_float_fallback"):
        export.export_model(model, str(output), target="xcore", verify_samples=0)
    assert not output.exists()
    failed = json.loads((tmp_path / "x.failed.json").read_text())
    assert failed["status"] == "failed" and failed["errors"][0].startswith("target xcore")
    report = export.export_model(model, str(output), target="xcore", verify_samples=0,
                                 allow_float_fallback=True)
    assert report["status"] == "ok" and report["float_fallback_layers"] == []
    assert any("some run on real inputs" in w for w in report["warnings"])
    assert not (tmp_path / "x.failed.json").exists()


def test_conflicting_verification_arguments_are_refused_before_converting(tmp_path, monkeypatch):
    def no_conversion(*args, **kwargs):
        raise AssertionError("converted before checking the arguments")

    monkeypatch.setattr(core, "convert", no_conversion)
    model = _single_classifier()
    output = str(tmp_path / "m.tflite")
    with pytest.raises(ValueError, match="not both"):
        export.export_model(model, output, verify_dataset="synthetic",
                            verify_images=np.zeros((1, 8, 8, 4), np.float32))
    with pytest.raises(ValueError, match=r"min_agreement=1\.5"):
        export.export_model(model, output, min_agreement=1.5)
    assert os.listdir(tmp_path) == []
