"""The Bi-Real Net model zoo: registry, trick config, layers, the builder, weight files.

Names are loaded on first use: ``import bireal_larq.models.config`` needs no TensorFlow.
"""

from bireal_larq.utils import lazy_exports

_EXPORTS = {
    "DEPTHS": "config",
    "BiRealConfig": "config",
    "real_valued_twin": "config",
    "CUSTOM_OBJECTS": "layers",
    "build_model": "builder",
    "create_model": "registry",
    "get_entry": "registry",
    "get_model_config": "registry",
    "list_models": "registry",
    "register_model": "registry",
    "load_weights": "weights",
    "save_weights": "weights",
    "transfer_weights": "weights",
}
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
__all__ = sorted(_EXPORTS)
