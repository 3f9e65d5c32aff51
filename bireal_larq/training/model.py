"""The training model: a zoo model plus its recipe's losses, in a plain ``model.fit``.

:func:`compile_for_recipe` wraps a model from ``create_model`` into a :class:`RecipeModel`
whose ``train_step`` computes the stage's objective (label smoothing, distillation,
feature matching, label refinery, center loss), applies weight decay to the chosen variables
and gradient centralization, and handles loss scaling under mixed precision. In a notebook::

    model = create_model("birealnet18_small", input_shape=(28, 28, 1), num_classes=10)
    trainer = compile_for_recipe(model, stage, batch_size=128, steps_per_epoch=100)
    trainer.fit(train_ds, validation_data=val_ds, epochs=...)

The weights that matter live in ``trainer.student`` (the model passed in). The trainer also
keeps larq's ``FlipRatio`` of every binary kernel (``trainer.flip_ratios``), updated after each
training step, outside the student: its weights and their files are those of the model alone.

[Tricks #n] is item n of Training-Tricks-for-Binarized-Neural-Networks (HolmesShuan, 2019).
"""

from __future__ import annotations

import re

import larq as lq
import tensorflow as tf

from bireal_larq.training import losses
from bireal_larq.training.config import LossConfig, StageConfig
from bireal_larq.training.optimizers import (
    build_optimizer,
    centralize,
    decayed_variables,
    set_trainable,
)

_STAGE_ADD = re.compile(r"^stage(\d+)_block(\d+)(?:_\d+)?_add$")


def stage_output_layers(model: tf.keras.Model) -> list[str]:
    """Names of the stage outputs: the last shortcut ``Add`` of every stage, in order."""
    last: dict[int, str] = {}
    for layer in model.layers:
        match = _STAGE_ADD.match(layer.name)
        if match:
            last[int(match.group(1))] = layer.name
    if not last:
        raise ValueError(
            f"Model {model.name!r} has no stage outputs (layers named 'stage<s>_block<b>_add'); "
            "feature matching needs a Bi-Real Net from the registry"
        )
    return [last[s] for s in sorted(last)]


def binary_kernels(model: tf.keras.Model) -> list[tuple[str, tf.Variable]]:
    """``(layer name, kernel)`` of every layer of ``model`` with a kernel quantizer, in order: the
    binary weights, whose signs the exported model keeps. The kernel is the latent real-valued
    variable (larq's quantized view of it is used inside the layer only)."""
    return [
        (layer.name, getattr(layer.kernel, "latent_variable", layer.kernel))
        for layer in model.layers
        if getattr(layer, "kernel_quantizer", None) is not None
        and getattr(layer, "kernel", None) is not None
    ]


def kernel_signs(kernel: tf.Variable) -> tf.Tensor:
    """Where ``kernel`` is non-negative: its binary weights' signs, +1 at 0 as larq's sign."""
    return tf.math.greater_equal(kernel, tf.zeros((), kernel.dtype))


def _ends_in_softmax(model: tf.keras.Model) -> bool:
    last = model.layers[-1]
    if isinstance(last, tf.keras.layers.Softmax):
        return True
    activation = getattr(last, "activation", None)
    return getattr(activation, "__name__", None) == "softmax"


def _logits_output(model: tf.keras.Model) -> tf.Tensor:
    """The pre-softmax output; the log of the probabilities for models without "logits".

    Raises:
        ValueError: the model has no "logits" layer and its output is not a softmax (the log
            of logits would be NaN, or silently wrong targets).
    """
    try:
        return model.get_layer("logits").output
    except ValueError:
        if not _ends_in_softmax(model):
            raise ValueError(
                f"Model {model.name!r} has no layer named 'logits' and its last layer "
                f"({model.layers[-1].name!r}) is not a softmax, so its output cannot be read "
                "as probabilities; valid: a model ending in softmax, or with its pre-softmax "
                "layer named 'logits' (every model of the registry)"
            ) from None
        return tf.math.log(tf.cast(model.output, tf.float32) + 1e-12)


