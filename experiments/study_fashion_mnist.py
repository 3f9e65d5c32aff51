r"""The tricks study on Fashion-MNIST: tricks of Training-Tricks-for-BNNs, one at a time.

Each row changes one thing of a plain Bi-Real Net on one budget. Tricks are named by their item
number in Training-Tricks-for-Binarized-Neural-Networks (HolmesShuan, 2019); see
docs/study.md for the results and docs/references.md for the sources.

Command::

    python -m bireal_larq.study --suite=fashion_mnist

(resumable: finished configurations are skipped) writes ``results/fashion_mnist.md`` (table
+ bar plot ``results/fashion_mnist.png``), with the runs under
``results/fashion_mnist_runs/<name>``.

Backbone and budget (the same for every row): ``birealnet18_small`` (3x3/1 stem, 28x28x1)
at quarter width (base_filters 16), batch 128, BUDGET_EPOCHS (2) epochs of the 60,000 training
images, Adam at 2e-3 (reference batch 128) decayed linearly to 0, flip + pad-and-crop,
fixed seed 0. The base follows the authors' PyTorch code: Bi-Real blocks, zero padding,
PyTorch's default BatchNorm momentum 0.1 (Keras 0.9), and Bi-Real's own downsampling
shortcut AvgPool -> 1x1 -> BN, which is downsampling v2 of Training-Tricks-for-BNNs item 4:
the plain Bi-Real rows are the v2 rows. Each trick changes only what it names.
Plain Bi-Real also runs with seeds 1 and 2: their spread is the noise floor of the table.
The distillation rows (kd_kl, kd_features and the combinations) learn from the real-valued
twin trained on the long budget (real_valued_twin_long), a converged teacher as in the
papers; its 44 minutes are not in their training minutes. (With the 2-epoch twin as
teacher, the same rows measured kd_kl 86.29, kd_features 87.66, best_combination 89.00 and
best_combination_long 90.03 %.)
The best combination of single tricks then also runs with a long budget (LONG_EPOCHS, 8)
and with the longest the study allows (MAX_EPOCHS, 16, about 1.5-2 hours on 2 cores), each
next to the real-valued twin trained on that budget (the teacher stays the 8-epoch twin).
The 16-epoch combination runs once more with the 16-epoch twin as its teacher
(best_combination_16ep_own_teacher): the only difference from best_combination_16ep is the
teacher, trained as long as the student. The combination (BEST) was chosen from
the single-trick rows, which are scored on the test set (Fashion-MNIST has no separate
validation split here), so its own test score is slightly optimistic.

Expected result: the real-valued twin is the ceiling; see results/fashion_mnist.md for what
was measured (the 2-epoch-teacher numbers above are the only measurements quoted here).
"""

from __future__ import annotations

import dataclasses

from bireal_larq.data import preset
from bireal_larq.training import (
    LossConfig,
    OptimizerConfig,
    ScheduleConfig,
    StageConfig,
    TeacherConfig,
    TrainConfig,
)

# How bireal_larq.study reads the rows: the plain baseline (its seed rows are named
# BASELINE_seedN), rows that combine several tricks (not sorted against the baseline's seed
# range), and the quantity compared.
BASELINE = "bireal"
COMBINATION = "combination"
METRIC = "Fashion-MNIST test top-1 (%), Keras model"
# Pairs of rows whose validation curves are drawn side by side (results/fashion_mnist_curves.png).
CURVES = (("best_combination_16ep", "real_valued_twin_16ep"),)

