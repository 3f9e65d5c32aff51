r"""The embedded default that ``make demo`` trains: a small Bi-Real Net on Fashion-MNIST.

``birealnet18_small`` (3x3/1 stem, no pooling, 28x28x1 inputs) at quarter width
(base_filters 16), fully binary from scratch with the authors' optimizer (Adam, default
betas), lr 2e-3 at batch 128 decayed linearly to 0, the data package's Fashion-MNIST
augmentation (flip + pad-and-crop). Sized to train in about five minutes on 2 CPU cores.

Command::

    python -m bireal_larq.train --experiment=demo_fashion_mnist --output_dir=runs/demo/train

Expected result (Fashion-MNIST test set): about 81 % top-1 after the single epoch (measured
81.0-81.3 % on three machines; see docs/demo.md).
"""

from bireal_larq.data import preset
from bireal_larq.training import OptimizerConfig, ScheduleConfig, StageConfig, TrainConfig

MODELS = ("birealnet18_small",)
EPOCHS = 1


def get_config(model: str) -> TrainConfig:
    stage = StageConfig(
        "binary",
        epochs=EPOCHS,
        optimizer=OptimizerConfig("adam", learning_rate=2e-3, reference_batch_size=128),
        schedule=ScheduleConfig("linear"),
        augment=preset("fashion_mnist"),
    )
    return TrainConfig(
        model=model,
        dataset="fashion_mnist",
        stages=(stage,),
        batch_size=128,
        model_overrides={"base_filters": 16},
        seed=0,
    )
