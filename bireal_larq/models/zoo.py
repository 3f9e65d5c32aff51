"""The named Bi-Real Nets: each is a name, a source and a few config overrides.

:data:`VARIANTS` is the table :mod:`bireal_larq.models.registry` registers. Small-input versions
(``*_small``: 3x3/1 stem without pooling, for 28-32 px inputs such as Fashion-MNIST and CIFAR)
are derived from the same table. Plain data: importing this module needs no TensorFlow.
"""

from __future__ import annotations

# name -> (source, overrides of BiRealConfig)
_VARIANTS: dict[str, tuple[str, dict]] = {
    "birealnet18": (
        "Bi-Real Net ECCV 2018; layer-for-layer larq_zoo.literature.BiRealNet",
        dict(depth=18),
    ),
    "birealnet34": (
        "Bi-Real Net ECCV 2018, stage repeats [6, 8, 12, 6]",
        dict(depth=34),
    ),
    "birealnet50": (
        "Bi-Real Net IJCV 2020; authors' pytorch_implementation/BiReal_50",
        dict(depth=50),
    ),
    "birealnet18_lce": (
        "LCE recommendation: pad_values=1 (no border correction)",
        dict(depth=18, pad_values=1.0),
    ),
    "birealnet34_lce": ("LCE recommendation: pad_values=1", dict(depth=34, pad_values=1.0)),
    "birealnet50_lce": ("LCE recommendation: pad_values=1", dict(depth=50, pad_values=1.0)),
    "birealnet18_prelu": (
        "Training-Tricks-for-BNNs item 2: PReLU after every shortcut add",
        dict(depth=18, activation="prelu"),
    ),
    "birealnet18_tricks": (
        "Training-Tricks-for-BNNs items 1, 2, 4: BN->sign->bconv->add->PReLU, downsampling v1",
        dict(depth=18, layout="catalogue", activation="prelu", shortcut="v1"),
    ),
    "birealnet50_tricks": (
        "Training-Tricks-for-BNNs item 1: binary bottleneck with a real-valued branch",
        dict(depth=50, layout="catalogue", activation="prelu", shortcut="v1"),
    ),
    "birealnet18_react": (
        "ReActNet (ECCV 2020) RSign + RPReLU on the Bi-Real-18 backbone",
        dict(depth=18, rsign=True, activation="rprelu"),
    ),
    "birealnet18_se": (
        "Training-Tricks-for-BNNs item 13: channel attention from the real-valued input",
        dict(depth=18, channel_attention=True),
    ),
    "birealnet18_wide": (
        "Training-Tricks-for-BNNs item 15: double channels, grouped (4) binary 3x3 convs",
        dict(depth=18, width_multiplier=2.0, groups=4),
    ),
}

# The authors' PyTorch models exactly: symmetric padding of strided layers, BN epsilon 1e-5
# and PyTorch's default BN momentum 0.1 (Keras 0.9). Targets of converted PyTorch weights.
for _depth in (18, 34, 50):
    _VARIANTS[f"birealnet{_depth}_torch"] = (
        "authors' PyTorch implementation (liuzechun/Bi-Real-net), numerics matched",
        dict(depth=_depth, padding_alignment="torch", bn_epsilon=1e-5, bn_momentum=0.9),
    )

# Every variant has its small-input twin, except the PyTorch-numerics targets of converted
# ImageNet weights.
VARIANTS: dict[str, tuple[str, dict]] = dict(_VARIANTS)
for _name, (_source, _overrides) in _VARIANTS.items():
    if not _name.endswith("_torch"):
        VARIANTS[f"{_name}_small"] = (
            _source + "; small-input stem (3x3/1, no pool)",
            {**_overrides, "stem": "small"},
        )
