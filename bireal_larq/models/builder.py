"""The one parametrised Bi-Real Net builder.

Every network of the zoo is ``build_model(config)``: the depth comes from the spec table in
:mod:`bireal_larq.models.config`, each trick from a config field. Layer names are stable and
descriptive (``stage2_block1_conv``, ``stage2_block1_shortcut_bn``, ...) so that weights move
between a binary model and its real-valued twin by name, and checkpoints of other
implementations can be mapped onto them.

The default configuration creates its weight-carrying layers in the order of
``larq_zoo.literature.BiRealNet`` (shortcut before the binary conv), so the zoo's ``.h5`` files
load into it directly.

[BR] marks Bi-Real Net (Liu et al., ECCV 2018 / IJCV 2020), [Tricks #n] item n of
Training-Tricks-for-Binarized-Neural-Networks (HolmesShuan, 2019); see docs/references.md.
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence

import larq as lq
import tensorflow as tf

from bireal_larq.models import quantizers
from bireal_larq.models.config import BiRealConfig
from bireal_larq.models.layers import (
    GroupedQuantConv2D,
    LearnableBias,
    RealActivation,
    RPReLU,
    Subsample2D,
)
from bireal_larq.utils import dtype_policy

layers = tf.keras.layers


def default_input_shape(config: BiRealConfig) -> tuple[int, int, int]:
    return (224, 224, 3) if config.stem == "imagenet" else (32, 32, 3)


def _check_input_shape(config: BiRealConfig, input_shape: Sequence) -> tuple:
    valid = "valid: (height, width, channels) of positive ints (or None), e.g. (224, 224, 3)"
    try:
        if isinstance(input_shape, str | bytes):
            raise TypeError
        shape = tuple(input_shape)
    except TypeError:
        raise ValueError(f"input_shape={input_shape!r} is invalid; {valid}") from None
    if len(shape) != 3 or not all(
        d is None or (isinstance(d, numbers.Integral) and not isinstance(d, bool) and d > 0)
        for d in shape
    ):
        raise ValueError(f"input_shape={shape} is invalid; {valid}")
    shape = tuple(None if d is None else int(d) for d in shape)
    height, width, channels = shape
    if channels is None or int(channels) < 1:
        raise ValueError(f"input_shape={shape} has no channels; valid: channels >= 1")
    minimum = config.total_stride()
    for size in (height, width):
        if size is not None and int(size) < minimum:
            raise ValueError(
                f"input_shape={shape} is too small for stem={config.stem!r}: the network "
                f"downsamples by {minimum}, so height and width must be >= {minimum} "
                "(use stem='small' for 28-32 px inputs)"
            )
    return shape


class _Builder:
    """Holds the config while the functional graph is assembled; one instance per model."""

    def __init__(self, config: BiRealConfig):
        self.c = config

    # ------------------------------------------------------------------ primitives
    def bn(self, x, name: str):
        return layers.BatchNormalization(
            momentum=self.c.bn_momentum, epsilon=self.c.bn_epsilon, name=name
        )(x)

    def conv(self, x, filters: int, kernel: int, name: str, stride: int = 1):
        """A real-valued conv (stem, shortcut projections)."""
        if stride > 1 and kernel > 1 and self.c.padding_alignment == "torch":
            x = layers.ZeroPadding2D(kernel // 2, name=f"{name}_pad")(x)
            padding = "valid"
        else:
            padding = "same"
        return layers.Conv2D(
            filters,
            kernel,
            strides=stride,
            padding=padding,
            use_bias=False,
            kernel_initializer=self.c.kernel_initializer,
            name=name,
        )(x)

    def binary_conv(self, x, filters: int, kernel: int, name: str, stride: int = 1, groups=1):
        """Sign (or the twin's activation) -> binary conv, with the config's tricks."""
        c = self.c
        if c.rsign:
            x = LearnableBias(name=f"{name}_rsign")(x)
        if c.input_quantizer is None:
            x = RealActivation(c.real_activation, name=f"{name}_act_in")(x)
        subsample = stride > 1 and kernel > 1 and c.padding_alignment == "torch"
        constraint = None
        if c.kernel_quantizer is not None and c.weight_clip is not None:
            constraint = lq.constraints.WeightClip(c.weight_clip)
        with dtype_policy("float32"):
            conv_class = GroupedQuantConv2D if groups > 1 else lq.layers.QuantConv2D
            conv = conv_class(
                filters,
                kernel,
                strides=1 if subsample else stride,
                padding="same",
                pad_values=c.pad_values,
                groups=groups,
                input_quantizer=quantizers.get(c.input_quantizer),
                kernel_quantizer=quantizers.get(c.kernel_quantizer, c.weight_clip or 1.0),
                kernel_constraint=constraint,
                kernel_initializer=c.kernel_initializer,
                use_bias=False,
                # Quantizers (the sign and the mean|W| scale) stay float32 under mixed precision.
                dtype="float32",
                name=name,
            )
        x = conv(x)
        if subsample:
            x = Subsample2D(stride, name=f"{name}_subsample")(x)
        return x

    def attention(self, y, x_real, name: str):
        """[Tricks #13] y *= SE(x_real): a gate per output channel computed from the real input."""
        if not self.c.channel_attention:
            return y
        out_channels = y.shape[-1]
        squeezed = max(1, x_real.shape[-1] // self.c.se_reduction)
        s = layers.GlobalAveragePooling2D(keepdims=True, name=f"{name}_se_pool")(x_real)
        s = layers.Dense(squeezed, activation="relu", name=f"{name}_se_reduce")(s)
        s = layers.Dense(out_channels, activation="sigmoid", name=f"{name}_se_expand")(s)
        return layers.Multiply(name=f"{name}_se_scale")([y, s])

    def after_add(self, x, name: str):
        if self.c.activation == "prelu":
            # PyTorch's nn.PReLU starts at 0.25 (Keras' PReLU would start at 0).
            return layers.PReLU(
                alpha_initializer=tf.keras.initializers.Constant(0.25),
                shared_axes=[1, 2],
                name=f"{name}_prelu",
            )(x)
        if self.c.activation == "rprelu":
            return RPReLU(name=f"{name}_rprelu")(x)
        return x

    def add(self, tensors, name: str):
        return self.after_add(layers.Add(name=f"{name}_add")(tensors), name)

    def shortcut(self, x, filters: int, stride: int, name: str):
        """Identity, or a full-precision projection when the shape changes."""
        if stride == 1 and x.shape[-1] == filters:
            return x
        kind = self.c.shortcut
        if kind == "bireal":  # [BR] = [Tricks #4] v2
            if stride > 1:
                x = layers.AvgPool2D(stride, strides=stride, padding="same", name=f"{name}_pool")(
                    x
                )
            x = self.conv(x, filters, 1, f"{name}_conv")
            return self.bn(x, f"{name}_bn")
        x = self.conv(x, filters, 1, f"{name}_conv")
        x = self.bn(x, f"{name}_bn")
        if stride > 1:
            pool = stride if kind == "v1" else 3
            return layers.AvgPool2D(pool, strides=stride, padding="same", name=f"{name}_pool")(x)
        if self.c.layout == "catalogue" and self.c.block == "bottleneck":
            # [Tricks #1] the bottleneck's stride-1 branch ends in a 3x3/1 average pool.
            return layers.AvgPool2D(3, strides=1, padding="same", name=f"{name}_pool")(x)
        return x

    # ------------------------------------------------------------------ network parts
    def stem(self, x):
        c = self.c
        filters = int(round(c.base_filters * c.width_multiplier))
        if c.stem == "imagenet":
            kernel, stride = 7, 2
        else:
            kernel, stride = 3, 1
        if c.binary_first_layer:
            x = self.binary_conv(x, filters, kernel, "stem_conv", stride=stride)
        else:
            x = self.conv(x, filters, kernel, "stem_conv", stride=stride)

        def pool(t):
            if c.padding_alignment == "torch":
                t = layers.MaxPool2D(3, strides=1, padding="same", name="stem_pool")(t)
                return Subsample2D(2, name="stem_pool_subsample")(t)
            return layers.MaxPool2D(3, strides=2, padding="same", name="stem_pool")(t)

        def bn_act(t):
            t = self.bn(t, "stem_bn")
            if c.stem_activation == "relu":
                t = layers.ReLU(name="stem_relu")(t)
            return t

        if c.stem == "small":
            return bn_act(x)
        if c.stem_order == "conv_pool_bn":  # [Tricks #11]
            return bn_act(pool(x))
        return pool(bn_act(x))

    def basic_block(self, x, filters: int, stride: int, convs: int, name: str):
        """One shortcut around ``convs`` binary 3x3 convs (1: Bi-Real; 2: ResNet's pairing)."""
        c = self.c
        # Projection first: this is the layer order of larq-zoo's BiRealNet.
        shortcut = self.shortcut(x, filters, stride, f"{name}_shortcut")
        y = x
        for i in range(convs):
            suffix = "" if convs == 1 else str(i + 1)
            s = stride if i == 0 else 1
            if c.layout == "bireal":
                real_in = y
                y = self.binary_conv(y, filters, 3, f"{name}_conv{suffix}", s, c.groups)
                y = self.bn(y, f"{name}_bn{suffix}")
            else:  # [Tricks #1] BN -> sign -> binary conv
                real_in = self.bn(y, f"{name}_bn{suffix}")
                y = self.binary_conv(real_in, filters, 3, f"{name}_conv{suffix}", s, c.groups)
            y = self.attention(y, real_in, f"{name}_conv{suffix}")
        return self.add([y, shortcut], name)

    def bireal_bottleneck(self, x1, x2, planes: int, stride: int, downsample: bool, first: bool,
                          name: str):
        """Bi-Real-50 (IJCV, authors' BiReal_50): every binary conv has its own shortcut.

        Two streams flow between blocks: ``x2`` at the block width and ``x1`` at the mid
        width (the output of the 3x3 stage), which feeds the shortcut of the next 1x1 conv.
        """
        mid = planes // 4
        if first:
            # The very first 1x1 conv is real-valued, fed through a leaky-clip.
            a = RealActivation("leaky_clip", name=f"{name}_leaky_clip")(x2)
            out1 = self.conv(a, mid, 1, f"{name}_conv1")
            out1 = self.bn(out1, f"{name}_bn1")
        else:
            out1 = self.binary_conv(x2, mid, 1, f"{name}_conv1")
            out1 = self.bn(out1, f"{name}_bn1")
            out1 = self.attention(out1, x2, f"{name}_conv1")
            identity = self.conv(x1, mid, 1, f"{name}_mid_shortcut_conv") if downsample else x1
            out1 = self.add([out1, identity], f"{name}_1")

        out2 = self.binary_conv(out1, mid, 3, f"{name}_conv2", stride, self.c.groups)
        out2 = self.bn(out2, f"{name}_bn2")
        out2 = self.attention(out2, out1, f"{name}_conv2")
        identity = out1
        if downsample and stride > 1:
            identity = layers.AvgPool2D(2, strides=2, padding="same", name=f"{name}_mid_pool")(
                out1
            )
        out2 = self.add([out2, identity], f"{name}_2")

        out3 = self.binary_conv(out2, planes, 1, f"{name}_conv3")
        out3 = self.bn(out3, f"{name}_bn3")
        out3 = self.attention(out3, out2, f"{name}_conv3")
        identity = self.shortcut(x2, planes, stride, f"{name}_shortcut") if downsample else x2
        out3 = self.add([out3, identity], f"{name}_3")
        return out2, out3

    def catalogue_bottleneck(self, x, planes: int, stride: int, name: str):
        """[Tricks #1] BN->sign->1x1 (stride), BN->sign->3x3 (+ skip), BN->sign->1x1->BN, branch."""
        mid = planes // 4
        shortcut = self.shortcut(x, planes, stride, f"{name}_shortcut")
        h = self.bn(x, f"{name}_bn1")
        y1 = self.binary_conv(h, mid, 1, f"{name}_conv1", stride)
        y1 = self.attention(y1, h, f"{name}_conv1")
        h = self.bn(y1, f"{name}_bn2")
        y2 = self.binary_conv(h, mid, 3, f"{name}_conv2", 1, self.c.groups)
        y2 = self.attention(y2, h, f"{name}_conv2")
        y2 = layers.Add(name=f"{name}_mid_add")([y2, y1])
        h = self.bn(y2, f"{name}_bn3")
        y3 = self.binary_conv(h, planes, 1, f"{name}_conv3")
        y3 = self.bn(y3, f"{name}_bn4")
        y3 = self.attention(y3, h, f"{name}_conv3")
        return self.add([y3, shortcut], name)

    def body(self, x):
        c = self.c
        filters = c.stage_filters()
        if c.block == "basic":
            convs = 1 if c.double_skip else 2
            for s, (f, repeats) in enumerate(zip(filters, c.stage_repeats)):
                for b in range(repeats // convs):
                    stride = 2 if s > 0 and b == 0 else 1
                    x = self.basic_block(x, f, stride, convs, f"stage{s + 1}_block{b + 1}")
            return x
        if c.layout == "catalogue":
            for s, (f, repeats) in enumerate(zip(filters, c.stage_repeats)):
                for b in range(repeats):
                    stride = 2 if s > 0 and b == 0 else 1
                    x = self.catalogue_bottleneck(x, f, stride, f"stage{s + 1}_block{b + 1}")
            return x
        x1 = x2 = x
        for s, (f, repeats) in enumerate(zip(filters, c.stage_repeats)):
            for b in range(repeats):
                x1, x2 = self.bireal_bottleneck(
                    x1,
                    x2,
                    f,
                    stride=2 if s > 0 and b == 0 else 1,
                    downsample=b == 0,
                    first=s == 0 and b == 0,
                    name=f"stage{s + 1}_block{b + 1}",
                )
        return x2

    def head(self, x, num_classes: int):
        c = self.c
        height, width = x.shape[1], x.shape[2]
        if height is not None and width is not None:
            # A full-size average pool runs faster than GlobalAveragePooling in LCE.
            x = layers.AvgPool2D((height, width), name="global_pool")(x)
            x = layers.Flatten(name="flatten")(x)
        else:
            x = layers.GlobalAveragePooling2D(name="global_pool")(x)
        if c.binary_last_layer:
            if c.rsign:
                x = LearnableBias(name="logits_rsign")(x)
            with dtype_policy("float32"):
                dense = lq.layers.QuantDense(
                    num_classes,
                    input_quantizer=quantizers.get(c.input_quantizer),
                    kernel_quantizer=quantizers.get(c.kernel_quantizer, c.weight_clip or 1.0),
                    # as the binary convs: real-valued weights (stage 1) are not clipped
                    kernel_constraint=(
                        lq.constraints.WeightClip(c.weight_clip)
                        if c.kernel_quantizer is not None and c.weight_clip
                        else None
                    ),
                    dtype="float32",
                    name="logits",
                )
            x = dense(x)
        else:
            x = layers.Dense(num_classes, name="logits")(x)
        return layers.Activation("softmax", dtype="float32", name="predictions")(x)


def build_model(
    config: BiRealConfig,
    *,
    input_shape: Sequence[int | None] | None = None,
    input_tensor: tf.Tensor | None = None,
    include_top: bool = True,
    num_classes: int = 1000,
    name: str = "birealnet",
) -> tf.keras.Model:
    """Builds the Keras model described by ``config`` (Keras Applications conventions).

    Args:
        config: the architecture.
        input_shape: (height, width, channels); default 224x224x3 for the ImageNet stem and
            32x32x3 for the small-input stem.
        input_tensor: optional Keras tensor to use as the image input.
        include_top: whether to add global pooling, the classifier and the softmax.
        num_classes: classifier width (when ``include_top``).
        name: the Keras model name.

    Returns:
        A ``tf.keras.Model`` producing float32 class probabilities (or the last feature map
        without the top).

    Raises:
        ValueError: for an input that is too small or malformed, or a bad ``num_classes``.
    """
    if not isinstance(config, BiRealConfig):
        raise ValueError(f"config must be a BiRealConfig, got {type(config).__name__}")
    if include_top:
        if (not isinstance(num_classes, numbers.Integral) or isinstance(num_classes, bool)
                or num_classes < 2):
            # One class: a softmax of one unit outputs 1.0 whatever the input.
            raise ValueError(f"num_classes={num_classes!r} is invalid; valid: an integer >= 2 "
                             "(2 for a yes/no task)")
        num_classes = int(num_classes)
    if input_tensor is not None:
        if not input_tensor.dtype.is_floating:
            raise ValueError(f"input_tensor has dtype {input_tensor.dtype.name}; valid: a float "
                             "tensor of preprocessed images (cast raw uint8 images first)")
        if input_shape is not None and tuple(input_shape) != tuple(input_tensor.shape[1:]):
            raise ValueError(
                f"input_shape={tuple(input_shape)} disagrees with input_tensor's shape "
                f"{tuple(input_tensor.shape[1:])}; pass only one of them"
            )
        _check_input_shape(config, input_tensor.shape[1:])
        inputs = input_tensor
    else:
        shape = _check_input_shape(
            config, default_input_shape(config) if input_shape is None else input_shape
        )
        inputs = layers.Input(shape=shape, name="image")

    builder = _Builder(config)
    x = builder.stem(inputs)
    x = builder.body(x)
    if include_top:
        x = builder.head(x, num_classes)
    source = tf.keras.utils.get_source_inputs(inputs) if input_tensor is not None else inputs
    model = tf.keras.Model(source, x, name=name)
    model.bireal_config = config  # what save_weights records and load_weights compares
    return model
