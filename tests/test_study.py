"""The study machinery on a tiny suite: train, export, evaluate, table, plot, resume."""

import dataclasses
import json
import os
import textwrap
import types

import pytest

from bireal_larq.study import ROW_FILE, recheck_study, run_study, write_results
from bireal_larq.training.experiments import load_experiment

TINY_SUITE = textwrap.dedent('''
    """A tiny suite for tests.

    Command::

        none

    Expected result: none.
    """
    import dataclasses

    from bireal_larq.training import OptimizerConfig, ScheduleConfig, StageConfig, TrainConfig

    MODELS = ("birealnet18_small",)
    BASELINE = "bireal"  # the plain rows: bireal, bireal_seed1


    @dataclasses.dataclass(frozen=True)
    class Entry:
        name: str
        description: str
        config: TrainConfig
        binary: bool = True
        needs: tuple = ()


    def _config(real_valued=False, seed=0, **overrides):
        stage = StageConfig("s", epochs=1, real_valued=real_valued,
                            optimizer=OptimizerConfig("adam", 1e-3, reference_batch_size=8),
                            schedule=ScheduleConfig("linear"))
        return TrainConfig(model="birealnet18_small", dataset="synthetic", stages=(stage,),
                           batch_size=8, num_classes=3, seed=seed, steps_per_epoch=2,
                           validation_steps=1,
                           dataset_kwargs={"image_shape": (28, 28, 1), "num_examples": 40},
                           model_overrides={"base_filters": 4, **overrides})


    def get_config(model):
        return _config()


    def entries(runs_dir):
        return [
            Entry("real_valued_twin", "twin", _config(real_valued=True), binary=False),
            Entry("bireal", "plain", _config()),
            Entry("bireal_seed1", "plain, seed 1", _config(seed=1)),
            Entry("prelu", "prelu", _config(activation="prelu"), needs=("bireal",)),
        ]
''')


def test_the_table_describes_finished_rows_as_the_suite_does_now(tmp_path):
    from bireal_larq.study import finished_rows

    suite_file = tmp_path / "study_tiny.py"
    suite_file.write_text(TINY_SUITE)
    entries = load_experiment(str(suite_file)).entries(str(tmp_path))
    (tmp_path / "bireal").mkdir()
    (tmp_path / "bireal" / ROW_FILE).write_text(json.dumps(
        {"name": "bireal", "description": "an older wording", "keras_top1": 0.5}))
    (row,) = finished_rows(entries, str(tmp_path))
    assert row == {"name": "bireal", "description": "plain", "keras_top1": 0.5}


def test_a_row_whose_teacher_has_not_run_fails_with_a_message_not_a_traceback(tmp_path,
                                                                            capsys):
    suite_file = tmp_path / "study_tiny.py"
    suite_file.write_text(TINY_SUITE)
    suite = load_experiment(str(suite_file))
    rows, failures = run_study("tiny", suite, str(tmp_path / "results"), only=["prelu"])
    assert rows == [] and failures == ["prelu"]
    err = capsys.readouterr().err
    assert "'prelu' needs the finished run 'bireal' first; run it with --only=bireal,prelu" in err
    assert "Traceback" not in err


