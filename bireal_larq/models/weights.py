"""The weight files of the package: ``save_weights``, ``load_weights`` and ``transfer_weights``.

Every weights file the package reads or writes goes through this module: models
(``create_model(weights=...)``), training (stage, epoch and final weights, teachers and label
refineries), evaluation and export.

A file written by :func:`save_weights` is Keras's by-name HDF5 layout plus the model's
:class:`~bireal_larq.models.config.BiRealConfig` as the JSON attribute ``bireal_config`` of
the file's root. :func:`load_weights` loads such a file only into a model of that
architecture (up to the fields that only shape training) and matches its layers by name.
Files without a recorded config load as follows: ``.h5`` files whose layer names are the
model's by name, other ``.h5`` files (larq-zoo's BiRealNet, whose layers carry Keras' default
names) by the order of their weight-carrying layers into larq-zoo's architecture only, and
TF checkpoint prefixes through TensorFlow's checkpoint matching.

A refused file leaves the model as it was: the checks of an ``.h5`` file run before the first
weight is assigned, and a TF checkpoint that does not fit is rolled back.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass

import h5py
import tensorflow as tf

from bireal_larq.models.config import TRAINING_ONLY_FIELDS, BiRealConfig
from bireal_larq.stack import hdf5_format
from bireal_larq.utils import atomic_path

# The root attribute holding the architecture a file's weights compute with.
_CONFIG_ATTR = "bireal_config"


# larq_zoo.literature.BiRealNet: the registry's "birealnet18" (the defaults of BiRealConfig,
# tagged [ZOO] in bireal_larq.models.config). The only architecture a file matched by layer
# order fits.
_LARQ_ZOO_CONFIG = BiRealConfig(depth=18)

_VALID_FILES = (
    "valid: a .h5 weights file written by bireal_larq.models.save_weights or by training (a "
    "run's model.weights.h5, a stage's or an epoch's checkpoint), a larq-zoo BiRealNet .h5 "
    "file, or a TF checkpoint prefix"
)


# ------------------------------------------------------------------------------ saving
def save_weights(model: tf.keras.Model, path: str) -> str:
    """Writes ``model``'s weights to ``path`` as a by-name HDF5 file that :func:`load_weights`
    reads, with the model's ``bireal_config`` (when it has one), atomically.

    Keras routes any ``*.weights.h5`` path to its newer format, which matches layers by
    position; the weights are written through a temporary ``.h5`` name in the legacy layout,
    which keeps the layer names, and renamed into place only when complete: a process killed
    while writing leaves the previous file intact.

    Returns:
        ``path``.

    Raises:
        bireal_larq.utils.WriteError: the file could not be written (disk full, permissions);
            an earlier file at ``path`` is unchanged.
    """
    with atomic_path(path) as tmp:  # "<stem>.<pid>.tmp.h5": never "*.weights.h5"
        model.save_weights(tmp)
        config = getattr(model, "bireal_config", None)
        if config is not None:  # what the weights compute with, checked by load_weights
            with h5py.File(tmp, "a") as f:
                f.attrs[_CONFIG_ATTR] = config.to_json()
    return path


# ------------------------------------------------------------------------------ reading
@dataclass(frozen=True)
class _H5Contents:
    """What a by-name HDF5 weights file holds: the recorded config (None: not recorded) and,
    in file order, each weight-carrying layer's name and weight shapes."""

    config: dict | None
    layers: dict[str, list[tuple[int, ...]]]


