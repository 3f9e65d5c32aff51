"""Existing weights in: the authors' PyTorch checkpoints and larq-zoo BiRealNet files.

How the PyTorch comparison rules out every difference but rounding-level sign flips: the
reference records the real-valued input of every binary conv; the Keras model exposes the
same tensors. Any error of layout, padding, pooling, shortcut order or BatchNorm would change
those inputs by far more than float rounding at the first layer where it occurs, so the test
compares them tensor by tensor (tolerance 1e-4, relative to the tensor's scale) and requires
that every sign disagreement sits within 1e-4 of zero. Only then are the logits compared.
"""

import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

torch = pytest.importorskip("torch", reason="PyTorch is the optional extra bireal_larq[pytorch]")

import torch_reference  # noqa: E402

from bireal_larq.models import create_model  # noqa: E402
from bireal_larq.models.convert import (  # noqa: E402
    _torch_names,
    convert_weights,
    load_pytorch_state_dict,
    state_dict_to_numpy,
)

WIDTH, CLASSES, SIZE = 16, 10, 64


def keras_twin_of(depth, state):
    model = create_model(f"birealnet{depth}_torch", base_filters=WIDTH, num_classes=CLASSES,
                         input_shape=(SIZE, SIZE, 3))
    load_pytorch_state_dict(model, state_dict_to_numpy(state))
    return model


def compare(net, model, depth, seed=0):
    x = torch.from_numpy(np.random.default_rng(seed).normal(size=(4, 3, SIZE, SIZE))
                         .astype("float32"))
    with torch.no_grad():
        expected = net(x).numpy()
    # The Keras tensors that the reference's binary convs binarize, matched by name.
    keras_name = {prefix: name for name, (_, prefix) in _torch_names(depth).items()}
    convs = torch_reference.sign_convs(net)
    probe = tf.keras.Model(
        model.input,
        [model.get_layer("logits").output]
        + [model.get_layer(keras_name[n]).input for n in convs])
    logits, *inputs = probe(x.numpy().transpose(0, 2, 3, 1), training=False)
    smallest = np.inf
    for (name, conv), keras_in in zip(convs.items(), inputs):
        ref = conv.recorded.numpy().transpose(0, 2, 3, 1)
        ours = keras_in.numpy()
        scale = max(1.0, float(np.abs(ref).max()))
        flips = (ref >= 0) != (ours >= 0)
        assert np.all(np.abs(ref[flips]) < 1e-4), f"{name}: a sign differs away from zero"
        np.testing.assert_allclose(ours, ref, atol=1e-4 * scale, err_msg=name)
        smallest = min(smallest, float(np.abs(ref).min()))
    logits = logits.numpy()
    spread = expected.max() - expected.min()
    assert spread > 1.0, "the logits should vary: the comparison must not be trivial"
    np.testing.assert_allclose(logits, expected, atol=1e-4 * spread)
    np.testing.assert_array_equal(logits.argmax(1), expected.argmax(1))
    return smallest


@pytest.mark.parametrize("depth", [18, 34, 50])
def test_authors_checkpoint_converts_to_identical_logits(depth, tmp_path):
    net = torch_reference.build(depth, WIDTH, CLASSES)
    if depth == 18:
        # The dict train.py saves, from an nn.DataParallel model ("module." prefix).
        state = {"module." + k: v for k, v in net.state_dict().items()}
        torch.save({"epoch": 3, "state_dict": state, "best_top1_acc": 0.5,
                    "optimizer": {"state": {}}}, tmp_path / "checkpoint.pth.tar")
        path = tmp_path / "checkpoint.pth.tar"
    else:
        torch.save(net.state_dict(), tmp_path / "model.pth")
        path = tmp_path / "model.pth"
    if depth in (18, 34):
        flat = net.state_dict()["layer1.0.binary_conv.weights"]
        assert flat.shape == (WIDTH * WIDTH * 9, 1)  # the authors' flattened storage

    out = tmp_path / "converted.h5"
    result = convert_weights("pytorch", str(path), None, str(out))
    assert result["model"] == f"birealnet{depth}_torch"
    assert result["create_model_kwargs"] == {"base_filters": WIDTH, "num_classes": CLASSES}
    model = create_model(result["model"], weights=str(out), input_shape=(SIZE, SIZE, 3),
                         **result["create_model_kwargs"])
    compare(net, model, depth)