class RecipeModel(tf.keras.Model):
    """Trains ``student`` with a stage's objective; ``call`` returns its probabilities."""

    def __init__(
        self,
        student: tf.keras.Model,
        loss: LossConfig,
        *,
        weight_decay: float = 0.0,
        weight_decay_scope: str = "kernels",
        gradient_centralization: bool = False,
        teacher: tf.keras.Model | None = None,
        refinery: tf.keras.Model | None = None,
        name: str = "recipe",
    ):
        super().__init__(name=name)
        if loss.needs_teacher and teacher is None:
            raise ValueError("The stage's loss distils from a teacher; pass teacher=<model>")
        for role, other in (("teacher", teacher), ("refinery", refinery)):
            if other is None:
                continue
            if other is student:
                raise ValueError(f"The {role} is the student itself (it would be frozen and "
                                 f"train nothing); valid: another model, e.g. a copy")
            mine = (tuple(student.input_shape[1:]), student.output_shape[-1])
            theirs = (tuple(other.input_shape[1:]), other.output_shape[-1])
            if theirs != mine:
                raise ValueError(
                    f"The {role} takes {theirs[0]} inputs and gives {theirs[1]} classes, the "
                    f"student {mine[0]} and {mine[1]}; valid: a {role} of the same input shape "
                    "and classes"
                )
        self.student = student
        self.loss_config = loss
        self.weight_decay = float(weight_decay)
        self.weight_decay_scope = weight_decay_scope
        self.gradient_centralization = bool(gradient_centralization)

        outputs = [_logits_output(student), student.output]
        self._num_features = 0
        if teacher is not None and loss.feature_weight > 0:
            names = stage_output_layers(student)
            outputs += [student.get_layer(n).output for n in names]
            self._num_features = len(names)
        self._use_center = loss.center_weight > 0
        if self._use_center:
            embedding = student.get_layer("logits").input
            outputs.append(embedding)
        self.net = tf.keras.Model(student.inputs, outputs, name=f"{student.name}_train")

        self.teacher_net = None
        if teacher is not None and loss.needs_teacher:
            teacher.trainable = False
            t_outputs = [_logits_output(teacher)]
            if self._num_features:
                t_outputs += [teacher.get_layer(n).output for n in stage_output_layers(teacher)]
            self.teacher_net = tf.keras.Model(teacher.inputs, t_outputs, name="teacher")
        self.refinery = refinery
        if refinery is not None:
            refinery.trainable = False

        if self._use_center:
            num_classes, dim = student.output.shape[-1], embedding.shape[-1]
            self.centers = tf.Variable(
                tf.zeros((num_classes, dim)),
                trainable=False,
                name="class_centers",
                aggregation=tf.VariableAggregation.MEAN,
            )
        # larq's FlipRatio per binary kernel: the fraction of its signs a training step changed,
        # averaged over the steps since the last restart_flip_ratios(). Not among ``metrics``:
        # the progress lines and history.csv keep the loss and accuracies only, and evaluation
        # leaves them alone.
        self.flip_ratios: dict[str, lq.metrics.FlipRatio] = {}
        for layer_name, kernel in binary_kernels(student):
            # bool signs: an int8 variable cannot be broadcast by multi-worker collectives
            metric = lq.metrics.FlipRatio(values_dtype="bool", name=f"flip_ratio/{layer_name}")
            metric.build(kernel.shape)
            self.flip_ratios[layer_name] = metric
        self.loss_tracker = tf.keras.metrics.Mean(name="loss")
        self.top1 = tf.keras.metrics.CategoricalAccuracy(name="top1")
        self.top5 = tf.keras.metrics.TopKCategoricalAccuracy(k=5, name="top5")
        # Every weight lives in the wrapped models, which are built: nothing is left for a
        # first call to create (Keras's BackupAndRestore asks for a built model).
        self.built = True

    @property
    def metrics(self):
        return [self.loss_tracker, self.top1, self.top5]

    def call(self, inputs, training=False):
        return self.student(inputs, training=training)

    def _update_flip_ratios(self) -> None:
        for name, kernel in binary_kernels(self.student):
            self.flip_ratios[name].update_state(kernel_signs(kernel))

    def restart_flip_ratios(self) -> None:
        """Starts the flip ratios anew from the kernels' current signs: the next training step's
        flips are the first counted."""
        for metric in self.flip_ratios.values():
            metric.reset_state()
        self._update_flip_ratios()  # the reference the next step is compared with

    def _objective(self, x, targets, outputs):
        cfg = self.loss_config
        logits = tf.cast(outputs[0], tf.float32)
        per_example = cfg.ce_weight * losses.cross_entropy(
            losses.smooth_labels(targets, cfg.label_smoothing), logits
        )
        if self.teacher_net is not None:
            t_outputs = self.teacher_net(x, training=False)
            t_outputs = t_outputs if isinstance(t_outputs, (list, tuple)) else [t_outputs]
            t_logits = tf.stop_gradient(tf.cast(t_outputs[0], tf.float32))
            if cfg.kd_weight > 0:
                per_example += cfg.kd_weight * losses.distillation_kl(
                    t_logits, logits, cfg.temperature
                )
            if self._num_features:
                s_feats = outputs[2 : 2 + self._num_features]
                t_feats = [tf.stop_gradient(f) for f in t_outputs[1:]]
                per_example += cfg.feature_weight * losses.feature_matching(t_feats, s_feats)
        if self._use_center:
            embedding = tf.cast(outputs[-1], tf.float32)
            per_example += cfg.center_weight * losses.center_loss(embedding, targets, self.centers)
        return logits, per_example

    def _labels(self, y) -> tf.Tensor:
        """One-hot (or soft) labels (N, classes) as float32; integer class indices, (N,) or
        (N, 1) as ``tf.keras.datasets`` gives them, are one-hot encoded. Any other shape is
        refused: (N, 1) labels would broadcast against the classes, silently."""
        classes = int(self.student.output_shape[-1])
        if y.dtype.is_integer and (y.shape.rank == 1 or (
                y.shape.rank == 2 and y.shape[-1] == 1 and classes != 1)):
            index = tf.reshape(tf.cast(y, tf.int32), [-1])
            checks = [tf.debugging.assert_non_negative(
                          index, message=f"class indices must be in [0, {classes})"),
                      tf.debugging.assert_less(
                          index, classes, message=f"class indices must be in [0, {classes})")]
            with tf.control_dependencies(checks):
                # XLA (jit_compile) drops assertions: there an index out of range makes its
                # label, and so the loss, NaN instead of an all-zero label trained on silently.
                bad = tf.logical_or(index < 0, index >= classes)[:, None]
                return tf.where(bad, float("nan"), tf.one_hot(index, classes))
        if y.shape.rank != 2 or y.shape[-1] != classes:
            raise ValueError(
                f"Labels of shape {tuple(y.shape)} ({y.dtype.name}) do not fit the model's "
                f"{classes} classes; valid: one-hot or soft labels (N, {classes}), or integer "
                "class indices (N,) or (N, 1)"
            )
        return tf.cast(y, tf.float32)

    @staticmethod
    def _unpack(data):
        x, y, sample_weight = tf.keras.utils.unpack_x_y_sample_weight(data)
        if y is None or sample_weight is not None:
            raise ValueError(
                "RecipeModel trains on (images, labels) batches; "
                + ("labels are missing" if y is None else
                   "sample_weight / class_weight are not supported (the recipe's objective "
                   "weighs every example alike)")
            )
        return x, y

    def _targets(self, x, y):
        if self.refinery is not None:
            # [Tricks #12] label refinery: the previous generation's predictions are the targets.
            y = tf.stop_gradient(tf.cast(self.refinery(x, training=False), tf.float32))
        return y

    def train_step(self, data):
        x, y = self._unpack(data)
        y = self._labels(y)
        targets = self._targets(x, y)
        variables = self.student.trainable_variables
        optimizer = self.optimizer
        scaled = isinstance(optimizer, tf.keras.mixed_precision.LossScaleOptimizer)
        with tf.GradientTape() as tape:
            outputs = self.net(x, training=True)
            logits, per_example = self._objective(x, targets, outputs)
            loss = tf.nn.compute_average_loss(per_example)
            objective = optimizer.get_scaled_loss(loss) if scaled else loss
        gradients = tape.gradient(objective, variables)
        if scaled:
            gradients = optimizer.get_unscaled_gradients(gradients)
        if self.weight_decay:
            # Coupled L2 as PyTorch's ``weight_decay``; summed over replicas after this.
            replicas = tf.distribute.get_strategy().num_replicas_in_sync
            decay = {id(v) for v in decayed_variables(
                self.student, optimizer, self.weight_decay_scope)}
            gradients = [
                g + (self.weight_decay / replicas) * tf.cast(v, g.dtype)
                if id(v) in decay and g is not None
                else g
                for g, v in zip(gradients, variables)
            ]
        if self.gradient_centralization:
            # after the decay term, as the trick's SGD_GC does (the decay is centralized too)
            gradients = [centralize(g, v) for g, v in zip(gradients, variables)]
        optimizer.apply_gradients([(g, v) for g, v in zip(gradients, variables) if g is not None])
        if self._use_center:
            embedding = tf.cast(outputs[-1], tf.float32)
            self.centers.assign(
                losses.center_update(
                    embedding, targets, self.centers, self.loss_config.center_alpha
                )
            )
        self._update_flip_ratios()
        return self._update_metrics(y, outputs[1], per_example)

    def test_step(self, data):
        x, y = self._unpack(data)
        y = self._labels(y)
        outputs = self.net(x, training=False)
        logits = tf.cast(outputs[0], tf.float32)
        return self._update_metrics(y, outputs[1], losses.cross_entropy(y, logits))

    def _update_metrics(self, y, probabilities, per_example):
        y = tf.cast(y, tf.float32)
        probabilities = tf.cast(probabilities, tf.float32)
        self.loss_tracker.update_state(per_example)
        self.top1.update_state(y, probabilities)
        self.top5.update_state(y, probabilities)
        return {m.name: m.result() for m in self.metrics}


