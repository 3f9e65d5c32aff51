"""Evaluates a checkpoint: ``python -m bireal_larq.evaluate --checkpoint=DIR [--dataset=...]``.

``--checkpoint`` is a run directory (its final weights) or any weights file inside one
(a stage's or an epoch's). Prints top-1 / top-5 and writes ``DIR/eval_<dataset>.json`` (the
final weights on the whole test split), or a file named after the checkpoint and the number of
images for anything else. An unreadable image stops it with exit status 4 and the file's name
(``--skip_corrupt`` skips and counts them, as the run did when it trained that way).
"""

from __future__ import annotations

from absl import app, flags

from bireal_larq import cli
from bireal_larq.cli import fail, parser_for
from bireal_larq.data import CorruptImageError
from bireal_larq.training.evaluation import evaluate_checkpoint, find_run, write_result

# A private flag set: several CLIs can be imported into one process (see bireal_larq.cli).
FLAGS = flags.FlagValues()
PARSER = parser_for(FLAGS)  # app.run's flags parser: no positional arguments
flags.DEFINE_string(
    "checkpoint", None, "Run directory or weights file inside one.", flag_values=FLAGS
)
flags.DEFINE_string("dataset", None, "Dataset (default: the run's).", flag_values=FLAGS)
flags.DEFINE_string("data_dir", None, "TFDS data dir or image folder root.", flag_values=FLAGS)
flags.DEFINE_integer("batch_size", 256, "Evaluation batch size.", lower_bound=1, flag_values=FLAGS)
flags.DEFINE_integer(
    "steps", None, "Evaluate only this many batches.", lower_bound=1, flag_values=FLAGS
)
flags.DEFINE_bool(
    "skip_corrupt", None,
    "Skip unreadable images (counted, reported, and recorded as 'skipped') instead of stopping "
    "at the first; default: as the run trained.", flag_values=FLAGS,
)
flags.DEFINE_float(
    "max_skip_fraction", None,
    "With --skip_corrupt, the largest fraction of images that may be skipped (default: the "
    "run's, else 0.01).", lower_bound=0.0, upper_bound=1.0, flag_values=FLAGS,
)
flags.mark_flag_as_required("checkpoint", flag_values=FLAGS)


def main(argv):
    del argv
    try:
        run_dir = find_run(FLAGS.checkpoint)[0]
        result = evaluate_checkpoint(
            FLAGS.checkpoint,
            FLAGS.dataset,
            data_dir=FLAGS.data_dir,
            batch_size=FLAGS.batch_size,
            steps=FLAGS.steps,
            skip_corrupt=FLAGS.skip_corrupt,
            max_skip_fraction=FLAGS.max_skip_fraction,
        )
    except CorruptImageError as err:  # the file and the remedy, as train reports it
        fail(4, f"ERROR: {err}")
    except (FileNotFoundError, ValueError) as err:  # bad flags, missing data: no traceback
        raise app.UsageError(str(err)) from None
    path = write_result(result, run_dir)
    skipped = f", {result['skipped']} unreadable skipped" if result["skipped"] else ""
    print(
        f"top-1 {result['top1']:.4f}  top-5 {result['top5']:.4f}  ({result['dataset']}, "
        f"{result['examples']} images{skipped}) -> {path}"
    )


def run() -> None:
    """The command-line entry point (parses this module's flags)."""
    cli.run(main, PARSER)


if __name__ == "__main__":
    run()
