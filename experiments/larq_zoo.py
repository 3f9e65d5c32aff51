r"""larq-zoo's ``TrainBiRealNet`` recipe (larq_zoo/training/basic_experiments.py).

Adam lr 5e-3 at batch 512 decayed linearly to 0 over 300 epochs, one fully binary stage. The
zoo hard-codes 750,684 decay steps (300 epochs of 1,281,167 images at batch 512 rounded);
here the decay length is derived from the epochs. ImageNet augmentation of the data package.

Command::

    python -m bireal_larq.train --experiment=larq_zoo --model=birealnet18 \
        --data_dir=$TFDS_DATA_DIR --output_dir=runs/larq_zoo_18

Expected result (ImageNet validation, larq-zoo's published BiRealNet): 57.47 % top-1,
79.84 % top-5.

Fashion-MNIST version (``fmnist_larq_zoo``): the same recipe sized for a CPU by
``bireal_larq.training.recipes.fashion_mnist_version``, about 8 epochs in all
(``FASHION_MNIST_EPOCHS``).

Command::

    python -m bireal_larq.train --experiment=fmnist_larq_zoo \
        --output_dir=runs/fmnist_larq_zoo

Expected result (Fashion-MNIST test; an estimate, not measured here): about 88-90 %
top-1 and > 99 % top-5 for the fully binary birealnet18_small (base_filters 32).
"""

from bireal_larq.data import preset
from bireal_larq.training import OptimizerConfig, ScheduleConfig, StageConfig, TrainConfig

MODELS = ("birealnet18",)
FASHION_MNIST_EPOCHS = 8  # the length of fmnist_larq_zoo


def get_config(model: str) -> TrainConfig:
    stage = StageConfig(
        "binary",
        epochs=300,
        optimizer=OptimizerConfig("adam", learning_rate=5e-3, reference_batch_size=512),
        schedule=ScheduleConfig("linear"),
        augment=preset("imagenet"),
    )
    return TrainConfig(
        model=model,
        dataset="imagenet2012",
        stages=(stage,),
        batch_size=512,
        backup_every_steps=1000,
        exact_resume=False,
    )
