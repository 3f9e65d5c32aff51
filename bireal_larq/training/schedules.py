"""Learning-rate schedules written in epochs, converted to optimizer steps once, here."""

from __future__ import annotations

import math

import tensorflow as tf

from bireal_larq.training.config import ScheduleConfig


class EpochSchedule(tf.keras.optimizers.schedules.LearningRateSchedule):
    """A :class:`ScheduleConfig` evaluated at an optimizer step.

    The schedule is a pure function of the step, so a run restored from a backup (which
    restores ``optimizer.iterations``) continues with the right learning rate.
    """

    def __init__(
        self,
        learning_rate: float,
        total_epochs: float,
        steps_per_epoch: int,
        kind: str = "constant",
        boundaries: tuple[float, ...] = (),
        factors: tuple[float, ...] = (0.1,),
        warmup_epochs: float = 0.0,
        warmup_factor: float = 0.0,
        warmup: str = "linear",
        per_epoch: bool = False,
    ):
        super().__init__()
        if steps_per_epoch < 1:
            raise ValueError(f"steps_per_epoch={steps_per_epoch} is invalid; valid: >= 1")
        self.learning_rate = float(learning_rate)
        self.total_epochs = float(total_epochs)
        self.steps_per_epoch = int(steps_per_epoch)
        self.kind = kind
        self.boundaries = tuple(float(b) for b in boundaries)
        self.factors = tuple(float(f) for f in factors)
        self.warmup_epochs = float(warmup_epochs)
        self.warmup_factor = float(warmup_factor)
        self.warmup = warmup
        self.per_epoch = bool(per_epoch)
        # Everything below is in steps: the one place epochs become steps.
        self._total_steps = max(1, int(round(self.total_epochs * self.steps_per_epoch)))
        self._warmup_steps = int(round(self.warmup_epochs * self.steps_per_epoch))
        self._boundary_steps = [int(round(b * self.steps_per_epoch)) for b in self.boundaries]

    def __call__(self, step):
        step = tf.cast(step, tf.float32)
        if self.per_epoch:
            step = tf.floor(step / self.steps_per_epoch) * self.steps_per_epoch
        lr = tf.constant(self.learning_rate, tf.float32)
        total = float(self._total_steps)
        if self.kind == "linear":
            lr = lr * tf.maximum(0.0, 1.0 - step / total)
        elif self.kind == "cosine":
            progress = tf.minimum(1.0, step / total)
            lr = lr * 0.5 * (1.0 + tf.cos(math.pi * progress))
        elif self.kind == "steps":
            factors = self.factors * (len(self._boundary_steps) if len(self.factors) == 1 else 1)
            scale = tf.constant(1.0)
            for boundary, factor in zip(self._boundary_steps, factors):
                scale = tf.where(step >= boundary, scale * factor, scale)
            lr = lr * scale
        if self._warmup_steps > 0:
            if self.warmup == "linear":
                ramp = self.warmup_factor + (1.0 - self.warmup_factor) * step / self._warmup_steps
                warm = self.learning_rate * ramp
            else:
                warm = tf.constant(self.learning_rate * self.warmup_factor)
            lr = tf.where(step < self._warmup_steps, warm, lr)
        return lr

    def get_config(self):
        return {
            "learning_rate": self.learning_rate,
            "total_epochs": self.total_epochs,
            "steps_per_epoch": self.steps_per_epoch,
            "kind": self.kind,
            "boundaries": self.boundaries,
            "factors": self.factors,
            "warmup_epochs": self.warmup_epochs,
            "warmup_factor": self.warmup_factor,
            "warmup": self.warmup,
            "per_epoch": self.per_epoch,
        }


def build_schedule(
    config: ScheduleConfig, learning_rate: float, epochs: float, steps_per_epoch: int
) -> EpochSchedule:
    """The schedule of a stage of ``epochs`` epochs starting at ``learning_rate``."""
    return EpochSchedule(
        learning_rate,
        epochs,
        steps_per_epoch,
        kind=config.kind,
        boundaries=config.boundaries,
        factors=config.factors,
        warmup_epochs=config.warmup_epochs,
        warmup_factor=config.warmup_factor,
        warmup=config.warmup,
        per_epoch=config.per_epoch,
    )
