"""Loss terms of the recipes, as pure per-example functions on float32 tensors.

Every function takes (possibly soft) target distributions, so mixup / cutmix labels, label
smoothing and refinery targets compose freely. Reductions over the batch happen in the
training model, which knows the global batch size under a distribution strategy.

[Tricks #n] is item n of Training-Tricks-for-Binarized-Neural-Networks (HolmesShuan, 2019).
"""

from __future__ import annotations

import tensorflow as tf


def smooth_labels(targets: tf.Tensor, smoothing: float) -> tf.Tensor:
    """[Tricks #14] ``(1 - eps) * y + eps / K`` (CrossEntropyLabelSmooth of the tricks' code)."""
    if not smoothing:
        return targets
    num_classes = tf.cast(tf.shape(targets)[-1], targets.dtype)
    return (1.0 - smoothing) * targets + smoothing / num_classes


def cross_entropy(targets: tf.Tensor, logits: tf.Tensor) -> tf.Tensor:
    """Per-example cross-entropy of soft ``targets`` against ``logits``."""
    return -tf.reduce_sum(targets * tf.nn.log_softmax(logits, axis=-1), axis=-1)


def distillation_kl(
    teacher_logits: tf.Tensor, student_logits: tf.Tensor, temperature: float
) -> tf.Tensor:
    """[Tricks #12] Per-example ``T^2 KL(softmax(t/T) || softmax(s/T))`` (Hinton et al. scaling)."""
    t = tf.nn.log_softmax(teacher_logits / temperature, axis=-1)
    s = tf.nn.log_softmax(student_logits / temperature, axis=-1)
    return temperature**2 * tf.reduce_sum(tf.exp(t) * (t - s), axis=-1)


def feature_matching(teacher_features, student_features) -> tf.Tensor:
    """[Tricks #12] Per-example ``sum_i || F_t/|F_t|_2 - F_s/|F_s|_2 ||_2^2`` over feature maps."""
    total = 0.0
    for t, s in zip(teacher_features, student_features):
        if t.shape[1:] != s.shape[1:]:
            raise ValueError(
                f"Teacher feature map {t.shape[1:]} does not match the student's {s.shape[1:]}; "
                "feature matching needs a teacher of the same topology (e.g. the real-valued "
                "twin)"
            )
        t = tf.math.l2_normalize(tf.reshape(tf.cast(t, tf.float32), [tf.shape(t)[0], -1]), -1)
        s = tf.math.l2_normalize(tf.reshape(tf.cast(s, tf.float32), [tf.shape(s)[0], -1]), -1)
        total += tf.reduce_sum(tf.square(t - s), axis=-1)
    return total


def center_loss(features: tf.Tensor, targets: tf.Tensor, centers: tf.Tensor) -> tf.Tensor:
    """[Tricks #14] Per-example ``0.5 ||f - c_y||^2``; soft targets' center is their mix."""
    target_centers = tf.matmul(targets, centers)
    return 0.5 * tf.reduce_sum(tf.square(features - target_centers), axis=-1)


def center_update(
    features: tf.Tensor, targets: tf.Tensor, centers: tf.Tensor, alpha: float
) -> tf.Tensor:
    """The new class centers: each moves by ``alpha`` towards its batch mean (Wen et al.).

    In a replica context with several replicas the per-class sums and counts are summed over
    the replicas first, so the update is the one of the global batch (every replica computes
    the same centers), not an average of per-replica updates.
    """
    weight = tf.reduce_sum(targets, axis=0)[:, None]  # (K, 1) soft counts
    sums = tf.matmul(targets, features, transpose_a=True)  # (K, D)
    context = tf.distribute.get_replica_context()
    if context is not None and context.num_replicas_in_sync > 1:
        weight, sums = context.all_reduce(tf.distribute.ReduceOp.SUM, [weight, sums])
    delta = (weight * centers - sums) / (1.0 + weight)
    return centers - alpha * delta