MODEL = "birealnet18_small"
BUDGET_EPOCHS = 2  # even: the two-stage row splits it in halves
BATCH = 128
BASE_OVERRIDES = {"base_filters": 16, "bn_momentum": 0.9}
SPREAD_SEEDS = (1, 2)
# The real-valued twin on the long budget doubles as the distillation teacher (its run comes
# before every row that distils from it): a converged teacher, as in the papers, not one cut
# short at the rows' own budget. Its training time is not counted in the students' minutes.
TWIN_RUN = "real_valued_twin"
LONG_EPOCHS = 8
TEACHER_RUN = f"{TWIN_RUN}_long"
# The longest budget of the study (about two hours of training on 2 cores): the best
# combination and its real-valued twin once more, with the same teacher.
MAX_EPOCHS = 16
SUFFIXES = {BUDGET_EPOCHS: "", LONG_EPOCHS: "_long", MAX_EPOCHS: f"_{MAX_EPOCHS}ep"}
MAX_TWIN_RUN = f"{TWIN_RUN}{SUFFIXES[MAX_EPOCHS]}"
# The 16-epoch combination also runs once more with the twin of its own budget as teacher
# (row name + TEACHER_SUFFIX): does a teacher trained as long as the student narrow the gap?
TEACHER_SUFFIX = "_own_teacher"


@dataclasses.dataclass(frozen=True)
class StudyEntry:
    name: str
    description: str
    config: TrainConfig
    binary: bool = True
    needs: tuple[str, ...] = ()  # runs that must finish first (e.g. the teacher)


def _stage(name="binary", epochs=BUDGET_EPOCHS, lr=2e-3, **changes) -> StageConfig:
    base = StageConfig(
        name,
        epochs=epochs,
        optimizer=OptimizerConfig("adam", learning_rate=lr, reference_batch_size=BATCH),
        schedule=ScheduleConfig("linear"),
        augment=preset("fashion_mnist"),
    )
    return dataclasses.replace(base, **changes)


def _config(stages=None, seed=0, **overrides) -> TrainConfig:
    return TrainConfig(
        model=MODEL,
        dataset="fashion_mnist",
        stages=tuple(stages or (_stage(),)),
        batch_size=BATCH,
        model_overrides={**BASE_OVERRIDES, **overrides},
        seed=seed,
        experiment="study_fashion_mnist",
    )


def _teacher(results_dir: str, run: str = TEACHER_RUN) -> TeacherConfig:
    return TeacherConfig(
        source="registry",
        model=MODEL,
        weights=f"{results_dir}/{run}/model.weights.h5",
        model_overrides=dict(BASE_OVERRIDES),
        real_valued=True,
    )


# The best combination: every one-stage single trick whose row lies above the seed range of
# plain Bi-Real (results/fashion_mnist.md, "above the seed range"), from all 16 single-trick
# rows, best first. PReLU (86.17) is also above the range but sets the same field as
# RSign + RPReLU (86.45, ReActNet's refinement of it), so only the better one is in.
BEST = ("kd_features", "one_stage_warmup", "channel_attention", "rsign_rprelu", "kd_kl",
        "pad_one", "single_skip")
# LONG_EPOCHS (above) is the long budget of the best combination and of its real-valued twin
# (about an hour each on 2 cores, so the pair fits in one sitting), MAX_EPOCHS the longest
# (about 1.5-2 hours each): the rows that say what the tricks reach when trained longer.


