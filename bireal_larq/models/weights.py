"""Loading weight files into zoo models and moving weights between a model and its twin."""

from __future__ import annotations

import json
import os

import h5py
import tensorflow as tf

from bireal_larq.stack import hdf5_format as _hdf5_format
from bireal_larq.utils import atomic_path


def _weight_layers(model: tf.keras.Model) -> list[tf.keras.layers.Layer]:
    return [layer for layer in model.layers if layer.weights]


def _h5_layer_names(path: str) -> list[str]:
    try:
        f = h5py.File(path, "r")
    except OSError as err:
        raise ValueError(
            f"{path!r} is not an HDF5 weights file ({err}); valid: a .h5 weights file written "
            "by training (a run's model.weights.h5 or a stage / epoch checkpoint), a larq-zoo "
            "BiRealNet .h5 file, or a TF checkpoint prefix"
        ) from None
    with f:
        group = f["model_weights"] if "model_weights" in f else f
        if "layer_names" not in group.attrs and "layers" in group and "vars" in group:
            raise ValueError(
                f"{path!r} was written by Keras's save_weights in its newer format (any path "
                "ending in .weights.h5), which this loader does not read; valid: a file written "
                "by bireal_larq.models.save_weights or by training (by layer name), or "
                "model.save_weights('NAME.h5') (Keras's by-name HDF5 format)"
            )
        names = group.attrs.get("layer_names", [])
        names = [n.decode() if isinstance(n, bytes) else str(n) for n in names]
        # Only layers that stored weights take part in loading.
        return [
            n
            for n in names
            if len(group[n].attrs.get("weight_names", [])) > 0
        ]


# Fields that only shape training (initialisation, BatchNorm's moving-average rate, the
# weight clip): a file trained under other values still computes the same function.
_TRAINING_ONLY = ("kernel_initializer", "bn_momentum", "weight_clip")


def _check_zoo_architecture(model: tf.keras.Model, path: str) -> None:
    """A file matched by layer order (larq-zoo's BiRealNet) fits only the zoo's architecture:
    variants with the same weight shapes (padding with 1, PyTorch's padding or BatchNorm
    epsilon, another shortcut order...) would load and silently compute another function."""
    from bireal_larq.models.registry import get_model_config

    config = getattr(model, "bireal_config", None)
    if config is None:
        return
    zoo = get_model_config("birealnet18")
    differ = {
        f: getattr(config, f)
        for f in config.to_dict()
        if f not in _TRAINING_ONLY and getattr(config, f) != getattr(zoo, f)
    }
    if differ:
        raise ValueError(
            f"{path} has no layer names of this package, so it would be matched by layer order, "
            "as larq-zoo's BiRealNet files are; those fit only the zoo's architecture "
            f"(birealnet18), and model {model.name!r} differs in {differ}: the weights would "
            "load but compute another function; valid: create_model('birealnet18', ...), or "
            "convert other checkpoints with bireal_larq.convert_weights"
        )


def save_weights(model: tf.keras.Model, path: str) -> str:
    """Writes ``model``'s weights to ``path`` as a by-name HDF5 file that :func:`load_weights`
    reads, atomically.

    Raises:
        bireal_larq.utils.WriteError: the file could not be written (disk full, permissions);
            an earlier file at ``path`` is unchanged.

    Keras routes any ``*.weights.h5`` path to its new format, which matches layers by
    position; the legacy HDF5 layout (written through a ``.h5`` temporary name) keeps the
    layer names. The temporary file is renamed into place only when complete: a process
    killed while writing leaves the previous file intact.
    """
    with atomic_path(path) as tmp:  # "<stem>.<pid>.tmp.h5": never "*.weights.h5"
        model.save_weights(tmp)
        config = getattr(model, "bireal_config", None)
        if config is not None:  # what the weights compute with, checked by load_weights
            with h5py.File(tmp, "a") as f:
                f.attrs[_CONFIG_ATTR] = config.to_json()
    return path


_CONFIG_ATTR = "bireal_config"


def _check_saved_config(model: tf.keras.Model, path: str) -> None:
    """A file of this package loads only into a model of the architecture that wrote it (up
    to training-only fields): variants with the same layer names and shapes (pad_values,
    padding alignment, BatchNorm epsilon, quantizers...) would load and compute another
    function. Files written before the config was recorded are not checked."""
    mine = getattr(model, "bireal_config", None)
    with h5py.File(path, "r") as f:
        saved = f.attrs.get(_CONFIG_ATTR)
    if mine is None or saved is None:
        return
    saved = json.loads(saved.decode() if isinstance(saved, bytes) else saved)
    current = json.loads(mine.to_json())
    differ = {k: (saved.get(k), v) for k, v in current.items()
              if k not in _TRAINING_ONLY and saved.get(k, v) != v}
    if differ:
        shown = ", ".join(f"{k}: file {a!r}, model {b!r}" for k, (a, b) in differ.items())
        raise ValueError(
            f"{path} was saved from another variant of the architecture ({shown}): the weights "
            f"would load into model {model.name!r} but compute another function; valid: the "
            "model built with the file's settings, or, to start one variant from another on "
            "purpose, bireal_larq.models.transfer_weights(source_model, model)"
        )


