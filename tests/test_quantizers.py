"""The fused quantizers compute exactly what larq's do, forward and backward."""

from __future__ import annotations

import larq as lq
import numpy as np
import pytest
import tensorflow as tf

from bireal_larq.models import CUSTOM_OBJECTS, create_model, quantizers


def _activations(shape=(4, 6, 6, 5), seed=0):
    values = np.random.default_rng(seed).normal(size=shape).astype("float32") * 1.5
    flat = values.reshape(-1)
    flat[:6] = [0.0, 1.0, -1.0, 0.5, -0.999, 1.0001]  # the edges of sign and of the clip
    return tf.constant(values)


def _value_and_grad(quantizer, x, dy, graph: bool):
    def run():
        with tf.GradientTape() as tape:
            if not isinstance(x, tf.Variable):
                tape.watch(x)
            y = quantizer(x)
        return y, tape.gradient(y, x, output_gradients=dy)

    return tf.function(run)() if graph else run()


PAIRS = [
    ("approx_sign", {}, lq.quantizers.ApproxSign, quantizers.ApproxSign),
    ("ste_sign", {}, lq.quantizers.SteSign, quantizers.SteSign),
    ("ste_sign clip 0.5", {"clip_value": 0.5}, lq.quantizers.SteSign, quantizers.SteSign),
    ("ste_sign no clip", {"clip_value": None}, lq.quantizers.SteSign, quantizers.SteSign),
    ("magnitude_aware_sign", {}, lq.quantizers.MagnitudeAwareSign, quantizers.MagnitudeAwareSign),
    ("magnitude_aware_sign no clip", {"clip_value": None}, lq.quantizers.MagnitudeAwareSign,
     quantizers.MagnitudeAwareSign),
]


@pytest.mark.parametrize("graph", [False, True], ids=["eager", "tf.function"])
@pytest.mark.parametrize("label,kwargs,stock,fused", PAIRS, ids=[p[0] for p in PAIRS])
def test_fused_quantizer_is_bit_identical_to_larq(label, kwargs, stock, fused, graph):
    if "magnitude" in label:  # a kernel: a variable of shape (kh, kw, in, out)
        x = tf.Variable(_activations((3, 3, 4, 6)) * 0.2)
        dy = _activations((3, 3, 4, 6), seed=1)
    else:
        x, dy = _activations(), _activations(seed=1)
    y_ref, g_ref = _value_and_grad(stock(**kwargs), x, dy, graph)
    y, g = _value_and_grad(fused(**kwargs), x, dy, graph)
    np.testing.assert_array_equal(y.numpy(), y_ref.numpy())
    np.testing.assert_array_equal(g.numpy(), g_ref.numpy())
    # Not vacuous: the gradient is zero in places (clipped) and non-zero in others.
    if kwargs.get("clip_value", 1.0) is not None:
        assert 0 < np.count_nonzero(g.numpy()) < g.numpy().size
    assert set(np.unique(np.sign(y.numpy()))) == {-1.0, 1.0}


@pytest.mark.parametrize("clip_value", [1.0, 0.25, None])
def test_unscaled_magnitude_aware_sign_has_the_authors_weight_gradient(clip_value):
    # HardBinaryConv: forward mean|W| * sign(W); backward dy through clamp(W, -c, c), unscaled.
    w = tf.Variable(_activations((3, 3, 4, 6)) * 0.2)
    dy = _activations((3, 3, 4, 6), seed=1)
    y_ref, g_larq = _value_and_grad(quantizers.MagnitudeAwareSign(clip_value), w, dy, False)
    unscaled = quantizers.get("magnitude_aware_sign_unscaled", clip_value)
    assert type(unscaled) is quantizers.MagnitudeAwareSignUnscaled
    y, g = _value_and_grad(unscaled, w, dy, graph=True)
    np.testing.assert_array_equal(y.numpy(), y_ref.numpy())  # the same forward pass
    window = np.ones(w.shape, bool) if clip_value is None else np.abs(w.numpy()) <= clip_value
    np.testing.assert_array_equal(g.numpy(), np.where(window, dy.numpy(), 0.0))
    scale = np.abs(w.numpy()).mean(axis=(0, 1, 2))
    np.testing.assert_allclose(g_larq.numpy(), g.numpy() * scale, rtol=1e-6)
    assert not np.allclose(g.numpy(), g_larq.numpy())
    model = create_model("birealnet18_small", input_shape=(16, 16, 3), num_classes=3,
                         base_filters=8, kernel_quantizer="magnitude_aware_sign_unscaled")
    kinds = {type(layer.kernel_quantizer) for layer in model.layers
             if isinstance(layer, lq.layers.QuantConv2D)}
    assert kinds == {quantizers.MagnitudeAwareSignUnscaled}
    restored = tf.keras.models.clone_model(model)
    assert {type(layer.kernel_quantizer) for layer in restored.layers
            if isinstance(layer, lq.layers.QuantConv2D)} == kinds


def test_sign_of_zero_is_plus_one_and_approx_sign_gradient_shape():
    x = tf.constant([-2.0, -1.0, -0.5, 0.0, 0.5, 1.0, 2.0])
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = quantizers.approx_sign(x)
    np.testing.assert_array_equal(y.numpy(), [-1, -1, -1, 1, 1, 1, 1])
    # 2 - 2|x| inside [-1, 1], zero outside (Bi-Real Net eq. 6).
    np.testing.assert_array_equal(tape.gradient(y, x).numpy(), [0, 0, 1, 2, 1, 0, 0])


def test_builder_uses_the_fused_quantizers_and_they_serialize(tmp_path):
    model = create_model("birealnet18_small", input_shape=(16, 16, 3), num_classes=3,
                         base_filters=8)
    convs = [layer for layer in model.layers if isinstance(layer, lq.layers.QuantConv2D)]
    assert convs
    for layer in convs:
        assert type(layer.input_quantizer) is quantizers.ApproxSign
        assert type(layer.kernel_quantizer) is quantizers.MagnitudeAwareSign
    config = convs[0].get_config()
    assert config["input_quantizer"]["registered_name"] == "bireal_larq>ApproxSign"
    with tf.keras.utils.custom_object_scope(CUSTOM_OBJECTS):
        clone = lq.layers.QuantConv2D.from_config(config)
    assert type(clone.input_quantizer) is quantizers.ApproxSign
    assert clone.input_quantizer.get_config() == convs[0].input_quantizer.get_config()
    # A saved model loads back with the fused quantizers, not larq's of the same class name.
    path = str(tmp_path / "model.keras")
    model.save(path)
    restored = tf.keras.models.load_model(path)
    restored_convs = [c for c in restored.layers if isinstance(c, lq.layers.QuantConv2D)]
    assert {type(c.kernel_quantizer) for c in restored_convs} == {quantizers.MagnitudeAwareSign}


def test_unfused_names_pass_through_to_larq():
    assert quantizers.get(None) is None
    assert quantizers.get("swish_sign") == "swish_sign"
    assert isinstance(quantizers.get("ste_sign"), quantizers.SteSign)
