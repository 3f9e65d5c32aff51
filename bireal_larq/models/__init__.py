"""The Bi-Real Net model zoo: registry, trick config, layers, the builder, weight files."""

from bireal_larq.models import zoo as _zoo  # noqa: F401  (registers the named variants)
from bireal_larq.models.builder import build_model
from bireal_larq.models.config import DEPTHS, BiRealConfig, real_valued_twin
from bireal_larq.models.layers import CUSTOM_OBJECTS
from bireal_larq.models.registry import (
    create_model,
    get_entry,
    get_model_config,
    list_models,
    register_model,
)
from bireal_larq.models.weights import load_weights, save_weights, transfer_weights

__all__ = [
    "DEPTHS",
    "BiRealConfig",
    "CUSTOM_OBJECTS",
    "build_model",
    "create_model",
    "get_entry",
    "get_model_config",
    "list_models",
    "load_weights",
    "real_valued_twin",
    "register_model",
    "save_weights",
    "transfer_weights",
]
