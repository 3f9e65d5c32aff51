"""In-process tests of the training library: configs, schedules, losses, the recipe model,
experiments, CLI flag handling, mixed precision and XLA (tiny models only)."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import subprocess
import sys

import larq as lq
import numpy as np
import pytest
import tensorflow as tf
from train_support import SHAPE, synthetic_config

from bireal_larq.models import create_model, load_weights, save_weights
from bireal_larq.training import (
    LossConfig,
    OptimizerConfig,
    ScheduleConfig,
    StageConfig,
    TeacherConfig,
    TrainConfig,
    build_schedule,
    compile_for_recipe,
    get_experiment,
    get_strategy,
    list_experiments,
    losses,
    run_training,
)
from bireal_larq.training.experiments import load_experiment
from bireal_larq.training.optimizers import decayed_variables
from bireal_larq.training.recipes import with_epochs
from bireal_larq.training.resolve import stage_model_overrides
from bireal_larq.training.rundir import RunDirectoryConflict


def tiny(**overrides):
    return create_model(
        "birealnet18_small", input_shape=SHAPE, num_classes=4, base_filters=8, **overrides
    )


def tiny_data(n=32, batch=8):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(n, *SHAPE)).astype("float32")
    y = tf.one_hot(rng.integers(0, 4, n), 4)
    return tf.data.Dataset.from_tensor_slices((x, y)).batch(batch, drop_remainder=True)


# ----------------------------------------------------------------------------- schedules
def lr_at(schedule, steps):
    return [float(schedule(s)) for s in steps]


def test_linear_schedule_reaches_zero_and_can_step_per_epoch():
    smooth = build_schedule(ScheduleConfig("linear"), 1.0, epochs=4, steps_per_epoch=10)
    np.testing.assert_allclose(lr_at(smooth, [0, 20, 40]), [1.0, 0.5, 0.0], atol=1e-6)
    stepped = build_schedule(ScheduleConfig("linear", per_epoch=True), 1.0, 4, 10)
    np.testing.assert_allclose(lr_at(stepped, [0, 9, 10, 39]), [1.0, 1.0, 0.75, 0.25], atol=1e-6)


def test_step_schedule_with_constant_warmup_is_written_in_epochs():
    config = ScheduleConfig(
        "steps",
        boundaries=(4, 6),
        factors=(0.1,),
        warmup_epochs=1,
        warmup_factor=0.25,
        warmup="constant",
    )
    schedule = build_schedule(config, 4e-3, epochs=8, steps_per_epoch=5)
    np.testing.assert_allclose(
        lr_at(schedule, [0, 4, 5, 19, 20, 30]), [1e-3, 1e-3, 4e-3, 4e-3, 4e-4, 4e-5], rtol=1e-5
    )


def test_cosine_schedule_halves_at_midpoint():
    schedule = build_schedule(ScheduleConfig("cosine"), 2.0, epochs=2, steps_per_epoch=10)
    np.testing.assert_allclose(lr_at(schedule, [0, 10, 20]), [2.0, 1.0, 0.0], atol=1e-6)


def test_learning_rate_scales_linearly_with_batch_size():
    config = OptimizerConfig("adam", learning_rate=1e-3, reference_batch_size=512)
    assert config.scaled_learning_rate(256) == pytest.approx(5e-4)


def test_with_epochs_rescales_boundaries_and_warmup():
    stage = StageConfig(
        "s", 75, schedule=ScheduleConfig("steps", boundaries=(40, 60, 70), warmup_epochs=5)
    )
    short = with_epochs(stage, 15)
    assert short.epochs == 15
    assert short.schedule.boundaries == (8.0, 12.0, 14.0)
    assert short.schedule.warmup_epochs == pytest.approx(1.0)


# ----------------------------------------------------------------------------- validation
@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: OptimizerConfig("rmsprop"), "OptimizerConfig.name='rmsprop' is invalid"),
        (lambda: ScheduleConfig("exp"), "valid: ['constant', 'linear', 'steps', 'cosine']"),
        (lambda: StageConfig("s", 0), "epochs=0 is out of range"),
        (
            lambda: StageConfig("s", 2, schedule=ScheduleConfig("steps", boundaries=(3,))),
            "must lie inside the stage",
        ),
        (
            lambda: ScheduleConfig("linear", warmup_epochs=2, per_epoch=True),
            r"trains the first epoch at rate 0; valid: warmup_factor > 0",
        ),
        (
            lambda: ScheduleConfig("linear", boundaries=(5,)),
            r"would be ignored by kind='linear'; valid: boundaries only with kind='steps'",
        ),
        (
            lambda: StageConfig("s", 2, schedule=ScheduleConfig("linear", warmup_epochs=2)),
            r"warmup_epochs=2 leaves no epoch after the warm-up; valid: warmup_epochs < epochs",
        ),
        (lambda: LossConfig(kd_weight=1.0), "need a teacher"),
        (
            lambda: TrainConfig("birealnet18", "synthetic", (StageConfig("s", 1),), batch_size=0),
            "batch_size=0 is out of range",
        ),
        (
            lambda: TrainConfig(
                "birealnet18", "synthetic", (StageConfig("s", 1),), strategy="horovod"
            ),
            "'one_device', 'mirrored'",
        ),
        (
            lambda: TrainConfig(
                "birealnet18",
                "x",
                (StageConfig("s", 1, loss=LossConfig(refinery=TeacherConfig())),),
            ),
            "is the first",
        ),
    ],
)
def test_invalid_values_name_the_field_and_the_valid_choices(make, message):
    with pytest.raises(ValueError, match=None) as err:
        make()
    assert message in str(err.value)


# ----------------------------------------------------------------------------- losses
def test_label_smoothing_and_losses_on_soft_targets():
    y = tf.constant([[0.0, 1.0, 0.0, 0.0], [0.3, 0.7, 0.0, 0.0]])  # one-hot and mixup
    smoothed = losses.smooth_labels(y, 0.1)
    np.testing.assert_allclose(smoothed.numpy().sum(-1), [1.0, 1.0], rtol=1e-6)
    np.testing.assert_allclose(smoothed[0].numpy(), [0.025, 0.925, 0.025, 0.025], rtol=1e-5)
    logits = tf.constant([[1.0, 2.0, 0.5, -1.0], [0.0, 0.0, 0.0, 0.0]])
    np.testing.assert_allclose(losses.cross_entropy(y, logits)[1], np.log(4.0), rtol=1e-6)
    np.testing.assert_allclose(losses.distillation_kl(logits, logits, 4.0), 0.0, atol=1e-6)
    assert float(losses.distillation_kl(logits, -logits, 2.0)[0]) > 0
    feats = [tf.random.normal((2, 4, 4, 3))]
    np.testing.assert_allclose(losses.feature_matching(feats, [2.0 * feats[0]]), 0.0, atol=1e-5)
    centers = tf.zeros((4, 3))
    moved = losses.center_update(tf.ones((2, 3)), y, centers, alpha=1.0)
    assert float(tf.reduce_sum(moved[1])) > 0 and float(tf.reduce_sum(moved[3])) == 0


# ----------------------------------------------------------------------------- recipe model
def test_weight_decay_applies_to_kernels_only():
    names = [v.name for v in decayed_variables(tiny())]
    assert names and all("kernel" in n for n in names)
    assert not any("bn" in n.split("/")[0] and "kernel" not in n for n in names)


@pytest.mark.parametrize("scope", ["kernels", "all"])
def test_weight_decay_scope_all_also_shrinks_batchnorm_and_biases(scope):
    # The catalogue's code decays every parameter; "kernels" leaves BN and biases alone.
    student = tiny()
    stage = StageConfig("wd", 1, weight_decay=0.5, weight_decay_scope=scope,
                        optimizer=OptimizerConfig("sgd", learning_rate=0.1, momentum=0.0,
                                                  reference_batch_size=8),
                        loss=LossConfig(ce_weight=1e-12))  # next to no signal from the loss
    trainer = compile_for_recipe(student, stage, batch_size=8, steps_per_epoch=1)
    gammas = [v for v in student.trainable_variables if v.name.endswith("gamma:0")]
    biases = [v for v in student.trainable_variables if v.name.endswith("bias:0")]
    assert gammas and biases
    before = {v.name: v.numpy().copy() for v in gammas + biases}
    trainer.fit(tiny_data().take(1), verbose=0)
    for v in gammas + biases:
        shrunk = before[v.name] * (1 - 0.1 * 0.5)  # one SGD step of the decay term alone
        if scope == "all":
            np.testing.assert_allclose(v.numpy(), shrunk, rtol=1e-4, atol=1e-9)
        else:
            np.testing.assert_allclose(v.numpy(), before[v.name], rtol=1e-4, atol=1e-9)
    kernels = {v.name for v in decayed_variables(student, scope="kernels")}
    every = {v.name for v in decayed_variables(student, scope="all")}
    assert kernels < every == {v.name for v in student.trainable_variables}
    with pytest.raises(ValueError, match=r"weight_decay_scope='bn'.*\['kernels', 'all'\]"):
        StageConfig("wd", 1, weight_decay_scope="bn")


def test_bop_keeps_weight_decay_off_the_binary_kernels_it_flips():
    student = tiny()
    stage = StageConfig("bop", 50, optimizer=OptimizerConfig("bop"), weight_decay=1e-5,
                        loss=LossConfig(ce_weight=1e-12))  # next to no signal from the loss
    trainer = compile_for_recipe(student, stage, batch_size=8, steps_per_epoch=4)
    names = {v.name for v in decayed_variables(student, trainer.optimizer)}
    assert "stem_conv/kernel:0" in names and "logits/kernel:0" in names  # Adam's, decayed
    binary = [v for v in student.trainable_variables if lq.optimizers.Bop.is_binary_variable(v)]
    assert len(binary) == 16 and not names & {v.name for v in binary}
    signs = [np.sign(v.numpy()) for v in binary]
    trainer.fit(tiny_data().repeat(), epochs=50, steps_per_epoch=4, verbose=0)
    flips = sum(int((np.sign(v.numpy()) != s).sum()) for v, s in zip(binary, signs))
    assert flips == 0  # the decay term alone used to flip 12,194 signs in these 200 steps


def test_every_loss_term_trains_the_student_in_plain_fit():
    teacher = tiny(input_quantizer=None, kernel_quantizer=None)
    student = tiny()
    before = [w.copy() for w in student.get_weights()]
    stage = StageConfig(
        "kd",
        1,
        optimizer=OptimizerConfig("bop", gradient_centralization=True),
        weight_decay=1e-5,
        loss=LossConfig(
            label_smoothing=0.1,
            teacher=TeacherConfig(),
            kd_weight=1.0,
            temperature=2.0,
            feature_weight=1.0,
            center_weight=0.01,
        ),
    )
    trainer = compile_for_recipe(
        student, stage, batch_size=8, steps_per_epoch=4, teacher=teacher, refinery=tiny()
    )
    history = trainer.fit(tiny_data(), validation_data=tiny_data(), verbose=0)
    assert np.isfinite(history.history["loss"][0])
    assert {"loss", "top1", "top5", "val_top1"} <= set(history.history)
    changed = [not np.array_equal(a, b) for a, b in zip(before, student.get_weights())]
    assert sum(changed) > len(changed) // 2


def test_batchnorm_only_stage_leaves_convolutions_fixed():
    student = tiny(kernel_quantizer="ste_sign")
    kernels = {v.name: v.numpy().copy() for v in student.weights if "kernel" in v.name}
    stage = StageConfig("bn", 1, optimizer=OptimizerConfig("sgd", 0.1), trainable="batchnorm")
    compile_for_recipe(student, stage, batch_size=8, steps_per_epoch=4).fit(tiny_data(), verbose=0)
    for v in student.weights:
        if v.name in kernels:
            np.testing.assert_array_equal(v.numpy(), kernels[v.name])
    assert all("bn" in v.name for v in student.trainable_variables)


def test_mixed_precision_and_xla_train_and_save_float32_weights(tmp_path):
    tf.keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        student = tiny()
        stage = StageConfig("mp", 1)
        compile_for_recipe(student, stage, batch_size=8, steps_per_epoch=4, jit_compile=True).fit(
            tiny_data(), verbose=0
        )
        assert student.get_layer("predictions").compute_dtype == "float32"
        # Quantizers (and so the binary convs) stay float32; the rest computes in bfloat16.
        assert student.get_layer("stage1_block1_conv").compute_dtype == "float32"
        assert student.get_layer("stage1_block1_bn").compute_dtype == "bfloat16"
        path = str(tmp_path / "w.weights.h5")
        save_weights(student, path)
    finally:
        tf.keras.mixed_precision.set_global_policy("float32")
    float_model = tiny()
    load_weights(float_model, path)
    assert all(w.dtype == np.float32 for w in float_model.get_weights())


# ----------------------------------------------------------------------------- experiments
def test_every_experiment_builds_for_every_model_it_lists():
    names = list_experiments()
    published = (
        "authors_pytorch",
        "caffe_paper",
        "catalogue_two_stage",
        "catalogue_one_stage",
        "larq_zoo",
    )
    for name in published:
        assert name in names and f"fmnist_{name}" in names
    assert "catalogue_two_stage_cifar100" in names
    for name in names:
        module = load_experiment(name)
        assert "Command::" in module.__doc__ and "Expected result" in module.__doc__
        for model in module.MODELS:
            config = get_experiment(name, model)
            for stage in config.stages:
                stage_model_overrides(config, stage)  # every stage's network is valid


def test_recipes_match_the_reference_values():
    authors = get_experiment("authors_pytorch", "birealnet50")
    assert authors.batch_size == 256
    assert authors.stages[0].optimizer.scaled_learning_rate(256) == pytest.approx(5e-4)
    assert authors.stages[0].loss.label_smoothing == 0.1
    caffe = get_experiment("caffe_paper", "birealnet34")
    assert [s.name for s in caffe.stages] == [
        "fp_relu",
        "fp_leaky_clip",
        "fp_clip",
        "binary",
        "bn_retrain",
    ]
    binary = caffe.stages[3]
    assert (binary.epochs, caffe.batch_size, binary.schedule.boundaries) == (40, 1024, (20.0, 30.0))
    assert stage_model_overrides(caffe, caffe.stages[1])["real_activation"] == "leaky_clip"
    two = get_experiment("catalogue_two_stage_cifar100", "birealnet18_small")
    assert two.stages[0].weight_decay == 1e-5 and two.stages[1].weight_decay == 0.0
    authors = get_experiment("fmnist_authors_pytorch", "birealnet18_small")
    # the authors' weight gradient survives the Fashion-MNIST version's own overrides
    assert authors.model_overrides == {"kernel_quantizer": "magnitude_aware_sign_unscaled",
                                       "weight_clip": None, "base_filters": 32}
    assert two.stages[0].weight_decay_scope == "all"  # the catalogue's Adam(model.parameters())
    assert two.stages[0].schedule.factors == (0.2,)
    assert stage_model_overrides(two, two.stages[0])["kernel_quantizer"] is None
    with pytest.raises(ValueError, match="valid: \\['birealnet18'\\]"):
        get_experiment("larq_zoo", "birealnet34")
    with pytest.raises(ValueError, match="authors_pytorch"):
        get_experiment("no_such_recipe")


# ----------------------------------------------------------------------------- CLI flags
def test_cli_flags_override_the_experiment(monkeypatch):
    from bireal_larq import train

    argv = [
        "train",
        "--experiment=fmnist_catalogue_two_stage",
        "--output_dir=/tmp/x",
        "--batch_size=64",
        "--epochs=2",
        "--learning_rate=2e-3",
        "--seed=3",
    ]
    train.FLAGS.unparse_flags()
    train.FLAGS(argv)
    try:
        config = train.config_from_flags()
    finally:
        train.FLAGS.unparse_flags()
    assert config.batch_size == 64 and config.seed == 3
    assert [s.epochs for s in config.stages] == [2, 2]
    assert config.stages[0].optimizer.learning_rate == pytest.approx(2e-3)
    assert config.stages[1].optimizer.learning_rate == pytest.approx(4e-4)  # ratio kept


def test_cli_skip_corrupt_flags_reach_the_config(monkeypatch):
    from bireal_larq import train

    def parse(*flags):
        train.FLAGS.unparse_flags()
        train.FLAGS(["train", "--experiment=fmnist_authors_pytorch", "--output_dir=/tmp/x", *flags])
        try:
            return train.config_from_flags()
        finally:
            train.FLAGS.unparse_flags()

    assert not parse().skip_corrupt
    config = parse("--skip_corrupt", "--max_skip_fraction=0.2")
    assert config.skip_corrupt and config.max_skip_fraction == 0.2
    with pytest.raises(ValueError, match="only applies with --skip_corrupt"):
        parse("--max_skip_fraction=0.2")
    with pytest.raises(ValueError, match=r"--max_skip_fraction=1.5 is out of range; valid: \["):
        parse("--skip_corrupt", "--max_skip_fraction=1.5")


def test_an_unreadable_training_image_stops_the_run_by_name_or_is_skipped(tmp_path):
    from data_helpers import bad_image_bytes, make_image_folder, write

    from bireal_larq.data import CorruptImageError
    from bireal_larq.training.evaluation import evaluate_checkpoint

    root = make_image_folder(str(tmp_path / "images"), per_class=4, val_per_class=4)
    for split in ("train", "val"):  # 13 files per split, one unreadable
        write(os.path.join(root, split, "dog", "broken.JPEG"), bad_image_bytes()["corrupt"])

    def config(**changes):
        return TrainConfig(
            model="birealnet18_small",
            dataset="imagefolder",
            data_dir=root,
            image_size=16,
            input_shape=(16, 16, 3),
            model_overrides={"base_filters": 8},
            batch_size=4,
            stages=(StageConfig("binary", 2),),  # 13 images: the second epoch reads them all
            **changes,
        )

    broken = rf"{root}/(train|val)/dog/broken\.JPEG"
    with pytest.raises(CorruptImageError, match=rf"Cannot decode image {broken}.*--skip_corrupt"):
        run_training(config(), str(tmp_path / "strict"), verbose=0)
    lenient = config(skip_corrupt=True, max_skip_fraction=0.1)
    summary = run_training(lenient, str(tmp_path / "skip"), verbose=0)
    assert summary["epochs"] == 2
    # Evaluating the run later skips (and counts) the same way it trained; the skipped image
    # is not counted as evaluated, and the whole pass is still the run's result file.
    from bireal_larq.training.evaluation import result_name

    evaluation = evaluate_checkpoint(str(tmp_path / "skip"), batch_size=4)
    assert 0.0 <= evaluation["top1"] <= 1.0
    assert (evaluation["examples"], evaluation["skipped"], evaluation["test_examples"]) == (
        12, 1, 13)
    assert result_name(evaluation, str(tmp_path / "skip"), 13) == "eval_imagefolder.json"
    # Asked not to skip, it stops naming the file: the data package's error, not TF's.
    with pytest.raises(CorruptImageError, match=rf"Cannot decode image {broken}.*evaluate"):
        evaluate_checkpoint(str(tmp_path / "skip"), batch_size=4, skip_corrupt=False)
    with pytest.raises(ValueError, match="max_skip_fraction only applies with skip_corrupt"):
        evaluate_checkpoint(str(tmp_path / "skip"), batch_size=4, skip_corrupt=False,
                            max_skip_fraction=0.5)
    # The command line: exit status 4 and the message, no traceback; --skip_corrupt skips.
    from train_support import ROOT, env

    def evaluate_cli(*flags):
        return subprocess.run(
            [sys.executable, "-m", "bireal_larq.evaluate", f"--checkpoint={tmp_path}/skip",
             "--batch_size=4", *flags], cwd=ROOT, env=env(), capture_output=True, text=True,
            timeout=300)

    strict = evaluate_cli("--noskip_corrupt")
    assert strict.returncode == 4, strict.stderr[-2000:]
    assert "ERROR: Cannot decode image" in strict.stderr and "Traceback" not in strict.stderr
    lenient = evaluate_cli("--skip_corrupt", "--max_skip_fraction=0.2", "--steps=100")
    assert lenient.returncode == 0, lenient.stderr[-2000:]
    assert "12 images, 1 unreadable skipped" in lenient.stdout
    with pytest.raises(CorruptImageError, match=r"1 of 13 images were unreadable.*0\.05"):
        strict_budget = config(skip_corrupt=True, max_skip_fraction=0.05)
        run_training(strict_budget, str(tmp_path / "budget"), verbose=0)


def test_an_evaluation_of_another_checkpoint_or_part_of_the_split_gets_its_own_file(tmp_path):
    from bireal_larq.training.evaluation import write_result

    run = tmp_path / "run"

    def result(weights, examples):
        return {"top1": 0.5, "top5": 0.9, "loss": 1.0, "dataset": "fashion_mnist",
                "checkpoint": str(run / weights), "examples": examples, "test_examples": 10000}

    run.mkdir()
    final = write_result(result("model.weights.h5", 10000), str(run))
    epoch = "stages/01_binary/checkpoints/epoch_001.weights.h5"
    names = [final, write_result(result(epoch, 8), str(run)),
             write_result(result("stages/02_fine/stage.weights.h5", 10000), str(run)),
             write_result(result("model.weights.h5", 256), str(run))]
    assert [os.path.basename(p) for p in names] == [
        "eval_fashion_mnist.json",  # what the demo's report and the study read
        "eval_fashion_mnist_01_binary_epoch_001_8images.json",
        "eval_fashion_mnist_02_fine_stage.json",
        "eval_fashion_mnist_256images.json",
    ]
    with open(final) as f:
        assert json.load(f)["examples"] == 10000  # not replaced by the partial passes


def test_cli_rejects_unknown_names_before_any_work(tmp_path):
    from train_support import run_train

    result = run_train(
        "--model=birealnet99", "--dataset=synthetic", f"--output_dir={tmp_path / 'run'}"
    )
    assert result.returncode == 1
    assert "Unknown model 'birealnet99'" in result.stderr and "birealnet18" in result.stderr
    assert not os.path.exists(tmp_path / "run")


def test_cli_checks_batch_and_data_before_writing_anything(tmp_path):
    from train_support import run_train

    run = tmp_path / "run"
    result = run_train(
        "--model=birealnet18_small", "--dataset=synthetic", "--batch_size=2048",
        f"--output_dir={run}",
    )
    assert result.returncode == 1, result.stderr
    assert "batch_size=2048 is larger than the 1024 training examples" in result.stderr
    assert "Traceback" not in result.stderr
    # nothing written, so the corrected command is not refused as another configuration
    assert not run.exists()


def test_run_training_refuses_an_augmentation_the_images_cannot_take_before_writing(tmp_path):
    from bireal_larq.data import preset

    config = TrainConfig(
        model="birealnet18_small",
        dataset="synthetic",
        model_overrides={"base_filters": 8},
        dataset_kwargs={"image_shape": SHAPE, "num_examples": {"train": 32, "test": 8}},
        num_classes=4,
        batch_size=8,
        stages=(
            StageConfig("a", 1, augment=preset("none")),
            StageConfig("b", 1, augment=preset("imagenet")),  # Lighting on grey images
        ),
    )
    with pytest.raises(ValueError, match=r"\['lighting_alphastd'\] need RGB images"):
        run_training(config, str(tmp_path / "run"), verbose=0)
    assert not (tmp_path / "run" / "config.json").exists()


def test_cli_dataset_flag_replaces_the_experiments_augmentation(capsys):
    from bireal_larq import train

    train.FLAGS.unparse_flags()
    train.FLAGS(["train", "--experiment=authors_pytorch", "--model=birealnet18",
                 "--dataset=cifar10", "--output_dir=/tmp/x"])
    try:
        config = train.config_from_flags()
    finally:
        train.FLAGS.unparse_flags()
    # ImageNet's crop + Lighting would otherwise be applied to CIFAR silently.
    assert config.dataset == "cifar10"
    assert [s.augment for s in config.stages] == [None] * len(config.stages)
    assert "use cifar10's default augmentation ('cifar' preset)" in capsys.readouterr().err


def test_validation_uses_the_stages_evaluation_resize_ratio(tmp_path):
    from data_helpers import make_image_folder

    from bireal_larq.data import AugmentConfig, get_dataset, preset
    from bireal_larq.training.data import stage_data

    root = make_image_folder(str(tmp_path / "images"), per_class=2, val_per_class=2)
    config = TrainConfig(
        model="birealnet18_small", dataset="imagefolder", data_dir=root, image_size=16,
        batch_size=2, stages=(StageConfig("s", 1),),
    )
    stage = StageConfig("s", 1, augment=preset("imagenet", eval_resize_ratio=1.35))
    data = stage_data(config, stage, tf.distribute.get_strategy())
    images = np.concatenate([x.numpy() for x, _ in data.validation])

    def evaluation(ratio):
        ds, _ = get_dataset("imagefolder", "test", batch_size=2, training=False, data_dir=root,
                            image_size=16, augment=AugmentConfig(eval_resize_ratio=ratio))
        return np.concatenate([x.numpy() for x, _ in ds])

    np.testing.assert_array_equal(images, evaluation(1.35))
    assert np.abs(images - evaluation(256 / 224)).max() > 0.1  # not the default ratio


def test_evaluate_names_a_dataset_that_does_not_fit_the_run(tmp_path):
    from absl import app

    from bireal_larq import evaluate, runs
    from bireal_larq.training.evaluation import evaluate_checkpoint

    model = tiny()  # 16x16x1 input
    model.save_weights(str(tmp_path / "final.h5"))
    os.replace(tmp_path / "final.h5", tmp_path / runs.FINAL_WEIGHTS)
    runs.write_run_config(str(tmp_path), {
        "model": "birealnet18_small", "input_shape": list(SHAPE), "num_classes": 4,
        "dataset": "fashion_mnist", "model_overrides": {"base_filters": 8},
    })
    # another dataset: 3-channel images for a 1-channel model
    with pytest.raises(ValueError, match="gives 3-channel images but the model takes 1 "):
        evaluate_checkpoint(str(tmp_path), "synthetic", batch_size=4)
    argv = ["evaluate", f"--checkpoint={tmp_path}", "--dataset=nosuch"]
    evaluate.FLAGS.unparse_flags()
    evaluate.FLAGS(argv)
    try:
        with pytest.raises(app.UsageError, match="nosuch"):
            evaluate.main(argv[:1])
    finally:
        evaluate.FLAGS.unparse_flags()


# ----------------------------------------------------------------------------- a whole run
@pytest.mark.smoke
def test_run_training_chains_stages_and_writes_the_run_directory(tmp_path):
    config = synthetic_config(
        stages=(
            StageConfig("twin", 1, real_valued=True, twin_activation="clip"),
            StageConfig("binary", 1, loss=LossConfig(refinery=TeacherConfig("previous"))),
        ),
    )
    summary = run_training(config, str(tmp_path), verbose=0)
    for key in ("top1", "top5", "epochs", "wall_time_s", "train_images_per_s"):
        assert key in summary
    assert summary["epochs"] == 2
    stage_seconds = [stage["wall_time_s"] for stage in summary["stages"]]
    assert summary["train_time_s"] == pytest.approx(sum(stage_seconds))
    # Rerunning the finished run trains nothing: its training time is still that of the stages.
    again = run_training(config, str(tmp_path), verbose=0)
    assert again["train_time_s"] == pytest.approx(summary["train_time_s"])
    assert [stage["wall_time_s"] for stage in again["stages"]] == pytest.approx(stage_seconds)
    # A run saved before a TrainConfig field existed resumes when the field is at its default;
    # a real change of that field is still a conflict.
    with open(tmp_path / "config.json") as f:
        saved = json.load(f)
    del saved["skip_corrupt"], saved["max_skip_fraction"]
    for stage in saved["stages"]:  # fields of the nested classes too
        del stage["weight_decay_scope"], stage["optimizer"]["nesterov"]
    with open(tmp_path / "config.json", "w") as f:
        json.dump(saved, f)
    assert run_training(config, str(tmp_path), verbose=0)["epochs"] == 2
    with pytest.raises(RunDirectoryConflict, match="skip_corrupt"):
        run_training(config.replace(skip_corrupt=True), str(tmp_path), verbose=0)
    scoped = config.replace(stages=(dataclasses.replace(config.stages[0],
                                                        weight_decay_scope="all"),
                                    config.stages[1]))
    with pytest.raises(RunDirectoryConflict, match="stages"):
        run_training(scoped, str(tmp_path), verbose=0)
    with open(tmp_path / "config.json") as f:
        saved = json.load(f)
    assert {"model", "model_overrides", "input_shape", "num_classes", "dataset"} <= set(saved)
    model = create_model(
        saved["model"],
        input_shape=tuple(saved["input_shape"]),
        num_classes=saved["num_classes"],
        **saved["model_overrides"],
    )
    load_weights(model, str(tmp_path / "model.weights.h5"))
    assert (tmp_path / "curves.png").exists() and (tmp_path / "history.csv").exists()
    # the binary stage started from the twin's weights
    twin = create_model(
        saved["model"], input_shape=SHAPE, num_classes=4, **saved["stage_model_overrides"]["twin"]
    )
    load_weights(twin, str(tmp_path / "stages" / "01_twin" / "stage.weights.h5"))


def test_mixed_precision_run_on_the_default_strategy(tmp_path):
    # "one_device" (and "auto" on one GPU or CPU) is TF's default strategy, which has no
    # device list: the policy must still be chosen, not crash the run after its checks.
    config = synthetic_config(train=32, strategy="one_device", mixed_precision=True)
    summary = run_training(config, str(tmp_path), verbose=0)
    assert np.isfinite(summary["top1"])
    with open(tmp_path / "config.json") as f:
        assert json.load(f)["dtype_policy"] == "mixed_bfloat16"  # CPU: bfloat16
    assert tf.keras.mixed_precision.global_policy().name == "float32"  # restored


@pytest.mark.parametrize("value, match", [
    ("", None),  # set but empty: as if unset
    ("{not json", "TF_CONFIG is not valid JSON"),
    ("[]", "TF_CONFIG must be a JSON object"),
])
def test_tf_config_is_read_with_clear_errors(monkeypatch, value, match):
    monkeypatch.setenv("TF_CONFIG", value)
    if match is None:
        assert get_strategy("one_device") is tf.distribute.get_strategy()
        with pytest.raises(ValueError, match="needs TF_CONFIG describing the cluster"):
            get_strategy("multi_worker")
    else:
        with pytest.raises(ValueError, match=match):
            get_strategy("auto")


def test_evaluating_a_run_on_an_image_folder_uses_the_runs_classes(tmp_path):
    import shutil

    from data_helpers import make_image_folder

    from bireal_larq import data, runs
    from bireal_larq.training.evaluation import evaluate_checkpoint

    shape = (16, 16, 3)
    model = create_model("birealnet18_small", input_shape=shape, num_classes=3, base_filters=8)
    run = tmp_path / "run"
    run.mkdir()
    model.save_weights(str(run / "final.h5"))
    os.replace(run / "final.h5", run / runs.FINAL_WEIGHTS)
    runs.write_run_config(str(run), {
        "model": "birealnet18_small", "input_shape": list(shape), "num_classes": 3,
        "dataset": "imagefolder", "model_overrides": {"base_filters": 8},
    })
    data.save_class_names(str(run), ["cat", "dog", "emu"])
    # Another folder with val/ only, and without cat: its dogs are still class 1, not 0.
    root = make_image_folder(str(tmp_path / "all"), val_per_class=2)
    subset = tmp_path / "subset"
    for name in ("dog", "emu"):
        shutil.copytree(os.path.join(root, "val", name), subset / "val" / name)
    result = evaluate_checkpoint(str(run), data_dir=str(subset), batch_size=4)
    ds, _ = data.get_dataset("imagefolder", "test", batch_size=4, training=False,
                             data_dir=str(subset), image_size=16, class_names=["cat", "dog",
                                                                               "emu"])
    probs = np.concatenate([model.predict(x, verbose=0) for x, _ in ds])
    labels = np.concatenate([y.numpy().argmax(axis=1) for _, y in ds])
    np.testing.assert_array_equal(labels, [1, 1, 2, 2])
    assert result["examples"] == 4
    assert result["top1"] == pytest.approx(float(np.mean(probs.argmax(axis=1) == labels)))
    # Other data than the run's: its own result file, never the run's eval_imagefolder.json.
    from bireal_larq.training.evaluation import result_name

    name = result_name(result, str(run), result["test_examples"])
    assert re.fullmatch(r"eval_imagefolder_data-subset-[0-9a-f]{6}\.json", name), name
    other = dict(result, data_dir=str(tmp_path / "elsewhere" / "subset"))
    assert result_name(other, str(run), 4) != name  # same folder name, other place
    runs.write_run_config(str(run), dict(runs.read_run_config(str(run)),
                                         data_dir=str(subset)))
    again = evaluate_checkpoint(str(run), data_dir=str(subset) + "/", batch_size=4)
    assert not again["other_data_dir"]
    assert result_name(again, str(run), 4) == "eval_imagefolder.json"
    # A class the model never saw is an error naming the folder.
    shutil.copytree(os.path.join(root, "val", "cat"), subset / "val" / "fox")
    with pytest.raises(ValueError, match=r"val/fox is a class missing from the class list"):
        evaluate_checkpoint(str(run), data_dir=str(subset), batch_size=4)


def test_an_input_shape_that_the_images_do_not_have_is_refused_before_the_run():
    from bireal_larq.training import check_run

    def config(**changes):
        return TrainConfig(
            model="birealnet18_small", dataset="synthetic", num_classes=4, batch_size=8,
            model_overrides={"base_filters": 8}, stages=(StageConfig("binary", 1),),
            dataset_kwargs={"image_shape": (16, 16, 1), "num_examples": 16}, **changes)

    strategy = tf.distribute.get_strategy()
    for shape in ((32, 32, 1), (16, 16, 3)):
        with pytest.raises(ValueError, match=rf"input_shape=\({shape[0]}, .* does not match "
                           r"the images of 'synthetic': 16x16 with 1 channel.*valid: "
                           r"input_shape=\(16, 16, 1\)"):
            check_run(config(input_shape=shape), strategy)  # before anything is written
    # Sized by image_size, the images fit the input.
    resolved = check_run(config(input_shape=(24, 24, 1), image_size=24), strategy)
    assert tuple(resolved["input_shape"]) == (24, 24, 1)
    assert tuple(check_run(config(), strategy)["input_shape"]) == (16, 16, 1)


# ----------------------------------------------------------------------------- misuse
def _one_step_loss(y, seed=3):
    tf.keras.utils.set_random_seed(seed)
    model = tiny()
    trainer = compile_for_recipe(model, StageConfig("s", 1), batch_size=8, steps_per_epoch=1)
    x = np.random.default_rng(0).normal(size=(8, *SHAPE)).astype("float32")
    return trainer.evaluate(x, y, batch_size=8, verbose=0, return_dict=True)


def test_integer_labels_are_one_hot_encoded_and_other_shapes_refused():
    index = np.array([0, 1, 2, 3, 3, 2, 1, 0])
    reference = _one_step_loss(tf.one_hot(index, 4).numpy())
    # tf.keras.datasets gives (N, 1) integer labels; they used to broadcast against the
    # classes and give another loss and another top-1, silently.
    for labels in (index, index[:, None], index.astype(np.uint8)[:, None]):
        result = _one_step_loss(labels)
        assert result["loss"] == pytest.approx(reference["loss"], rel=1e-6)
        assert result["top1"] == pytest.approx(reference["top1"])
    with pytest.raises(ValueError, match=r"Labels of shape \((8|None), 1\) \(float32\) do not fit "
                       r"the model's 4 classes; valid: one-hot"):
        _one_step_loss(index[:, None].astype(np.float32))
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"class indices must be in \[0, 4\)"):
        _one_step_loss(index + 1)
    # XLA drops the assertion: there the out-of-range label makes the loss NaN, not 0-labels.
    jitted = compile_for_recipe(tiny(), StageConfig("s", 1), batch_size=8, steps_per_epoch=1,
                                jit_compile=True)
    x = np.zeros((8, *SHAPE), np.float32)
    assert np.isfinite(jitted.fit(x, index, batch_size=8, verbose=0).history["loss"][0])
    assert np.isnan(jitted.fit(x, index + 1, batch_size=8, verbose=0).history["loss"][0])
    trainer = compile_for_recipe(tiny(), StageConfig("s", 1), batch_size=8, steps_per_epoch=1)
    x = np.zeros((8, *SHAPE), np.float32)
    with pytest.raises(ValueError, match="sample_weight / class_weight are not supported"):
        trainer.fit(x, index, sample_weight=np.ones(8), batch_size=8, verbose=0)
    with pytest.raises(ValueError, match="sample_weight / class_weight are not supported"):
        trainer.fit(x, index, class_weight={i: 1.0 for i in range(4)}, batch_size=8, verbose=0)


def test_teachers_that_cannot_teach_are_refused():
    with pytest.raises(ValueError, match=r"\.model and \.weights are required for "
                       r"source='registry' \(got model='birealnet18_small', weights=None\)"):
        TeacherConfig("registry", model="birealnet18_small")
    stage = StageConfig("s", 1, loss=LossConfig(teacher=TeacherConfig(), kd_weight=1.0))
    student = tiny()
    with pytest.raises(ValueError, match="The teacher is the student itself"):
        compile_for_recipe(student, stage, batch_size=8, steps_per_epoch=1, teacher=student)
    ten = create_model("birealnet18_small", input_shape=SHAPE, num_classes=10, base_filters=8)
    with pytest.raises(ValueError, match=r"The teacher takes \(16, 16, 1\) inputs and gives "
                       r"10 classes, the student \(16, 16, 1\) and 4"):
        compile_for_recipe(student, stage, batch_size=8, steps_per_epoch=1, teacher=ten)
    refining = StageConfig("r", 1, loss=LossConfig(refinery=TeacherConfig()))
    wide = create_model("birealnet18_small", input_shape=(32, 32, 1), num_classes=4,
                        base_filters=8)
    with pytest.raises(ValueError, match=r"The refinery takes \(32, 32, 1\) inputs"):
        compile_for_recipe(student, refining, batch_size=8, steps_per_epoch=1, refinery=wide)
    # A model that outputs logits without naming them: its log would be NaN (or wrong).
    inputs = tf.keras.Input(SHAPE)
    logits = tf.keras.layers.Dense(4)(tf.keras.layers.Flatten()(inputs))
    raw = tf.keras.Model(inputs, logits, name="raw")
    with pytest.raises(ValueError, match=r"'raw' has no layer named 'logits' and its last "
                       r"layer .* is not a softmax"):
        compile_for_recipe(student, stage, batch_size=8, steps_per_epoch=1, teacher=raw)
    probabilities = tf.keras.Model(inputs, tf.keras.layers.Softmax()(logits))
    compile_for_recipe(student, stage, batch_size=8, steps_per_epoch=1, teacher=probabilities)


def test_a_missing_teacher_file_is_refused_before_the_run(tmp_path):
    from bireal_larq.training import check_run

    def config(teacher):
        return TrainConfig(
            model="birealnet18_small", dataset="synthetic", num_classes=4, batch_size=8,
            model_overrides={"base_filters": 8}, input_shape=SHAPE,
            dataset_kwargs={"image_shape": SHAPE, "num_examples": 16},
            stages=(StageConfig("kd", 1, loss=LossConfig(teacher=teacher, kd_weight=1.0)),))

    strategy = tf.distribute.get_strategy()
    missing = str(tmp_path / "nope.weights.h5")
    with pytest.raises(FileNotFoundError, match=r"Stage 'kd': the teacher's weights file "
                       r".*nope\.weights\.h5' does not exist"):
        check_run(config(TeacherConfig("registry", model="birealnet18_small",
                                       weights=missing)), strategy)
    with pytest.raises(FileNotFoundError, match="the teacher's model file"):
        check_run(config(TeacherConfig("model_file", path=missing)), strategy)
    with pytest.raises(ValueError, match="nosuchnet"):
        check_run(config(TeacherConfig("registry", model="nosuchnet", weights=missing)),
                  strategy)


def test_a_batchnorm_only_stage_does_not_freeze_the_next_all_stage():
    model = tiny()
    every = len(model.trainable_variables)
    compile_for_recipe(model, StageConfig("bn", 1, trainable="batchnorm"), batch_size=8,
                       steps_per_epoch=1)
    assert 0 < len(model.trainable_variables) < every
    compile_for_recipe(model, StageConfig("all", 1), batch_size=8, steps_per_epoch=1)
    assert len(model.trainable_variables) == every


def test_epoch_checkpoints_rotate_by_epoch_number_past_999(tmp_path):
    from bireal_larq.training.callbacks import EpochCheckpoint, latest_checkpoint

    saver = EpochCheckpoint(tiny(), str(tmp_path), keep=2)
    for epoch in (997, 998, 999):  # saves epochs 998, 999 and 1000
        saver.on_epoch_end(epoch)
    assert sorted(os.listdir(tmp_path)) == ["epoch_1000.weights.h5", "epoch_999.weights.h5"]
    assert os.path.basename(latest_checkpoint(str(tmp_path))) == "epoch_1000.weights.h5"


def test_a_twin_stage_before_a_binary_stem_with_rsign_is_refused_before_training():
    from bireal_larq.training.resolve import resolve_run_config

    def config(**overrides):
        return TrainConfig(
            model="birealnet18_small", dataset="synthetic", num_classes=4, batch_size=8,
            model_overrides={"base_filters": 8, "rsign": True, **overrides},
            dataset_kwargs={"image_shape": SHAPE, "num_examples": 16},
            stages=(StageConfig("twin", 1, real_valued=True), StageConfig("binary", 1)))

    for flag, layer in (("binary_first_layer", "stem_conv_rsign"),
                        ("binary_last_layer", "logits_rsign")):
        with pytest.raises(ValueError, match=rf"Stage 'binary' cannot start from the previous "
                           rf"stage's weights: only one of them has \['{layer}'\]"):
            resolve_run_config(config(**{flag: True}))
    assert resolve_run_config(config())["model_overrides"]["rsign"] is True


def _events(directory: str) -> dict[str, list]:
    """tag -> [(step, kind)] of the TensorBoard event files under ``directory``."""
    found: dict[str, list] = {}
    for root, _, files in os.walk(directory):
        for name in files:
            if not name.startswith("events.out.tfevents"):
                continue
            for event in tf.compat.v1.train.summary_iterator(os.path.join(root, name)):
                for value in event.summary.value:
                    kind = value.metadata.plugin_data.plugin_name or value.WhichOneof("value")
                    found.setdefault(value.tag, []).append((event.step, kind, value))
    return found


def test_tensorboard_logs_hold_scalars_the_learning_rate_histograms_and_sign_flips(tmp_path):
    config = synthetic_config(stages=(StageConfig("binary", 2),))
    run_training(config, str(tmp_path), verbose=0)
    events = _events(str(tmp_path / "logs" / "binary"))
    for tag in ("epoch_loss", "epoch_top1", "epoch_learning_rate"):
        assert tag in events, sorted(events)
    histograms = [t for t, v in events.items() if v[0][1] == "histograms"]
    # the latent (real-valued) kernel of a binary conv, not only its sign
    assert any("kernel" in t and "conv" in t for t in histograms), histograms
    flips = events.get("binary_weight_flips/all")
    assert flips and [step for step, *_ in flips] == [0, 1], flips
    ratios = [float(tf.make_ndarray(v.tensor)) for *_, v in flips]
    assert all(0.0 <= r <= 1.0 for r in ratios) and max(ratios) > 0.0, ratios


def test_jsonable_writes_configs_and_reports_as_plain_json():
    import dataclasses
    import json

    import numpy as np

    from bireal_larq.training import get_experiment
    from bireal_larq.utils import jsonable

    @dataclasses.dataclass
    class Part:
        shape: tuple = (2, 3)
        scale: float = 0.5

    value = {1: Part(), "acc": np.float32(0.25), "counts": np.arange(3, dtype=np.int64),
             "fn": len, "none": None}
    out = jsonable(value)
    assert out == {"1": {"shape": [2, 3], "scale": 0.5}, "acc": 0.25, "counts": [0, 1, 2],
                   "fn": repr(len), "none": None}
    assert json.loads(json.dumps(out)) == out
    assert type(out["acc"]) is float and type(out["counts"][0]) is int
    config = get_experiment("study_fashion_mnist")
    assert jsonable(config) == config.to_dict()
    assert isinstance(config.to_dict()["stages"], list)


def test_a_stage_start_builds_the_training_split_only_to_count_it_once(tmp_path):
    # Listing an image folder of ImageNet's size takes a while: the run checks the data once
    # (check_run), the stage counts its examples once and builds its training pipeline once.
    from bireal_larq.data import get_dataset

    built = []

    def counting(name, split, **kwargs):
        built.append(split)
        return get_dataset(name, split, **kwargs)

    run_training(synthetic_config(), str(tmp_path), dataset_fn=counting, verbose=0)
    assert built.count("train") == 3, built
