"""Name -> model registry: ``create_model``, ``list_models``, ``register_model``.

A registered entry is a function returning a :class:`BiRealConfig`; ``create_model`` applies
the caller's overrides to that config and builds it with the one builder. Nothing in the
package branches on model names.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass

import tensorflow as tf

from bireal_larq.models import zoo
from bireal_larq.models.builder import build_model
from bireal_larq.models.config import BiRealConfig, field_names, real_valued_twin
from bireal_larq.models.weights import load_weights


@dataclass(frozen=True)
class ModelEntry:
    name: str
    config_fn: Callable[[], BiRealConfig]
    source: str  # where the architecture comes from (paper, Training-Tricks-for-BNNs item, project)
    # Whether LCE fuses every binary conv; when False, ``lce_reason`` says why not.
    lce_compatible: bool = True
    lce_reason: str = ""

    @property
    def config(self) -> BiRealConfig:
        return self.config_fn()


_REGISTRY: dict[str, ModelEntry] = {}


def register_model(
    name: str,
    *,
    source: str,
    lce_compatible: bool = True,
    lce_reason: str = "",
):
    """Decorator registering a function that returns the model's :class:`BiRealConfig`.

    Raises:
        ValueError: if ``name`` is already registered.
    """

    def decorator(fn: Callable[[], BiRealConfig]):
        if name in _REGISTRY:
            raise ValueError(f"Model {name!r} is already registered")
        if not lce_compatible and not lce_reason:
            raise ValueError(f"Model {name!r} is marked not LCE-compatible without a reason")
        _REGISTRY[name] = ModelEntry(
            name=name,
            config_fn=fn,
            source=source,
            lce_compatible=lce_compatible,
            lce_reason=lce_reason,
        )
        return fn

    return decorator


def _register_zoo() -> None:
    for name, (source, overrides) in zoo.VARIANTS.items():

        def config_fn(overrides=overrides) -> BiRealConfig:
            return BiRealConfig(**overrides)

        register_model(name, source=source)(config_fn)


_register_zoo()


def list_models() -> list[str]:
    """Sorted names of every registered model."""
    return sorted(_REGISTRY)


def get_entry(name: str) -> ModelEntry:
    if name not in _REGISTRY:
        raise ValueError(f"Unknown model {name!r}; valid names: {', '.join(list_models())}")
    return _REGISTRY[name]


def get_model_config(name: str, **overrides) -> BiRealConfig:
    """The registered config of ``name`` with ``overrides`` applied (validated)."""
    config = get_entry(name).config
    unknown = sorted(set(overrides) - set(field_names()))
    if unknown:
        raise ValueError(
            f"Unknown override(s) {unknown} for model {name!r}; valid config fields: "
            f"{', '.join(field_names())}; valid build arguments: input_shape, input_tensor, "
            "weights, include_top, num_classes, real_valued, twin_activation"
        )
    return dataclasses.replace(config, **overrides) if overrides else config


def create_model(
    name: str,
    *,
    input_shape=None,
    input_tensor=None,
    weights: str | None = None,
    include_top: bool = True,
    num_classes: int = 1000,
    real_valued: bool = False,
    twin_activation: str = "relu",
    **overrides,
) -> tf.keras.Model:
    """Builds a registered model.

    Args:
        name: a name from :func:`list_models`.
        input_shape, input_tensor, include_top, num_classes: as in Keras Applications.
        weights: ``None`` (random initialisation) or a path to weights saved from this package
            or larq-zoo (``.h5``), or a TF checkpoint prefix, loaded by
            :func:`bireal_larq.models.load_weights` (which checks the architecture a file
            records against this model's).
        real_valued: build the real-valued twin (same layer names, no quantizers).
        twin_activation: the twin's activation where each sign was ("relu", "leaky_clip",
            "clip", "identity").
        **overrides: fields of :class:`BiRealConfig` to change.

    Raises:
        ValueError: unknown name or field, or an invalid value (naming the valid ones), or a
            ``weights`` file that does not fit the model (see ``load_weights``).
        FileNotFoundError: ``weights`` does not exist.
    """
    config = get_model_config(name, **overrides)
    for flag, value in (("real_valued", real_valued), ("include_top", include_top)):
        if not isinstance(value, bool):
            raise ValueError(f"{flag}={value!r} is invalid; valid: True or False")
    twin = real_valued_twin(config, twin_activation)  # checks twin_activation in any case
    if real_valued:
        config = twin
    model = build_model(
        config,
        input_shape=input_shape,
        input_tensor=input_tensor,
        include_top=include_top,
        num_classes=num_classes,
        name=name + ("_twin" if real_valued else ""),
    )
    if weights is not None:
        load_weights(model, weights)
    return model


def model_table_markdown() -> str:
    """The model table of the README: every registered name, what it changes, and its source."""
    default = BiRealConfig()
    rows = [
        "| model | changes from `BiRealConfig()` | source | LCE |",
        "| --- | --- | --- | --- |",
    ]
    for name in list_models():
        entry = get_entry(name)
        config = entry.config
        changes = ", ".join(
            f"`{f.name}={getattr(config, f.name)!r}`"
            for f in dataclasses.fields(config)
            if getattr(config, f.name) != getattr(default, f.name)
        )
        lce = "yes" if entry.lce_compatible else f"no: {entry.lce_reason}"
        rows.append(f"| `{name}` | {changes or '(defaults)'} | {entry.source} | {lce} |")
    return "\n".join(rows)
