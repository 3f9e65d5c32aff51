"""Prepares a TFDS dataset offline (idempotent: a no-op when already prepared).

    python -m bireal_larq.prepare_data --dataset=fashion_mnist [--data_dir=...] [--manual_dir=...]

The data dir defaults to $TFDS_DATA_DIR (the Makefile sets .cache/tensorflow_datasets), else
TFDS's default. Fashion-MNIST's manual dir defaults to /usr/share/datasets/fashion-mnist
(Debian's dataset-fashion-mnist); ImageNet's holds ILSVRC2012_img_train.tar and
ILSVRC2012_img_val.tar.

(A top-level module, not ``bireal_larq.data.prepare``: a submodule of that name would replace
the package's ``prepare`` function as soon as it was imported.)
"""

from __future__ import annotations

from absl import flags

from bireal_larq import cli
from bireal_larq.cli import parser_for
from bireal_larq.data.info import TFDS_DATASETS
from bireal_larq.data.sources import prepare, tfds_root

# A private flag set: several CLIs can be imported into one process (see bireal_larq.cli).
FLAGS = flags.FlagValues()
PARSER = parser_for(FLAGS)  # app.run's flags parser: no positional arguments
flags.DEFINE_enum(
    "dataset", "fashion_mnist", list(TFDS_DATASETS), "TFDS dataset to prepare.", flag_values=FLAGS
)
flags.DEFINE_string(
    "data_dir", None, "TFDS data dir (default $TFDS_DATA_DIR or TFDS's).", flag_values=FLAGS
)
flags.DEFINE_string(
    "manual_dir", None, "Directory holding the manually downloaded files.", flag_values=FLAGS
)


def main(argv):
    del argv
    try:
        builder = prepare(FLAGS.dataset, data_dir=FLAGS.data_dir, manual_dir=FLAGS.manual_dir)
    except (ValueError, FileNotFoundError) as err:
        cli.fail(1, f"prepare_data: {err}")
    splits = {k: v.num_examples for k, v in builder.info.splits.items()}
    print(f"{FLAGS.dataset} is prepared in {tfds_root(FLAGS.data_dir)}: {splits}")


def run() -> None:
    """The command-line entry point (parses this module's flags)."""
    cli.run(main, PARSER)


if __name__ == "__main__":
    run()
