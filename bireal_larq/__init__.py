"""bireal_larq: Bi-Real Net binarized neural networks on Larq, from training to LCE."""

from bireal_larq.models import (
    CUSTOM_OBJECTS,
    BiRealConfig,
    build_model,
    create_model,
    list_models,
    load_weights,
    real_valued_twin,
    register_model,
    transfer_weights,
)

__version__ = "0.1.0"

__all__ = [
    "CUSTOM_OBJECTS",
    "BiRealConfig",
    "build_model",
    "create_model",
    "list_models",
    "load_weights",
    "real_valued_twin",
    "register_model",
    "transfer_weights",
]
