"""Mixed precision and XLA on the binary paths.

Three properties:

* A model built under ``mixed_float16`` or ``mixed_bfloat16`` (weights copied from a float32
  model) computes what the float32 model computes, within tolerances derived from the
  policy's machine epsilon, and its binary layers see the same signs except where the
  pre-activation lies within a few ulps of zero.
* Under a mixed policy every quantizer computes in float32 (forward and gradient), the
  softmax and the model output are float32, and every variable (BatchNorm's included) is
  float32.
* ``jit_compile=True`` computes the same quantizers, the same model forward and gradients,
  and the same Bop / CaseOptimizer updates as the graph path without XLA.

Why the comparisons of whole models pin the signs
-------------------------------------------------
A binary network is discontinuous: a pre-activation at 1e-6 of its layer's scale takes the
other sign when the arithmetic before it rounds differently, the next binary conv's output
then moves by 2 * mean|W| at every position that reads it, and further signs flip there. Over
the 16 binary layers of Bi-Real-18 this cascade decorrelates the outputs completely. It is a
property of the network, not of the precision: on a randomly initialised birealnet18_small
(16x16x1, 8 base filters) the XLA and graph paths, both float32, already disagree on one sign
(at |x| ~ 7e-7 of the layer's RMS) and end with unrelated gradients; under mixed_bfloat16 a
third of the last layer's signs differ from float32. So each whole-model comparison runs the
reduced-precision (or XLA) model with the input signs of its binary layers taken from the
reference run (the gradient stays the model's own quantizer's), and separately counts the signs
that *would* flip: every flip must sit where the reference pre-activation is within a few ulps
of zero. Together these show that the only difference from the reference is sign decisions at
ulp distance from zero.
"""

from __future__ import annotations

import functools

import larq as lq
import numpy as np
import pytest
import tensorflow as tf

from bireal_larq.models import create_model, quantizers
from bireal_larq.models.config import INPUT_QUANTIZERS, KERNEL_QUANTIZERS
from bireal_larq.models.layers import iter_layers

SHAPE = (16, 16, 3)
CLASSES = 10
BATCH = 8
POLICIES = ("mixed_float16", "mixed_bfloat16")
# Spacing of the format's numbers at 1.0 (10 and 7 stored mantissa bits).
EPS = {"mixed_float16": 2.0**-10, "mixed_bfloat16": 2.0**-7}

# Registered models at the test width: the paper's block; ReActNet's RSign + RPReLU with a
# binary classifier; channel attention (SE gates, ratio 2 so 8 channels keep 4 ReLU units).
VARIANTS = {
    "bireal": ("birealnet18_small", {}),
    "react": ("birealnet18_react_small", {"binary_last_layer": True}),
    "se": ("birealnet18_se_small", {"se_reduction": 2}),
}


def build(name: str, policy: str = "float32", **overrides) -> tf.keras.Model:
    previous = tf.keras.mixed_precision.global_policy()
    tf.keras.mixed_precision.set_global_policy(policy)
    try:
        overrides.setdefault("base_filters", 8)
        return create_model(name, input_shape=SHAPE, num_classes=CLASSES, **overrides)
    finally:
        tf.keras.mixed_precision.set_global_policy(previous)


def batch(n=BATCH, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, *SHAPE)).astype("float32")
    y = np.eye(CLASSES, dtype="float32")[rng.integers(0, CLASSES, n)]
    return x, y


def binary_layers(model):
    return [layer for layer in iter_layers(model)
            if isinstance(layer, (lq.layers.QuantConv2D, lq.layers.QuantDense))
            and layer.input_quantizer is not None]


class SignProbe:
    """Stands in for a binary layer's input quantizer.

    Records the tensor the quantizer receives (``seen``) and, when ``signs`` is set, makes
    the forward pass output those signs instead; the gradient is the wrapped quantizer's.
    """

    def __init__(self, quantizer):
        self.quantizer = quantizer
        self.signs = None
        self.seen = None

    def __call__(self, x):
        self.seen = x
        y = self.quantizer(x)
        if self.signs is None:
            return y
        return y + tf.stop_gradient(tf.cast(self.signs, y.dtype) - y)


