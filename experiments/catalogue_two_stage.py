r"""The two-stage recipe of Training-Tricks-for-BNNs, ImageNet schedule (items 5-8).

Training-Tricks-for-BNNs is HolmesShuan/Training-Tricks-for-Binarized-Neural-Networks (2019),
"the catalogue" below.

Stage 1: binary activations with real-valued weights, Adam (default betas) lr 1e-3, weight
decay 1e-5 (on every parameter, as its code); stage 2: fully binary, initialised from stage 1,
weight decay 0, lr 2e-4. Each stage: x0.1 at epochs 40, 60, 70, end at 75. Augmentation:
RandomResizedCrop + flip, colour jitter (0.4, 0.4, 0.4, 0.1) in stage 1 only (item 9). The
catalogue gives no batch size: 256 (the PyTorch ImageNet example it builds on) is the
reference for its rates.

Command::

    python -m bireal_larq.train --experiment=catalogue_two_stage --model=birealnet18 \
        --data_dir=$TFDS_DATA_DIR --output_dir=runs/two_stage_18

Expected result (ImageNet validation): the catalogue reports gains relative to one-stage
training, not absolute numbers; expect at least the paper's 56.4 % top-1 for birealnet18,
62.2 % for birealnet34 and 62.6 % for birealnet50.

Fashion-MNIST version (``fmnist_catalogue_two_stage``): the same recipe sized for a CPU by
``bireal_larq.training.recipes.fashion_mnist_version``, about 10 epochs in all
(``FASHION_MNIST_EPOCHS``).

Command::

    python -m bireal_larq.train --experiment=fmnist_catalogue_two_stage \
        --output_dir=runs/fmnist_catalogue_two_stage

Expected result (Fashion-MNIST test; an estimate, not measured here): about 88-90 %
top-1 and > 99 % top-5 for the fully binary birealnet18_small (base_filters 32).
"""

from bireal_larq.data import preset
from bireal_larq.training import OptimizerConfig, ScheduleConfig, StageConfig, TrainConfig

MODELS = ("birealnet18", "birealnet34", "birealnet50")
FASHION_MNIST_EPOCHS = 10  # the length of fmnist_catalogue_two_stage
REFERENCE_BATCH = 256


def two_stage(
    model: str,
    dataset: str,
    *,
    epochs: int,
    boundaries: tuple[int, ...],
    factor: float,
    augment_1,
    augment_2,
) -> TrainConfig:
    """Both stages of the catalogue's recipe with one dataset's schedule."""
    schedule = ScheduleConfig("steps", boundaries=boundaries, factors=(factor,))

    def adam(lr: float) -> OptimizerConfig:
        return OptimizerConfig("adam", learning_rate=lr, reference_batch_size=REFERENCE_BATCH)

    stages = (
        StageConfig(
            "binary_activations",
            epochs=epochs,
            optimizer=adam(1e-3),
            schedule=schedule,
            weight_decay=1e-5,
            weight_decay_scope="all",  # torch Adam(model.parameters(), weight_decay=1e-5)
            model_overrides={"kernel_quantizer": None, "weight_clip": None},
            augment=augment_1,
        ),
        StageConfig(
            "fully_binary",
            epochs=epochs,
            optimizer=adam(2e-4),
            schedule=schedule,
            weight_decay=0.0,
            augment=augment_2,
        ),
    )
    return TrainConfig(
        model=model,
        dataset=dataset,
        stages=stages,
        batch_size=REFERENCE_BATCH,
        backup_every_steps=1000,
        exact_resume=dataset != "imagenet2012",
    )


def get_config(model: str) -> TrainConfig:
    return two_stage(
        model,
        "imagenet2012",
        epochs=75,
        boundaries=(40, 60, 70),
        factor=0.1,
        augment_1=preset("imagenet_jitter", lighting_alphastd=0.0),
        augment_2=preset("imagenet", lighting_alphastd=0.0),
    )
