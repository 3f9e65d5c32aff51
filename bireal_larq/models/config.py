"""The one configuration of every Bi-Real Net and every architectural trick.

Sources are cited per field:
  [BR]   Liu et al., "Bi-Real Net", ECCV 2018 / IJCV 2020, and the authors' code
         ``liuzechun/Bi-Real-net``.
  [Tricks #n]  item n of Training-Tricks-for-Binarized-Neural-Networks (HolmesShuan, 2019).
  [ZOO]  ``larq_zoo.literature.BiRealNet``.
  [RA]   Liu et al., "ReActNet", ECCV 2020.
  [LCE]  Larq Compute Engine documentation.

A variant of the zoo is a registered name plus a few overrides of these fields
(see :mod:`bireal_larq.models.zoo`).
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass
from typing import Any

# Depth spec table: depth -> (block type, binary blocks per stage).  [BR]
DEPTHS: dict[int, tuple[str, tuple[int, ...]]] = {
    18: ("basic", (4, 4, 4, 4)),
    34: ("basic", (6, 8, 12, 6)),
    50: ("bottleneck", (3, 4, 6, 3)),
}

INPUT_QUANTIZERS = ("approx_sign", "ste_sign", "swish_sign")
KERNEL_QUANTIZERS = ("magnitude_aware_sign", "magnitude_aware_sign_unscaled", "ste_sign")
REAL_ACTIVATION_NAMES = ("relu", "leaky_clip", "clip", "identity")
STEMS = ("imagenet", "small")
STEM_ORDERS = ("conv_bn_pool", "conv_pool_bn")
LAYOUTS = ("bireal", "catalogue")
ACTIVATIONS = ("none", "prelu", "rprelu")
SHORTCUTS = ("bireal", "v1", "v2", "v3")
PADDING_ALIGNMENTS = ("tf", "torch")
# Fields that only shape training (initialisation, BatchNorm's moving-average rate, the weight
# clip): weights trained under other values still compute the same function.
TRAINING_ONLY_FIELDS = ("kernel_initializer", "bn_momentum", "weight_clip")


@dataclass(frozen=True)
class BiRealConfig:
    """Architecture of one Bi-Real Net. Frozen; change it with :func:`dataclasses.replace`.

    Invalid values raise ``ValueError`` naming the field and the valid values.
    """

    # --- topology -------------------------------------------------------------------------
    depth: int = 18  # [BR] 18/34: one binary 3x3 conv per block; 50: bottleneck (IJCV)
    base_filters: int = 64  # [BR] stage widths base*(1,2,4,8) (x4 for the bottleneck output)
    width_multiplier: float = 1.0  # [Tricks #15] double/treble channel number
    groups: int = 1  # [Tricks #15] grouped binary 3x3 convs to keep the BOPs of wider nets down
    stem: str = "imagenet"  # [BR] 7x7/2 conv+BN+max-pool; "small": 3x3/1 conv+BN for 28-32 px
    stem_order: str = "conv_bn_pool"  # [Tricks #11] "conv_pool_bn": reordered pooling block
    stem_activation: str = "none"  # [BR] none; [Tricks #11] writes Conv+Pool+BN+ReLU ("relu")
    layout: str = "bireal"  # [BR] sign->bconv->BN->add;
    # [Tricks #1] "catalogue": BN->sign->bconv->add->act
    # [BR]/[Tricks #3] a shortcut around every binary conv; False: ResNet's two convs per
    # shortcut (the 2-layer-per-block baseline of the Bi-Real paper)
    double_skip: bool = True
    shortcut: str = "bireal"  # [BR] AvgPool->1x1->BN (= [Tricks #4] v2); [Tricks #4] "v1"
    # 1x1->BN->AvgPool, "v3" 1x1->BN->AvgPool 3x3/2
    channel_attention: bool = False  # [Tricks #13] bconv output *= SE(real-valued input)
    se_reduction: int = 16  # [Tricks #13] squeeze ratio of the SE module (SE-Net default)

    # --- binarization ---------------------------------------------------------------------
    input_quantizer: str | None = "approx_sign"  # [BR] sign fwd, ApproxSign grad; None: real
    kernel_quantizer: str | None = "magnitude_aware_sign"  # [BR] mean|W|*sign(W); None: real
    # ("magnitude_aware_sign": larq's gradient, dy * mean|W|; "magnitude_aware_sign_unscaled":
    # the authors' PyTorch gradient, dy through clamp(W, -1, 1); the same forward pass)
    weight_clip: float | None = 1.0  # [BR] gradient through clamp(W,-1,1) / [ZOO] weight_clip
    # (also the weight quantizer's gradient window; None: no constraint, window [-1, 1])
    pad_values: float = 0.0  # [BR]/[ZOO] 0; [LCE] 1 avoids the border correction (not weight
    # compatible with 0)
    real_activation: str = "relu"  # [BR] Caffe pre-training: relu -> leaky_clip -> clip, used
    # where the sign would be when input_quantizer is None
    rsign: bool = False  # [RA] learnable per-channel threshold before every sign
    activation: str = "none"  # after every shortcut add: [BR] none, [Tricks #2] prelu, [RA] rprelu
    binary_first_layer: bool = False  # [BR] the first conv stays real-valued
    binary_last_layer: bool = False  # [BR] the classifier stays real-valued

    # --- normalisation and numerics -------------------------------------------------------
    bn_momentum: float = 0.8  # Keras sense (= PyTorch 0.2, [Tricks #10]); PyTorch default 0.1 = 0.9
    bn_epsilon: float = 1e-3  # Keras default; the PyTorch models use 1e-5
    padding_alignment: str = "tf"  # "torch": symmetric padding of strided layers, as in the
    # authors' PyTorch code (needed to run their weights exactly)
    kernel_initializer: str = "glorot_normal"  # [ZOO]

    def __post_init__(self):
        # [Tricks #4] v2 is AvgPool->1x1->BN, the very layers of Bi-Real's own shortcut.
        if self.shortcut == "v2":
            object.__setattr__(self, "shortcut", "bireal")
        if isinstance(self.width_multiplier, int) and not isinstance(self.width_multiplier, bool):
            object.__setattr__(self, "width_multiplier", float(self.width_multiplier))
        self.validate()

    # ------------------------------------------------------------------------------------
    @property
    def block(self) -> str:
        return DEPTHS[self.depth][0]

    @property
    def stage_repeats(self) -> tuple[int, ...]:
        return DEPTHS[self.depth][1]

    def stage_filters(self) -> list[int]:
        """Output channels of each stage (block output; the bottleneck's is 4x its mid width)."""
        expansion = 4 if self.block == "bottleneck" else 1
        return [
            int(round(self.base_filters * self.width_multiplier * 2**i)) * expansion
            for i in range(len(self.stage_repeats))
        ]

    def total_stride(self) -> int:
        stem = 4 if self.stem == "imagenet" else 1
        return stem * 2 ** (len(self.stage_repeats) - 1)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> BiRealConfig:
        unknown = sorted(set(values) - {f.name for f in dataclasses.fields(cls)})
        if unknown:
            raise ValueError(
                f"Unknown BiRealConfig field(s) {unknown}; valid fields: {field_names()}"
            )
        return cls(**values)

    # ------------------------------------------------------------------------------------
    def validate(self) -> None:
        """Raises ``ValueError`` at the first invalid field, naming it and its valid values.

        The checks run in this order: the types of the numeric fields, the enumerated
        fields, the channel widths, the grouped convs, the other numeric ranges, the kernel
        initializer, and the fields that must go together.
        """
        self._check_number_types()
        self._check_choices()
        self._check_widths()
        self._check_groups()
        self._check_ranges()
        self._check_kernel_initializer()
        self._check_combinations()

    def _number(self, field: str, integer: bool = False, optional: bool = False) -> None:
        """``field`` is an integer (``integer``) or a finite number, or None (``optional``);
        a bool is neither."""
        value = getattr(self, field)
        kinds = (int,) if integer else (int, float)
        if value is None and optional:
            return
        if isinstance(value, bool) or not isinstance(value, kinds) or not math.isfinite(value):
            kind = "an integer" if integer else "a finite number"
            raise ValueError(
                f"BiRealConfig.{field}={value!r} is a {type(value).__name__}; valid: {kind}"
                + (" or None" if optional else "")
            )

    def _choice(self, field: str, valid) -> None:
        """``field`` is one of ``valid``."""
        value = getattr(self, field)
        if value not in valid:
            raise ValueError(f"BiRealConfig.{field}={value!r} is invalid; valid: {list(valid)}")

    def _check_number_types(self) -> None:
        """The integer fields are integers, the other numeric fields finite numbers
        (``weight_clip`` may be None)."""
        for field in ("depth", "base_filters", "groups", "se_reduction"):
            self._number(field, integer=True)
        for field in ("width_multiplier", "bn_momentum", "bn_epsilon", "pad_values"):
            self._number(field)
        self._number("weight_clip", optional=True)

    def _check_choices(self) -> None:
        """Each enumerated field holds one of its values (the flags: True or False)."""
        self._choice("depth", sorted(DEPTHS))
        self._choice("stem", STEMS)
        self._choice("stem_order", STEM_ORDERS)
        self._choice("stem_activation", ("none", "relu"))
        self._choice("layout", LAYOUTS)
        self._choice("shortcut", ("bireal", "v1", "v3"))  # "v2" is stored as "bireal"
        self._choice("input_quantizer", (*INPUT_QUANTIZERS, None))
        self._choice("kernel_quantizer", (*KERNEL_QUANTIZERS, None))
        self._choice("real_activation", REAL_ACTIVATION_NAMES)
        self._choice("activation", ACTIVATIONS)
        self._choice("padding_alignment", PADDING_ALIGNMENTS)
        self._choice("pad_values", (0.0, 1.0))
        for field in ("double_skip", "channel_attention", "rsign", "binary_first_layer",
                      "binary_last_layer"):
            self._choice(field, (True, False))

    def _check_widths(self) -> None:
        """``base_filters`` is a positive integer and ``width_multiplier`` a number > 0 that
        leaves every stage at least one channel."""
        if not isinstance(self.base_filters, int) or self.base_filters < 1:
            raise ValueError(
                f"BiRealConfig.base_filters={self.base_filters!r} is invalid; "
                "valid: a positive integer"
            )
        if not isinstance(self.width_multiplier, float) or not self.width_multiplier > 0:
            raise ValueError(
                f"BiRealConfig.width_multiplier={self.width_multiplier!r} is invalid; "
                "valid: a number > 0 (2.0 and 3.0 are the catalogue's double/treble widths)"
            )
        if any(f < 1 for f in self.stage_filters()):
            raise ValueError(
                f"BiRealConfig.width_multiplier={self.width_multiplier} leaves a stage with no "
                f"channels (base_filters={self.base_filters}); valid: a larger multiplier"
            )

    def _check_groups(self) -> None:
        """``groups`` is a positive integer that divides the input and output widths of every
        grouped binary 3x3 conv."""
        if not isinstance(self.groups, int) or self.groups < 1:
            raise ValueError(
                f"BiRealConfig.groups={self.groups!r} is invalid; valid: a positive integer"
            )
        if self.groups == 1:
            return
        widths = self._grouped_conv_widths()
        bad = sorted({w for w in widths if w % self.groups})
        if bad:
            raise ValueError(
                f"BiRealConfig.groups={self.groups} does not divide the channels {bad} of "
                f"the grouped binary 3x3 convs (all widths: {sorted(set(widths))}); "
                "valid: a common divisor of them"
            )

    def _check_ranges(self) -> None:
        """``se_reduction`` >= 1, 0 <= ``bn_momentum`` < 1, ``bn_epsilon`` > 0 and
        ``weight_clip`` None or > 0."""
        if not isinstance(self.se_reduction, int) or self.se_reduction < 1:
            raise ValueError(
                f"BiRealConfig.se_reduction={self.se_reduction!r} is invalid; "
                "valid: a positive integer"
            )
        if not 0.0 <= self.bn_momentum < 1.0:
            raise ValueError(
                f"BiRealConfig.bn_momentum={self.bn_momentum} is invalid; valid: 0 <= m < 1 "
                "(Keras sense: PyTorch momentum m is Keras 1 - m)"
            )
        if not self.bn_epsilon > 0:
            raise ValueError(f"BiRealConfig.bn_epsilon={self.bn_epsilon} is invalid; valid: > 0")
        if self.weight_clip is not None and not self.weight_clip > 0:
            raise ValueError(
                f"BiRealConfig.weight_clip={self.weight_clip} is invalid; valid: None or > 0"
            )

    def _check_kernel_initializer(self) -> None:
        """``kernel_initializer`` is the name of a Keras initializer (a string, as configs
        are saved as JSON). Imports TensorFlow, which this module otherwise does not need."""
        if not isinstance(self.kernel_initializer, str):
            raise ValueError(
                f"BiRealConfig.kernel_initializer={self.kernel_initializer!r} is invalid; "
                "valid: a Keras initializer name such as 'glorot_normal' (configs are saved as "
                "JSON)"
            )
        import tensorflow as tf

        try:
            tf.keras.initializers.get(self.kernel_initializer)
        except ValueError:
            raise ValueError(
                f"BiRealConfig.kernel_initializer={self.kernel_initializer!r} is not a Keras "
                "initializer; valid: a Keras name such as 'glorot_normal' or 'he_normal'"
            ) from None

    def _check_combinations(self) -> None:
        """Fields that must go together: ``stem_order='conv_pool_bn'`` needs the imagenet
        stem (the one with a pool); ``double_skip=False`` needs the basic block with even
        stage repeats (depth 18 or 34)."""
        if self.stem_order == "conv_pool_bn" and self.stem != "imagenet":
            raise ValueError(
                "BiRealConfig.stem_order='conv_pool_bn' reorders the stem's max-pool, but "
                f"stem={self.stem!r} has no pool; valid: stem='imagenet' or "
                "stem_order='conv_bn_pool'"
            )
        if self.double_skip:
            return
        if self.block != "basic":
            raise ValueError(
                "BiRealConfig.double_skip=False (two binary convs per shortcut) applies to "
                f"the basic block only; depth={self.depth} uses the bottleneck; "
                "valid: depth 18 or 34"
            )
        odd = [r for r in self.stage_repeats if r % 2]
        if odd:
            raise ValueError(
                "BiRealConfig.double_skip=False pairs binary convs, but stage repeats "
                f"{self.stage_repeats} contain odd counts; valid: depth 18 or 34"
            )

    def _grouped_conv_widths(self) -> list[int]:
        """Input and output widths of every binary 3x3 conv (the ones that are grouped)."""
        widths = []
        filters = self.stage_filters()
        if self.block == "basic":
            stem_out = int(round(self.base_filters * self.width_multiplier))
            previous = stem_out
            for f in filters:
                widths += [previous, f]
                previous = f
        else:
            widths = [f // 4 for f in filters]
        return widths


def field_names() -> list[str]:
    return [f.name for f in dataclasses.fields(BiRealConfig)]


def real_valued_twin(config: BiRealConfig, activation: str = "relu") -> BiRealConfig:
    """The same topology with every quantizer off and ``activation`` where each sign was.

    Layer names are unchanged, so weights move between a model and its twin by name
    (see :func:`bireal_larq.models.weights.transfer_weights`). ``activation`` is one of the
    Caffe pre-training steps: "relu" -> "leaky_clip" -> "clip".
    """
    if activation not in REAL_ACTIVATION_NAMES:
        raise ValueError(
            f"Twin activation {activation!r} is invalid; valid: {list(REAL_ACTIVATION_NAMES)}"
        )
    return dataclasses.replace(
        config,
        input_quantizer=None,
        kernel_quantizer=None,
        weight_clip=None,
        # Padding a real-valued input with 1 would change what the twin computes.
        pad_values=0.0,
        real_activation=activation,
        binary_first_layer=False,
        binary_last_layer=False,
    )