def attach_probes(model) -> list[SignProbe]:
    probes = []
    for layer in binary_layers(model):
        probe = SignProbe(layer.input_quantizer)
        layer.input_quantizer = probe
        probes.append(probe)
    assert probes
    return probes


def larq_sign(x):
    """larq's sign: +1 at zero (and at -0)."""
    return np.where(np.asarray(x) >= 0, 1.0, -1.0).astype("float32")


def loss_fn(y, probabilities):
    return tf.reduce_mean(tf.keras.losses.categorical_crossentropy(y, probabilities))


def forward_backward(model, probes, x, y):
    with tf.GradientTape() as tape:
        probabilities = model(x, training=True)
        loss = loss_fn(y, probabilities)
    grads = tape.gradient(loss, model.trainable_variables)
    return {
        "probabilities": probabilities,
        "loss": float(loss),
        "grads": [g.numpy() for g in grads],
        "inputs": [p.seen for p in probes],
    }


def relative_error(a, b):
    return float(np.linalg.norm(a - b) / max(np.linalg.norm(a), 1e-30))


@functools.cache
def float32_reference(variant: str):
    """Weights (1-D parameters moved off their initial values), the float32 model's outputs,
    gradients and quantizer inputs for the fixed batch."""
    name, overrides = VARIANTS[variant]
    tf.keras.utils.set_random_seed(0)  # the same weights whichever test asks first
    model = build(name, **overrides)
    rng = np.random.default_rng(1)
    # Non-trivial BN scales/offsets, RSign thresholds, RPReLU parameters and SE biases:
    # at their initial values (0 or 1) casting them to 16 bits would be exact.
    for v in model.trainable_variables:
        if len(v.shape) == 1:
            v.assign(v + 0.1 * rng.normal(size=v.shape).astype("float32"))
    probes = attach_probes(model)
    result = forward_backward(model, probes, *batch())
    result["inputs"] = [t.numpy() for t in result["inputs"]]
    result["probabilities"] = result["probabilities"].numpy()
    result["weights"] = model.get_weights()
    result["names"] = [v.name for v in model.trainable_variables]
    return result


def sign_flip_report(reference, other, eps):
    """Per binary layer: RMS of the reference input, largest deviation, flips and the largest
    |reference| at a flip, the last two in units of eps * RMS."""
    rows = []
    for a, b in zip(reference, other):
        rms = float(np.sqrt(np.mean(a**2)))
        flips = larq_sign(a) != larq_sign(b)
        rows.append({
            "deviation": float(np.abs(a - b).max()) / (eps * rms),
            "flips": int(flips.sum()),
            "fraction": float(flips.mean()),
            "flip_distance": float(np.abs(a[flips]).max()) / (eps * rms) if flips.any() else 0.0,
        })
    return rows


# ------------------------------------------------------------------- 1. mixed vs float32
# Tolerances, in units of the policy's EPS (times the layer's RMS for quantizer inputs).
# Measured on these models, alike on both stacks and, in their own units, for both formats:
# quantizer inputs deviate by <= 4 eps * RMS (the 16-bit activations, BN and the add of each
# block; up to 8 with RSign, whose threshold is rounded to 16 bits and subtracted from inputs
# of similar size); flips sit at |x| <= 2.7 eps * RMS; probabilities move by <= 0.7 eps.
INPUT_DEVIATION = 12.0
FLIP_DISTANCE = 4.0
# A flip needs |x| below the deviation, which is mostly under 2 eps * RMS; about 1 % (bf16) /
# 0.2 % (fp16) of the elements of a unit-variance layer lie that close to zero, and only
# those whose rounding error points the wrong way flip. Measured: <= 0.25 % / 0.05 %.
FLIP_FRACTION = {"mixed_float16": 0.002, "mixed_bfloat16": 0.006}
PROBABILITY_ATOL = 2.0
# Relative L2 error of each weight gradient, and of all of them concatenated. The plain
# Bi-Real block has no kink in its backward pass (approx_sign's gradient is continuous):
# measured <= 8 eps each, <= 5.4 eps overall. RPReLU and the SE gate's ReLU have kinks: an
# element within ulps of one switches slope, an O(1) change of one term of a per-channel sum,
# and those sums cancel heavily. The float32 model itself is that sensitive: rounding only
# its input image to eps moves ReActNet's per-channel gradients by up to 47 eps. Measured
# with the mixed policies: <= 110 eps each, 36 overall (react); <= 46, 4.7 (se).
GRADIENT_RELATIVE = {"bireal": 16.0, "react": 200.0, "se": 80.0}
GRADIENT_RELATIVE_ALL = {"bireal": 10.0, "react": 64.0, "se": 10.0}


