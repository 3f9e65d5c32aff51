"""The experiment registry: recipe files, and the Fashion-MNIST version that a recipe file
declares with ``FASHION_MNIST_EPOCHS`` (``fmnist_<name>``, derived, with no file of its own)."""

from __future__ import annotations

import json
import pathlib

import pytest

from bireal_larq.training import experiments
from bireal_larq.training.experiments import get_experiment, list_experiments, load_experiment
from bireal_larq.training.recipes import fashion_mnist_version

FIXTURE = pathlib.Path(__file__).parent / "fixtures" / "fmnist_experiments.json"
# The published recipes with a Fashion-MNIST version, and its length in epochs.
FASHION_MNIST_EPOCHS = {
    "authors_pytorch": 8,
    "caffe_paper": 12,
    "catalogue_one_stage": 8,
    "catalogue_two_stage": 10,
    "larq_zoo": 8,
}


def _jsonable(config) -> dict:
    return json.loads(json.dumps(config.to_dict(), sort_keys=True))


def _as_recorded(config, name: str) -> tuple[dict, dict]:
    """``config`` as JSON without the fields that the recorded config of ``name`` lacks (a
    config field with a default changes no recipe), and that record."""
    recorded = json.loads(FIXTURE.read_text())[name]

    def cut(value, like):
        if isinstance(value, dict) and isinstance(like, dict):
            return {k: cut(value[k], like[k]) for k in value if k in like}
        if isinstance(value, list) and isinstance(like, list) and len(value) == len(like):
            return [cut(v, w) for v, w in zip(value, like)]
        return value

    return cut(_jsonable(config), recorded), recorded


@pytest.mark.parametrize("source", sorted(FASHION_MNIST_EPOCHS))
def test_fashion_mnist_version_is_derived_from_its_recipe_file(source):
    name = f"fmnist_{source}"
    assert name in list_experiments()
    # one place defines it: the recipe file's constant, not a file of its own
    assert not (experiments.EXPERIMENTS_DIR / f"{name}.py").exists()
    recipe = load_experiment(source)
    assert recipe.FASHION_MNIST_EPOCHS == FASHION_MNIST_EPOCHS[source]

    config = get_experiment(name)
    published = recipe.get_config(recipe.MODELS[0])
    expected = fashion_mnist_version(
        published, total_epochs=FASHION_MNIST_EPOCHS[source], model="birealnet18_small"
    )
    assert config == expected.replace(experiment=name)
    assert config == get_experiment(name, "birealnet18_small")
    # the configs recorded from the five fmnist_*.py files these names once had
    actual, recorded = _as_recorded(config, name)
    assert actual == recorded


@pytest.mark.parametrize("source", sorted(FASHION_MNIST_EPOCHS))
def test_recipe_docstrings_show_the_fashion_mnist_command_and_result(source):
    name = f"fmnist_{source}"
    recipe_doc = load_experiment(source).__doc__
    command = f"python -m bireal_larq.train --experiment={name}"
    assert command in " ".join(recipe_doc.split())
    assert "Expected result (Fashion-MNIST test" in recipe_doc
    assert f"about {FASHION_MNIST_EPOCHS[source]} epochs" in recipe_doc

    derived = load_experiment(name)
    assert derived.MODELS == ("birealnet18_small",)
    assert derived.SOURCE == source
    assert "Command::" in derived.__doc__ and command in " ".join(derived.__doc__.split())
    assert "Expected result (Fashion-MNIST test" in derived.__doc__
    assert f"``{source}``" in derived.__doc__


def test_the_train_cli_takes_every_fashion_mnist_version():
    from bireal_larq import train

    for source in sorted(FASHION_MNIST_EPOCHS):
        name = f"fmnist_{source}"
        train.FLAGS.unparse_flags()
        train.FLAGS(["train", f"--experiment={name}", "--output_dir=/tmp/x"])
        try:
            config = train.config_from_flags()
        finally:
            train.FLAGS.unparse_flags()
        actual, recorded = _as_recorded(config, name)
    assert actual == recorded


def test_unknown_names_list_the_valid_ones():
    with pytest.raises(ValueError, match=r"Unknown experiment 'fmnist_no_such'; valid: .*"
                                         r"fmnist_larq_zoo.*larq_zoo"):
        get_experiment("fmnist_no_such")
    # a recipe without FASHION_MNIST_EPOCHS has no Fashion-MNIST version
    with pytest.raises(ValueError, match=r"(?s)'fmnist_demo_fashion_mnist'.*"
                                         r"demo_fashion_mnist.*FASHION_MNIST_EPOCHS.*valid: "):
        get_experiment("fmnist_demo_fashion_mnist")
    assert "fmnist_demo_fashion_mnist" not in list_experiments()
    with pytest.raises(ValueError, match="no recipe for model .birealnet18."):
        get_experiment("fmnist_larq_zoo", "birealnet18")


TINY_RECIPE = '''r"""A tiny recipe.

Command::

    python -m bireal_larq.train --experiment=tiny

Expected result: none.
"""

from bireal_larq.training import OptimizerConfig, ScheduleConfig, StageConfig, TrainConfig

MODELS = ("birealnet18",)
FASHION_MNIST_EPOCHS = 3


def get_config(model):
    stage = StageConfig("binary", epochs=30, optimizer=OptimizerConfig("adam", 1e-3),
                        schedule=ScheduleConfig("steps", boundaries=(10, 20), factors=(0.1,)))
    return TrainConfig(model=model, dataset="imagenet2012", stages=(stage,), batch_size=256)
'''


def test_any_recipe_file_in_the_folder_gets_its_fashion_mnist_version(tmp_path, monkeypatch):
    (tmp_path / "tiny.py").write_text(TINY_RECIPE)
    (tmp_path / "plain.py").write_text(TINY_RECIPE.replace("FASHION_MNIST_EPOCHS = 3\n", ""))
    monkeypatch.setattr(experiments, "EXPERIMENTS_DIR", tmp_path)
    assert list_experiments() == ["fmnist_tiny", "plain", "tiny"]
    config = get_experiment("fmnist_tiny")
    assert (config.experiment, config.dataset, config.model) == (
        "fmnist_tiny", "fashion_mnist", "birealnet18_small")
    assert [s.epochs for s in config.stages] == [3]
    assert config.stages[0].schedule.boundaries == (1.0, 2.0)
    # a file of that name comes first
    (tmp_path / "fmnist_tiny.py").write_text(
        (tmp_path / "plain.py").read_text().replace('"birealnet18"', '"own"'))
    assert list_experiments() == ["fmnist_tiny", "plain", "tiny"]
    assert load_experiment("fmnist_tiny").MODELS == ("own",)
