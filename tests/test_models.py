"""The model zoo: registry, every registered model, pinned sizes, larq-zoo compatibility."""

import contextlib
import dataclasses
import io

import larq as lq
import numpy as np
import pytest
import tensorflow as tf

import bireal_larq
from bireal_larq.models import (
    CUSTOM_OBJECTS,
    BiRealConfig,
    create_model,
    get_entry,
    get_model_config,
    list_models,
    register_model,
    transfer_weights,
)
from bireal_larq.models.layers import Subsample2D, leaky_clip

NUM_CLASSES = 5


def small_model(name, **kwargs):
    """A registered model at a test size: narrow, few classes, the smallest legal input."""
    config = get_model_config(name)
    size = 32 if config.stem == "imagenet" else 16
    kwargs.setdefault("base_filters", 8)
    if config.channel_attention:
        # At 8 channels the default ratio 16 would leave one ReLU unit, which may start dead.
        kwargs.setdefault("se_reduction", 2)
    return create_model(name, input_shape=(size, size, 3), num_classes=NUM_CLASSES, **kwargs)


def quant_layers(model):
    return [
        layer
        for layer in model.layers
        if isinstance(layer, (lq.layers.QuantConv2D, lq.layers.QuantDense))
    ]


def batch_for(model, n=2, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, *model.input_shape[1:])).astype("float32")


# --------------------------------------------------------------------------- registry
def test_registry_lists_the_seed_models():
    names = list_models()
    assert names == sorted(names)
    for required in ("birealnet18", "birealnet34", "birealnet50", "birealnet18_lce",
                     "birealnet18_prelu", "birealnet18_tricks", "birealnet18_small"):
        assert required in names
    assert all(get_entry(n).source for n in names)


def test_unknown_model_lists_valid_names():
    with pytest.raises(ValueError, match="Unknown model 'resnet18'.*birealnet18"):
        create_model("resnet18")


def test_duplicate_registration_raises():
    with pytest.raises(ValueError, match="already registered"):
        register_model("birealnet18", source="test")(lambda: BiRealConfig())


def test_unknown_override_names_valid_fields():
    with pytest.raises(ValueError, match="Unknown override.*padvalues.*pad_values"):
        create_model("birealnet18", padvalues=1.0)


def test_config_round_trip():
    for name in list_models():
        config = get_model_config(name)
        assert BiRealConfig.from_dict(config.to_dict()) == config
    with pytest.raises(ValueError, match="Unknown BiRealConfig field"):
        BiRealConfig.from_dict({"depht": 18})


# --------------------------------------------------------------------------- every model
@pytest.mark.parametrize("name", list_models())
def test_every_model_forward_train_save_twin(name, tmp_path):
    model = small_model(name)
    # Four examples: with two, training-mode BN at a 1x1 stage yields exactly +-1, where the
    # ApproxSign gradient vanishes.
    x = batch_for(model, n=4)

    # Forward: shape, no NaN, probabilities.
    y = model(x, training=False).numpy()
    assert y.shape == (4, NUM_CLASSES)
    assert np.isfinite(y).all()
    np.testing.assert_allclose(y.sum(axis=1), 1.0, rtol=1e-5)
    assert quant_layers(model), "a Bi-Real Net must have binary layers"

    # One training step moves every trainable weight.
    before = [w.numpy().copy() for w in model.trainable_weights]
    optimizer = tf.keras.optimizers.Adam(1e-2)
    labels = tf.one_hot([0, 1, 2, 3], NUM_CLASSES)
    with tf.GradientTape() as tape:
        loss = tf.keras.losses.categorical_crossentropy(labels, model(x, training=True))
    grads = tape.gradient(loss, model.trainable_weights)
    optimizer.apply_gradients(zip(grads, model.trainable_weights))
    unchanged = [
        w.name
        for w, old in zip(model.trainable_weights, before)
        if np.array_equal(w.numpy(), old)
    ]
    assert not unchanged, f"weights not updated by a training step: {unchanged}"

    # Save -> load with the package's custom objects gives identical outputs.
    path = str(tmp_path / "model.keras")
    model.save(path)
    restored = tf.keras.models.load_model(path, custom_objects=CUSTOM_OBJECTS)
    np.testing.assert_array_equal(restored(x, training=False).numpy(), model(x, training=False))

    # larq's summary works (it counts binary and float parameters).
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        lq.models.summary(model)
    assert "Total params" in out.getvalue() and model.name in out.getvalue()

    # The real-valued twin: same layer names, no quantizers, weights move both ways.
    twin = small_model(name, real_valued=True)
    assert [layer.name for layer in quant_layers(twin)] == [
        layer.name for layer in quant_layers(model)
    ]
    for layer in quant_layers(twin):
        assert layer.input_quantizer is None and layer.kernel_quantizer is None, layer.name
    assert transfer_weights(model, twin)
    transfer_weights(twin, model)


