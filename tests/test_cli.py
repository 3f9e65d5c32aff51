"""The thin CLIs: importable together (private flag sets) and each answering --help."""

import importlib
import subprocess
import sys

import pytest

CLIS = ["bireal_larq.train", "bireal_larq.evaluate", "bireal_larq.export.__main__",
        "bireal_larq.benchmark.__main__", "bireal_larq.convert_weights", "bireal_larq.study",
        "bireal_larq.demo", "bireal_larq.prepare_data"]


def test_every_cli_imports_into_one_process():
    modules = [importlib.import_module(name) for name in CLIS]
    # Same flag names (--dataset, --data_dir, --model, ...) live in separate flag sets.
    owned = [m.FLAGS for m in modules if hasattr(m, "FLAGS")]
    assert len(owned) == len(CLIS)
    # No CLI module shadows a library function of the same name.
    from bireal_larq import data

    assert callable(data.prepare)


@pytest.mark.parametrize("module, flags", [
    ("bireal_larq.study", ("--suite", "--only", "--table_only", "--results_dir")),
    ("bireal_larq.demo", ("--output_dir", "--experiment", "--verify_samples", "--steps_per_epoch")),
    ("bireal_larq.evaluate", ("--checkpoint", "--dataset")),
    ("bireal_larq.train", ("--experiment", "--skip_corrupt", "--max_skip_fraction")),
])
def test_help_lists_the_flags(module, flags):
    done = subprocess.run([sys.executable, "-m", module, "--help"], capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    for flag in flags:  # booleans are listed as --[no]name
        name = flag[2:]
        assert f"--{name}:" in done.stdout or f"--[no]{name}:" in done.stdout, (module, flag)


def test_study_table_only_on_an_empty_results_dir(tmp_path):
    done = subprocess.run([sys.executable, "-m", "bireal_larq.study", "--suite=fashion_mnist",
                           f"--results_dir={tmp_path}", "--table_only"], capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    table = (tmp_path / "fashion_mnist.md").read_text()
    from bireal_larq.training.experiments import load_experiment

    total = len(load_experiment("study_fashion_mnist").entries(str(tmp_path)))
    assert f"0 of {total} configurations finished" in table

    bad = subprocess.run([sys.executable, "-m", "bireal_larq.study", "--suite=nope",
                          f"--results_dir={tmp_path}"], capture_output=True, text=True,
                         timeout=120)
    assert bad.returncode != 0 and "Unknown study suite 'nope'" in bad.stderr
    assert "Traceback" not in bad.stderr