@pytest.mark.xdist_group("training_processes")
def test_tiny_study_runs_resumes_and_tabulates(tmp_path):
    suite_file = tmp_path / "study_tiny.py"
    suite_file.write_text(TINY_SUITE)
    suite = load_experiment(str(suite_file))
    results = tmp_path / "results"

    rows, failures = run_study("tiny", suite, str(results), only=["real_valued_twin", "bireal",
                                                                   "bireal_seed1"])
    assert failures == []
    assert [r["name"] for r in rows] == ["real_valued_twin", "bireal", "bireal_seed1"]
    for row in rows:
        assert row["test_images"] == 40 and 0.0 <= row["keras_top1"] <= 1.0
        assert row["lce_top1"] is not None and row["parameters"] > 0
        assert row["flatbuffer_bytes"] > 0
    assert rows[1]["binary_convs_fused"] == "16/16"
    table = (results / "tiny.md").read_text()
    assert "3 of 4 configurations finished" in table
    assert "Seed-to-seed spread of bireal (2 seeds)" in table
    assert "| bireal | yes |" in table and "| real_valued_twin | no |" in table
    assert (results / "tiny.png").stat().st_size > 0

    # A rerun skips finished rows (their files are untouched) and runs the rest.
    row_file = results / "tiny_runs" / "bireal" / ROW_FILE
    stamp = os.path.getmtime(row_file)
    rows, failures = run_study("tiny", suite, str(results))
    assert failures == [] and len(rows) == 4
    assert os.path.getmtime(row_file) == stamp
    assert json.loads(row_file.read_text())["name"] == "bireal"

    # The committed weights measured again give the rows' numbers; a row whose stored number
    # is off is named, and the rows themselves are left untouched.
    compared, moved = recheck_study("tiny", suite, str(results), only=["bireal", "bireal_seed1"])
    assert [c["name"] for c in compared] == ["bireal", "bireal_seed1"] and moved == []
    assert compared[0]["measured"]["keras_top1"] == rows[1]["keras_top1"]
    recheck = next(results.glob("tiny_recheck_tf*.md")).read_text()
    assert "| bireal | " in recheck and "0 moved by more than 0.05 points" in recheck
    tampered = json.loads(row_file.read_text())
    tampered["lce_top1"] -= 0.01
    row_file.write_text(json.dumps(tampered))
    _, moved = recheck_study("tiny", suite, str(results), only=["bireal"])
    assert moved == ["bireal"]
    assert json.loads(row_file.read_text()) == tampered
    with pytest.raises(ValueError, match="Unknown study configurations"):
        recheck_study("tiny", suite, str(results), only=["nope"])

    with pytest.raises(ValueError, match="Unknown study configurations.*valid"):
        run_study("tiny", suite, str(tmp_path / "fresh"), only=["nope"])
    assert not os.path.exists(tmp_path / "fresh")  # nothing created for a refused name
    (tmp_path / "afile").write_text("x")
    with pytest.raises(ValueError, match="results_dir=.*afile' is a file; valid: a directory"):
        run_study("tiny", suite, str(tmp_path / "afile"))


def test_fashion_mnist_suite_lists_every_trick(tmp_path):
    suite = load_experiment("study_fashion_mnist")
    entries = suite.entries(str(tmp_path))
    names = [e.name for e in entries]
    # The twins run first; the distillation teacher is the long twin, and every row that
    # distils from it comes after it and names it.
    assert [e.binary for e in entries[:2]] == [False, False]
    teacher = names.index(suite.TEACHER_RUN)
    assert suite.TEACHER_RUN == "real_valued_twin_long" and not entries[teacher].binary
    # One row, the 16-epoch combination once more, distils from the 16-epoch twin instead
    # (its own budget's), which runs before it.
    own = "best_combination_16ep" + suite.TEACHER_SUFFIX
    for i, entry in enumerate(entries):
        run = suite.MAX_TWIN_RUN if entry.name == own else suite.TEACHER_RUN
        for stage in entry.config.stages:
            if stage.loss.teacher is not None:
                assert i > names.index(run) and entry.needs == (run,), entry.name
                assert stage.loss.teacher.weights.endswith(f"{run}/model.weights.h5")
    assert names[-1] == own and entries[-1].needs == (suite.MAX_TWIN_RUN,)
    by_name = {e.name: e for e in entries}
    # It differs from best_combination_16ep in its teacher only.
    same = by_name["best_combination_16ep"].config
    mine = entries[-1].config
    assert mine.model_overrides == same.model_overrides
    assert dataclasses.replace(mine.stages[0], loss=dataclasses.replace(
        mine.stages[0].loss, teacher=same.stages[0].loss.teacher)) == same.stages[0]
    assert mine.stages[0].loss.teacher != same.stages[0].loss.teacher
    for trick in ("bireal", "bireal_seed1", "bireal_seed2", "prelu", "single_skip",
                  "downsample_v1", "downsample_v3", "label_smoothing", "two_stage",
                  "one_stage_warmup", "kd_kl", "kd_features", "mixup", "channel_attention",
                  "wide_grouped", "bn_momentum", "grad_centralization", "pad_one",
                  "rsign_rprelu", "best_combination", "best_combination_long",
                  "real_valued_twin_long"):
        assert trick in names
    # One budget for every row but the long and longest pairs (a combination and its twin).
    long = {e.name for e in entries if e.config.total_epochs == suite.LONG_EPOCHS}
    assert long == {"best_combination_long", "real_valued_twin_long"}
    longest = {e.name: e for e in entries if e.config.total_epochs == suite.MAX_EPOCHS}
    assert sorted(longest) == ["best_combination_16ep", own, "real_valued_twin_16ep"]
    assert longest["best_combination_16ep"].needs == (suite.TEACHER_RUN,)
    assert not longest["real_valued_twin_16ep"].binary
    long |= set(longest)
    assert {e.config.total_epochs for e in entries if e.name not in long} == {
        suite.BUDGET_EPOCHS
    }
    assert {e.config.batch_size for e in entries} == {suite.BATCH}
    kd = next(e for e in entries if e.name == "kd_kl")
    assert kd.needs == (suite.TEACHER_RUN,)
    assert kd.config.stages[0].loss.teacher.weights.startswith(str(tmp_path))