def _read_h5(path: str) -> _H5Contents:
    try:
        f = h5py.File(path, "r")
    except OSError as err:
        raise ValueError(f"{path!r} is not an HDF5 weights file ({err}); {_VALID_FILES}") from None
    with f:
        group = f["model_weights"] if "model_weights" in f else f
        if "layer_names" not in group.attrs and "layers" in group and "vars" in group:
            raise ValueError(
                f"{path!r} was written by Keras's save_weights in its newer format (any path "
                "ending in .weights.h5), which this loader does not read; valid: a file written "
                "by bireal_larq.models.save_weights or by training (by layer name), or "
                "model.save_weights('NAME.h5') (Keras's by-name HDF5 format)"
            )
        if "layer_names" not in group.attrs:
            raise ValueError(f"{path!r} holds no Keras weights (no layer_names); {_VALID_FILES}")
        layers = {}
        for name in group.attrs["layer_names"]:
            name = name.decode() if isinstance(name, bytes) else str(name)
            weight_names = group[name].attrs.get("weight_names", [])
            if len(weight_names) > 0:  # only layers that stored weights take part in loading
                layers[name] = [
                    tuple(group[name][w.decode() if isinstance(w, bytes) else w].shape)
                    for w in weight_names
                ]
        saved = f.attrs.get(_CONFIG_ATTR)
    if saved is not None:
        saved = json.loads(saved.decode() if isinstance(saved, bytes) else saved)
    return _H5Contents(config=saved, layers=layers)


def _weight_layers(model: tf.keras.Model) -> list[tf.keras.layers.Layer]:
    return [layer for layer in model.layers if layer.weights]


def _shapes(layer: tf.keras.layers.Layer) -> list[tuple[int, ...]]:
    # The order in which Keras's HDF5 layout stores a layer's weights.
    return [tuple(w.shape) for w in layer.trainable_weights + layer.non_trainable_weights]


# ------------------------------------------------------------------------------ checks
def _differences(saved: dict, config: BiRealConfig) -> dict[str, tuple]:
    """Fields (not training-only) where the file's recorded config and ``config`` differ, as
    ``{field: (file value, model value)}``. A field the file does not record is read at its
    default, the value every file written before the field existed computed with."""
    defaults = json.loads(BiRealConfig().to_json())
    current = json.loads(config.to_json())
    return {
        k: (saved.get(k, defaults[k]), v)
        for k, v in current.items()
        if k not in TRAINING_ONLY_FIELDS and saved.get(k, defaults[k]) != v
    }


def _check_recorded_config(model: tf.keras.Model, path: str, saved: dict) -> None:
    """A file that records its architecture loads only into a model of that architecture:
    variants with the same layer names and shapes (pad_values, padding alignment, BatchNorm
    epsilon, quantizers...) would compute another function, and variants with other layers
    must not be matched by order."""
    config = getattr(model, "bireal_config", None)
    if config is None:
        raise ValueError(
            f"{path} records the architecture its weights compute with, but model "
            f"{model.name!r} has no bireal_config to compare it with; valid: a model built by "
            "bireal_larq.models.create_model (or one whose bireal_config attribute is set to "
            "the BiRealConfig it was built from)"
        )
    _refuse_other_variant(path, saved, config, f"model {model.name!r}")


def check_file_architecture(path: str, config: BiRealConfig, what: str = "the model") -> None:
    """Refuses, before any model is built, a weights file that records another architecture
    than ``config`` (the check :func:`load_weights` makes). Files that record none (larq-zoo's,
    TF checkpoints) are left to ``load_weights``.

    Raises:
        ValueError: the differing fields, the file's and ``config``'s values, what would load it.
    """
    if not path.endswith(".h5") or not os.path.isfile(path) or not h5py.is_hdf5(path):
        return
    saved = _read_h5(path).config
    if saved is not None:
        _refuse_other_variant(path, saved, config, what)


def _refuse_other_variant(path: str, saved: dict, config: BiRealConfig, what: str) -> None:
    differ = _differences(saved, config)
    if differ:
        shown = "; ".join(f"{k}: file {a!r}, model {b!r}" for k, (a, b) in differ.items())
        overrides = ", ".join(f"{k}={a!r}" for k, (a, _) in differ.items())
        raise ValueError(
            f"{path} was saved from another variant of the architecture ({shown}): its weights "
            f"belong to that variant and would compute another function in "
            f"{what}; valid: a model built with the file's values, e.g. "
            f"create_model(NAME, {overrides}) with the registered NAME the file was trained "
            "as, or, to start one variant from another on purpose, "
            "bireal_larq.models.transfer_weights(source_model, model)"
        )


