"""The thin CLIs: importable together (private flag sets) and each answering --help."""

import importlib
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

CLIS = ["bireal_larq.train", "bireal_larq.evaluate", "bireal_larq.export.__main__",
        "bireal_larq.benchmark.__main__", "bireal_larq.convert_weights", "bireal_larq.study",
        "bireal_larq.demo", "bireal_larq.prepare_data", "bireal_larq.report"]


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


@pytest.mark.parametrize("module, argv", [
    ("bireal_larq.train", ["--output_dir=runs/x", "--overwrite", "false"]),
    ("bireal_larq.evaluate", ["--checkpoint=runs/a", "runs/b"]),
    ("bireal_larq.study", ["--table_only", "false"]),
    ("bireal_larq.demo", ["extra"]),
    ("bireal_larq.export.__main__", ["--model=birealnet18", "x"]),
    ("bireal_larq.benchmark.__main__", ["a.tflite", "b.tflite"]),
])
def test_a_stray_argument_is_an_error_not_dropped(module, argv, capsys):
    # "--overwrite false" used to mean --overwrite=true (absl) with "false" silently dropped.
    cli = importlib.import_module(module)  # its PARSER is what its app.run uses
    with pytest.raises(SystemExit) as exit_info:
        cli.PARSER([module, *argv])
    assert exit_info.value.code == 1
    assert f"Unexpected argument(s) [{argv[-1]!r}]" in capsys.readouterr().err
    cli.FLAGS.unparse_flags()


def test_the_parser_keeps_the_positional_arguments_a_command_takes(capsys):
    from bireal_larq import train
    from bireal_larq.benchmark import __main__ as bench

    assert bench.PARSER(["b", "m.tflite", "--runs=3"]) == ["b", "m.tflite"]
    assert bench.FLAGS.runs == 3
    bench.FLAGS.unparse_flags()
    for name in CLIS:  # every CLI runs through its module's PARSER and cli.run's exits
        source = open(importlib.import_module(name).__file__).read()
        assert "cli.run(main, PARSER)" in source, name
    with pytest.raises(SystemExit):
        train.PARSER(["train", "--output_dir=runs/x", "--overwrite", "false"])
    err = capsys.readouterr().err
    assert "Unexpected argument(s) ['false']" in err and "--overwrite=false" in err
    train.FLAGS.unparse_flags()


@pytest.mark.parametrize("flag", ["--steps_per_epoch=0", "--benchmark_runs=0", "--benchmark_runs=1",
                                  "--verify_samples=-1"])
def test_demo_refuses_a_zero_cap_instead_of_training_in_full(flag, capsys):
    from bireal_larq import demo

    with pytest.raises(SystemExit):
        demo.PARSER(["demo", flag])
    assert f"{flag.split('=')[0][2:]}" in capsys.readouterr().err
    demo.FLAGS.unparse_flags()


def _console_scripts() -> dict[str, str]:
    import ast

    tree = ast.parse(open(os.path.join(ROOT, "setup.py")).read())
    node = next(n for n in tree.body if isinstance(n, ast.Assign)
                and getattr(n.targets[0], "id", None) == "CONSOLE_SCRIPTS")
    return ast.literal_eval(node.value)


def test_every_command_has_a_console_script_with_a_run_entry_point():
    scripts = _console_scripts()
    modules = {target.split(":")[0] for target in scripts.values()}
    assert modules >= set(CLIS), set(CLIS) - modules
    for name, target in scripts.items():
        module, function = target.split(":")
        assert callable(getattr(importlib.import_module(module), function)), name
        assert name == "bireal-" + module.split(".")[1].replace("_", "-"), name


def test_a_console_script_ends_like_its_module_quietly_with_its_exit_code():
    script = os.path.join(os.path.dirname(sys.executable), "bireal-convert-weights")
    assert os.path.exists(script), f"{script} missing: reinstall the package (make venv)"
    env = dict(os.environ)
    env.pop("TF_CPP_MIN_LOG_LEVEL", None)
    done = subprocess.run([script, "--source=pytorch", "--input=/nonexistent/x.pth",
                           "--output=/nonexistent/w.h5"], env=env, capture_output=True,
                          text=True, timeout=240)
    assert done.returncode == 1
    assert done.stderr.splitlines() == [
        "convert_weights: PyTorch checkpoint '/nonexistent/x.pth' not found"], done.stderr