def entries(runs_dir: str) -> list[StudyEntry]:
    """Every configuration of the study, in run order: the twins (the teacher among them)
    first, the longest pair (the combination, then its twin) last."""
    twin_stage = _stage(real_valued=True)
    kl = LossConfig(teacher=_teacher(runs_dir), kd_weight=1.0, ce_weight=1.0, temperature=2.0)
    feat = LossConfig(teacher=_teacher(runs_dir), feature_weight=1.0, ce_weight=1.0)
    half = BUDGET_EPOCHS // 2
    rows = [
        StudyEntry(TWIN_RUN, "real-valued twin (ReLU where the signs are): the ceiling",
                   _config([twin_stage]), binary=False),
        StudyEntry(TEACHER_RUN, f"real-valued twin, {LONG_EPOCHS} epochs (the ceiling of the "
                   "long budget, and the distillation teacher)",
                   _config([_stage(epochs=LONG_EPOCHS, real_valued=True)]), binary=False),
        StudyEntry("bireal", "plain Bi-Real (authors' PyTorch block)", _config()),
        *[StudyEntry(f"bireal_seed{s}", f"plain Bi-Real, seed {s}", _config(seed=s))
          for s in SPREAD_SEEDS],
        StudyEntry("prelu", "item 2: PReLU after every add", _config(activation="prelu")),
        StudyEntry("single_skip", "item 3 reversed: ResNet's one shortcut per two convs "
                   "(Bi-Real already has double skips)", _config(double_skip=False)),
        StudyEntry("downsample_v1", "item 4 v1: 1x1 -> BN -> AvgPool", _config(shortcut="v1")),
        StudyEntry("downsample_v3", "item 4 v3: 1x1 -> BN -> AvgPool 3x3/2",
                   _config(shortcut="v3")),
        StudyEntry("label_smoothing", "item 14: label smoothing 0.1",
                   _config([_stage(loss=LossConfig(label_smoothing=0.1))])),
        StudyEntry("two_stage", "items 5/6/8: binary activations + real weights (wd 1e-5 on "
                   "kernels; the catalogue's code decays every parameter), "
                   "then fully binary from it (wd 0, lr / 5), half the budget each",
                   _config([
                       _stage("stage1", epochs=half, weight_decay=1e-5,
                              model_overrides={"kernel_quantizer": None}),
                       _stage("stage2", epochs=BUDGET_EPOCHS - half, lr=4e-4),
                   ])),
        StudyEntry("one_stage_warmup", "item 8: warm-up at 1/4 of the rate, then 4x",
                   _config([_stage(lr=8e-3, schedule=ScheduleConfig(
                       "linear", warmup_epochs=0.2 * BUDGET_EPOCHS, warmup_factor=0.25,
                       warmup="constant"))])),
        StudyEntry("kd_kl", "item 12: KL distillation from the real-valued twin (T=2)",
                   _config([_stage(loss=kl)]), needs=(TEACHER_RUN,)),
        StudyEntry("kd_features", "item 12: L2-normalised feature matching at stage outputs",
                   _config([_stage(loss=feat)]), needs=(TEACHER_RUN,)),
        StudyEntry("mixup", "item 9: mixup (alpha 0.2)",
                   _config([_stage(augment=preset("fashion_mnist", mixup_alpha=0.2))])),
        StudyEntry("channel_attention", "item 13: SE gate from the real-valued input",
                   _config(channel_attention=True, se_reduction=4)),
        StudyEntry("wide_grouped", "item 15: double width, grouped (4) binary 3x3 convs",
                   _config(width_multiplier=2.0, groups=4)),
        StudyEntry("bn_momentum", "item 10: BN momentum 0.2 (PyTorch sense; Keras 0.8)",
                   _config(bn_momentum=0.8)),
        StudyEntry("grad_centralization", "item 17: gradient centralization",
                   _config([_stage(optimizer=OptimizerConfig(
                       "adam", learning_rate=2e-3, reference_batch_size=BATCH,
                       gradient_centralization=True))])),
        StudyEntry("pad_one", "LCE: pad binary convs with +1 instead of 0",
                   _config(pad_values=1.0)),
        StudyEntry("rsign_rprelu", "ReActNet: learnable sign thresholds + RPReLU",
                   _config(rsign=True, activation="rprelu")),
    ]
    by_name = {r.name: r for r in rows}
    rows.append(_combine(by_name, BEST))
    rows.append(_combine(by_name, BEST, epochs=LONG_EPOCHS))
    rows.append(_combine(by_name, BEST, epochs=MAX_EPOCHS))
    rows.append(StudyEntry(MAX_TWIN_RUN,
                           f"real-valued twin, {MAX_EPOCHS} epochs (the ceiling of the longest "
                           "budget)",
                           _config([_stage(epochs=MAX_EPOCHS, real_valued=True)]),
                           binary=False))
    rows.append(_combine(by_name, BEST, epochs=MAX_EPOCHS,
                         teacher=(MAX_TWIN_RUN, _teacher(runs_dir, MAX_TWIN_RUN))))
    return rows