def compile_for_recipe(
    model: tf.keras.Model,
    stage: StageConfig,
    *,
    batch_size: int,
    steps_per_epoch: int,
    teacher: tf.keras.Model | None = None,
    refinery: tf.keras.Model | None = None,
    jit_compile: bool = False,
    steps_per_execution: int = 1,
) -> RecipeModel:
    """Compiles ``model`` for one recipe stage; ``.fit`` on the result trains ``model``.

    Call inside ``strategy.scope()`` when distributing. Under a ``mixed_float16`` global
    policy the optimizer gets dynamic loss scaling.

    Args:
        model: a model from ``create_model`` (the student; trained in place).
        stage: the stage: optimizer, schedule, weight decay, losses, what is trainable.
        batch_size: the global batch size (the learning rate scales linearly with it).
        steps_per_epoch: steps per epoch, to convert the schedule's epochs to steps.
        teacher: the teacher for distillation when ``stage.loss`` asks for one.
        refinery: the label-refinery model when ``stage.loss.refinery`` is set.
        jit_compile: compile the train step with XLA.
        steps_per_execution: training steps per call into TensorFlow (Keras' own argument);
            every part of the objective works step by step inside an execution.

    Returns:
        The compiled :class:`RecipeModel`.
    """
    if stage.loss.refinery is not None and refinery is None:
        raise ValueError(f"Stage {stage.name!r} uses a label refinery; pass refinery=<model>")
    set_trainable(model, stage.trainable)
    trainer = RecipeModel(
        model,
        stage.loss,
        weight_decay=stage.weight_decay,
        weight_decay_scope=stage.weight_decay_scope,
        gradient_centralization=stage.optimizer.gradient_centralization,
        teacher=teacher,
        refinery=refinery,
    )
    optimizer = build_optimizer(stage, batch_size=batch_size, steps_per_epoch=steps_per_epoch)
    if tf.keras.mixed_precision.global_policy().name == "mixed_float16":
        optimizer = tf.keras.mixed_precision.LossScaleOptimizer(optimizer)
    if isinstance(steps_per_execution, bool) or not isinstance(steps_per_execution, int) or (
            steps_per_execution < 1):
        raise ValueError(
            f"steps_per_execution={steps_per_execution!r} is invalid; valid: an int >= 1"
        )
    trainer.compile(
        optimizer=optimizer, jit_compile=jit_compile, steps_per_execution=steps_per_execution
    )
    return trainer