def check_against_float32(variant, policy):
    reference = float32_reference(variant)
    eps = EPS[policy]
    name, overrides = VARIANTS[variant]
    model = build(name, policy, **overrides)
    model.set_weights(reference["weights"])
    probes = attach_probes(model)
    for probe, seen in zip(probes, reference["inputs"]):
        probe.signs = larq_sign(seen)
    x, y = batch()
    # No loss scaling for float16: these gradients neither underflow nor overflow unscaled
    # (with the LossScaleOptimizer's initial 2**15 the stem kernel's gradient overflows,
    # which dynamic scaling handles by skipping the step).
    result = forward_backward(model, probes, x, y)

    assert model.output.dtype == tf.float32 and result["probabilities"].dtype == tf.float32
    inputs = []
    for probe, seen in zip(probes, result["inputs"]):
        assert seen.dtype == tf.float32, probe.quantizer  # the sign is taken in float32
        inputs.append(seen.numpy())
    rows = sign_flip_report(reference["inputs"], inputs, eps)
    layers = [layer.name for layer in binary_layers(model)]
    for layer, row in zip(layers, rows):
        assert row["deviation"] <= INPUT_DEVIATION, (layer, row)
        assert row["flip_distance"] <= FLIP_DISTANCE, (layer, row)
        assert row["fraction"] <= FLIP_FRACTION[policy], (layer, row)
    # The model does compute in reduced precision (else all of the above holds trivially).
    assert max(row["deviation"] for row in rows) > 0.5, rows

    np.testing.assert_allclose(
        result["probabilities"].numpy(), reference["probabilities"], rtol=0,
        atol=PROBABILITY_ATOL * eps)
    assert result["loss"] == pytest.approx(reference["loss"], rel=eps)
    for name, a, b in zip(reference["names"], reference["grads"], result["grads"]):
        assert b.dtype == np.float32, name
        error = relative_error(a, b)
        assert error <= GRADIENT_RELATIVE[variant] * eps, (name, error / eps)
    everything = [np.concatenate([g.ravel() for g in r]) for r in
                  (reference["grads"], result["grads"])]
    assert relative_error(*everything) <= GRADIENT_RELATIVE_ALL[variant] * eps
    return rows


@pytest.mark.parametrize("policy", POLICIES)
def test_mixed_precision_model_matches_float32(policy):
    check_against_float32("bireal", policy)


@pytest.mark.parametrize("policy", POLICIES)
@pytest.mark.parametrize("variant", ["react", "se"])
def test_mixed_precision_variants_match_float32(variant, policy):
    check_against_float32(variant, policy)


