r"""The authors' PyTorch recipe (liuzechun/Bi-Real-net, README "Pytorch Implementation").

Adam with default betas, lr 1e-3 at batch 512 decayed linearly to 0 over 256 epochs (stepped
once per epoch), weight decay 0, label smoothing 0.1; RandomResizedCrop(224, 0.08-1) +
Lighting(0.1) + flip; evaluation Resize(256) + CenterCrop(224). BiReal-50: batch 256, lr 5e-4.
Trained from scratch, fully binary, one stage. The weights' gradient is the authors'
(``magnitude_aware_sign_unscaled``: through clamp(W, -1, 1), not scaled by mean|W|), and the
latent weights are not clipped (``weight_clip=None``; the gradient window stays [-1, 1]).

Command::

    python -m bireal_larq.train --experiment=authors_pytorch --model=birealnet18 \
        --data_dir=$TFDS_DATA_DIR --output_dir=runs/authors_pytorch_18

Expected result (ImageNet validation, the accuracy table of the liuzechun/Bi-Real-net
README, which the PyTorch recipe reproduces): birealnet18 56.4 % top-1 / 79.5 % top-5,
birealnet34 62.2 / 83.9, birealnet50 62.6 / 83.9.

Fashion-MNIST version (``fmnist_authors_pytorch``): the same recipe sized for a CPU by
``bireal_larq.training.recipes.fashion_mnist_version``, about 8 epochs in all
(``FASHION_MNIST_EPOCHS``).

Command::

    python -m bireal_larq.train --experiment=fmnist_authors_pytorch \
        --output_dir=runs/fmnist_authors_pytorch

Expected result (Fashion-MNIST test; an estimate, not measured here): about 88-90 %
top-1 and > 99 % top-5 for the fully binary birealnet18_small (base_filters 32).
"""

from bireal_larq.data import preset
from bireal_larq.training import (
    LossConfig,
    OptimizerConfig,
    ScheduleConfig,
    StageConfig,
    TrainConfig,
)

MODELS = ("birealnet18", "birealnet34", "birealnet50")
FASHION_MNIST_EPOCHS = 8  # the length of fmnist_authors_pytorch

# model -> (batch size, learning rate at that batch)
_BATCH_LR = {"birealnet18": (512, 1e-3), "birealnet34": (512, 1e-3), "birealnet50": (256, 5e-4)}


def get_config(model: str) -> TrainConfig:
    batch, lr = _BATCH_LR[model]
    stage = StageConfig(
        "binary",
        epochs=256,
        optimizer=OptimizerConfig("adam", learning_rate=lr, reference_batch_size=batch),
        schedule=ScheduleConfig("linear", per_epoch=True),
        weight_decay=0.0,
        loss=LossConfig(label_smoothing=0.1),
        augment=preset("imagenet"),
    )
    return TrainConfig(
        model=model,
        # HardBinaryConv: the authors' gradient, through clamp(W, -1, 1), and no weight clipping
        # (a weight past +-1 stops learning there instead of being clipped back)
        model_overrides={"kernel_quantizer": "magnitude_aware_sign_unscaled", "weight_clip": None},
        dataset="imagenet2012",
        stages=(stage,),
        batch_size=batch,
        backup_every_steps=1000,
        exact_resume=False,  # skipping 256 epochs of decoded ImageNet would take hours
    )
