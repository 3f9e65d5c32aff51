"""The one configuration of every augmentation choice, with a preset per published recipe.

Sources are cited per field:
  [BR]   the authors' PyTorch recipe (``liuzechun/Bi-Real-net``, ``train.py``) and the Caffe
         recipe of the Bi-Real Net paper (Liu et al., ECCV 2018).
  [Tricks #n]  item n of Training-Tricks-for-Binarized-Neural-Networks (HolmesShuan, 2019).
  [AA]   Cubuk et al., "AutoAugment", CVPR 2019 (the CIFAR-10 policy).
  [CO]   DeVries & Taylor, "Improved Regularization of CNNs with Cutout", 2017.
  [MU]   Zhang et al., "mixup", ICLR 2018.  [CM] Yun et al., "CutMix", ICCV 2019.
  [FB]   ``facebook/fb.resnet.torch`` (Lighting on [0, 1] images, where its eigen values live).

A recipe is a preset name plus a few overrides (see :data:`PRESETS`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from bireal_larq.data.specs import SPECS

CROPS = ("random_resized", "resize_random_crop", "pad_random_crop", "none")
AUTOAUGMENT_POLICIES = ("none", "cifar10")


@dataclass(frozen=True)
class AugmentConfig:
    """Training augmentation and evaluation resizing of one recipe. Frozen.

    The field defaults are the authors' ImageNet PyTorch recipe; :func:`preset` gives the others.
    Invalid values raise ``ValueError`` naming the field and the valid values.
    """

    # --- geometry ----------------------------------------------------------------------------
    crop: str = "random_resized"  # [BR] RandomResizedCrop; [Tricks #18] "resize_random_crop"
    # (Caffe); [Tricks #9] "pad_random_crop" for CIFAR; "none": keep the image (resized to the
    # model input)
    area_range: tuple[float, float] = (0.08, 1.0)  # [BR] RandomResizedCrop(scale=(0.08, 1))
    aspect_ratio_range: tuple[float, float] = (3 / 4, 4 / 3)  # torchvision's default ratio
    train_resize_ratio: float = 256 / 224  # [Tricks #18] "resize_random_crop": shorter side 224*r
    pad: int = 4  # [Tricks #9] RandomCrop(32, padding=4) ("pad_random_crop")
    flip: bool = True  # [BR]/[Tricks #9] horizontal flip; off for digits-like data
    rotation_degrees: float = 0.0  # [Tricks #9] CIFAR: RandomRotation(15)
    antialias: bool = False  # training resizes skip the anti-aliasing filter (speed)

    # --- photometric -------------------------------------------------------------------------
    autoaugment: str = "none"  # [AA] "cifar10": the published CIFAR-10 policy
    cutout: int = 0  # [CO] side of the square set to the mean (after AutoAugment); [AA]: 16
    brightness: float = 0.0  # [Tricks #9] ImageNet stage 1: ColorJitter(0.4, 0.4, 0.4, 0.1)
    contrast: float = 0.0
    saturation: float = 0.0
    hue: float = 0.0
    lighting_alphastd: float = 0.1  # [BR]/[Tricks #9] Lighting(0.1), ImageNet PCA; [FB] on [0, 1]

    # --- batch level -------------------------------------------------------------------------
    mixup_alpha: float = 0.0  # [Tricks #9]/[MU] Beta(alpha, alpha) mixing of a batch with itself
    cutmix_alpha: float = 0.0  # [CM]; with both > 0 each batch picks one (cutmix_prob)
    cutmix_prob: float = 0.5

    # --- evaluation --------------------------------------------------------------------------
    # [BR] Resize(256)+CenterCrop(224); [Tricks #18] also 1.15 and 1.35
    eval_resize_ratio: float = 256 / 224

    def __post_init__(self):
        for field in ("area_range", "aspect_ratio_range"):
            value = getattr(self, field)
            if isinstance(value, list):
                object.__setattr__(self, field, tuple(value))
        self.validate()

    def validate(self) -> None:
        def fail(field: str, valid: str) -> None:
            raise ValueError(
                f"AugmentConfig.{field}={getattr(self, field)!r} is invalid; valid: {valid}"
            )

        if self.crop not in CROPS:
            fail("crop", str(list(CROPS)))
        if self.autoaugment not in AUTOAUGMENT_POLICIES:
            fail("autoaugment", str(list(AUTOAUGMENT_POLICIES)))
        lo_hi = self.area_range
        if not (isinstance(lo_hi, tuple) and len(lo_hi) == 2 and 0 < lo_hi[0] <= lo_hi[1] <= 1):
            fail("area_range", "a pair (lo, hi) with 0 < lo <= hi <= 1")
        lo_hi = self.aspect_ratio_range
        if not (isinstance(lo_hi, tuple) and len(lo_hi) == 2 and 0 < lo_hi[0] <= lo_hi[1]):
            fail("aspect_ratio_range", "a pair (lo, hi) with 0 < lo <= hi")
        for field in ("train_resize_ratio", "eval_resize_ratio"):
            if not getattr(self, field) >= 1.0:
                fail(field, "a ratio >= 1 (the resized shorter side is image_size * ratio)")
        for field in ("pad", "cutout"):
            value = getattr(self, field)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                fail(field, "an integer >= 0 (pixels)")
        if not 0 <= self.rotation_degrees <= 180:
            fail("rotation_degrees", "0 <= degrees <= 180")
        for field in ("flip", "antialias"):
            if getattr(self, field) not in (True, False):
                fail(field, "True or False")
        for field in ("brightness", "contrast", "saturation"):
            if not 0 <= getattr(self, field) < 1:
                fail(field, "0 <= strength < 1 (the factor is drawn from [1-s, 1+s])")
        if not 0 <= self.hue <= 0.5:
            fail("hue", "0 <= hue <= 0.5 (a fraction of the hue circle)")
        for field in ("lighting_alphastd", "mixup_alpha", "cutmix_alpha"):
            if not getattr(self, field) >= 0:
                fail(field, "a number >= 0 (0 turns it off)")
        if not 0 <= self.cutmix_prob <= 1:
            fail("cutmix_prob", "a probability in [0, 1]")

    @property
    def color_jitter(self) -> bool:
        return any(v > 0 for v in (self.brightness, self.contrast, self.saturation, self.hue))

    @property
    def mixes_batches(self) -> bool:
        return self.mixup_alpha > 0 or self.cutmix_alpha > 0

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> AugmentConfig:
        valid = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(set(values) - set(valid))
        if unknown:
            raise ValueError(f"Unknown AugmentConfig field(s) {unknown}; valid fields: {valid}")
        return cls(**values)


_NO_PHOTOMETRIC = dict(lighting_alphastd=0.0)
_SMALL = dict(crop="pad_random_crop", eval_resize_ratio=1.0, **_NO_PHOTOMETRIC)

# Recipe name -> overrides of the AugmentConfig defaults.
PRESETS: dict[str, dict[str, Any]] = {
    "imagenet": {},  # [BR] RandomResizedCrop(0.08-1) + Lighting(0.1) + flip; eval 256 -> 224
    # [Tricks #9] colour jitter, stage 1 only
    "imagenet_jitter": dict(brightness=0.4, contrast=0.4, saturation=0.4, hue=0.1),
    # [BR] Caffe recipe / [Tricks #18]
    "imagenet_caffe": dict(crop="resize_random_crop", **_NO_PHOTOMETRIC),
    "cifar": dict(_SMALL, rotation_degrees=15.0),  # [Tricks #9] crop 4 + flip + rotation 15
    "cifar_mixup": dict(_SMALL, rotation_degrees=15.0, mixup_alpha=1.0),  # [Tricks #9] + [MU]
    # [Tricks #9] + [AA]: the AutoAugment paper's CIFAR recipe ends with Cutout 16 px
    "cifar_autoaugment": dict(_SMALL, autoaugment="cifar10", cutout=16),
    "fashion_mnist": dict(_SMALL, pad=2),  # crop 2 + flip (clothes are left-right symmetric)
    "digits": dict(_SMALL, pad=2, flip=False),  # a flipped digit is another symbol
    "none": dict(crop="none", flip=False, eval_resize_ratio=1.0, **_NO_PHOTOMETRIC),
}

# Dataset name -> the preset get_dataset uses when ``augment`` is None (each spec's
# ``default_preset``).
DEFAULT_PRESETS = {name: spec.default_preset for name, spec in SPECS.items()}


def preset(name: str, **overrides: Any) -> AugmentConfig:
    """The AugmentConfig of a recipe, optionally with some fields overridden.

    Raises:
        ValueError: unknown preset name or field.
    """
    if name not in PRESETS:
        raise ValueError(f"Unknown augmentation preset {name!r}; valid: {sorted(PRESETS)}")
    return AugmentConfig.from_dict({**PRESETS[name], **overrides})


def default_augment(dataset: str) -> AugmentConfig:
    """The default training recipe of a dataset: its spec's ``default_preset`` (see
    :data:`DEFAULT_PRESETS`)."""
    if dataset not in SPECS:
        raise ValueError(f"Unknown dataset {dataset!r}; valid: {sorted(SPECS)}")
    return preset(SPECS[dataset].default_preset)
