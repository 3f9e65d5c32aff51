"""Custom layers and activations of the Bi-Real Net family.

Every object here is registered as a Keras serializable under the ``bireal_larq`` package
prefix and implements ``get_config``, so a saved model loads back with
:data:`CUSTOM_OBJECTS` (or just by importing this package).
"""

from __future__ import annotations

import larq as lq
import tensorflow as tf

from bireal_larq.models import quantizers

_PACKAGE = "bireal_larq"


@tf.keras.utils.register_keras_serializable(package=_PACKAGE)
def leaky_clip(x: tf.Tensor) -> tf.Tensor:
    """Identity on [-1, 1], slope 0.1 outside (Bi-Real Net's Caffe pre-training step 2).

    The same function is item 16 of Training-Tricks-for-Binarized-Neural-Networks.

    Continuous at +-1: ``0.1 * x + 0.9`` above 1 and ``0.1 * x - 0.9`` below -1.
    """
    return tf.where(tf.abs(x) > 1.0, 0.1 * x + 0.9 * tf.sign(x), x)


@tf.keras.utils.register_keras_serializable(package=_PACKAGE)
def clip(x: tf.Tensor) -> tf.Tensor:
    """``clip(-1, x, 1)``: the last real-valued pre-training step of the Caffe recipe."""
    return tf.clip_by_value(x, -1.0, 1.0)


# The activations that can stand where the sign of a binary layer would be (real-valued twin).
REAL_ACTIVATIONS = {
    "relu": tf.nn.relu,
    "leaky_clip": leaky_clip,
    "clip": clip,
    "identity": tf.identity,
}


@tf.keras.utils.register_keras_serializable(package=_PACKAGE)
class RealActivation(tf.keras.layers.Layer):
    """One of :data:`REAL_ACTIVATIONS` by name. A layer that stores the name, not the
    function: Keras' legacy ``.h5`` model format cannot read back a custom function given to
    ``Activation``, and ``tf.identity`` cannot be read back at all."""

    def __init__(self, kind: str, **kwargs):
        super().__init__(**kwargs)
        if kind not in REAL_ACTIVATIONS:
            raise ValueError(f"kind={kind!r} is invalid; valid: {list(REAL_ACTIVATIONS)}")
        self.kind = kind

    def call(self, inputs):
        return REAL_ACTIVATIONS[self.kind](inputs)

    def get_config(self):
        return {**super().get_config(), "kind": self.kind}


@tf.keras.utils.register_keras_serializable(package=_PACKAGE)
class LearnableBias(tf.keras.layers.Layer):
    """Adds a learnable per-channel bias; ``x - beta`` before a sign is ReActNet's RSign.

    With the bias in front of the quantizer the threshold of the sign becomes learnable per
    channel, while the quantizer itself stays a plain sign that LCE fuses into ``LceQuantize``.
    """

    def build(self, input_shape):
        self.bias = self.add_weight(
            name="bias", shape=(input_shape[-1],), initializer="zeros", trainable=True
        )
        super().build(input_shape)

    def call(self, inputs):
        return inputs + tf.cast(self.bias, inputs.dtype)


@tf.keras.utils.register_keras_serializable(package=_PACKAGE)
class RPReLU(tf.keras.layers.Layer):
    """ReActNet's RPReLU: ``PReLU(x - gamma) + zeta`` with per-channel gamma, zeta and slope."""

    def __init__(self, alpha_initializer: float = 0.25, **kwargs):
        super().__init__(**kwargs)
        self.alpha_initializer = float(alpha_initializer)

    def build(self, input_shape):
        channels = input_shape[-1]
        self.gamma = self.add_weight(name="gamma", shape=(channels,), initializer="zeros")
        self.alpha = self.add_weight(
            name="alpha",
            shape=(channels,),
            initializer=tf.keras.initializers.Constant(self.alpha_initializer),
        )
        self.zeta = self.add_weight(name="zeta", shape=(channels,), initializer="zeros")
        super().build(input_shape)

    def call(self, inputs):
        dtype = inputs.dtype
        x = inputs - tf.cast(self.gamma, dtype)
        x = tf.maximum(x, 0.0) + tf.cast(self.alpha, dtype) * tf.minimum(x, 0.0)
        return x + tf.cast(self.zeta, dtype)

    def get_config(self):
        return {**super().get_config(), "alpha_initializer": self.alpha_initializer}


