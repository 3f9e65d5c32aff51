"""The pieces of a training run: the flag overrides every CLI applies, the checks run once per
run, and one stage as a function of the run's context with a typed result."""

from __future__ import annotations

import json
import os

import pytest
from train_support import synthetic_config, write_experiment

from bireal_larq.training import StageConfig, check_run, get_strategy, run_training
from bireal_larq.training.overrides import (
    OVERRIDES,
    base_config,
    override_config,
    train_config,
)


# ----------------------------------------------------------------------------- overrides
def _parse_train_flags(*flags):
    from bireal_larq import train

    train.FLAGS.unparse_flags()
    train.FLAGS(["train", "--output_dir=/tmp/x", *flags])
    try:
        return train.config_from_flags()
    finally:
        train.FLAGS.unparse_flags()


def test_the_cli_and_a_notebook_make_the_same_config_from_the_same_overrides():
    from bireal_larq import train

    assert set(OVERRIDES) <= set(train.FLAGS)  # every override is a flag of the CLI
    from_flags = _parse_train_flags(
        "--experiment=fmnist_catalogue_two_stage", "--batch_size=64", "--epochs=2",
        "--learning_rate=2e-3", "--seed=3", "--steps_per_execution=4", "--data_dir=/data",
    )
    from_keywords = train_config("fmnist_catalogue_two_stage", batch_size=64, epochs=2,
                                 learning_rate=2e-3, seed=3, steps_per_execution=4,
                                 data_dir="/data")
    assert from_keywords == from_flags
    assert (from_keywords.batch_size, from_keywords.seed, from_keywords.data_dir) == (
        64, 3, "/data")
    assert from_keywords.steps_per_execution == 4
    # None changes nothing: the experiment as it is.
    base = base_config("fmnist_catalogue_two_stage")
    assert override_config(base, **dict.fromkeys(OVERRIDES)) == base
    assert override_config(base, data_dir="/data") == base.replace(data_dir="/data")


def test_override_config_refuses_what_the_flags_refuse():
    base = synthetic_config(steps_per_execution=8)
    assert override_config(base, steps_per_execution="auto").steps_per_execution is None
    assert override_config(base, steps_per_execution="16").steps_per_execution == 16
    for bad in (0, "many", 2.5):
        with pytest.raises(ValueError, match=r"--steps_per_execution=.* is invalid; valid: "
                           r"'auto' or an int >= 1"):
            override_config(base, steps_per_execution=bad)
    with pytest.raises(ValueError, match=r"--epochs=0 is out of range; valid: >= 1"):
        override_config(base, epochs=0)
    with pytest.raises(ValueError, match=r"--learning_rate=0 is out of range; valid: > 0"):
        override_config(base, learning_rate=0)
    with pytest.raises(ValueError, match="only applies with --skip_corrupt"):
        override_config(base, max_skip_fraction=0.2)
    assert override_config(base.replace(skip_corrupt=True),
                           max_skip_fraction=0.2).max_skip_fraction == 0.2
    with pytest.raises(ValueError, match=r"TrainConfig.batch_size=0 is out of range"):
        override_config(base, batch_size=0)
    with pytest.raises(TypeError, match="no_such_flag"):
        override_config(base, no_such_flag=1)
    with pytest.raises(ValueError, match="--model and --dataset are required without "
                       "--experiment; experiments: .*authors_pytorch"):
        train_config(model="birealnet18_small")


# ----------------------------------------------------------------------------- checks
def test_the_cli_checks_a_run_once(tmp_path, monkeypatch):
    # check_run counts the training split (an image folder of ImageNet's size takes a while
    # to list); the stage counts it once more for its steps and builds its pipeline once.
    from bireal_larq import train
    from bireal_larq.training import data

    built = []
    get_dataset = data.get_dataset

    def counting(name, split, **kwargs):
        built.append(split)
        return get_dataset(name, split, **kwargs)

    monkeypatch.setattr(data, "get_dataset", counting)
    experiment = write_experiment(tmp_path, epochs=1)
    train.FLAGS.unparse_flags()
    train.FLAGS(["train", f"--experiment={experiment}", f"--output_dir={tmp_path / 'run'}",
                 "--steps_per_epoch=2", "--nodeterministic"])
    try:
        train.main([])
    finally:
        train.FLAGS.unparse_flags()
    assert (tmp_path / "run" / "summary.json").exists()
    assert built.count("train") == 3, built


def test_a_check_result_of_another_configuration_is_refused(tmp_path):
    config = synthetic_config()
    checked = check_run(config.replace(seed=7), get_strategy("one_device"))
    with pytest.raises(ValueError, match=r"checked= was resolved from another configuration "
                       r"\(differs in \['seed'\]\)"):
        run_training(config, str(tmp_path / "run"), checked=checked, verbose=0)
    assert not (tmp_path / "run").exists()


# ----------------------------------------------------------------------------- one stage
def test_a_stage_returns_its_record_apart_from_its_live_model(tmp_path):
    from bireal_larq.training.stage import RunContext, rebuild_stage, run_stage

    config = synthetic_config(stages=(StageConfig("twin", 1, real_valued=True),
                                      StageConfig("binary", 1)))
    summary = run_training(config, str(tmp_path), verbose=0)
    context = RunContext(config=config, strategy=get_strategy("one_device"),
                         run_dir=str(tmp_path), output_dir=str(tmp_path),
                         input_shape=(16, 16, 1), num_classes=4, verbose=0)
    first = run_stage(context, 0, None)  # finished: read back, not trained again
    second = run_stage(context, 1, first)
    for index, result in enumerate((first, second)):
        assert not result.live and result.model is None and result.trainer is None
        assert result.dir == str(tmp_path / "stages" / f"0{index + 1}_{config.stages[index].name}")
        with open(os.path.join(result.dir, "stage.json")) as f:
            assert result.record == json.load(f)
        assert json.loads(json.dumps(result.record)) == result.record  # JSON as it is
    assert [r.record for r in (first, second)] == json.loads(json.dumps(summary["stages"]))
    rebuilt = rebuild_stage(context, 1, second)
    assert rebuilt.live and rebuilt.record == second.record
    metrics = rebuilt.trainer.evaluate(rebuilt.data.validation, return_dict=True, verbose=0)
    assert metrics["top1"] == pytest.approx(summary["top1"])
    with pytest.raises(AttributeError):
        second.record = {}  # frozen
