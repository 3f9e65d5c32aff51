"""Prepares a TFDS dataset offline (idempotent: a no-op when already prepared).

    python -m bireal_larq.data.prepare --dataset=fashion_mnist [--data_dir=...] [--manual_dir=...]

The data dir defaults to $TFDS_DATA_DIR (the Makefile sets .cache/tensorflow_datasets), else
TFDS's default. Fashion-MNIST's manual dir defaults to /usr/share/datasets/fashion-mnist
(Debian's dataset-fashion-mnist); ImageNet's holds ILSVRC2012_img_train.tar and
ILSVRC2012_img_val.tar.
"""

from __future__ import annotations

from absl import app, flags

from bireal_larq.data.info import TFDS_DATASETS
from bireal_larq.data.sources import prepare, tfds_root

FLAGS = flags.FLAGS
flags.DEFINE_enum("dataset", "fashion_mnist", list(TFDS_DATASETS), "TFDS dataset to prepare.")
flags.DEFINE_string("data_dir", None, "TFDS data dir (default $TFDS_DATA_DIR or TFDS's).")
flags.DEFINE_string("manual_dir", None, "Directory holding the manually downloaded files.")


def main(argv):
    del argv
    builder = prepare(FLAGS.dataset, data_dir=FLAGS.data_dir, manual_dir=FLAGS.manual_dir)
    splits = {k: v.num_examples for k, v in builder.info.splits.items()}
    print(f"{FLAGS.dataset} is prepared in {tfds_root(FLAGS.data_dir)}: {splits}")


if __name__ == "__main__":
    app.run(main)