# ------------------------------------------------------------------- 2. what stays float32
# Every quantizer of the config's choices is built into one of these (input, kernel):
# approx_sign + magnitude_aware_sign with RSign and a binary classifier; ste_sign +
# magnitude_aware_sign_unscaled in grouped convs; swish_sign (larq's) + ste_sign with SE gates.
DTYPE_MODELS = [
    ("birealnet18_react_small", dict(binary_last_layer=True)),
    ("birealnet18_wide_small", dict(input_quantizer="ste_sign",
                                    kernel_quantizer="magnitude_aware_sign_unscaled")),
    ("birealnet18_se_small", dict(input_quantizer="swish_sign", kernel_quantizer="ste_sign",
                                  se_reduction=2)),
]
# The fused quantizers' compiled kernels (forward and gradient) by the quantizer using them.
KERNELS = {
    "approx_sign": {"_sign", "_approx_sign_grad"},
    "ste_sign": {"_sign", "_clipped_grad"},
    "magnitude_aware_sign": {"_scaled_sign", "_scaled_clipped_grad"},
    "magnitude_aware_sign_unscaled": {"_scaled_sign", "_clipped_grad"},
    "swish_sign": {"SwishSign.call"},
}


def test_dtype_models_use_every_quantizer():
    used = {q for _, o in DTYPE_MODELS for q in (o.get("input_quantizer", "approx_sign"),
                                                  o.get("kernel_quantizer",
                                                        "magnitude_aware_sign"))}
    assert used == set(INPUT_QUANTIZERS) | set(KERNEL_QUANTIZERS) == set(KERNELS)


@pytest.mark.parametrize("policy", POLICIES)
@pytest.mark.parametrize("name,overrides", DTYPE_MODELS, ids=[m[0] for m in DTYPE_MODELS])
def test_quantizers_softmax_and_variables_stay_float32(name, overrides, policy, monkeypatch):
    """builder.py promises that "quantizers (the sign and the mean|W| scale) stay float32
    under mixed precision" and that the model produces float32 probabilities; the runner
    prints "quantizers' signs and the softmax stay float32". Checked on the tensors the
    quantizers actually receive, forward and backward."""
    calls = []

    def recording(label, function):
        def wrapper(*args, **kwargs):
            calls.append((label, [a.dtype for a in args if isinstance(a, tf.Tensor | tf.Variable)]))
            return function(*args, **kwargs)

        return wrapper

    for label in ("_sign", "_approx_sign_grad", "_clipped_grad", "_scaled_sign",
                  "_scaled_clipped_grad"):
        monkeypatch.setattr(quantizers, label, recording(label, getattr(quantizers, label)))
    swish_call = recording("SwishSign.call", lq.quantizers.SwishSign.call)
    # A signature Keras inspects: no `training` argument to pass.
    monkeypatch.setattr(lq.quantizers.SwishSign, "call",
                        lambda self, inputs: swish_call(self, inputs))

    model = build(name, policy, **overrides)
    compute = tf.keras.mixed_precision.Policy(policy).compute_dtype
    x, y = batch()
    with tf.GradientTape() as tape:
        probabilities = model(x, training=True)
        loss = loss_fn(y, probabilities)
    grads = tape.gradient(loss, model.trainable_variables)

    expected = (KERNELS[overrides.get("input_quantizer", "approx_sign")]
                | KERNELS[overrides.get("kernel_quantizer", "magnitude_aware_sign")])
    assert {label for label, _ in calls} == expected
    for label, dtypes in calls:
        assert dtypes and all(d == tf.float32 for d in dtypes), (label, dtypes)
    for layer in binary_layers(model):
        assert layer.compute_dtype == "float32", layer.name
        for quantizer in (layer.input_quantizer, layer.kernel_quantizer):
            assert quantizer.compute_dtype == "float32", (layer.name, quantizer)

    assert model.output.dtype == tf.float32 and probabilities.dtype == tf.float32
    assert model.get_layer("predictions").compute_dtype == "float32"
    assert all(g is not None and g.dtype == tf.float32 for g in grads)
    batchnorms = [layer for layer in iter_layers(model)
                  if isinstance(layer, tf.keras.layers.BatchNormalization)]
    assert batchnorms
    for layer in batchnorms:
        assert layer.compute_dtype == compute, layer.name  # the policy is in effect
        assert len(layer.weights) == 4
        assert all(v.dtype == tf.float32 for v in layer.weights), layer.name
    assert all(v.dtype == tf.float32 for v in model.weights)