# --------------------------------------------------------------------------- pinned sizes
@pytest.mark.parametrize(
    "name, params, binary_convs",
    [
        ("birealnet18", 11_699_112, 16),
        ("birealnet34", 21_814_696, 32),
        # 16 bottlenecks x 3 convs, the very first 1x1 conv real-valued.
        ("birealnet50", 25_782_184, 47),
    ],
)
def test_pinned_parameter_counts(name, params, binary_convs):
    model = create_model(name)
    assert model.count_params() == params
    assert model.output_shape == (None, 1000)
    assert len(quant_layers(model)) == binary_convs


@pytest.mark.smoke
def test_stage_shapes_of_birealnet18():
    model = create_model("birealnet18", include_top=False)
    assert model.output_shape == (None, 7, 7, 512)
    assert model.get_layer("stage2_block1_conv").strides == (2, 2)
    assert model.get_layer("stage2_block1_shortcut_pool").pool_size == (2, 2)


# --------------------------------------------------------------------------- larq-zoo
def _randomise_batchnorm(model, seed=1):
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if isinstance(layer, tf.keras.layers.BatchNormalization):
            gamma, beta, mean, var = layer.get_weights()
            layer.set_weights([
                rng.uniform(0.5, 1.5, gamma.shape),
                rng.normal(0.0, 0.3, beta.shape),
                rng.normal(0.0, 0.3, mean.shape),
                rng.uniform(0.5, 2.0, var.shape),
            ])


@pytest.mark.parametrize("include_top", [True, False])
def test_larq_zoo_birealnet_weights_load_exactly(include_top, tmp_path):
    larq_zoo = pytest.importorskip("larq_zoo", reason="larq-zoo is installed by make's venv")
    zoo = larq_zoo.literature.BiRealNet(weights=None, include_top=include_top)
    _randomise_batchnorm(zoo)
    path = str(tmp_path / "zoo.h5")
    zoo.save_weights(path)

    ours = create_model("birealnet18", weights=path, include_top=include_top)
    if include_top:
        assert ours.count_params() == zoo.count_params() == 11_699_112
    x = batch_for(ours, n=4)
    expected = zoo(x, training=False).numpy()
    actual = ours(x, training=False).numpy()
    # The inputs really exercise the network (not a constant output).
    assert expected.std() > 1e-3
    np.testing.assert_allclose(actual, expected, atol=1e-5, rtol=0)
    if include_top:
        np.testing.assert_array_equal(actual.argmax(1), expected.argmax(1))


def test_weights_of_another_depth_are_refused(tmp_path):
    larq_zoo = pytest.importorskip("larq_zoo", reason="larq-zoo is installed by make's venv")
    path = str(tmp_path / "zoo.h5")
    larq_zoo.literature.BiRealNet(weights=None).save_weights(path)
    with pytest.raises(ValueError, match="layers"):
        create_model("birealnet34", weights=path)
    with pytest.raises(FileNotFoundError):
        create_model("birealnet18", weights=str(tmp_path / "missing.h5"))
    # Same shapes, another function: matched by order they would load silently.
    with pytest.raises(ValueError, match=r"differs in \{'pad_values': 1.0\}"):
        create_model("birealnet18_lce", weights=path)
    with pytest.raises(ValueError, match=r"differs in .*'padding_alignment': 'torch'"):
        create_model("birealnet18_torch", weights=path)
    # training-only fields do not change the function
    create_model("birealnet18", weights=path, bn_momentum=0.9, weight_clip=None)


