"""The frozen description of a training run: optimizer, schedule, losses, stages, the run.

A recipe (an ``experiments/<name>.py`` file) is a :class:`TrainConfig` whose ``stages`` run one
after another, each starting from the previous stage's weights. Durations are epochs; they are
converted to steps once, in :mod:`bireal_larq.training.schedules`, from the run's steps per
epoch. Learning rates are written for a reference batch size and scaled linearly to the run's
batch size in code (:meth:`OptimizerConfig.scaled_learning_rate`).

Every dataclass validates itself on construction; an invalid value raises ``ValueError``
naming the field and the valid values.

Sources:
  [BR]         Bi-Real Net (Liu et al., ECCV 2018 / IJCV 2020) and the authors' PyTorch code
               (``liuzechun/Bi-Real-net``, README "Pytorch Implementation").
  [Tricks #n]  item n of Training-Tricks-for-Binarized-Neural-Networks (HolmesShuan, 2019).
  [ZOO]        larq-zoo ``TrainBiRealNet`` (``larq_zoo/training/basic_experiments.py``).
Full references: docs/references.md.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from bireal_larq.utils import jsonable

OPTIMIZERS = ("adam", "sgd", "bop")
SCHEDULES = ("constant", "linear", "steps", "cosine")
WARMUPS = ("constant", "linear")
TRAINABLE = ("all", "batchnorm")
DECAY_SCOPES = ("kernels", "all")
TEACHER_SOURCES = ("previous", "registry", "model_file")
STRATEGIES = ("auto", "one_device", "mirrored", "multi_worker", "tpu")
# ``TrainConfig.steps_per_execution=None`` ("auto") by the kind of device that trains. A CPU
# runs its ops synchronously, so grouping steps saves only the Python round trip, a small part
# of a CPU step, and 1 keeps progress and resume points at single steps. A GPU step of Bi-Real
# Net takes tens of milliseconds and each execution costs a Python round trip (callbacks,
# dispatch) of about a millisecond: 20 steps make it a few hundredths of a millisecond per
# step. A TPU's steps are shorter and its host round trips longer, hence 100. Both divide the
# default ``backup_every_steps`` (200), so resume points stay where they were.
DEFAULT_STEPS_PER_EXECUTION = {"cpu": 1, "gpu": 20, "tpu": 100}


def _choice(owner: str, name: str, value: Any, valid) -> None:
    if value not in valid:
        raise ValueError(f"{owner}.{name}={value!r} is invalid; valid: {list(valid)}")


def _at_least(owner: str, name: str, value, minimum, *, strict: bool = False) -> None:
    bad = value is None or (value <= minimum if strict else value < minimum)
    if bad:
        op = ">" if strict else ">="
        raise ValueError(f"{owner}.{name}={value!r} is out of range; valid: {op} {minimum}")


@dataclass(frozen=True)
class OptimizerConfig:
    """The optimizer of one stage and its base learning rate.

    The learning rate is given for ``reference_batch_size``; the run's rate is
    ``learning_rate * batch_size / reference_batch_size`` (linear scaling, [BR] README).
    """

    name: str = "adam"  # [Tricks #7] Adam with default betas; "sgd" (momentum); "bop" [larq]
    learning_rate: float = 1e-3
    reference_batch_size: int = 256
    momentum: float = 0.9  # SGD only
    nesterov: bool = False  # SGD only
    epsilon: float = 1e-7  # Adam (Keras default; PyTorch uses 1e-8)
    # Bop flips binary (latent) weights; the other variables use Adam with ``learning_rate``.
    bop_threshold: float = 1e-8
    bop_gamma: float = 1e-4
    gradient_centralization: bool = False  # [Tricks #17] subtract the per-filter gradient mean

    def __post_init__(self):
        owner = "OptimizerConfig"
        _choice(owner, "name", self.name, OPTIMIZERS)
        _at_least(owner, "learning_rate", self.learning_rate, 0.0)
        _at_least(owner, "reference_batch_size", self.reference_batch_size, 1)
        if not 0.0 <= self.momentum < 1.0:
            raise ValueError(f"{owner}.momentum={self.momentum} is out of range; valid: [0, 1)")
        _at_least(owner, "epsilon", self.epsilon, 0.0, strict=True)
        _at_least(owner, "bop_threshold", self.bop_threshold, 0.0, strict=True)
        _at_least(owner, "bop_gamma", self.bop_gamma, 0.0, strict=True)

    def scaled_learning_rate(self, batch_size: int) -> float:
        """The base learning rate scaled linearly from the reference batch to ``batch_size``."""
        return self.learning_rate * batch_size / self.reference_batch_size


@dataclass(frozen=True)
class ScheduleConfig:
    """A learning-rate schedule written in epochs (fractions allowed).

    ``kind``: "constant"; "linear" decays to 0 at the end of the stage; "steps" multiplies by
    ``factors[i]`` at ``boundaries[i]`` (a single factor applies at every boundary); "cosine"
    decays to 0 at the end of the stage. A warm-up of ``warmup_epochs`` runs first at
    ``warmup_factor`` times the rate ("constant", [Tricks #8] one-stage) or ramps up to it
    ("linear").
    ``per_epoch`` steps the rate once per epoch as PyTorch's ``LambdaLR`` does ([BR]).
    """

    kind: str = "constant"
    boundaries: tuple[float, ...] = ()
    factors: tuple[float, ...] = (0.1,)
    warmup_epochs: float = 0.0
    warmup_factor: float = 0.0
    warmup: str = "linear"
    per_epoch: bool = False

    def __post_init__(self):
        owner = "ScheduleConfig"
        object.__setattr__(self, "boundaries", tuple(float(b) for b in self.boundaries))
        object.__setattr__(self, "factors", tuple(float(f) for f in self.factors))
        _choice(owner, "kind", self.kind, SCHEDULES)
        _choice(owner, "warmup", self.warmup, WARMUPS)
        _at_least(owner, "warmup_epochs", self.warmup_epochs, 0.0)
        _at_least(owner, "warmup_factor", self.warmup_factor, 0.0)
        if list(self.boundaries) != sorted(self.boundaries) or any(b <= 0 for b in self.boundaries):
            raise ValueError(
                f"{owner}.boundaries={self.boundaries} is invalid; valid: increasing epochs > 0"
            )
        if self.per_epoch and self.warmup == "linear" and self.warmup_epochs > 0 and (
            self.warmup_factor == 0
        ):
            raise ValueError(
                f"{owner}: per_epoch=True holds the rate for a whole epoch, so a linear warm-up "
                "from warmup_factor=0 trains the first epoch at rate 0; valid: warmup_factor > 0, "
                "warmup='constant', or per_epoch=False"
            )
        if self.kind != "steps" and self.boundaries:
            raise ValueError(
                f"{owner}.boundaries={self.boundaries} would be ignored by kind={self.kind!r}; "
                "valid: boundaries only with kind='steps' (else leave them empty)"
            )
        if self.kind == "steps":
            if not self.boundaries:
                raise ValueError(f"{owner}.boundaries is empty; valid: >= 1 epoch for 'steps'")
            if len(self.factors) not in (1, len(self.boundaries)):
                raise ValueError(
                    f"{owner}.factors={self.factors} is invalid; valid: one factor or one per "
                    f"boundary ({len(self.boundaries)})"
                )


@dataclass(frozen=True)
class TeacherConfig:
    """Where a teacher (knowledge distillation) or a label refinery comes from.

    ``source``: "previous" (the model the previous stage finished with), "registry"
    (``model`` + ``weights`` [+ ``model_overrides``, ``real_valued``]) or "model_file" (a
    saved Keras model at ``path``).
    """

    source: str = "previous"
    model: str | None = None
    weights: str | None = None
    path: str | None = None
    model_overrides: dict[str, Any] = field(default_factory=dict)
    real_valued: bool = False
    twin_activation: str = "relu"

    def __post_init__(self):
        owner = "TeacherConfig"
        _choice(owner, "source", self.source, TEACHER_SOURCES)
        if self.source == "registry" and not (self.model and self.weights):
            # Without weights the teacher would be a freshly initialised network: training
            # would distil from noise, silently.
            raise ValueError(
                f"{owner}.model and .weights are required for source='registry' (got "
                f"model={self.model!r}, weights={self.weights!r}); valid: a registry name and "
                "the trained weights file of that model"
            )
        if self.source == "model_file" and not self.path:
            raise ValueError(f"{owner}.path is required for source='model_file'")


@dataclass(frozen=True)
class LossConfig:
    """The training objective of a stage. All terms work with soft (mixup/cutmix) labels.

    ``ce_weight * CE(smoothed targets) + kd_weight * T^2 KL(teacher_T || student_T)
    + feature_weight * sum_stages ||f_t/|f_t| - f_s/|f_s|||^2 + center_weight * center``.
    With a ``refinery`` the targets are the refinery model's predictions ([Tricks #12] label
    refinery); chaining stages with ``TeacherConfig("previous")`` repeats it for generations.
    """

    label_smoothing: float = 0.0  # [Tricks #14] 0.1 (~+0.5 %)
    ce_weight: float = 1.0
    teacher: TeacherConfig | None = None  # [Tricks #12] knowledge distillation
    kd_weight: float = 0.0  # KL on temperature-softened logits
    temperature: float = 1.0
    feature_weight: float = 0.0  # L2-normalised feature maps at the stage outputs
    refinery: TeacherConfig | None = None  # [Tricks #12] label refinery
    center_weight: float = 0.0  # [Tricks #14] center loss (stage 2)
    center_alpha: float = 0.5  # how fast the class centers follow the features

    def __post_init__(self):
        owner = "LossConfig"
        if not 0.0 <= self.label_smoothing < 1.0:
            raise ValueError(
                f"{owner}.label_smoothing={self.label_smoothing} is out of range; valid: [0, 1)"
            )
        for name in ("ce_weight", "kd_weight", "feature_weight", "center_weight"):
            _at_least(owner, name, getattr(self, name), 0.0)
        _at_least(owner, "temperature", self.temperature, 0.0, strict=True)
        if not 0.0 < self.center_alpha <= 1.0:
            raise ValueError(f"{owner}.center_alpha={self.center_alpha} is invalid; valid: (0, 1]")
        if (self.kd_weight or self.feature_weight) and self.teacher is None:
            raise ValueError(
                f"{owner}.kd_weight/feature_weight need a teacher; valid: set "
                "LossConfig.teacher=TeacherConfig(...) or leave both weights at 0"
            )

    @property
    def needs_teacher(self) -> bool:
        return self.teacher is not None and (self.kd_weight > 0 or self.feature_weight > 0)


@dataclass(frozen=True)
class StageConfig:
    """One stage of a recipe; it starts from the weights the previous stage finished with.

    The stage's network is the run's model with ``model_overrides`` applied; ``real_valued``
    builds its real-valued twin (``twin_activation`` where each sign was). Binary activations
    with real weights ([Tricks #5] stage 1) are ``model_overrides={"kernel_quantizer": None}``.
    ``trainable="batchnorm"`` freezes everything but BatchNorm ([BR] Caffe final step).
    """

    name: str
    epochs: int
    optimizer: OptimizerConfig = field(default_factory=OptimizerConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    # [Tricks #6] coupled L2 (PyTorch's ``weight_decay``) on the variables of
    # ``weight_decay_scope``: "kernels", conv/dense kernels only (not BN, not biases); "all",
    # every trainable variable, as the code of Training-Tricks-for-BNNs does
    # (Adam(model.parameters(), weight_decay=...)). Bop's binary kernels are never decayed.
    weight_decay: float = 0.0
    weight_decay_scope: str = "kernels"
    loss: LossConfig = field(default_factory=LossConfig)
    model_overrides: dict[str, Any] = field(default_factory=dict)
    real_valued: bool = False
    twin_activation: str = "relu"
    trainable: str = "all"
    augment: Any = None  # a bireal_larq.data.AugmentConfig; None: the data package default

    def __post_init__(self):
        owner = f"StageConfig({self.name!r})"
        if not self.name or not self.name.replace("_", "").isalnum():
            raise ValueError(f"StageConfig.name={self.name!r} is invalid; valid: [A-Za-z0-9_]+")
        if not isinstance(self.epochs, int) or self.epochs < 1:
            raise ValueError(f"{owner}.epochs={self.epochs!r} is out of range; valid: an int >= 1")
        _at_least(owner, "weight_decay", self.weight_decay, 0.0)
        _choice(owner, "weight_decay_scope", self.weight_decay_scope, DECAY_SCOPES)
        _choice(owner, "trainable", self.trainable, TRAINABLE)
        _choice(
            owner,
            "twin_activation",
            self.twin_activation,
            ("relu", "leaky_clip", "clip", "identity"),
        )
        if self.optimizer.name == "bop" and self.real_valued:
            raise ValueError(
                f"{owner}: optimizer 'bop' trains binary weights, but the stage is real-valued; "
                "valid: 'adam' or 'sgd'"
            )
        if self.schedule.warmup_epochs >= self.epochs:
            raise ValueError(
                f"{owner}.schedule.warmup_epochs={self.schedule.warmup_epochs} leaves no epoch "
                f"after the warm-up; valid: warmup_epochs < epochs ({self.epochs})"
            )
        for boundary in self.schedule.boundaries:
            if boundary >= self.epochs:
                raise ValueError(
                    f"{owner}.schedule.boundaries={self.schedule.boundaries} must lie inside the "
                    f"stage; valid: epochs < {self.epochs}"
                )


@dataclass(frozen=True)
class TrainConfig:
    """A whole run: model, data, the stages and how to execute them.

    ``input_shape`` / ``num_classes`` default to the dataset's (``dataset_info``).
    ``steps_per_epoch`` / ``validation_steps`` cap an epoch (smoke runs, quick looks).

    ``steps_per_execution``: training steps run per call from Python into TensorFlow (Keras'
    ``compile(steps_per_execution=...)``); None picks it by device
    (:data:`DEFAULT_STEPS_PER_EXECUTION`: 1 on CPU, 20 on GPU, 100 on TPU). Batch callbacks
    (progress, non-finite checks, resume points) run once per execution, so resume points are
    taken at execution boundaries: ``backup_every_steps`` is rounded up to a multiple of it.
    It changes where a run can stop and resume, not the steps it runs (their results agree up
    to floating-point rounding), so a run may be resumed with another value.
    """

    model: str
    dataset: str
    stages: tuple[StageConfig, ...]
    batch_size: int = 256
    model_overrides: dict[str, Any] = field(default_factory=dict)
    input_shape: tuple[int, int, int] | None = None
    num_classes: int | None = None
    data_dir: str | None = None
    manual_dir: str | None = None
    image_size: int | None = None
    dataset_kwargs: dict[str, Any] = field(default_factory=dict)  # e.g. synthetic sizes
    eval_batch_size: int | None = None
    seed: int = 0
    steps_per_epoch: int | None = None
    validation_steps: int | None = None
    strategy: str = "auto"
    mixed_precision: bool = False
    jit_compile: bool = False
    deterministic: bool = False  # TF op determinism: resumed runs match bit for bit
    backup_every_steps: int = 200  # BackupAndRestore frequency (fault tolerance)
    steps_per_execution: int | None = None  # None: by device, DEFAULT_STEPS_PER_EXECUTION
    # Unreadable images (JPEG/imagefolder sources): fail naming the file (default), or skip and
    # count them, failing once more than max_skip_fraction of a pass was unreadable.
    skip_corrupt: bool = False
    max_skip_fraction: float = 0.01
    # Resume mid-epoch at the exact data position by skipping the consumed batches; costs a
    # pass over them, so large recipes turn it off and resume at the start of the data.
    exact_resume: bool = True
    experiment: str | None = None

    def __post_init__(self):
        owner = "TrainConfig"
        object.__setattr__(self, "stages", tuple(self.stages))
        if self.input_shape is not None:
            object.__setattr__(self, "input_shape", tuple(int(d) for d in self.input_shape))
        if not self.stages:
            raise ValueError(f"{owner}.stages is empty; valid: at least one StageConfig")
        names = [s.name for s in self.stages]
        if len(set(names)) != len(names):
            raise ValueError(f"{owner}.stages has duplicate names {names}; valid: unique names")
        _at_least(owner, "batch_size", self.batch_size, 1)
        if self.eval_batch_size is not None:
            _at_least(owner, "eval_batch_size", self.eval_batch_size, 1)
        if self.steps_per_epoch is not None:
            _at_least(owner, "steps_per_epoch", self.steps_per_epoch, 1)
        if self.validation_steps is not None:
            _at_least(owner, "validation_steps", self.validation_steps, 1)
        if self.num_classes is not None:
            _at_least(owner, "num_classes", self.num_classes, 1)
        _at_least(owner, "seed", self.seed, 0)
        _at_least(owner, "backup_every_steps", self.backup_every_steps, 1)
        if self.steps_per_execution is not None and (
            isinstance(self.steps_per_execution, bool)
            or not isinstance(self.steps_per_execution, int)
            or self.steps_per_execution < 1
        ):
            raise ValueError(
                f"{owner}.steps_per_execution={self.steps_per_execution!r} is invalid; valid: "
                "None (by device: "
                + ", ".join(f"{v} on {k.upper()}" for k, v in DEFAULT_STEPS_PER_EXECUTION.items())
                + ") or an int >= 1"
            )
        if not 0.0 <= self.max_skip_fraction <= 1.0:
            raise ValueError(
                f"{owner}.max_skip_fraction={self.max_skip_fraction!r} is out of range; "
                "valid: [0, 1]"
            )
        _choice(owner, "strategy", self.strategy, STRATEGIES)
        for i, stage in enumerate(self.stages):
            for teacher in (stage.loss.teacher, stage.loss.refinery):
                if teacher is not None and teacher.source == "previous" and i == 0:
                    raise ValueError(
                        f"{owner}: stage {stage.name!r} takes its teacher from the previous "
                        "stage but is the first; valid: TeacherConfig(source='registry' or "
                        "'model_file')"
                    )

    @property
    def total_epochs(self) -> float:
        return sum(s.epochs for s in self.stages)

    def replace(self, **changes) -> TrainConfig:
        """A copy with ``changes``; ``None`` values are ignored (unset CLI flags)."""
        return dataclasses.replace(self, **{k: v for k, v in changes.items() if v is not None})

    def to_dict(self) -> dict[str, Any]:
        return jsonable(self)