def _check_zoo_architecture(model: tf.keras.Model, path: str) -> None:
    """A file matched by layer order (larq-zoo's BiRealNet) fits only the zoo's architecture:
    variants with the same weight shapes (padding with 1, PyTorch's padding or BatchNorm
    epsilon, another shortcut order...) would load and silently compute another function."""
    config = getattr(model, "bireal_config", None)
    if config is None:
        return
    differ = {
        f: getattr(config, f)
        for f in config.to_dict()
        if f not in TRAINING_ONLY_FIELDS and getattr(config, f) != getattr(_LARQ_ZOO_CONFIG, f)
    }
    if differ:
        raise ValueError(
            f"{path} records no architecture and its layer names are not the model's, so it "
            "would be matched by layer order, as larq-zoo's BiRealNet files are; those fit "
            f"only the zoo's architecture (birealnet18), and model {model.name!r} differs in "
            f"{differ}: the weights would load but compute another function; valid: "
            "create_model('birealnet18', ...), or convert other checkpoints with "
            "bireal_larq.convert_weights"
        )


def _check_names(model: tf.keras.Model, path: str, contents: _H5Contents) -> None:
    file_names = set(contents.layers)
    model_names = {layer.name for layer in _weight_layers(model)}
    if file_names != model_names:
        missing = sorted(model_names - file_names)[:10]
        unexpected = sorted(file_names - model_names)[:10]
        raise ValueError(
            f"{path} holds weights for {len(file_names)} layers but model {model.name!r} has "
            f"{len(model_names)} layers with weights (missing e.g. {missing}; unexpected e.g. "
            f"{unexpected}). Check the model name, include_top and num_classes."
        )


def _check_shapes(model: tf.keras.Model, path: str, pairs) -> None:
    """``pairs``: (file layer name, file shapes, model layer) of every layer to load."""
    mismatched = [
        f"{layer.name}: file {shapes}, model {_shapes(layer)}"
        + (f" (file layer {name!r})" if name != layer.name else "")
        for name, shapes, layer in pairs
        if shapes != _shapes(layer)
    ]
    if mismatched:
        raise ValueError(
            f"{path} does not fit model {model.name!r}: weight shapes differ in "
            f"{len(mismatched)} layer(s) ({'; '.join(mismatched[:5])}). Check include_top, "
            "num_classes and the model's width (base_filters, width_multiplier)."
        )