@pytest.mark.smoke
def test_own_weights_round_trip_by_name(tmp_path):
    model = small_model("birealnet18_react")
    path = str(tmp_path / "w.h5")
    model.save_weights(path)
    clone = small_model("birealnet18_react", weights=path)
    x = batch_for(model)
    np.testing.assert_array_equal(clone(x).numpy(), model(x).numpy())


def test_a_directory_or_a_file_of_another_kind_is_refused_with_what_is_valid(tmp_path):
    with pytest.raises(ValueError, match=r"is a directory.*model\.weights\.h5"):
        small_model("birealnet18", weights=str(tmp_path))
    summary = tmp_path / "summary.h5"
    summary.write_text('{"top1": 0.8}')
    with pytest.raises(ValueError, match=r"is not an HDF5 weights file.*valid: a \.h5 weights"):
        small_model("birealnet18", weights=str(summary))
    tflite = tmp_path / "model.tflite"
    tflite.write_bytes(b"TFL3")
    with pytest.raises(ValueError, match=r"neither an HDF5 weights file \(\.h5\) nor a TF"):
        small_model("birealnet18", weights=str(tflite))
    model = small_model("birealnet18")
    native = str(tmp_path / "native.weights.h5")
    model.save_weights(native)  # Keras's newer, position-based format
    with pytest.raises(ValueError, match=r"Keras's save_weights in its newer format"):
        small_model("birealnet18", weights=native)
    prefix = str(tmp_path / "ckpt")  # a TF checkpoint still loads
    model.save_weights(prefix, save_format="tf")
    clone = small_model("birealnet18", weights=prefix)
    x = batch_for(model)
    np.testing.assert_array_equal(clone(x).numpy(), model(x).numpy())


# --------------------------------------------------------------------------- invalid configs
@pytest.mark.parametrize(
    "overrides, message",
    [
        (dict(pad_values=0.5), r"pad_values=0\.5.*valid: \[0\.0, 1\.0\]"),
        (dict(width_multiplier=0), r"width_multiplier=0.*valid"),
        (dict(width_multiplier=0.001), r"width_multiplier.*no channels"),
        (dict(input_quantizer="sign"), r"input_quantizer='sign'.*approx_sign.*ste_sign"),
        (dict(kernel_quantizer="dorefa"), r"kernel_quantizer='dorefa'.*magnitude_aware_sign"),
        (dict(groups=3), r"groups=3 does not divide"),
        (dict(depth=101), r"depth=101.*\[18, 34, 50\]"),
        (dict(activation="relu"), r"activation='relu'.*prelu"),
        (dict(shortcut="v4"), r"shortcut='v4'"),
        (dict(bn_momentum=1.5), r"bn_momentum"),
        (dict(stem="small", stem_order="conv_pool_bn"), r"stem_order"),
        (dict(depth=50, double_skip=False), r"double_skip"),
        (dict(bn_momentum="0.9"), r"bn_momentum='0.9' is a str; valid: a finite number"),
        (dict(weight_clip="1"), r"weight_clip='1' is a str; valid: a finite number or None"),
        (dict(bn_epsilon=None), r"bn_epsilon=None is a NoneType; valid: a finite number"),
        (dict(width_multiplier=float("inf")), r"width_multiplier=inf .*a finite number"),
        (dict(groups=True), r"groups=True is a bool; valid: an integer"),
        (dict(base_filters=True), r"base_filters=True is a bool; valid: an integer"),
        (dict(se_reduction=2.0), r"se_reduction=2.0 is a float; valid: an integer"),
        (dict(kernel_initializer="foo"), r"kernel_initializer='foo' is not a Keras initializer"),
    ],
)
def test_invalid_configuration_names_field(overrides, message):
    with pytest.raises(ValueError, match=message):
        create_model("birealnet18", **overrides)