# ------------------------------------------------------------------- 3. XLA vs graph
def edge_tensor(clip_value: float, shape=(3, 3, 4, 8), seed=0):
    """Normal values with, in front: exact +-0, +-clip and +-1 and their float32 neighbours
    on both sides, tiny and subnormal magnitudes, and large values."""
    f32 = np.float32
    edges = [0.0, -0.0]
    for c in sorted({1.0, clip_value}):
        c = f32(c)
        for v in (c, np.nextafter(c, f32(0)), np.nextafter(c, f32(np.inf))):
            edges += [v, -v]
    edges += [1e-30, -1e-30, 1e-45, -1e-45, 3.0, -3.0, 100.0]
    values = np.random.default_rng(seed).normal(size=int(np.prod(shape))).astype(f32)
    values[: len(edges)] = edges
    return values.reshape(shape), len(edges)


def quantizer_cases():
    """Every quantizer the builder can put into a binary layer: the input quantizers as
    ``quantizers.get(name)`` gives them (clip 1), the kernel quantizers at two clips."""
    cases = []
    for name in INPUT_QUANTIZERS:
        cases.append((f"input:{name}", name, 1.0))
    for name in KERNEL_QUANTIZERS:
        for clip in (1.0, 0.5):
            cases.append((f"kernel:{name}:clip{clip}", name, clip))
    return cases


def make_quantizer(name, clip):
    q = quantizers.get(name, clip)
    return lq.quantizers.get(q) if isinstance(q, str) else q


# The magnitude-aware scale mean|W| is a reduction; XLA sums in another order than TF's
# kernel, so the scale (and the gradient it multiplies) may differ in the last bits (measured:
# 2 units in the last place on both stacks). larq's swish_sign gradient uses tanh and cosh,
# which XLA and Eigen approximate differently; where it is tiny (large |x|) an ulp count is
# meaningless, so it gets SWISH_GRADIENT_RTOL times the largest gradient instead.
# Everything else is element-wise and bit-identical; the signs always are.
FORWARD_ULP = {"magnitude_aware_sign": 4, "magnitude_aware_sign_unscaled": 4}
GRADIENT_ULP = {"magnitude_aware_sign": 4}
SWISH_GRADIENT_RTOL = 2.0**-19  # 16 float32 eps


@pytest.mark.parametrize("label,name,clip", quantizer_cases(),
                         ids=[c[0] for c in quantizer_cases()])
def test_quantizer_under_xla_matches_graph(label, name, clip):
    values, edges = edge_tensor(clip)
    x = tf.constant(values)
    dy = tf.constant(np.random.default_rng(1).normal(size=values.shape).astype("float32"))
    quantizer = make_quantizer(name, clip)

    def value_and_grad(x, dy):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = quantizer(x)
        return y, tape.gradient(y, x, output_gradients=dy)

    y_graph, g_graph = (t.numpy() for t in tf.function(value_and_grad)(x, dy))
    y_xla, g_xla = (t.numpy() for t in tf.function(value_and_grad, jit_compile=True)(x, dy))

    np.testing.assert_array_equal(np.sign(y_xla), np.sign(y_graph))
    for ours, theirs, ulp in ((y_xla, y_graph, FORWARD_ULP.get(name, 0)),
                              (g_xla, g_graph, GRADIENT_ULP.get(name, 0))):
        if ours is g_xla and name == "swish_sign":
            scale = SWISH_GRADIENT_RTOL * np.abs(theirs).max()
            np.testing.assert_allclose(ours, theirs, rtol=SWISH_GRADIENT_RTOL, atol=scale)
        elif ulp:
            np.testing.assert_array_max_ulp(ours, theirs, maxulp=ulp)
        else:
            np.testing.assert_array_equal(ours, theirs)

    # The edges behave as documented on both paths: +1 at +-0; for clipped straight-through
    # gradients, |x| == clip passes and the next float32 beyond it does not.
    flat = values.ravel()
    for y, g in ((y_graph, g_graph), (y_xla, g_xla)):
        yf, gf = y.ravel(), g.ravel()
        assert (yf[:2] > 0).all()
        assert set(np.unique(np.sign(yf))) == {-1.0, 1.0}
        if name in ("ste_sign", "magnitude_aware_sign", "magnitude_aware_sign_unscaled"):
            at = np.abs(flat[:edges]) == np.float32(clip)
            beyond = np.abs(flat[:edges]) == np.nextafter(np.float32(clip), np.float32(np.inf))
            assert at.any() and beyond.any()
            assert (gf[:edges][at] != 0).all() and (gf[:edges][beyond] == 0).all()


