"""Optimizers of a stage, weight decay on chosen variables and gradient centralization.

Keras' legacy optimizers are used throughout because larq's ``Bop`` and ``CaseOptimizer``
are built on them (and mixing the two optimizer families in one model is not possible).

[Tricks #n] is item n of Training-Tricks-for-Binarized-Neural-Networks (HolmesShuan, 2019).
"""

from __future__ import annotations

import larq as lq
import tensorflow as tf

from bireal_larq.models.layers import iter_layers
from bireal_larq.training.config import OptimizerConfig, StageConfig
from bireal_larq.training.schedules import build_schedule

legacy = tf.keras.optimizers.legacy


def build_optimizer(
    stage: StageConfig, *, batch_size: int, steps_per_epoch: int
) -> tf.keras.optimizers.legacy.Optimizer:
    """The optimizer of ``stage`` with its schedule, scaled to ``batch_size``.

    Args:
        stage: the stage (optimizer, schedule and duration).
        batch_size: the global batch size of the run (the learning rate scales linearly).
        steps_per_epoch: optimizer steps per epoch (epochs become steps here).
    """
    config: OptimizerConfig = stage.optimizer
    lr = build_schedule(
        stage.schedule,
        config.scaled_learning_rate(batch_size),
        stage.epochs,
        steps_per_epoch,
    )
    if config.name == "sgd":
        return legacy.SGD(lr, momentum=config.momentum, nesterov=config.nesterov)
    adam = legacy.Adam(lr, epsilon=config.epsilon)
    if config.name == "adam":
        return adam
    # Bop owns the binary (latent) kernels; everything else is trained by Adam.
    return lq.optimizers.CaseOptimizer(
        (
            lq.optimizers.Bop.is_binary_variable,
            lq.optimizers.Bop(threshold=config.bop_threshold, gamma=config.bop_gamma),
        ),
        default_optimizer=adam,
    )


def decayed_variables(
    model: tf.keras.Model, optimizer=None, scope: str = "kernels"
) -> list[tf.Variable]:
    """The variables weight decay applies to: with ``scope="kernels"`` conv and dense
    kernels (not BN, not biases); with ``scope="all"`` every trainable variable.

    With Bop (a ``CaseOptimizer``) the binary kernels it trains are left out: Bop flips a
    weight when its gradient momentum passes a tiny threshold, and a decay term ``wd * w``
    alone passes it, flipping weights every few steps with no signal from the loss.
    """
    if scope not in ("kernels", "all"):
        raise ValueError(f"weight decay scope {scope!r} is invalid; valid: ['kernels', 'all']")
    inner = getattr(optimizer, "inner_optimizer", optimizer)  # a LossScaleOptimizer's
    bop = isinstance(inner, lq.optimizers.CaseOptimizer)
    return [
        v
        for v in model.trainable_variables
        if (scope == "all" or v.name.split("/")[-1].startswith("kernel"))
        and not (bop and lq.optimizers.Bop.is_binary_variable(v))
    ]


def centralize(gradient: tf.Tensor, variable: tf.Variable) -> tf.Tensor:
    """[Tricks #17] Gradient centralization: remove the mean over each output unit's fan-in.

    Applies to kernels (rank > 1); biases and BN parameters are left alone.
    """
    if gradient is None or len(variable.shape) < 2:
        return gradient
    axes = list(range(len(variable.shape) - 1))
    return gradient - tf.reduce_mean(gradient, axis=axes, keepdims=True)


def set_trainable(model: tf.keras.Model, which: str) -> None:
    """ "all": every layer trains (also after an earlier "batchnorm" stage on the same model),
    or "batchnorm": freeze every layer except BatchNormalization ([BR] Caffe)."""
    if which == "all":
        model.trainable = True  # Keras sets every nested layer
        return
    for layer in iter_layers(model):
        layer.trainable = isinstance(layer, tf.keras.layers.BatchNormalization)