@pytest.mark.parametrize(
    "overrides, message",
    [
        (dict(depth=18.0), "depth=18.0 is a float; valid: an integer"),
        (dict(width_multiplier="1"), "width_multiplier='1' is a str; valid: a finite number"),
        (dict(stem="big"), "stem='big' is invalid; valid: ['imagenet', 'small']"),
        (dict(stem_order="x"), "stem_order='x' is invalid; valid: ['conv_bn_pool', "
                               "'conv_pool_bn']"),
        (dict(stem_activation="prelu"), "stem_activation='prelu' is invalid; valid: ['none', "
                                        "'relu']"),
        (dict(layout="x"), "layout='x' is invalid; valid: ['bireal', 'catalogue']"),
        (dict(real_activation="tanh"), "real_activation='tanh' is invalid; valid: ['relu', "
                                       "'leaky_clip', 'clip', 'identity']"),
        (dict(padding_alignment="x"), "padding_alignment='x' is invalid; valid: ['tf', 'torch']"),
        (dict(double_skip="yes"), "double_skip='yes' is invalid; valid: [True, False]"),
        (dict(channel_attention=None), "channel_attention=None is invalid; valid: [True, False]"),
        (dict(binary_last_layer=None), "binary_last_layer=None is invalid; valid: [True, False]"),
        (dict(base_filters=0), "base_filters=0 is invalid; valid: a positive integer"),
        (dict(groups=0), "groups=0 is invalid; valid: a positive integer"),
        (dict(groups=3), "groups=3 does not divide the channels [64, 128, 256, 512] of the "
                         "grouped binary 3x3 convs (all widths: [64, 128, 256, 512]); valid: a "
                         "common divisor of them"),
        (dict(se_reduction=0), "se_reduction=0 is invalid; valid: a positive integer"),
        (dict(bn_epsilon=0), "bn_epsilon=0 is invalid; valid: > 0"),
        (dict(weight_clip=0), "weight_clip=0 is invalid; valid: None or > 0"),
        # Two invalid fields: the first check that fails names its field (types, choices,
        # widths, groups, ranges, initializer, combinations).
        (dict(depth=101, groups=0), "depth=101 is invalid; valid: [18, 34, 50]"),
        (dict(groups=3, se_reduction=0), "groups=3 does not divide"),
        (dict(depth=50, double_skip=False, kernel_initializer="foo"),
         "kernel_initializer='foo' is not a Keras initializer; valid: a Keras name such as "
         "'glorot_normal' or 'he_normal'"),
    ],
)
def test_each_invalid_field_is_named_with_its_valid_values(overrides, message):
    with pytest.raises(ValueError) as raised:
        BiRealConfig(**overrides)
    assert str(raised.value).startswith("BiRealConfig." + message), str(raised.value)


def test_input_too_small_for_stem():
    with pytest.raises(ValueError, match=r"too small.*>= 32.*stem='small'"):
        create_model("birealnet18", input_shape=(28, 28, 1))
    with pytest.raises(ValueError, match="input_shape"):
        create_model("birealnet18", input_shape=(32, 32))
    # The small-input stem takes Fashion-MNIST as it is.
    model = create_model("birealnet18_small", input_shape=(28, 28, 1), num_classes=10)
    assert model.output_shape == (None, 10)


def test_every_variant_but_the_torch_targets_has_a_small_input_twin():
    names = set(list_models())
    bases = [n for n in names if not n.endswith(("_small", "_torch"))]
    assert {"birealnet50_tricks", "birealnet34_lce", "birealnet50_lce"} <= set(bases)
    for name in bases:
        assert f"{name}_small" in names, name
        assert get_model_config(f"{name}_small") == dataclasses.replace(
            get_model_config(name), stem="small"
        )
    assert not any(n.endswith("_torch_small") for n in names)
    # the deepest one builds on a 32 px input
    model = create_model("birealnet50_tricks_small", input_shape=(32, 32, 3), num_classes=3,
                         base_filters=8)
    assert model.output_shape == (None, 3)


