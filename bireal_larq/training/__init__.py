"""Training: recipes as frozen configs, losses, optimizers and schedules, the fit loop.

Weight files are read and written by :mod:`bireal_larq.models` (``load_weights``,
``save_weights``).
"""

from bireal_larq.training.callbacks import NonFiniteLossError
from bireal_larq.training.config import (
    LossConfig,
    OptimizerConfig,
    ScheduleConfig,
    StageConfig,
    TeacherConfig,
    TrainConfig,
)
from bireal_larq.training.distribute import check_batch_size, get_strategy
from bireal_larq.training.experiments import get_experiment, list_experiments
from bireal_larq.training.model import RecipeModel, compile_for_recipe
from bireal_larq.training.runner import (
    RunDirectoryConflict,
    check_run,
    resolve_run_config,
    run_training,
)
from bireal_larq.training.schedules import EpochSchedule, build_schedule

__all__ = [
    "EpochSchedule",
    "LossConfig",
    "NonFiniteLossError",
    "OptimizerConfig",
    "RecipeModel",
    "RunDirectoryConflict",
    "ScheduleConfig",
    "StageConfig",
    "TeacherConfig",
    "TrainConfig",
    "build_schedule",
    "check_batch_size",
    "check_run",
    "compile_for_recipe",
    "get_experiment",
    "get_strategy",
    "list_experiments",
    "resolve_run_config",
    "run_training",
]
