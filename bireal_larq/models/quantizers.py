"""larq's binarizing quantizers with each pass fused into one XLA kernel.

larq writes the sign and its surrogate gradients as chains of element-wise TF ops: the
forward ``sign(sign(x) + 0.1)`` is three passes over the activations, ApproxSign's gradient
seven (abs, compare, subtract, two multiplies, zeros, select). On CPU each pass is a trip
through memory: alone, sign plus gradient took about three times a ReLU's time on a
study-sized activation (``benchmarks/training.py`` shows the smaller effect on whole
networks). Here the forward and the gradient of each quantizer are one ``jit_compile``
function each: the same arithmetic in the same order, so values and gradients are
bit-identical to larq's (tested), and the rest of the graph stays as it is (XLA compiles only
these small functions).

The classes subclass larq's, keep their arguments and metrics, and are what the builder puts
into every ``QuantConv2D``/``QuantDense`` for the names ``approx_sign``, ``ste_sign`` and
``magnitude_aware_sign`` (and ``magnitude_aware_sign_unscaled``, the authors' weight
gradient). Inference graphs are unchanged: the LCE converter inlines the
functions and sees the same ops (the export tests check the binary layers are found).
"""

from __future__ import annotations

import larq as lq
import tensorflow as tf

_PACKAGE = "bireal_larq"


@tf.function(jit_compile=True)
def _sign(x):
    return lq.math.sign(x)


@tf.function(jit_compile=True)
def _approx_sign_grad(x, dy):
    # larq.quantizers.approx_sign's gradient, same order of operations.
    abs_x = tf.math.abs(x)
    return tf.where(tf.math.less_equal(abs_x, 1.0), (1 - abs_x) * 2 * dy, tf.zeros_like(dy))


@tf.function(jit_compile=True)
def _clipped_grad(x, dy, clip_value):
    return tf.where(tf.math.less_equal(tf.math.abs(x), clip_value), dy, tf.zeros_like(dy))


@tf.function(jit_compile=True)
def _scaled_sign(w, scale):
    return scale * lq.math.sign(w)


@tf.function(jit_compile=True)
def _scaled_clipped_grad(w, dy, scale, clip_value):
    return tf.where(tf.math.less_equal(tf.math.abs(w), clip_value), dy * scale, tf.zeros_like(dy))


@tf.custom_gradient
def approx_sign(x: tf.Tensor) -> tf.Tensor:
    """sign(x) (+1 at 0); gradient 2 - 2|x| on [-1, 1], 0 outside (Bi-Real Net, eq. 6)."""
    return _sign(x), lambda dy: _approx_sign_grad(x, dy)


def ste_sign(x: tf.Tensor, clip_value: float | None = 1.0) -> tf.Tensor:
    """sign(x) (+1 at 0) with the straight-through gradient, zero where |x| > clip_value."""

    @tf.custom_gradient
    def _call(x):
        def grad(dy):
            if clip_value is None:
                return dy
            return _clipped_grad(x, dy, tf.constant(clip_value, x.dtype))

        return _sign(x), grad

    return _call(x)


def magnitude_aware_sign(
    w: tf.Tensor, clip_value: float | None = 1.0, scale_gradient: bool = True
) -> tf.Tensor:
    """mean(|W|) per output channel times sign(W); straight-through gradient (no scale grad).

    With ``scale_gradient`` the gradient is larq's: ``dy * mean(|W|)`` inside the clip window.
    Without, it is the authors' PyTorch ``HardBinaryConv``'s: ``dy`` passed through
    ``clamp(W, -1, 1)``, unscaled. Adam (the Training-Tricks-for-BNNs and PyTorch recipes) is
    nearly blind to that per-channel constant; an SGD recipe takes steps smaller by mean(|W|)
    with larq's.
    """
    w = tf.convert_to_tensor(w)
    # The scale as larq computes it (a small reduction; TF's summation order kept).
    scale = tf.stop_gradient(tf.reduce_mean(tf.abs(w), axis=list(range(len(w.shape) - 1))))

    @tf.custom_gradient
    def _call(w):
        def grad(dy):
            if not scale_gradient:
                if clip_value is None:
                    return dy
                return _clipped_grad(w, dy, tf.constant(clip_value, w.dtype))
            if clip_value is None:
                return dy * scale
            return _scaled_clipped_grad(w, dy, scale, tf.constant(clip_value, w.dtype))

        return _scaled_sign(w, scale), grad

    return _call(w)


@tf.keras.utils.register_keras_serializable(package=_PACKAGE)
class ApproxSign(lq.quantizers.ApproxSign):
    """``larq.quantizers.ApproxSign`` with fused passes."""

    def call(self, inputs):
        return super(lq.quantizers.ApproxSign, self).call(approx_sign(inputs))


@tf.keras.utils.register_keras_serializable(package=_PACKAGE)
class SteSign(lq.quantizers.SteSign):
    """``larq.quantizers.SteSign`` with fused passes."""

    def call(self, inputs):
        return super(lq.quantizers.SteSign, self).call(ste_sign(inputs, self.clip_value))


@tf.keras.utils.register_keras_serializable(package=_PACKAGE)
class MagnitudeAwareSign(lq.quantizers.MagnitudeAwareSign):
    """``larq.quantizers.MagnitudeAwareSign`` with fused passes."""

    def call(self, inputs):
        outputs = magnitude_aware_sign(inputs, self.clip_value)
        return super(lq.quantizers.MagnitudeAwareSign, self).call(outputs)


@tf.keras.utils.register_keras_serializable(package=_PACKAGE)
class MagnitudeAwareSignUnscaled(MagnitudeAwareSign):
    """The same forward pass; the weight gradient of the authors' PyTorch code (``dy`` inside
    the clip window, not scaled by mean(|W|))."""

    def call(self, inputs):
        outputs = magnitude_aware_sign(inputs, self.clip_value, scale_gradient=False)
        return super(lq.quantizers.MagnitudeAwareSign, self).call(outputs)


_BY_NAME = {
    "approx_sign": ApproxSign,
    "ste_sign": SteSign,
    "magnitude_aware_sign": MagnitudeAwareSign,
    "magnitude_aware_sign_unscaled": MagnitudeAwareSignUnscaled,
}
_CLIPPED = (SteSign, MagnitudeAwareSign, MagnitudeAwareSignUnscaled)


def get(name: str | None, clip_value: float = 1.0):
    """The quantizer for a config name: a fused one where there is one, else larq's name.

    ``clip_value``: where the weight quantizers' straight-through gradient stops (|w| >
    clip_value gets none); the builder passes the config's ``weight_clip``, so clipped
    weights and their gradient window agree.
    """
    if name in _BY_NAME:
        cls = _BY_NAME[name]
        return cls(clip_value=clip_value) if cls in _CLIPPED else cls()
    return name


CUSTOM_OBJECTS = {
    tf.keras.utils.get_registered_name(cls): cls
    for cls in (ApproxSign, SteSign, MagnitudeAwareSign, MagnitudeAwareSignUnscaled)
}