def test_invalid_twin_activation():
    with pytest.raises(ValueError, match="Twin activation 'tanh'.*leaky_clip"):
        create_model("birealnet18_small", real_valued=True, twin_activation="tanh")


# --------------------------------------------------------------------------- tricks
def _layer_types_after(model, name, count):
    """Class names of the ``count`` layers that consume ``name``'s output, one by one."""
    out, layer = [], model.get_layer(name)
    for _ in range(count):
        nodes = layer.outbound_nodes
        layer = nodes[0].outbound_layer
        out.append(type(layer).__name__)
    return out


def test_shortcut_variants_order():
    def shortcut_layers(shortcut):
        model = small_model("birealnet18", shortcut=shortcut)
        names = [layer.name for layer in model.layers if layer.name.startswith(
            "stage2_block1_shortcut")]
        return names, model

    names, _ = shortcut_layers("bireal")
    assert names == ["stage2_block1_shortcut_pool", "stage2_block1_shortcut_conv",
                     "stage2_block1_shortcut_bn"]
    names, _ = shortcut_layers("v1")
    assert names[-1] == "stage2_block1_shortcut_pool"
    names, model = shortcut_layers("v3")
    assert model.get_layer("stage2_block1_shortcut_pool").pool_size == (3, 3)
    # v2 is Bi-Real's own shortcut: one configuration, not two.
    assert BiRealConfig(shortcut="v2") == BiRealConfig(shortcut="bireal")


def test_catalogue_layout_puts_bn_before_sign_and_prelu_after_add():
    model = small_model("birealnet18_tricks")
    # BN of the block input feeds the binary conv directly.
    assert _layer_types_after(model, "stage1_block1_bn", 1) == ["QuantConv2D"]
    assert isinstance(model.get_layer("stage1_block1_prelu"), tf.keras.layers.PReLU)
    np.testing.assert_allclose(model.get_layer("stage1_block1_prelu").get_weights()[0], 0.25)


def test_double_skip_off_pairs_convs():
    plain = small_model("birealnet18")
    paired = small_model("birealnet18", double_skip=False)
    adds = lambda m: [la for la in m.layers if isinstance(la, tf.keras.layers.Add)]  # noqa: E731
    assert len(adds(plain)) == 16 and len(adds(paired)) == 8
    assert len(quant_layers(plain)) == len(quant_layers(paired)) == 16


def test_width_and_groups():
    model = small_model("birealnet18_wide")
    conv = model.get_layer("stage1_block1_conv")
    assert conv.groups == 4 and conv.filters == 16  # 8 base filters x 2
    assert conv.kernel.shape == (3, 3, 4, 16)


def test_rsign_and_rprelu_and_se():
    react = small_model("birealnet18_react")
    assert _layer_types_after(react, "stage1_block1_conv_rsign", 1) == ["QuantConv2D"]
    assert type(react.get_layer("stage1_block1_rprelu")).__name__ == "RPReLU"
    se = small_model("birealnet18_se")
    assert se.get_layer("stage1_block1_conv_se_scale") is not None


def test_stem_variants():
    reordered = small_model("birealnet18", stem_order="conv_pool_bn", stem_activation="relu")
    assert _layer_types_after(reordered, "stem_conv", 3) == [
        "MaxPooling2D", "BatchNormalization", "ReLU"]
    binary_ends = small_model("birealnet18", binary_first_layer=True, binary_last_layer=True)
    assert isinstance(binary_ends.get_layer("stem_conv"), lq.layers.QuantConv2D)
    assert isinstance(binary_ends.get_layer("logits"), lq.layers.QuantDense)


def test_bottleneck_streams_of_birealnet50():
    model = create_model("birealnet50", include_top=False, base_filters=8,
                         input_shape=(64, 64, 3))
    # The first 1x1 conv is real-valued behind a leaky-clip; all others are binary.
    assert not isinstance(model.get_layer("stage1_block1_conv1"), lq.layers.QuantConv2D)
    assert isinstance(model.get_layer("stage1_block2_conv1"), lq.layers.QuantConv2D)
    # The mid stream carries planes/4 channels to the next block's 1x1 shortcut.
    assert model.get_layer("stage2_block1_mid_shortcut_conv").output.shape[-1] == 16
    assert model.get_layer("stage2_block1_mid_pool").output.shape[1:3] == (8, 8)
    assert model.output_shape == (None, 2, 2, 256)


