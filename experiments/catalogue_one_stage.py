r"""The one-stage recipe with warm-up of Training-Tricks-for-BNNs (item 8: ~+0.5 % top-1).

Training-Tricks-for-BNNs is HolmesShuan/Training-Tricks-for-Binarized-Neural-Networks (2019),
"the catalogue" below.

Fully binary from scratch with Adam: 5 warm-up epochs at lr 1e-3, then 4e-3. The catalogue
gives no decay after the warm-up: its ImageNet schedule (x0.1 at epochs 40, 60, 70, end 75)
is used. Weight decay 0 (item 6, stage 2 setting), RandomResizedCrop + flip. Batch 256
(the reference of the rates; the catalogue gives none).

Command::

    python -m bireal_larq.train --experiment=catalogue_one_stage --model=birealnet18 \
        --data_dir=$TFDS_DATA_DIR --output_dir=runs/one_stage_18

Expected result (ImageNet validation): ~0.5 % top-1 above the same network trained without
the warm-up (birealnet18: ~57 % top-1 against the paper's 56.4 %).

Fashion-MNIST version (``fmnist_catalogue_one_stage``): the same recipe sized for a CPU by
``bireal_larq.training.recipes.fashion_mnist_version``, about 8 epochs in all
(``FASHION_MNIST_EPOCHS``).

Command::

    python -m bireal_larq.train --experiment=fmnist_catalogue_one_stage \
        --output_dir=runs/fmnist_catalogue_one_stage

Expected result (Fashion-MNIST test; an estimate, not measured here): about 88-90 %
top-1 and > 99 % top-5 for the fully binary birealnet18_small (base_filters 32).
"""

from bireal_larq.data import preset
from bireal_larq.training import OptimizerConfig, ScheduleConfig, StageConfig, TrainConfig

MODELS = ("birealnet18", "birealnet34", "birealnet50")
FASHION_MNIST_EPOCHS = 8  # the length of fmnist_catalogue_one_stage


def get_config(model: str) -> TrainConfig:
    stage = StageConfig(
        "binary",
        epochs=75,
        optimizer=OptimizerConfig("adam", learning_rate=4e-3, reference_batch_size=256),
        schedule=ScheduleConfig(
            "steps",
            boundaries=(40, 60, 70),
            factors=(0.1,),
            warmup_epochs=5,
            warmup_factor=1e-3 / 4e-3,
            warmup="constant",
        ),
        weight_decay=0.0,
        augment=preset("imagenet", lighting_alphastd=0.0),
    )
    return TrainConfig(
        model=model,
        dataset="imagenet2012",
        stages=(stage,),
        batch_size=256,
        backup_every_steps=1000,
        exact_resume=False,
    )