# ------------------------------------------------------------------------------ loading
def load_weights(model: tf.keras.Model, path: str) -> None:
    """Loads ``path`` into ``model``, refusing anything that does not fit exactly.

    A file that records its architecture (every file :func:`save_weights` writes from a model
    of this package) loads only into a model whose ``bireal_config`` equals it up to the
    training-only fields (``kernel_initializer``, ``bn_momentum``, ``weight_clip``), matched by
    layer name. Files without one: ``.h5`` files with the model's layer names load by name;
    other ``.h5`` files (the larq-zoo BiRealNet files, whose layers carry Keras' default names)
    by the order of their weight-carrying layers, which is the zoo's construction order, and
    only into the zoo's architecture; any other path is read as a TF checkpoint.

    When this raises, ``model`` is unchanged: every check of an ``.h5`` file runs before the
    first weight is assigned, and a TF checkpoint that does not fit is rolled back.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: ``path`` is a directory or not a weights file this loader reads, the file
            records another architecture (naming the differing fields with both values and
            the arguments that would load it), or its layers or shapes do not fit the model
            (naming them).
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
                    f"prefix ({path + '.index'!r} does not exist); {_VALID_FILES}"
                )
            raise FileNotFoundError(f"Weights file {path!r} not found")
        _load_tf_checkpoint(model, path)
        return
    if not os.path.exists(path):
        raise FileNotFoundError(f"Weights file {path!r} not found")
    contents = _read_h5(path)
    by_name = {layer.name: layer for layer in _weight_layers(model)}
    if contents.config is not None:
        _check_recorded_config(model, path, contents.config)
        _check_names(model, path, contents)
        _check_shapes(model, path, [(n, s, by_name[n]) for n, s in contents.layers.items()])
        _assign(model, path, by_order=False)
        return
    if set(contents.layers) == set(by_name):
        _check_shapes(model, path, [(n, s, by_name[n]) for n, s in contents.layers.items()])
        _assign(model, path, by_order=False)
        return
    if len(contents.layers) != len(by_name):
        _check_names(model, path, contents)
    _check_zoo_architecture(model, path)
    _check_shapes(model, path, [
        (n, s, layer) for (n, s), layer in zip(contents.layers.items(), _weight_layers(model))
    ])
    _assign(model, path, by_order=True)


def _load_tf_checkpoint(model: tf.keras.Model, path: str) -> None:
    """TensorFlow restores a checkpoint's matching variables before it can tell what did not
    match: the model's weights are put back when the checkpoint does not fit."""
    before = model.get_weights()
    try:
        model.load_weights(path).assert_existing_objects_matched()
    except (AssertionError, ValueError, tf.errors.OpError) as err:
        model.set_weights(before)
        detail = str(err).strip().splitlines()[0][:500]
        raise ValueError(
            f"TF checkpoint {path} does not fit model {model.name!r} ({detail}); valid: a "
            "checkpoint saved from this model's architecture"
        ) from None


def _assign(model: tf.keras.Model, path: str, by_order: bool) -> None:
    """Keras's legacy HDF5 readers (the ones that read by name; Keras routes any
    ``*.weights.h5`` path to its newer, position-based format), once every check passed."""
    module = hdf5_format()
    with h5py.File(path, "r") as f:
        group = f["model_weights"] if "model_weights" in f else f
        if by_order:
            module.load_weights_from_hdf5_group(group, model)
        else:
            module.load_weights_from_hdf5_group_by_name(group, model)


# ------------------------------------------------------------------------------ transfer
def transfer_weights(source: tf.keras.Model, target: tf.keras.Model) -> list[str]:
    """Copies weights layer by layer, by name, from ``source`` into ``target``.

    Used between variants on purpose: a binary model and its real-valued twin (same layer
    names), or one training stage's model and the next. Every weight-carrying layer of
    ``target`` must exist in ``source`` with the same shapes; this is checked for all layers
    before the first is copied, so on an error ``target`` is unchanged.

    Returns:
        The names of the layers copied.

    Raises:
        ValueError: naming the layers missing from ``source`` and those whose shapes differ.
    """
    by_name = {layer.name: layer for layer in source.layers}
    missing, mismatched, pairs = [], [], []
    for layer in _weight_layers(target):
        src = by_name.get(layer.name)
        if src is None:
            missing.append(layer.name)
            continue
        if _shapes(src) != _shapes(layer):
            mismatched.append(f"{layer.name}: source {_shapes(src)}, target {_shapes(layer)}")
            continue
        pairs.append((src, layer))
    if missing or mismatched:
        raise ValueError(
            f"Cannot transfer weights from {source.name!r} to {target.name!r} (nothing was "
            f"copied): missing layers {missing[:10]}; shape mismatches {mismatched[:10]}; "
            "valid: a source with every weight-carrying layer of the target, at the same "
            "shapes (same depth, width, include_top and num_classes)"
        )
    values = [src.get_weights() for src, _ in pairs]
    for (_, layer), weights in zip(pairs, values):
        layer.set_weights(weights)
    return [layer.name for _, layer in pairs]