# Within float32 the XLA and graph paths differ by the order of the convolutions' and BN's
# sums. Measured on the model below (both stacks): quantizer inputs deviate by <= 1.7e-5 RMS
# (2.6e-6, ~20 float32 eps, at the first binary layer, growing over the 16 blocks), the
# probabilities by <= 3e-7, each weight gradient by <= 1.5e-5 (relative L2).
XLA_INPUT_DEVIATION = 1e-4
XLA_FLIP_DISTANCE = 1e-4
XLA_PROBABILITY_ATOL = 2e-6
XLA_GRADIENT_RELATIVE = 1e-4


def traced_step(model, probes, optimizer=None, jit_compile=False):
    """One forward/backward pass (and update with ``optimizer``) as a tf.function returning
    the probabilities, gradients and the binary layers' quantizer inputs."""

    def step(x, y):
        with tf.GradientTape() as tape:
            probabilities = model(x, training=True)
            loss = loss_fn(y, probabilities)
        grads = tape.gradient(loss, model.trainable_variables)
        if optimizer is not None:
            optimizer.apply_gradients(zip(grads, model.trainable_variables))
        return probabilities, grads, [p.seen for p in probes]

    return tf.function(step, jit_compile=jit_compile)


def compare_xla_run(graph, xla, names):
    rows = sign_flip_report(graph["inputs"], xla["inputs"], eps=1.0)
    for row in rows:
        assert row["deviation"] <= XLA_INPUT_DEVIATION, rows
        assert row["flip_distance"] <= XLA_FLIP_DISTANCE, rows
    np.testing.assert_allclose(xla["probabilities"], graph["probabilities"], rtol=0,
                               atol=XLA_PROBABILITY_ATOL)
    for name, a, b in zip(names, graph["grads"], xla["grads"]):
        assert relative_error(a, b) <= XLA_GRADIENT_RELATIVE, (name, relative_error(a, b))
    return rows


def numpy_run(outputs):
    probabilities, grads, inputs = outputs
    return {"probabilities": probabilities.numpy(), "grads": [g.numpy() for g in grads],
            "inputs": [t.numpy() for t in inputs]}


def test_model_forward_and_gradients_under_xla_match_graph():
    reference = float32_reference("bireal")
    name, overrides = VARIANTS["bireal"]
    x, y = (tf.constant(t) for t in batch())
    model = build(name, **overrides)
    model.set_weights(reference["weights"])
    probes = attach_probes(model)
    graph = numpy_run(traced_step(model, probes)(x, y))
    for probe, seen in zip(probes, graph["inputs"]):
        probe.signs = tf.constant(larq_sign(seen))
    xla = numpy_run(traced_step(model, probes, jit_compile=True)(x, y))
    compare_xla_run(graph, xla, reference["names"])


def bop_optimizer():
    """The package's Bop stage optimizer: a CaseOptimizer of Bop (binary kernels) and Adam."""
    from bireal_larq.training.config import OptimizerConfig, StageConfig
    from bireal_larq.training.optimizers import build_optimizer

    stage = StageConfig("bop", 1, optimizer=OptimizerConfig("bop"))
    optimizer = build_optimizer(stage, batch_size=256, steps_per_epoch=2)
    assert isinstance(optimizer, lq.optimizers.CaseOptimizer)
    return optimizer