def test_best_combination_merges_every_change_of_its_tricks(tmp_path):
    suite = load_experiment("study_fashion_mnist")
    by_name = {e.name: e for e in suite.entries(str(tmp_path))}
    combined = suite._combine(
        by_name, ("prelu", "kd_kl", "one_stage_warmup", "mixup", "grad_centralization"),
        epochs=suite.LONG_EPOCHS,
    )
    assert combined.name == "best_combination_long"
    assert combined.needs == (suite.TEACHER_RUN,)
    overrides = combined.config.model_overrides
    assert overrides["activation"] == "prelu"
    assert overrides["base_filters"] == 16  # the base is kept
    (stage,) = combined.config.stages
    assert stage.epochs == suite.LONG_EPOCHS
    assert stage.loss.kd_weight == 1.0 and stage.loss.teacher is not None
    assert stage.augment.mixup_alpha == 0.2
    assert stage.optimizer.gradient_centralization
    assert stage.optimizer.learning_rate == 8e-3  # the warm-up trick's higher rate
    warm = by_name["one_stage_warmup"].config.stages[0].schedule
    assert stage.schedule.warmup_epochs == pytest.approx(
        warm.warmup_epochs * suite.LONG_EPOCHS / suite.BUDGET_EPOCHS)
    with pytest.raises(ValueError,
                       match=r"epochs=6 is not one of the study's budgets \[2, 8, 16\]"):
        suite._combine(by_name, ("prelu",), epochs=6)
    # a trick's weight-decay scope is kept with its decay, not dropped
    prelu = by_name["prelu"]
    decayed = dataclasses.replace(prelu.config.stages[0], weight_decay=1e-5,
                                  weight_decay_scope="all")
    by_name["decay_all"] = dataclasses.replace(
        prelu, name="decay_all", config=dataclasses.replace(prelu.config, stages=(decayed,)))
    (stage,) = suite._combine(by_name, ("decay_all", "one_stage_warmup")).config.stages
    assert (stage.weight_decay, stage.weight_decay_scope) == (1e-5, "all")
    with pytest.raises(ValueError, match="'two_stage' has 2 stages"):
        suite._combine(by_name, ("prelu", "two_stage"))
    with pytest.raises(ValueError, match="'rsign_rprelu' sets model field 'activation' to "
                       "'rprelu', but another trick of the combination set it to 'prelu'"):
        suite._combine(by_name, ("prelu", "rsign_rprelu"))


def test_table_compares_each_row_with_the_twin_of_its_budget(tmp_path):
    def row(name, binary, epochs, top1):
        return {"name": name, "description": name, "binary": binary, "epochs": epochs,
                "keras_top1": top1, "lce_top1": top1, "parameters": 10,
                "flatbuffer_bytes": 2048, "train_minutes": 1.0,
                "binary_convs_fused": "16/16" if binary else "0/0"}

    rows = [row("real_valued_twin", False, 2, 0.90), row("bireal", True, 2, 0.85),
            row("bireal_seed1", True, 2, 0.86), row("prelu", True, 2, 0.87),
            row("mixup", True, 2, 0.855), row("pad_one", True, 2, 0.84),
            row("best_combination", True, 2, 0.88),
            row("real_valued_twin_long", False, 12, 0.93),
            row("best_combination_long", True, 12, 0.92)]
    md, png = tmp_path / "t.md", tmp_path / "t.png"
    suite = types.SimpleNamespace(__doc__="", BASELINE="bireal", COMBINATION="combination",
                                  METRIC="test top-1 (%)",
                                  CURVES=(("best_combination_long", "real_valued_twin_long"),
                                          ("prelu", "mixup")))
    runs = tmp_path / "runs"
    for name in ("best_combination_long", "real_valued_twin_long", "prelu"):  # no mixup run
        (runs / name).mkdir(parents=True)
        (runs / name / "history.csv").write_text(
            "epoch,loss,top1,val_loss,val_top1\n0,1.0,0.5,0.9,0.6\n1,0.8,0.6,0.7,0.7\n")
    write_results("t", suite, rows, 9, str(md), str(png), str(runs))
    table = md.read_text()
    # the plots: every row, the single tricks against the seed range, the named pair's curves
    for picture in ("t.png", "t_deltas.png", "t_curves.png"):
        assert (tmp_path / picture).stat().st_size > 0 and f"({picture})" in table, picture
    assert "| bireal | yes | 2 | 85.00 | 85.00 | 16/16 | -5.00 |" in table
    assert "| best_combination_long | yes | 12 | 92.00 | 92.00 | 16/16 | -1.00 |" in table
    assert "| real_valued_twin | no | 2 | 90.00 | 90.00 |  | +0.00 |" in table
    # Single tricks sorted against the seed range 85-86 (mean 85.5); combinations are not.
    assert "- **above the seed range**: prelu (+1.50)\n" in table
    assert "- **within the seed range (noise)**: mixup (+0.00)\n" in table
    assert "- **below the seed range**: pad_one (-1.50)\n" in table
    assert "best_combination (" not in table
    assert "Seed-to-seed spread of bireal (2 seeds)" in table
    del suite.BASELINE  # a suite without a baseline: no seed range, no verdicts
    write_results("t", suite, rows, 9, str(md), str(png))
    assert "Seed-to-seed" not in md.read_text() and "above the seed range" not in md.read_text()


