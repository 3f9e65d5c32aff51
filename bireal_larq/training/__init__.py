"""Training: recipes as frozen configs, losses, optimizers and schedules, the fit loop.

Weight files are read and written by :mod:`bireal_larq.models` (``load_weights``,
``save_weights``). Names are loaded on first use: ``import bireal_larq.training.config`` needs
no TensorFlow.
"""

from bireal_larq.utils import lazy_exports

_EXPORTS = {
    "NonFiniteLossError": "callbacks",
    "LossConfig": "config",
    "OptimizerConfig": "config",
    "ScheduleConfig": "config",
    "StageConfig": "config",
    "TeacherConfig": "config",
    "TrainConfig": "config",
    "check_batch_size": "distribute",
    "get_strategy": "distribute",
    "get_experiment": "experiments",
    "list_experiments": "experiments",
    "RecipeModel": "model",
    "override_config": "overrides",
    "train_config": "overrides",
    "compile_for_recipe": "model",
    "RunDirectoryConflict": "rundir",
    "check_run": "resolve",
    "resolve_run_config": "resolve",
    "run_training": "runner",
    "EpochSchedule": "schedules",
    "build_schedule": "schedules",
}
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
__all__ = sorted(_EXPORTS)