def check_updates(model, before, graph_after, xla_after, adam_atol=None):
    """Bop's binary kernels: bit-identical; Adam's variables: within ADAM_ULP, or within
    ``adam_atol`` when the gradients themselves differ."""
    binary = 0
    flipped = 0
    for v, w0, a, b in zip(model.trainable_variables, before, graph_after, xla_after):
        if lq.optimizers.Bop.is_binary_variable(v):
            binary += 1
            np.testing.assert_array_equal(b, a, err_msg=v.name)
            flipped += int((np.sign(a) != np.sign(w0)).sum())
        else:
            if adam_atol is None:
                np.testing.assert_array_max_ulp(b, a, maxulp=ADAM_ULP)
            else:
                np.testing.assert_allclose(b, a, rtol=0, atol=adam_atol, err_msg=v.name)
            assert not np.array_equal(a, w0), v.name  # Adam moved it
    assert binary == 16
    return flipped


# Adam's step is lr * m / (sqrt(v) + eps): element-wise, but XLA's sqrt/divide may round
# differently from Eigen's (measured: 2 ulp on identical gradients). When the gradients
# differ (full training steps, ~1e-5 relative), the step moves by a fraction of lr where a
# gradient is near zero (the first steps are ~lr * g / (|g| + eps)): measured <= 5e-4 lr.
ADAM_ULP = 4
ADAM_STEP_ATOL = 2e-3
ADAM_LEARNING_RATE = 1e-3  # OptimizerConfig's default at its reference batch size


def test_case_optimizer_updates_under_xla_match_graph():
    """Two steps of the package's Bop/Adam CaseOptimizer on identical gradients."""
    reference = float32_reference("bireal")
    name, overrides = VARIANTS["bireal"]
    model = build(name, **overrides)
    model.set_weights(reference["weights"])
    variables = model.trainable_variables
    gradients = [reference["grads"]]
    gradients.append(forward_backward(model, attach_probes(model), *batch(seed=1))["grads"])
    before = [v.numpy() for v in variables]
    after = {}
    for jit in (False, True):
        model.set_weights(reference["weights"])
        optimizer = bop_optimizer()

        def apply(grads, optimizer=optimizer):
            optimizer.apply_gradients(zip(grads, variables))

        apply = tf.function(apply, jit_compile=jit)
        for grads in gradients:
            apply([tf.constant(g) for g in grads])
        after[jit] = [v.numpy() for v in variables]
    flipped = check_updates(model, before, after[False], after[True])
    binary = sum(v.numpy().size for v in variables if lq.optimizers.Bop.is_binary_variable(v))
    assert 0 < flipped < binary  # Bop decided both ways


def test_bop_training_steps_under_xla_match_graph():
    """Two full training steps (forward, backward, Bop/Adam update) with and without XLA;
    the XLA run's signs pinned to the graph run's at each step."""
    reference = float32_reference("bireal")
    name, overrides = VARIANTS["bireal"]
    batches = [tuple(tf.constant(t) for t in batch(seed=s)) for s in (0, 1)]
    models, probes, steps = {}, {}, {}
    for jit in (False, True):
        models[jit] = build(name, **overrides)
        models[jit].set_weights(reference["weights"])
        probes[jit] = attach_probes(models[jit])
        steps[jit] = traced_step(models[jit], probes[jit], bop_optimizer(), jit_compile=jit)
    # The pinned signs live in variables so that the compiled step reads new ones each step.
    pins = [tf.Variable(tf.ones((BATCH, *layer.input_shape[1:])), trainable=False)
            for layer in binary_layers(models[True])]
    for probe, pin in zip(probes[True], pins):
        probe.signs = pin
    before = [v.numpy() for v in models[False].trainable_variables]
    for x, y in batches:
        graph = numpy_run(steps[False](x, y))
        for pin, seen in zip(pins, graph["inputs"]):
            pin.assign(larq_sign(seen))
        xla = numpy_run(steps[True](x, y))
        compare_xla_run(graph, xla, reference["names"])
    check_updates(models[False], before,
                  [v.numpy() for v in models[False].trainable_variables],
                  [v.numpy() for v in models[True].trainable_variables],
                  adam_atol=ADAM_STEP_ATOL * ADAM_LEARNING_RATE)