@tf.keras.utils.register_keras_serializable(package=_PACKAGE)
class Subsample2D(tf.keras.layers.Layer):
    """Keeps every ``stride``-th row and column, starting with the first.

    A stride-1 'same' conv/pool followed by this layer equals PyTorch's stride-s layer with
    symmetric padding k//2 (windows centred on 0, s, 2s, ...). TF's 'same' with stride 2 on an
    even input pads only at the bottom/right (windows centred on 1, 3, ...), so weights trained
    in PyTorch need this alignment to compute the same function.
    """

    def __init__(self, stride: int = 2, **kwargs):
        super().__init__(**kwargs)
        self.stride = int(stride)

    def call(self, inputs):
        return inputs[:, :: self.stride, :: self.stride, :]

    def compute_output_shape(self, input_shape):
        shape = tf.TensorShape(input_shape).as_list()
        for axis in (1, 2):
            if shape[axis] is not None:
                shape[axis] = -(-shape[axis] // self.stride)
        return tf.TensorShape(shape)

    def get_config(self):
        return {**super().get_config(), "stride": self.stride}


def grouped_conv2d_gradients(x, w, dy, strides, padding: str, dilations, groups: int):
    """Gradients (d/dx, d/dw) of a grouped 2-D convolution (NHWC), one group at a time.

    TF has a CPU kernel for the forward grouped Conv2D but none for its gradients, which is why
    Keras runs every grouped conv through XLA, whose CPU convolution gradients are far slower
    than these ungrouped backprop ops applied to each group (the ``wide_grouped`` row of the
    tricks study, results/fashion_mnist.md, trains with these ops).
    """
    strides = [1, *strides, 1]
    dilations = [1, *dilations, 1]
    xs = tf.split(x, groups, axis=-1)
    ws = tf.split(w, groups, axis=-1)
    dys = tf.split(dy, groups, axis=-1)
    dx = [
        tf.raw_ops.Conv2DBackpropInput(
            input_sizes=tf.shape(xi), filter=wi, out_backprop=dyi, strides=strides,
            padding=padding, dilations=dilations)
        for xi, wi, dyi in zip(xs, ws, dys)
    ]
    dw = [
        tf.raw_ops.Conv2DBackpropFilter(
            input=xi, filter_sizes=tf.shape(wi), out_backprop=dyi, strides=strides,
            padding=padding, dilations=dilations)
        for xi, wi, dyi in zip(xs, ws, dys)
    ]
    return tf.concat(dx, axis=-1), tf.concat(dw, axis=-1)


def _accelerator_present() -> bool:
    return bool(tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("TPU"))


@tf.keras.utils.register_keras_serializable(package=_PACKAGE)
class GroupedQuantConv2D(lq.layers.QuantConv2D):
    """``larq.layers.QuantConv2D`` with ``groups > 1`` that trains at full speed on a CPU.

    Keras sends grouped convs through an XLA-compiled function (TF has no CPU kernel for their
    gradients). On a CPU-only host this layer computes the gradient with
    :func:`grouped_conv2d_gradients` instead, and in training calls TF's own grouped Conv2D for
    the forward, which is faster than XLA's on a CPU. In inference the forward stays Keras's
    XLA function: a plain grouped Conv2D next to a
    BatchNorm is what Grappler fuses into a CPU kernel that refuses groups, and export sees the
    same graph as with Keras's layer. With a GPU or TPU present it is Keras's layer unchanged.
    Quantizers, padding and weights are exactly QuantConv2D's.
    """

    _training_forward = False

    def call(self, inputs, training=None):
        self._training_forward = training is True  # a Python bool at trace time, else infer
        try:
            return super().call(inputs)
        finally:
            self._training_forward = False

    def _jit_compiled_convolution_op(self, inputs, kernel):
        keras_forward = super()._jit_compiled_convolution_op
        if _accelerator_present() or self.data_format != "channels_last":
            return keras_forward(inputs, kernel)
        padding = self.padding.upper() if isinstance(self.padding, str) else self.padding
        strides, dilations = [1, *self.strides, 1], [1, *self.dilation_rate, 1]

        def forward(x, w):
            if self._training_forward:
                return tf.nn.conv2d(x, w, strides, padding, dilations=dilations)
            return keras_forward(x, w)

        @tf.custom_gradient
        def conv(x, w):
            def grad(dy):
                return grouped_conv2d_gradients(
                    x, w, dy, self.strides, padding, self.dilation_rate, self.groups
                )

            return forward(x, w), grad

        return conv(inputs, kernel)


# Keyed by the registered names ("bireal_larq>RPReLU", ...) that saved models refer to.
CUSTOM_OBJECTS = {
    **{
        tf.keras.utils.get_registered_name(obj): obj
        for obj in (leaky_clip, clip, LearnableBias, RPReLU, Subsample2D, GroupedQuantConv2D,
                    RealActivation)
    },
    **quantizers.CUSTOM_OBJECTS,
}
# Keras' legacy .h5 model format looks custom classes up by their plain names. (Not the
# functions: that loader would also turn a layer's string setting of the same name into them.)
CUSTOM_OBJECTS.update({name.split(">")[-1]: obj for name, obj in list(CUSTOM_OBJECTS.items())
                       if isinstance(obj, type)})


def iter_layers(model: tf.keras.Model):
    """Every leaf layer of ``model``, descending into nested models (e.g. a wrapped zoo model)."""
    for layer in model.layers:
        if isinstance(layer, tf.keras.Model):
            yield from iter_layers(layer)
        else:
            yield layer