def test_bn_epsilon_difference_is_folded():
    net = torch_reference.build(18, WIDTH, CLASSES, seed=1)
    model = create_model("birealnet18_torch", base_filters=WIDTH, num_classes=CLASSES,
                         input_shape=(SIZE, SIZE, 3), bn_epsilon=1e-3)
    load_pytorch_state_dict(model, state_dict_to_numpy(net.state_dict()))
    compare(net, model, 18, seed=1)


def test_tensorflow_aligned_model_is_refused():
    state = state_dict_to_numpy(torch_reference.build(18, WIDTH, CLASSES).state_dict())
    model = create_model("birealnet18", base_filters=WIDTH, num_classes=CLASSES)
    with pytest.raises(ValueError, match="birealnet18_torch"):
        load_pytorch_state_dict(model, state)


def test_mismatches_are_errors():
    state = state_dict_to_numpy(torch_reference.build(18, WIDTH, CLASSES).state_dict())
    model = keras_twin_of(18, torch_reference.build(18, WIDTH, CLASSES).state_dict())

    missing = dict(state)
    del missing["layer2.0.bn1.running_var"]
    with pytest.raises(ValueError, match=r"missing keys \['layer2.0.bn1.running_var'\]"):
        load_pytorch_state_dict(model, missing)

    unexpected = {**state, "layer1.0.extra.weight": np.zeros(3, "float32")}
    with pytest.raises(ValueError, match=r"unexpected keys \['layer1.0.extra.weight'\]"):
        load_pytorch_state_dict(model, unexpected)

    wrong = {**state, "fc.weight": np.zeros((CLASSES, 3), "float32")}
    with pytest.raises(ValueError, match="shape mismatches.*logits"):
        load_pytorch_state_dict(model, wrong)

    other = state_dict_to_numpy(torch_reference.build(34, WIDTH, CLASSES).state_dict())
    with pytest.raises(ValueError, match="Bi-Real Net 34.*birealnet34_torch"):
        load_pytorch_state_dict(model, other)

    with pytest.raises(ValueError, match="holds no state dict"):
        state_dict_to_numpy({"epoch": 1, "state_dict": {}})


def test_weights_go_only_into_the_plain_torch_configuration():
    net = torch_reference.build(18, WIDTH, CLASSES)
    state = state_dict_to_numpy(net.state_dict())
    for overrides, field in [(dict(pad_values=1.0), "pad_values"),
                             (dict(kernel_quantizer="ste_sign"), "kernel_quantizer"),
                             (dict(real_valued=True), "input_quantizer")]:
        model = create_model("birealnet18_torch", base_filters=WIDTH, num_classes=CLASSES,
                             input_shape=(64, 64, 3), **overrides)
        with pytest.raises(ValueError, match=rf"differs in .*'{field}'.*another function"):
            load_pytorch_state_dict(model, state)
    # training-only settings and same-forward quantizers still take the weights
    model = create_model("birealnet18_torch", base_filters=WIDTH, num_classes=CLASSES,
                         input_shape=(64, 64, 3), weight_clip=None, bn_momentum=0.8,
                         kernel_quantizer="magnitude_aware_sign_unscaled")
    load_pytorch_state_dict(model, state)
    compare(net, model, 18, seed=2)


def test_odd_checkpoints_get_clear_errors(tmp_path):
    state = torch_reference.build(18, WIDTH, CLASSES).state_dict()
    with pytest.raises(ValueError, match=r"entry 'epoch' is a int, not a tensor.*"
                       r"top-level keys: \['epoch', 'model'\]"):
        state_dict_to_numpy({"epoch": 1, "model": state})
    headless = {k: v for k, v in state.items() if not k.startswith("fc.")}
    torch.save(headless, tmp_path / "headless.pth")
    with pytest.raises(ValueError, match=r"lacks \['fc.weight'\]"):
        convert_weights("pytorch", str(tmp_path / "headless.pth"), None, str(tmp_path / "o.h5"))
    (tmp_path / "zoo.h5").write_text("not hdf5")
    with pytest.raises(ValueError, match="not an HDF5 weights file"):
        convert_weights("larq_zoo", str(tmp_path / "zoo.h5"), None, str(tmp_path / "o.h5"))


