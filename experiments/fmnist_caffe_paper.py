r"""Fashion-MNIST version of ``caffe_paper``, sized for a CPU (the tricks study's base).

The same stages, optimizers, losses and schedule shapes as ``caffe_paper``, with
``birealnet18_small`` (base_filters 32) on 28x28x1 inputs, batch 128 (rates scaled from each
stage's reference batch), the data package's Fashion-MNIST augmentation, and the durations
shortened in proportion to about 12 epochs in all.

Command::

    python -m bireal_larq.train --experiment=fmnist_caffe_paper \
        --output_dir=runs/fmnist_caffe_paper

Expected result (Fashion-MNIST test; an estimate, not yet measured here): about 88-90 %
top-1 and > 99 % top-5 for the fully binary birealnet18_small (base_filters 32).
"""

import os

from bireal_larq.training.experiments import load_experiment
from bireal_larq.training.recipes import fashion_mnist_version

MODELS = ("birealnet18_small",)
TOTAL_EPOCHS = 12


def get_config(model: str):
    source = load_experiment(os.path.join(os.path.dirname(__file__), "caffe_paper.py"))
    published = source.get_config(source.MODELS[0])
    return fashion_mnist_version(published, total_epochs=TOTAL_EPOCHS, model=model)