def test_bn_momentum_and_epsilon_are_applied():
    model = small_model("birealnet18", bn_momentum=0.9, bn_epsilon=1e-5)
    bns = [la for la in model.layers if isinstance(la, tf.keras.layers.BatchNormalization)]
    assert bns and all(b.momentum == 0.9 and b.epsilon == 1e-5 for b in bns)


def test_pad_values_reach_the_binary_convs():
    model = small_model("birealnet18_lce")
    assert all(la.pad_values == 1.0 for la in quant_layers(model) if la.kernel_size == (3, 3))


# --------------------------------------------------------------------------- layers
def test_leaky_clip_values():
    x = tf.constant([-3.0, -1.0, -0.5, 0.0, 0.5, 1.0, 3.0])
    np.testing.assert_allclose(leaky_clip(x).numpy(), [-1.2, -1.0, -0.5, 0.0, 0.5, 1.0, 1.2],
                               rtol=1e-6)


def test_torch_alignment_equals_symmetric_padding():
    """Stride-1 'same' + subsample equals a stride-2 conv on a symmetrically padded input."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(1, 8, 8, 4)).astype("float32")
    kernel = rng.normal(size=(3, 3, 4, 6)).astype("float32")
    conv = lq.layers.QuantConv2D(6, 3, padding="same", use_bias=False, input_quantizer="ste_sign")
    conv.build(x.shape)
    conv.set_weights([kernel])
    ours = Subsample2D(2)(conv(x)).numpy()
    signed = np.where(x >= 0, 1.0, -1.0).astype("float32")
    padded = np.pad(signed, ((0, 0), (1, 1), (1, 1), (0, 0)))  # zeros after the sign
    reference = tf.nn.conv2d(padded, kernel, strides=2, padding="VALID").numpy()
    np.testing.assert_allclose(ours, reference, atol=1e-5)
    # TF's own stride-2 'same' conv picks the other phase: the alignment matters.
    tf_same = tf.nn.conv2d(signed, kernel, strides=2, padding="SAME").numpy()
    assert not np.allclose(tf_same, reference, atol=1e-3)


def test_torch_variant_stem_matches_symmetric_padding():
    model = create_model("birealnet18_torch", include_top=False, base_filters=8,
                         input_shape=(32, 32, 3))
    assert model.get_layer("stem_conv_pad").padding == ((3, 3), (3, 3))
    assert model.get_layer("stem_conv").padding == "valid"
    assert model.get_layer("stage2_block1_conv").strides == (1, 1)
    assert model.get_layer("stage2_block1_conv_subsample").stride == 2
    assert model.output_shape == (None, 1, 1, 64)


def test_config_is_frozen_and_public_api():
    config = BiRealConfig()
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.depth = 34  # type: ignore[misc]
    assert bireal_larq.create_model is create_model


def test_weights_named_like_keras_v3_files_still_load_by_name(tmp_path):
    """Keras 2.15 treats '*.weights.h5' as its own format; by-name HDF5 files must load."""
    model = small_model("birealnet18")
    tmp = str(tmp_path / "tmp.h5")
    model.save_weights(tmp)
    final = tmp_path / "model.weights.h5"
    (tmp_path / "tmp.h5").rename(final)
    clone = small_model("birealnet18", weights=str(final))
    x = batch_for(model)
    np.testing.assert_array_equal(clone(x).numpy(), model(x).numpy())


def test_quantizers_stay_float32_under_mixed_precision():
    tf.keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        model = small_model("birealnet18", binary_last_layer=True)
    finally:
        tf.keras.mixed_precision.set_global_policy("float32")
    for layer in quant_layers(model):
        assert layer.compute_dtype == "float32", layer.name
        for quantizer in (layer.input_quantizer, layer.kernel_quantizer):
            assert quantizer.compute_dtype == "float32", (layer.name, quantizer)
    # And a forward pass runs (quantizer and conv dtypes agree).
    assert np.isfinite(model(batch_for(model), training=True).numpy()).all()
    assert model.get_layer("stage1_block1_bn").compute_dtype == "bfloat16"
    assert model.output.dtype == tf.float32


@pytest.mark.parametrize("training", [True, False], ids=["training", "inference"])
@pytest.mark.parametrize("strides,pad_values", [(1, 0.0), (2, 0.0), (1, 1.0)])
def test_grouped_binary_conv_matches_keras_xla_path(strides, pad_values, training):
    """GroupedQuantConv2D's CPU gradient (per-group backprop ops) equals Keras's XLA one."""
    from bireal_larq.models.layers import GroupedQuantConv2D

    x = tf.constant(np.random.default_rng(0).normal(size=(2, 9, 9, 8)).astype("float32"))
    kwargs = dict(filters=12, kernel_size=3, strides=strides, padding="same",
                  pad_values=pad_values, groups=4, use_bias=False,
                  input_quantizer="approx_sign", kernel_quantizer="magnitude_aware_sign",
                  kernel_constraint="weight_clip")
    reference, grouped = lq.layers.QuantConv2D(**kwargs), GroupedQuantConv2D(**kwargs)
    reference.build(x.shape)
    grouped.build(x.shape)
    grouped.set_weights(reference.get_weights())
    results = []
    for layer in (reference, grouped):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = layer(x, training=training)
            loss = tf.reduce_sum(y * y)
        results.append([y, *tape.gradient(loss, [x, layer.kernel])])
    for ref, got in zip(*results):
        assert float(tf.reduce_max(tf.abs(ref))) > 0
        np.testing.assert_allclose(got.numpy(), ref.numpy(), rtol=1e-5, atol=1e-5)


def test_grouped_models_use_the_cpu_trainable_grouped_conv():
    from bireal_larq.models.layers import GroupedQuantConv2D

    model = small_model("birealnet18_wide")
    conv = model.get_layer("stage1_block1_conv")
    assert type(conv) is GroupedQuantConv2D and conv.groups == 4
    assert type(model.get_layer("stem_conv")) is not GroupedQuantConv2D


def test_grouped_model_runs_in_graph_mode_inference_and_training():
    """Grappler fuses Conv2D+BN in inference graphs; TF's fused CPU kernel refuses groups."""
    model = small_model("birealnet18_wide")
    x = batch_for(model, n=4)
    eager = model(x, training=False).numpy()
    graph = tf.function(lambda images: model(images, training=False))(x).numpy()
    np.testing.assert_allclose(graph, eager, rtol=1e-5, atol=1e-6)
    model.compile("adam", "categorical_crossentropy")
    history = model.fit(x, tf.one_hot([0, 1, 2, 3], NUM_CLASSES), validation_data=(
        x, tf.one_hot([0, 1, 2, 3], NUM_CLASSES)), epochs=1, verbose=0)
    assert np.isfinite(history.history["val_loss"][0])


