"""The on-disk contract of a run directory, shared by training, evaluation, export and deploy.

A run directory ``DIR`` written by ``bireal_larq.train`` holds at least:

* ``DIR/config.json``: the resolved run configuration. The keys read here are ``model``
  (registry name), ``model_overrides`` (BiRealConfig fields), ``input_shape``,
  ``num_classes``, ``dataset`` and the last stage's ``augment`` (its ``eval_resize_ratio``);
  training adds its own keys.
* ``DIR/model.weights.h5``: the final float32 weights, written by
  :func:`bireal_larq.models.save_weights` (Keras's by-name HDF5 layout plus the model's
  ``bireal_config``), loadable by ``create_model(model, weights=...)``.
* ``DIR/stages/NN_<stage>/``: a stage's ``stage.weights.h5`` and its epoch checkpoints
  ``checkpoints/epoch_NNN.weights.h5``, in the same format, for that stage's model.

Keeping the reading side here (the bottom floor) means export and evaluation rebuild models
the same way, and never from a second description of the architecture.
"""

from __future__ import annotations

import json
import os
import re
from typing import Any

import tensorflow as tf

from bireal_larq.models import create_model
from bireal_larq.utils import atomic_path
from bireal_larq.utils import dtype_policy as policy_scope

RUN_CONFIG = "config.json"
FINAL_WEIGHTS = "model.weights.h5"
_STAGE_DIR = re.compile(r"^\d\d_(\w+)$")  # DIR/stages/01_<stage name>/


def read_run_config(run_dir: str) -> dict[str, Any]:
    path = os.path.join(run_dir, RUN_CONFIG)
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f"{run_dir!r} is not a run directory: {RUN_CONFIG} is missing (a run directory is "
            "the --output_dir of bireal_larq.train)"
        )
    with open(path, encoding="utf-8") as f:
        config = json.load(f)
    missing = [k for k in ("model", "input_shape", "num_classes") if k not in config]
    if missing:
        raise ValueError(f"{path} lacks the keys {missing}")
    return config


def write_run_config(run_dir: str, config: dict[str, Any]) -> str:
    path = os.path.join(run_dir, RUN_CONFIG)
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as f:
        json.dump(config, f, indent=2, sort_keys=True, default=str)
    return path


def find_run(checkpoint: str) -> tuple[str, str, str | None]:
    """(run directory, weights file, stage name or None) of a run dir or a weights file in one.

    The run directory is the nearest directory above ``checkpoint`` that holds ``config.json``.
    The stage is named only for a file under ``RUN/stages/NN_<stage>/`` (its stage weights or
    an epoch checkpoint); any other file of the run (``RUN/model.weights.h5``, ...) is the
    final model's, whatever its directories are called.

    Raises:
        FileNotFoundError: no run directory (``config.json``) contains ``checkpoint``.
    """
    checkpoint = os.path.abspath(checkpoint)
    if os.path.isdir(checkpoint):
        return checkpoint, os.path.join(checkpoint, FINAL_WEIGHTS), None
    if not os.path.exists(checkpoint):
        raise FileNotFoundError(f"Checkpoint {checkpoint!r} does not exist")
    directory = os.path.dirname(checkpoint)
    while directory != os.path.dirname(directory):
        if os.path.exists(os.path.join(directory, RUN_CONFIG)):
            parts = os.path.relpath(checkpoint, directory).split(os.sep)
            stage = None
            if len(parts) > 2 and parts[0] == "stages" and (m := _STAGE_DIR.match(parts[1])):
                stage = m.group(1)
            return directory, checkpoint, stage
        directory = os.path.dirname(directory)
    raise FileNotFoundError(
        f"{checkpoint!r} is not inside a run directory ({RUN_CONFIG} not found above it)"
    )


def model_overrides(config: dict[str, Any], stage: str | None = None) -> dict[str, Any]:
    """The BiRealConfig overrides of the run's final model, or of ``stage``'s model."""
    overrides = config.get("model_overrides", {})
    if stage is not None:
        overrides = config.get("stage_model_overrides", {}).get(stage, overrides)
    return overrides


def model_from_run(
    run_dir: str,
    weights: str | None = None,
    dtype_policy: str = "float32",
    stage: str | None = None,
) -> tuple[tf.keras.Model, dict[str, Any]]:
    """Rebuilds the model of a run (in float32 by default) with its final weights.

    Args:
        run_dir: the run directory.
        weights: a weights file to load instead of ``DIR/model.weights.h5``.
        dtype_policy: the Keras dtype policy to build under; export always uses float32,
            also for runs trained with mixed precision.
        stage: the stage whose model ``weights`` belong to (its own model overrides, e.g.
            the real-valued twin of a two-stage run); None: the final model.

    Raises:
        FileNotFoundError: the directory or its weights are missing.
    """
    config = read_run_config(run_dir)
    weights = weights or os.path.join(run_dir, FINAL_WEIGHTS)
    if not os.path.exists(weights):
        raise FileNotFoundError(
            f"No final weights in {run_dir!r} ({FINAL_WEIGHTS} missing): the run has not "
            "finished; finish training, or pass a checkpoint inside it as --checkpoint (a "
            "stage's DIR/stages/NN_<stage>/stage.weights.h5 or an epoch's "
            "DIR/stages/NN_<stage>/checkpoints/epoch_NNN.weights.h5)"
        )
    with policy_scope(dtype_policy):
        model = create_model(
            config["model"],
            input_shape=tuple(config["input_shape"]),
            num_classes=int(config["num_classes"]),
            weights=weights,
            **model_overrides(config, stage),
        )
    return model, config


def eval_resize_ratio(config: dict[str, Any], stage: str | None = None) -> float | None:
    """The evaluation resize ratio (Training-Tricks-for-BNNs item 18) the run was validated
    with: that of ``stage``'s recipe (default: the last stage's), or None when the stage used
    the dataset's default.

    Evaluation, export verification and the inference API use it, so a model trained and
    validated at shorter side 224 x 1.35 is not scored at 256/224 afterwards.
    """
    stages = config.get("stages") or []
    if stage is not None:
        stages = [s for s in stages if s.get("name") == stage] or stages
    augment = (stages[-1].get("augment") if stages else None) or {}
    ratio = augment.get("eval_resize_ratio")
    return None if ratio is None else float(ratio)
