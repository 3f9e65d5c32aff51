"""Batch-level mixup [MU] and cutmix [CM] on (images, one-hot labels): soft labels out.

Both mix a batch with a permutation of itself using one lambda ~ Beta(alpha, alpha) per batch,
as the reference implementations do. Labels stay float32 vectors that sum to 1, which is what
categorical cross-entropy (with or without label smoothing) accepts.
"""

from __future__ import annotations

import tensorflow as tf

from bireal_larq.data.preprocessing import split_seed


def sample_beta(seed: tf.Tensor, alpha: float) -> tf.Tensor:
    """One draw of Beta(alpha, alpha) as Ga / (Ga + Gb)."""
    seeds = split_seed(seed, 2)
    a = tf.random.stateless_gamma([], seeds[0], alpha=alpha)
    b = tf.random.stateless_gamma([], seeds[1], alpha=alpha)
    return a / tf.maximum(a + b, 1e-12)


def _permutation(seed: tf.Tensor, n: tf.Tensor) -> tf.Tensor:
    return tf.argsort(tf.random.stateless_uniform([n], seed))


def mixup(
    images: tf.Tensor, labels: tf.Tensor, seed: tf.Tensor, alpha: float
) -> tuple[tf.Tensor, tf.Tensor]:
    """lam * batch + (1 - lam) * permuted batch, for images and labels alike."""
    lam_seed, perm_seed = split_seed(seed, 2)
    lam = sample_beta(lam_seed, alpha)
    perm = _permutation(perm_seed, tf.shape(images)[0])
    images = lam * images + (1.0 - lam) * tf.gather(images, perm)
    labels = lam * labels + (1.0 - lam) * tf.gather(labels, perm)
    return images, labels


def cutmix(
    images: tf.Tensor, labels: tf.Tensor, seed: tf.Tensor, alpha: float
) -> tuple[tf.Tensor, tf.Tensor]:
    """Pastes one box of the permuted batch into every image; labels weighted by box area.

    The box has area fraction 1 - lam and a uniform centre; clipped at the border, the label
    weight uses the clipped area.
    """
    lam_seed, perm_seed, y_seed, x_seed = split_seed(seed, 4)
    lam = sample_beta(lam_seed, alpha)
    perm = _permutation(perm_seed, tf.shape(images)[0])
    shape = tf.shape(images)
    h, w = shape[1], shape[2]
    cut = tf.sqrt(1.0 - lam)
    cut_h = tf.cast(tf.cast(h, tf.float32) * cut, tf.int32)
    cut_w = tf.cast(tf.cast(w, tf.float32) * cut, tf.int32)
    cy = tf.random.stateless_uniform([], y_seed, 0, h, dtype=tf.int32)
    cx = tf.random.stateless_uniform([], x_seed, 0, w, dtype=tf.int32)
    y0, y1 = tf.maximum(cy - cut_h // 2, 0), tf.minimum(cy + cut_h // 2, h)
    x0, x1 = tf.maximum(cx - cut_w // 2, 0), tf.minimum(cx + cut_w // 2, w)
    rows = tf.logical_and(tf.range(h) >= y0, tf.range(h) < y1)
    cols = tf.logical_and(tf.range(w) >= x0, tf.range(w) < x1)
    inside = tf.logical_and(rows[:, None], cols[None, :])[None, :, :, None]
    images = tf.where(inside, tf.gather(images, perm), images)
    kept = 1.0 - tf.cast((y1 - y0) * (x1 - x0), tf.float32) / tf.cast(h * w, tf.float32)
    labels = kept * labels + (1.0 - kept) * tf.gather(labels, perm)
    return images, labels


def mix_batch(
    images: tf.Tensor,
    labels: tf.Tensor,
    seed: tf.Tensor,
    mixup_alpha: float = 0.0,
    cutmix_alpha: float = 0.0,
    cutmix_prob: float = 0.5,
) -> tuple[tf.Tensor, tf.Tensor]:
    """Mixup, cutmix, or (both alphas > 0) one of them chosen per batch with ``cutmix_prob``."""
    if mixup_alpha <= 0 and cutmix_alpha <= 0:
        return images, labels
    labels = tf.cast(labels, tf.float32)
    choice_seed, op_seed = split_seed(seed, 2)
    if cutmix_alpha <= 0:
        return mixup(images, labels, op_seed, mixup_alpha)
    if mixup_alpha <= 0:
        return cutmix(images, labels, op_seed, cutmix_alpha)
    use_cutmix = tf.random.stateless_uniform([], choice_seed) < cutmix_prob
    return tf.cond(
        use_cutmix,
        lambda: cutmix(images, labels, op_seed, cutmix_alpha),
        lambda: mixup(images, labels, op_seed, mixup_alpha),
    )