def test_an_output_named_weights_h5_reads_back_by_layer_name(tmp_path):
    import h5py

    net = torch_reference.build(18, WIDTH, CLASSES)
    torch.save(net.state_dict(), tmp_path / "m.pth")
    out = str(tmp_path / "converted.weights.h5")  # Keras would write its newer format here
    result = convert_weights("pytorch", str(tmp_path / "m.pth"), None, out)
    model = create_model(result["model"], input_shape=(64, 64, 3),
                         **result["create_model_kwargs"], weights=out)
    compare(net, model, 18, seed=3)
    with h5py.File(out) as f:
        names = {n.decode() if isinstance(n, bytes) else n for n in f.attrs["layer_names"]}
    assert {layer.name for layer in model.layers if layer.weights} <= names


def test_cli_converts_and_reports_errors(tmp_path):
    net = torch_reference.build(18, WIDTH, CLASSES)
    torch.save(net.state_dict(), tmp_path / "m.pth")
    cmd = [sys.executable, "-m", "bireal_larq.convert_weights", "--source=pytorch",
           f"--input={tmp_path / 'm.pth'}", f"--output={tmp_path / 'out.h5'}"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "create_model('birealnet18_torch'" in done.stdout
    assert (tmp_path / "out.h5").exists()

    bad = cmd[:-1] + [f"--output={tmp_path / 'o.h5'}", "--model=birealnet34_torch"]
    done = subprocess.run(bad, capture_output=True, text=True, timeout=300)
    assert done.returncode != 0
    assert "Bi-Real Net 18" in done.stderr and "Traceback" not in done.stderr


@pytest.mark.parametrize("include_top", [True, False])
def test_larq_zoo_weights_convert(include_top, tmp_path):
    import larq_zoo

    zoo = larq_zoo.literature.BiRealNet(weights=None, include_top=include_top,
                                        input_shape=(64, 64, 3), num_classes=CLASSES)
    rng = np.random.default_rng(0)
    for layer in zoo.layers:
        if isinstance(layer, tf.keras.layers.BatchNormalization):
            g, b, m, v = layer.get_weights()
            layer.set_weights([rng.uniform(0.5, 1.5, g.shape), rng.normal(0, 0.3, b.shape),
                               rng.normal(0, 0.3, m.shape), rng.uniform(0.5, 2, v.shape)])
    zoo.save_weights(tmp_path / "zoo.h5")
    result = convert_weights("larq_zoo", str(tmp_path / "zoo.h5"), "birealnet18",
                             str(tmp_path / "ours.h5"))
    assert result["include_top"] is include_top
    model = create_model("birealnet18", weights=str(tmp_path / "ours.h5"),
                         input_shape=(64, 64, 3), **result["create_model_kwargs"])
    x = rng.normal(size=(2, 64, 64, 3)).astype("float32")
    np.testing.assert_allclose(model(x).numpy(), zoo(x).numpy(), atol=1e-5)


def test_converted_weights_export_with_every_binary_conv_fused(tmp_path):
    from bireal_larq.export import export_model

    net = torch_reference.build(18, WIDTH, CLASSES)
    torch.save(net.state_dict(), tmp_path / "m.pth")
    result = convert_weights("pytorch", str(tmp_path / "m.pth"), None, str(tmp_path / "w.h5"))
    # 96 px keeps the last stage at 3x3, which LCE needs for zero-padded binary convs.
    model = create_model(result["model"], weights=str(tmp_path / "w.h5"),
                         input_shape=(96, 96, 3), **result["create_model_kwargs"])
    x = np.random.default_rng(0).normal(size=(8, 96, 96, 3)).astype("float32")
    report = export_model(model, str(tmp_path / "m.tflite"), verify_images=x, verify_samples=8)
    assert report["binary_layers"] == 16 and report["lce_bconv2d_ops"] == 16
    assert report["float_fallback_layers"] == []
    assert report["verification"]["top1_agreement"] >= 0.99


@pytest.mark.parametrize("depth", [18, 34, 50])
def test_parameter_counts_match_the_pytorch_reference(depth):
    """The pinned sizes, checked independently: PyTorch parameters + BN statistics."""
    net = torch_reference.build(depth, 64, 1000)
    total = sum(p.numel() for p in net.parameters()) + sum(
        b.numel() for name, b in net.named_buffers() if "num_batches" not in name)
    # BiReal-50's first block owns a down_conv1x1 (16 -> 64) that it never runs.
    unused = 16 * 64 if depth == 50 else 0
    assert create_model(f"birealnet{depth}").count_params() == total - unused