def _merge(changes: dict, key: str, value, trick: str, part: str) -> None:
    """Adds one trick's change; two tricks setting one field differently cannot combine."""
    if key in changes and changes[key] != value:
        raise ValueError(f"{trick!r} sets {part} field {key!r} to {value!r}, but another trick "
                         f"of the combination set it to {changes[key]!r}; drop one of them")
    changes[key] = value


def _combine(by_name: dict[str, StudyEntry], names: tuple[str, ...],
             epochs: int = BUDGET_EPOCHS,
             teacher: tuple[str, TeacherConfig] | None = None) -> StudyEntry:
    """One configuration with every change of the named single-trick rows.

    Model overrides, and the fields of the loss, optimizer, schedule and augmentation that
    each trick changes, are merged (a warm-up scaled to ``epochs``). Multi-stage tricks cannot
    be merged into one stage and are refused. ``teacher`` (its run's name and its config)
    replaces the distillation teacher of the tricks (TEACHER_RUN); the row's name then ends
    with TEACHER_SUFFIX.
    """
    base = _stage()
    overrides: dict = {}
    # field -> changes of the parts of a stage that tricks change (merged field by field)
    parts = {part: {} for part in ("loss", "optimizer", "schedule", "augment")}
    weight_decay = base.weight_decay
    scope: dict = {}
    for name in names:
        config = by_name[name].config
        if len(config.stages) != 1:
            raise ValueError(f"{name!r} has {len(config.stages)} stages; only one-stage tricks "
                             "combine into BEST")
        for key, value in config.model_overrides.items():
            if BASE_OVERRIDES.get(key, object()) != value:
                _merge(overrides, key, value, name, "model")
        stage = config.stages[0]
        for part, changes in parts.items():
            mine, default = getattr(stage, part), getattr(base, part)
            for field in dataclasses.fields(default):
                if getattr(mine, field.name) != getattr(default, field.name):
                    _merge(changes, field.name, getattr(mine, field.name), name, part)
        weight_decay = max(weight_decay, stage.weight_decay)
        if stage.weight_decay_scope != base.weight_decay_scope:
            _merge(scope, "weight_decay_scope", stage.weight_decay_scope, name, "stage")
    if parts["schedule"].get("warmup_epochs"):
        parts["schedule"]["warmup_epochs"] = round(
            parts["schedule"]["warmup_epochs"] * epochs / BUDGET_EPOCHS, 6)
    stage = _stage(epochs=epochs, weight_decay=weight_decay, **scope,
                   **{part: dataclasses.replace(getattr(base, part), **changes)
                      for part, changes in parts.items()})
    teacher_run = TEACHER_RUN
    if teacher is not None:
        if stage.loss.teacher is None:
            raise ValueError(f"a teacher was given, but none of {names} distils")
        teacher_run = teacher[0]
        stage = dataclasses.replace(stage, loss=dataclasses.replace(stage.loss,
                                                                    teacher=teacher[1]))
    needs = (teacher_run,) if stage.loss.teacher is not None else ()
    if epochs not in SUFFIXES:
        raise ValueError(f"epochs={epochs} is not one of the study's budgets {sorted(SUFFIXES)}")
    suffix = SUFFIXES[epochs] + (TEACHER_SUFFIX if teacher is not None else "")
    budget = "" if epochs == BUDGET_EPOCHS else f", {epochs} epochs"
    if teacher is not None:
        budget += f", teacher {teacher_run}"
    return StudyEntry(f"best_combination{suffix}",
                      f"best combination{budget}: " + " + ".join(names),
                      _config([stage], **overrides), needs=needs)


MODELS = (MODEL,)


def get_config(model: str = MODEL) -> TrainConfig:
    """Plain Bi-Real on the study's backbone and budget (its base row) as a single run."""
    return dataclasses.replace(_config(), model=model)
