r"""The two-stage recipe of Training-Tricks-for-BNNs with its CIFAR-100 schedule (items 5-9).

As ``catalogue_two_stage`` (stage 1 binary activations + real weights, Adam 1e-3, weight decay
1e-5; stage 2 fully binary, 2e-4, weight decay 0) with the CIFAR-100 schedule: x0.2 at epochs
150, 250 and 320, end at 350, each stage. Data: random crop 32 (padding 4), flip, rotation
+-15 (item 9). Small-input models (3x3/1 stem). Batch 256 (reference of the rates).

Command::

    python -m bireal_larq.train --experiment=catalogue_two_stage_cifar100 \
        --model=birealnet18_small --output_dir=runs/two_stage_c100_18

Expected result (CIFAR-100 test): the catalogue gives no absolute number; a fully binary
Bi-Real-18 on CIFAR-100 is typically in the 60-65 % top-1 range.
"""

import os

from bireal_larq.data import preset
from bireal_larq.training.experiments import load_experiment

MODELS = ("birealnet18_small", "birealnet34_small", "birealnet50_small")


def get_config(model: str):
    base = load_experiment(os.path.join(os.path.dirname(__file__), "catalogue_two_stage.py"))
    return base.two_stage(
        model,
        "cifar100",
        epochs=350,
        boundaries=(150, 250, 320),
        factor=0.2,
        augment_1=preset("cifar"),
        augment_2=preset("cifar"),
    )