def test_weight_clip_sets_the_gradient_window_and_spares_real_valued_weights():
    model = small_model("birealnet18", weight_clip=2.0)
    conv = model.get_layer("stage1_block1_conv")
    # the constraint and the quantizer's straight-through window agree
    assert conv.kernel_constraint.clip_value == 2.0
    assert conv.kernel_quantizer.clip_value == 2.0
    w = tf.constant([[[[1.5]]]])
    with tf.GradientTape() as tape:
        tape.watch(w)
        y = conv.kernel_quantizer(w)
    assert float(tape.gradient(y, w)[0, 0, 0, 0]) > 0  # 1 < |w| <= 2 still learns
    assert small_model("birealnet18").get_layer(
        "stage1_block1_conv").kernel_quantizer.clip_value == 1.0
    # Stage 1 of the two-stage trick: real-valued weights, binary classifier layout: no clip
    stage1 = small_model("birealnet18", kernel_quantizer=None, binary_last_layer=True)
    assert stage1.get_layer("logits").kernel_constraint is None
    assert small_model("birealnet18", binary_last_layer=True).get_layer(
        "logits").kernel_constraint.clip_value == 1.0


def test_bad_model_arguments_are_refused_with_the_valid_values():
    def build(**kwargs):
        kwargs.setdefault("input_shape", (16, 16, 3))
        return create_model("birealnet18_small", base_filters=8, **kwargs)

    # One class: a one-unit softmax outputs 1.0 for every input.
    for bad in (1, True, 0):
        with pytest.raises(ValueError, match=r"num_classes=.* is invalid; valid: an integer >= 2"):
            build(num_classes=bad)
    assert build(num_classes=np.int64(3)).output_shape == (None, 3)
    for shape in ((16.0, 16.0, 3), 16, "16,16,3", (16, 16), (16, -1, 3)):
        with pytest.raises(ValueError, match=r"input_shape=.* is invalid; valid: \(height"):
            build(input_shape=shape)
    assert build(input_shape=np.array([16, 16, 3])).input_shape == (None, 16, 16, 3)
    with pytest.raises(ValueError, match=r"input_tensor has dtype uint8; valid: a float"):
        build(input_shape=None, input_tensor=tf.keras.Input((16, 16, 3), dtype=tf.uint8))
    with pytest.raises(ValueError, match="Twin activation 'tanh' is invalid"):
        build(twin_activation="tanh")  # checked even when no twin is built
    for flag in ("real_valued", "include_top"):
        with pytest.raises(ValueError, match=rf"{flag}='yes' is invalid; valid: True or False"):
            build(**{flag: "yes"})
    for bad in (None, {"class_name": "HeNormal"}, tf.keras.initializers.HeNormal()):
        with pytest.raises(ValueError, match="kernel_initializer=.* is invalid; valid: a Keras "
                           "initializer name"):
            build(kernel_initializer=bad)


