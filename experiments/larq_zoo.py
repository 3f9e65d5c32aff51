r"""larq-zoo's ``TrainBiRealNet`` recipe (larq_zoo/training/basic_experiments.py).

Adam lr 5e-3 at batch 512 decayed linearly to 0 over 300 epochs, one fully binary stage. The
zoo hard-codes 750,684 decay steps (300 epochs of 1,281,167 images at batch 512 rounded);
here the decay length is derived from the epochs. ImageNet augmentation of the data package.

Command::

    python -m bireal_larq.train --experiment=larq_zoo --model=birealnet18 \
        --data_dir=$TFDS_DATA_DIR --output_dir=runs/larq_zoo_18

Expected result (ImageNet validation, larq-zoo's published BiRealNet): 57.47 % top-1,
79.84 % top-5.
"""

from bireal_larq.data import preset
from bireal_larq.training import OptimizerConfig, ScheduleConfig, StageConfig, TrainConfig

MODELS = ("birealnet18",)


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