def test_each_single_trick_changes_exactly_what_it_names(tmp_path):
    suite = load_experiment("study_fashion_mnist")
    by_name = {e.name: e.config for e in suite.entries(str(tmp_path))}
    base = by_name["bireal"]
    overrides = {k: v for k, v in base.model_overrides.items()}

    def model_change(name):
        changed = by_name[name].model_overrides
        return {k: v for k, v in changed.items() if overrides.get(k) != v}

    expected_model = {
        "prelu": {"activation": "prelu"},
        "single_skip": {"double_skip": False},
        "downsample_v1": {"shortcut": "v1"},
        "downsample_v3": {"shortcut": "v3"},
        "channel_attention": {"channel_attention": True, "se_reduction": 4},
        "wide_grouped": {"width_multiplier": 2.0, "groups": 4},
        "bn_momentum": {"bn_momentum": 0.8},
        "pad_one": {"pad_values": 1.0},
        "rsign_rprelu": {"rsign": True, "activation": "rprelu"},
    }
    for name, change in expected_model.items():
        assert model_change(name) == change, name
        assert by_name[name].stages == base.stages, name  # the recipe is untouched
    stage = base.stages[0]
    expected_stage = {
        "label_smoothing": lambda s: s.loss.label_smoothing == 0.1,
        "one_stage_warmup": lambda s: (s.schedule.warmup_factor, s.optimizer.learning_rate)
        == (0.25, 8e-3),
        "kd_kl": lambda s: (s.loss.kd_weight, s.loss.temperature) == (1.0, 2.0)
        and s.loss.teacher is not None,
        "kd_features": lambda s: s.loss.feature_weight == 1.0 and s.loss.teacher is not None,
        "mixup": lambda s: s.augment.mixup_alpha == 0.2,
        "grad_centralization": lambda s: s.optimizer.gradient_centralization,
    }
    for name, holds in expected_stage.items():
        config = by_name[name]
        assert model_change(name) == {}, name  # the model is plain Bi-Real
        assert len(config.stages) == 1 and holds(config.stages[0]), name
        assert not holds(stage), name  # ... and plain Bi-Real does not have it
    two = by_name["two_stage"].stages
    assert len(two) == 2 and two[0].weight_decay == 1e-5 and two[1].weight_decay == 0.0
    assert two[0].model_overrides == {"kernel_quantizer": None}
    assert two[1].optimizer.learning_rate == pytest.approx(stage.optimizer.learning_rate / 5)
    assert sum(s.epochs for s in two) == suite.BUDGET_EPOCHS
    # The seeds differ only in the seed; no two configurations are the same run.
    assert by_name["bireal_seed1"] == dataclasses.replace(base, seed=1)
    runs = [json.dumps(c.to_dict(), sort_keys=True) for c in by_name.values()]
    assert len(set(runs)) == len(runs)


def test_combination_teacher_replaces_the_tricks_teacher(tmp_path):
    suite = load_experiment("study_fashion_mnist")
    by_name = {e.name: e for e in suite.entries(str(tmp_path))}
    other = suite._teacher(str(tmp_path), "some_twin")
    combined = suite._combine(by_name, ("kd_kl", "prelu"), epochs=suite.MAX_EPOCHS,
                              teacher=("some_twin", other))
    assert combined.name == "best_combination_16ep" + suite.TEACHER_SUFFIX
    assert combined.needs == ("some_twin",)
    assert combined.config.stages[0].loss.teacher == other
    assert "teacher some_twin" in combined.description
    # No trick of the combination distils: a teacher has nothing to replace.
    with pytest.raises(ValueError, match="none of .* distils"):
        suite._combine(by_name, ("prelu", "pad_one"), teacher=("some_twin", other))