@pytest.mark.parametrize("overrides", [
    dict(real_valued=True, twin_activation="identity"),  # tf.identity could not be read back
    dict(real_valued=True, twin_activation="leaky_clip"),  # nor custom functions from .h5
    dict(kernel_quantizer="magnitude_aware_sign_unscaled"),
])
def test_real_activations_and_quantizers_round_trip(tmp_path, overrides):
    model = create_model("birealnet18_small", input_shape=(16, 16, 3), num_classes=3,
                         base_filters=8, **overrides)
    x = np.random.default_rng(0).normal(size=(2, 16, 16, 3)).astype("float32")
    clone = tf.keras.models.clone_model(model)
    clone.set_weights(model.get_weights())
    np.testing.assert_allclose(clone(x).numpy(), model(x).numpy(), atol=1e-6)
    model.save(str(tmp_path / "m.h5"))
    loaded = tf.keras.models.load_model(str(tmp_path / "m.h5"), custom_objects=CUSTOM_OBJECTS)
    np.testing.assert_allclose(loaded(x).numpy(), model(x).numpy(), atol=1e-6)


@pytest.mark.smoke
def test_weights_load_only_into_the_variant_that_saved_them(tmp_path):
    from bireal_larq.models import load_weights, save_weights

    def build(**overrides):
        return create_model("birealnet18_small", input_shape=(16, 16, 3), num_classes=3,
                            base_filters=8, **overrides)

    path = str(tmp_path / "w.weights.h5")
    save_weights(build(), path)
    # Same layer names and shapes, another function: refused, naming the field.
    with pytest.raises(ValueError, match=r"saved from another variant of the architecture "
                       r"\(pad_values: file 0\.0, model 1\.0\).*transfer_weights"):
        build(pad_values=1.0, weights=path)
    load_weights(build(bn_momentum=0.8), path)  # a training-only field may differ
    model = build(weights=path)
    twin = create_model("birealnet18_small", input_shape=(16, 16, 3), num_classes=3,
                        base_filters=8, real_valued=True)
    with pytest.raises(ValueError, match="another variant"):
        load_weights(twin, path)
    transfer_weights(model, twin)  # on purpose: the documented way
