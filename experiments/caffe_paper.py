r"""The Bi-Real Net paper's Caffe recipe (Liu et al., ECCV 2018).

As described in the liuzechun/Bi-Real-net README, section "Caffe Implementation".

1. Real-valued pre-training in three steps on the real-valued twin: ReLU from scratch with
   ResNet's settings (SGD 0.1, momentum 0.9, weight decay 1e-4, x0.1 at epochs 30 and 60,
   90 epochs, batch 256), then leaky-clip (slope 0.1 outside [-1, 1]) fine-tuning, then
   clip(-1, x, 1) fine-tuning. The paper gives no fine-tuning lengths or rates: 10 epochs of
   SGD at 0.01 (x0.1 at epoch 5) each are this project's choice.
2. Binary training with SGD momentum 0.9, weight decay 0: 18 layers 20 epochs, batch 128,
   lr 0.01 x0.1 at epochs 10 and 15; 34 layers 40 epochs, batch 1024, lr 0.08 x0.1 at 20, 30.
3. Weights fixed to +-1 (``ste_sign`` kernels), learning rate 0 for every convolution (only
   BatchNorm trains) for 1 epoch so BatchNorm absorbs the dropped scale; at the binary
   stage's final learning rate (unspecified in the paper).
Data: shorter side 256, random crop 224 (+ flip), centre crop 224 for evaluation.
A run has one batch size, step 2's: the real-valued steps keep ResNet's rates per 256 images
and scale them linearly, so for birealnet34 (batch 1024) ``fp_relu`` starts at 0.4, without
the warm-up that large batches are usually given.

Command::

    python -m bireal_larq.train --experiment=caffe_paper --model=birealnet18 \
        --data_dir=$TFDS_DATA_DIR --output_dir=runs/caffe_18

Expected result (ImageNet validation, the paper): birealnet18 56.4 % top-1 / 79.5 % top-5,
birealnet34 62.2 / 83.9.

Fashion-MNIST version (``fmnist_caffe_paper``): the same recipe sized for a CPU by
``bireal_larq.training.recipes.fashion_mnist_version``, about 12 epochs in all
(``FASHION_MNIST_EPOCHS``).

Command::

    python -m bireal_larq.train --experiment=fmnist_caffe_paper \
        --output_dir=runs/fmnist_caffe_paper

Expected result (Fashion-MNIST test; an estimate, not measured here): about 88-90 %
top-1 and > 99 % top-5 for the fully binary birealnet18_small (base_filters 32).
"""

from bireal_larq.data import preset
from bireal_larq.training import OptimizerConfig, ScheduleConfig, StageConfig, TrainConfig

MODELS = ("birealnet18", "birealnet34")
FASHION_MNIST_EPOCHS = 12  # the length of fmnist_caffe_paper

# model -> (epochs, batch, lr, decay epochs) of the binary step
_BINARY = {"birealnet18": (20, 128, 0.01, (10, 15)), "birealnet34": (40, 1024, 0.08, (20, 30))}


def _sgd(lr: float, batch: int) -> OptimizerConfig:
    return OptimizerConfig("sgd", learning_rate=lr, reference_batch_size=batch, momentum=0.9)


def get_config(model: str) -> TrainConfig:
    epochs, batch, lr, decay = _BINARY[model]
    augment = preset("imagenet_caffe")
    finetune = dict(
        epochs=10,
        optimizer=_sgd(0.01, 256),
        schedule=ScheduleConfig("steps", boundaries=(5,), factors=(0.1,)),
        weight_decay=1e-4,
        real_valued=True,
        augment=augment,
    )
    stages = (
        StageConfig(
            "fp_relu",
            epochs=90,
            optimizer=_sgd(0.1, 256),
            schedule=ScheduleConfig("steps", boundaries=(30, 60), factors=(0.1,)),
            weight_decay=1e-4,
            real_valued=True,
            twin_activation="relu",
            augment=augment,
        ),
        StageConfig("fp_leaky_clip", twin_activation="leaky_clip", **finetune),
        StageConfig("fp_clip", twin_activation="clip", **finetune),
        StageConfig(
            "binary",
            epochs=epochs,
            optimizer=_sgd(lr, batch),
            schedule=ScheduleConfig("steps", boundaries=decay, factors=(0.1,)),
            weight_decay=0.0,
            augment=augment,
        ),
        StageConfig(
            "bn_retrain",
            epochs=1,
            optimizer=_sgd(lr * 0.01, batch),
            model_overrides={"kernel_quantizer": "ste_sign"},
            trainable="batchnorm",
            augment=augment,
        ),
    )
    return TrainConfig(
        model=model,
        dataset="imagenet2012",
        stages=stages,
        batch_size=batch,
        backup_every_steps=1000,
        exact_resume=False,
    )