def load_weights(model: tf.keras.Model, path: str) -> None:
    """Loads ``path`` into ``model``, refusing anything that does not fit exactly.

    ``.h5`` files saved from this package are matched by layer name; other ``.h5`` files (the
    larq-zoo BiRealNet files, whose layers carry Keras' default names) are matched by the order
    of their weight-carrying layers, which is the zoo's construction order, and only into
    the zoo's architecture. Any other path is read as a TF checkpoint.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: ``path`` is a directory or not a weights file this loader reads, or the
            file does not fit the model (naming the layers that differ).
    """
    path = os.fspath(path)
    if os.path.isdir(path):
        raise ValueError(
            f"Weights path {path!r} is a directory; valid: a weights file (.h5, or a TF "
            f"checkpoint prefix). A training run's final weights are "
            f"{os.path.join(path, 'model.weights.h5')!r}"
        )
    if not path.endswith((".h5", ".hdf5")):
        if not os.path.exists(path + ".index"):  # a TF checkpoint is a prefix + .index
            if os.path.exists(path):
                raise ValueError(
                    f"{path!r} is neither an HDF5 weights file (.h5) nor a TF checkpoint "
                    f"prefix ({path + '.index'!r} does not exist); valid: a .h5 weights file "
                    "written by training, a larq-zoo BiRealNet .h5 file, or a TF checkpoint "
                    "prefix"
                )
            raise FileNotFoundError(f"Weights file {path!r} not found")
        status = model.load_weights(path)
        status.assert_existing_objects_matched()
        return
    if not os.path.exists(path):
        raise FileNotFoundError(f"Weights file {path!r} not found")
    file_names = _h5_layer_names(path)
    model_names = [layer.name for layer in _weight_layers(model)]
    # The legacy HDF5 readers directly: Keras 2.15 routes any "*.weights.h5" path to its new
    # position-based format, which cannot read by-name files.
    if set(file_names) == set(model_names):
        _check_saved_config(model, path)
        with h5py.File(path, "r") as f:
            _hdf5_format().load_weights_from_hdf5_group_by_name(
                f["model_weights"] if "model_weights" in f else f, model
            )
        return
    if len(file_names) != len(model_names):
        missing = sorted(set(model_names) - set(file_names))[:10]
        unexpected = sorted(set(file_names) - set(model_names))[:10]
        raise ValueError(
            f"{path} holds weights for {len(file_names)} layers but model {model.name!r} has "
            f"{len(model_names)} layers with weights (missing e.g. {missing}; unexpected e.g. "
            f"{unexpected}). Check the model name, include_top and num_classes."
        )
    _check_zoo_architecture(model, path)
    try:
        with h5py.File(path, "r") as f:
            _hdf5_format().load_weights_from_hdf5_group(
                f["model_weights"] if "model_weights" in f else f, model
            )
    except ValueError as err:
        raise ValueError(
            f"{path} does not fit model {model.name!r} layer for layer: {err}"
        ) from None


def transfer_weights(source: tf.keras.Model, target: tf.keras.Model) -> list[str]:
    """Copies weights layer by layer, by name, from ``source`` into ``target``.

    Used between a binary model and its real-valued twin (same layer names). Every
    weight-carrying layer of ``target`` must exist in ``source`` with the same shapes.

    Returns:
        The names of the layers copied.

    Raises:
        ValueError: naming the layers missing from ``source`` or whose shapes differ.
    """
    by_name = {layer.name: layer for layer in source.layers}
    missing, mismatched, copied = [], [], []
    for layer in _weight_layers(target):
        src = by_name.get(layer.name)
        if src is None:
            missing.append(layer.name)
            continue
        values = src.get_weights()
        shapes = [w.shape for w in values]
        expected = [tuple(w.shape) for w in layer.weights]
        if shapes != expected:
            mismatched.append(f"{layer.name}: {shapes} vs {expected}")
            continue
        layer.set_weights(values)
        copied.append(layer.name)
    if missing or mismatched:
        raise ValueError(
            f"Cannot transfer weights from {source.name!r} to {target.name!r}: "
            f"missing layers {missing[:10]}; shape mismatches {mismatched[:10]}"
        )
    return copied
