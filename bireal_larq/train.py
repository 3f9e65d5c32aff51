r"""Trains a Bi-Real Net: ``python -m bireal_larq.train --model=birealnet18 --experiment=NAME``.

An experiment (``experiments/NAME.py``) supplies every default; explicit flags override them
(the same configuration in Python: ``bireal_larq.training.overrides.train_config(NAME,
epochs=..., ...)``). Rerunning the same command resumes an interrupted run. Examples::

    python -m bireal_larq.train --experiment=fmnist_authors_pytorch --output_dir=runs/fm
    python -m bireal_larq.train --model=birealnet18 --experiment=authors_pytorch \
        --data_dir=/data/tfds --output_dir=runs/br18 --batch_size=256

Exit codes: 0 done; 1 invalid flags or configuration (nothing was run; or a teacher found not
to fit the student when its stage starts); 2 the output directory holds another
configuration; 3 the loss became NaN or infinite (nothing was saved from it); 4 an unreadable
image (the message names the file; --skip_corrupt skips and counts them); 5 files are missing:
the dataset's (the message says which files go where) or a teacher's (nothing was run); 6 a
file could not be written (disk full, permissions: the message names it; every earlier
checkpoint and resume point is intact, and the same command resumes once fixed).
"""

from __future__ import annotations

from absl import app, flags

from bireal_larq import cli
from bireal_larq.cli import fail, parser_for
from bireal_larq.data import CorruptImageError
from bireal_larq.training import (
    NonFiniteLossError,
    RunDirectoryConflict,
    TrainConfig,
    check_run,
    get_strategy,
    run_training,
)
from bireal_larq.training.config import DEFAULT_STEPS_PER_EXECUTION, STRATEGIES
from bireal_larq.training.overrides import OVERRIDES, train_config
from bireal_larq.utils import WriteError

# A private flag set: several CLIs can be imported into one process (see bireal_larq.cli).
FLAGS = flags.FlagValues()
PARSER = parser_for(FLAGS)  # app.run's flags parser: no positional arguments
flags.DEFINE_string(
    "model", None, "Registered model name (default: the experiment's).", flag_values=FLAGS
)
flags.DEFINE_string(
    "experiment", None, "Experiment name in experiments/ or a path to one.", flag_values=FLAGS
)
flags.DEFINE_string("dataset", None, "Dataset name (default: the experiment's).", flag_values=FLAGS)
flags.DEFINE_string(
    "data_dir", None, "TFDS data dir, or the root of an image folder.", flag_values=FLAGS
)
flags.DEFINE_string("manual_dir", None, "TFDS manual dir (ImageNet tars).", flag_values=FLAGS)
flags.DEFINE_integer(
    "epochs", None, "Epochs of every stage (schedules rescale to fit).", flag_values=FLAGS
)
flags.DEFINE_integer(
    "batch_size", None, "Global batch size (learning rates scale with it).", flag_values=FLAGS
)
flags.DEFINE_float(
    "learning_rate",
    None,
    "Base learning rate of the first stage at its reference batch size; later stages keep "
    "their ratio to it.",
    flag_values=FLAGS,
)
flags.DEFINE_enum("strategy", None, list(STRATEGIES), "Distribution strategy.", flag_values=FLAGS)
flags.DEFINE_boolean(
    "mixed_precision", None, "float16 on GPU, bfloat16 on TPU and CPU.", flag_values=FLAGS
)
flags.DEFINE_boolean("jit_compile", None, "Compile the train step with XLA.", flag_values=FLAGS)
flags.DEFINE_string("output_dir", None, "Run directory.", flag_values=FLAGS)
flags.DEFINE_integer("seed", None, "Random seed.", flag_values=FLAGS)
flags.DEFINE_integer(
    "steps_per_epoch", None, "Cap on steps per epoch (smoke runs).", flag_values=FLAGS
)
flags.DEFINE_integer("validation_steps", None, "Cap on validation steps.", flag_values=FLAGS)
flags.DEFINE_boolean(
    "deterministic", None, "TF op determinism (bit-identical resumes).", flag_values=FLAGS
)
flags.DEFINE_integer(
    "backup_every_steps", None, "Backup (resume point) frequency in steps.", flag_values=FLAGS
)
flags.DEFINE_string(
    "steps_per_execution",
    None,
    "Training steps per call into TensorFlow: an int >= 1, or 'auto' for the device's default ("
    + ", ".join(f"{v} on {k.upper()}" for k, v in DEFAULT_STEPS_PER_EXECUTION.items())
    + "). Batch callbacks run once per execution: --backup_every_steps is rounded up to a "
    "multiple of it. Default: the experiment's (auto unless it says otherwise).",
    flag_values=FLAGS,
)
flags.DEFINE_boolean(
    "skip_corrupt",
    None,
    "Skip unreadable images (counted, reported after each pass) instead of stopping at the "
    "first one with its file name.",
    flag_values=FLAGS,
)
flags.DEFINE_float(
    "max_skip_fraction",
    None,
    "With --skip_corrupt: fail once more than this fraction of a pass was unreadable "
    "(default 0.01).",
    flag_values=FLAGS,
)
flags.DEFINE_boolean(
    "overwrite", False, "Delete a run with another configuration in output_dir.", flag_values=FLAGS
)
flags.mark_flag_as_required("output_dir", flag_values=FLAGS)


def config_from_flags() -> TrainConfig:
    """The experiment's config with the explicit flags applied (validated): ``train_config``
    of the flags (:mod:`bireal_larq.training.overrides`)."""
    overrides = {name: FLAGS[name].value for name in OVERRIDES}
    return train_config(FLAGS.experiment, FLAGS.model, **overrides)


def main(argv):
    del argv
    try:
        config = config_from_flags()
        # First TF work of the process: a multi-worker strategy must precede any op.
        strategy = get_strategy(config.strategy)
        # Model, fields, batch, data and augmentation: fail before anything is written.
        checked = check_run(config, strategy)
    except ValueError as err:
        raise app.UsageError(str(err)) from None
    except FileNotFoundError as err:
        fail(5, f"ERROR: {err}")
    try:
        run_training(config, FLAGS.output_dir, overwrite=FLAGS.overwrite, strategy=strategy,
                     checked=checked)
    except RunDirectoryConflict as err:
        fail(2, f"ERROR: {err}")
    except NonFiniteLossError as err:
        fail(3, f"ERROR: {err}")
    except CorruptImageError as err:
        fail(4, f"ERROR: {err}")
    except WriteError as err:
        fail(6, f"ERROR: {err.strerror}")
    except (ValueError, FileNotFoundError) as err:  # e.g. a teacher that does not fit
        fail(1, f"ERROR: {err}")


def run() -> None:
    """The command-line entry point (parses this module's flags)."""
    cli.run(main, PARSER)


if __name__ == "__main__":
    run()
