"""Bringing existing Bi-Real Net weights in: the authors' PyTorch checkpoints and larq-zoo files.

PyTorch checkpoints of ``liuzechun/Bi-Real-net`` (``pytorch_implementation/``) come as a bare
``state_dict`` or as the dict ``train.py`` saves (``epoch``, ``state_dict``, ``best_top1_acc``,
``optimizer``), with or without the ``module.`` prefix of ``nn.DataParallel``. The porting
traps handled here (from the authors' ``pytorch_implementation/*/birealnet.py`` and ``train.py``
and the PyTorch and Keras layer definitions):

* 18/34 store each binary kernel flattened, ``binary_conv.weights`` of shape (out*in*3*3, 1);
  50 stores ``conv*.weight`` as (out, in, kh, kw). Keras kernels are (kh, kw, in, out).
* ``fc.weight`` is (classes, features); a Keras Dense kernel is its transpose.
* BatchNorm: PyTorch's epsilon is 1e-5. The ``*_torch`` variants use it; for a model built
  with another epsilon the difference is folded into gamma, which is exact in inference.
* PyTorch pads strided layers symmetrically; only ``padding_alignment='torch'`` models
  (``birealnet18_torch``, ...) compute the same function, so other targets are refused.
* BiReal-50's first block owns a ``down_conv1x1`` it never uses (its mid stream starts at the
  block); that key is accepted and dropped.

Mismatches are errors: missing or unexpected keys, wrong shapes, or a checkpoint of another
depth (naming the model it looks like).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping

import numpy as np
import tensorflow as tf

from bireal_larq.models.config import DEPTHS, TRAINING_ONLY_FIELDS
from bireal_larq.models.registry import create_model, get_model_config
from bireal_larq.models.weights import save_weights

TORCH_BN_EPSILON = 1e-5
_PTH_HINT = "reading .pth files needs PyTorch: pip install 'bireal_larq[pytorch]'"


# ------------------------------------------------------------------------------ reading
def read_pytorch_checkpoint(path: str) -> dict[str, np.ndarray]:
    """Reads a ``.pth``/``.pth.tar`` file into ``{key: float32 array}`` (prefix stripped).

    Raises:
        ImportError: PyTorch is not installed.
        ValueError: the file holds no state dict.
    """
    try:
        import torch
    except ImportError as err:  # pragma: no cover - exercised only without torch
        raise ImportError(_PTH_HINT) from err
    if not os.path.isfile(path):
        raise FileNotFoundError(f"PyTorch checkpoint {path!r} not found")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise ValueError(f"{path} is not a readable PyTorch checkpoint: {err}") from None
    return state_dict_to_numpy(obj, source=path)


def state_dict_to_numpy(obj, source: str = "checkpoint") -> dict[str, np.ndarray]:
    """Normalises a loaded checkpoint: unwraps ``state_dict``, strips ``module.``."""
    if isinstance(obj, Mapping) and "state_dict" in obj and isinstance(obj["state_dict"], Mapping):
        obj = obj["state_dict"]
    if not isinstance(obj, Mapping) or not obj:
        raise ValueError(
            f"{source} holds no state dict (expected a dict of tensors, or a dict with a "
            "'state_dict' entry as saved by the authors' train.py)"
        )
    out = {}
    for key, value in obj.items():
        key = key[len("module.") :] if key.startswith("module.") else key
        if key.endswith("num_batches_tracked"):
            continue
        if not (hasattr(value, "detach") or isinstance(value, np.ndarray | np.generic)):
            raise ValueError(
                f"{source}: entry {key!r} is a {type(value).__name__}, not a tensor; expected a "
                "state dict of tensors, or a dict with a 'state_dict' entry (top-level keys: "
                f"{sorted(map(str, obj))[:10]})"
            )
        array = value.detach().cpu().numpy() if hasattr(value, "detach") else np.asarray(value)
        out[key] = array.astype(np.float32)
    return out


def detect_depth(state: Mapping[str, np.ndarray]) -> int:
    """Which Bi-Real Net a state dict belongs to: 18, 34 or 50.

    Raises:
        ValueError: the keys match none of them.
    """
    if any(k.startswith("layers.") for k in state):
        blocks = {int(m.group(1)) for k in state if (m := re.match(r"layers\.(\d+)\.", k))}
        if len(blocks) == sum(DEPTHS[50][1]):
            return 50
        raise ValueError(
            f"Checkpoint has {len(blocks)} bottleneck blocks ('layers.N.'); Bi-Real Net 50 "
            f"has {sum(DEPTHS[50][1])}"
        )
    repeats = []
    for stage in range(1, 5):
        blocks = {
            int(m.group(1)) for k in state if (m := re.match(rf"layer{stage}\.(\d+)\.", k))
        }
        repeats.append(len(blocks))
    for depth, (block, spec) in DEPTHS.items():
        if block == "basic" and tuple(repeats) == spec:
            return depth
    raise ValueError(
        f"Checkpoint stage repeats {repeats} (from keys 'layerS.N.') match no Bi-Real Net: "
        + ", ".join(f"birealnet{d} has {list(s)}" for d, (_, s) in DEPTHS.items())
    )


# ------------------------------------------------------------------------------ mapping
def _conv_kernel(weight: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """PyTorch (out, in, kh, kw) (or flattened) -> Keras (kh, kw, in, out)."""
    kh, kw, cin, cout = shape
    return weight.reshape(cout, cin, kh, kw).transpose(2, 3, 1, 0)


def _torch_names(depth: int) -> dict[str, tuple[str, str]]:
    """Keras layer name -> (kind, PyTorch key prefix) for the weight-carrying layers."""
    names: dict[str, tuple[str, str]] = {"stem_conv": ("conv", "conv1"), "stem_bn": ("bn", "bn1")}
    repeats = DEPTHS[depth][1]
    if depth == 50:
        index = 0
        for s, r in enumerate(repeats):
            for b in range(r):
                keras, torch_ = f"stage{s + 1}_block{b + 1}", f"layers.{index}"
                for i in (1, 2, 3):
                    names[f"{keras}_conv{i}"] = ("conv", f"{torch_}.conv{i}")
                    names[f"{keras}_bn{i}"] = ("bn", f"{torch_}.bn{i}")
                if b == 0:
                    names[f"{keras}_mid_shortcut_conv"] = ("conv", f"{torch_}.down_conv1x1")
                    names[f"{keras}_shortcut_conv"] = ("conv", f"{torch_}.downsample.1")
                    names[f"{keras}_shortcut_bn"] = ("bn", f"{torch_}.downsample.2")
                index += 1
    else:
        for s, r in enumerate(repeats):
            for b in range(r):
                keras, torch_ = f"stage{s + 1}_block{b + 1}", f"layer{s + 1}.{b}"
                names[f"{keras}_conv"] = ("binary_conv", f"{torch_}.binary_conv")
                names[f"{keras}_bn"] = ("bn", f"{torch_}.bn1")
                names[f"{keras}_shortcut_conv"] = ("conv", f"{torch_}.downsample.1")
                names[f"{keras}_shortcut_bn"] = ("bn", f"{torch_}.downsample.2")
    names["logits"] = ("dense", "fc")
    return names


def _keys_for(kind: str, prefix: str) -> list[str]:
    if kind == "bn":
        return [f"{prefix}.{k}" for k in ("weight", "bias", "running_mean", "running_var")]
    if kind == "binary_conv":
        return [f"{prefix}.weights"]
    if kind == "dense":
        return [f"{prefix}.weight", f"{prefix}.bias"]
    return [f"{prefix}.weight"]


# Fields a checkpoint does not fix (its width is read from it, BN epsilon is folded into the
# weights) and quantizers with the same forward pass: a model differing from the plain
# ``*_torch`` configuration in anything else computes another function with these weights.
_FREE_FIELDS = ("base_filters", "bn_epsilon", *TRAINING_ONLY_FIELDS)
_SAME_FORWARD = {
    "input_quantizer": ("approx_sign", "ste_sign"),
    "kernel_quantizer": ("magnitude_aware_sign", "magnitude_aware_sign_unscaled"),
}


def _check_torch_architecture(model: tf.keras.Model, config, depth: int) -> None:
    reference = get_model_config(f"birealnet{depth}_torch")
    differ = {}
    for field, value in config.to_dict().items():
        expected = getattr(reference, field)
        if field in _FREE_FIELDS or value == expected:
            continue
        if value in _SAME_FORWARD.get(field, ()) and expected in _SAME_FORWARD[field]:
            continue
        differ[field] = value
    if differ:
        raise ValueError(
            f"The authors' PyTorch weights compute Bi-Real Net {depth} as "
            f"birealnet{depth}_torch does; model {model.name!r} differs in {differ}, so the "
            "weights would load but compute another function; valid: "
            f"create_model('birealnet{depth}_torch', ...) with only training settings changed"
        )


def load_pytorch_state_dict(model: tf.keras.Model, state: Mapping[str, np.ndarray]) -> None:
    """Assigns an authors'-format state dict to a ``padding_alignment='torch'`` model.

    Raises:
        ValueError: another depth, a model that cannot compute the PyTorch function, missing
            or unexpected keys, or wrong shapes (all named).
    """
    config = getattr(model, "bireal_config", None)
    if config is None:
        raise ValueError("Model was not built by bireal_larq.create_model (no bireal_config)")
    depth = detect_depth(state)
    if depth != config.depth:
        raise ValueError(
            f"Checkpoint is a Bi-Real Net {depth} (it looks like birealnet{depth}_torch) but "
            f"the model {model.name!r} is depth {config.depth}"
        )
    if config.padding_alignment != "torch":
        raise ValueError(
            f"Model {model.name!r} pads strided layers the TensorFlow way and would compute a "
            f"different function with PyTorch weights; use birealnet{depth}_torch (or "
            "padding_alignment='torch')"
        )
    _check_torch_architecture(model, config, depth)
    mapping = _torch_names(depth)
    by_name = {layer.name: layer for layer in model.layers if layer.weights}
    if depth == 50:
        # Block 1 of stage 1 never runs its down_conv1x1 (no mid stream enters it).
        state = {k: v for k, v in state.items() if not k.startswith("layers.0.down_conv1x1.")}
    used: set[str] = set()
    missing, mismatched, assignments = [], [], []
    for name, layer in by_name.items():
        if name not in mapping:
            raise ValueError(
                f"Layer {name!r} of {model.name!r} has no counterpart in the authors' "
                "architecture; only the plain *_torch configurations can take their weights"
            )
        kind, prefix = mapping[name]
        keys = _keys_for(kind, prefix)
        absent = [k for k in keys if k not in state]
        if absent:
            missing += absent
            continue
        used.update(keys)
        values = [state[k] for k in keys]
        shapes = [tuple(w.shape) for w in layer.weights]
        try:
            if kind in ("conv", "binary_conv"):
                if values[0].size != int(np.prod(shapes[0])):
                    raise ValueError
                new = [_conv_kernel(values[0], shapes[0])]
            elif kind == "dense":
                new = [values[0].T, values[1]]
            else:
                gamma, beta, mean, var = values
                # Exact in inference: gamma/sqrt(var+eps_t) == gamma'/sqrt(var+eps_k).
                eps = layer.epsilon
                gamma = gamma * np.sqrt(var + eps) / np.sqrt(var + TORCH_BN_EPSILON)
                new = [gamma, beta, mean, var]
            if [tuple(v.shape) for v in new] != shapes:
                raise ValueError
        except ValueError:
            mismatched.append(
                f"{name} <- {keys}: checkpoint {[tuple(v.shape) for v in values]}, "
                f"model {shapes}"
            )
            continue
        assignments.append((layer, new))
    unexpected = sorted(set(state) - used)
    if missing or unexpected or mismatched:
        raise ValueError(
            f"Checkpoint does not fit {model.name!r}: missing keys {missing[:8]}; unexpected "
            f"keys {unexpected[:8]}; shape mismatches {mismatched[:8]}"
        )
    for layer, new in assignments:
        layer.set_weights([v.astype(np.float32) for v in new])


def pytorch_model_overrides(state: Mapping[str, np.ndarray]) -> dict:
    """The create_model arguments that a state dict implies: width and class count."""
    absent = [k for k in ("conv1.weight", "fc.weight") if k not in state]
    if absent:
        raise ValueError(
            f"Checkpoint lacks {absent}: a whole Bi-Real Net (stem conv1 and classifier fc) "
            "is needed to read its width and class count"
        )
    return {
        "base_filters": int(state["conv1.weight"].shape[0]),
        "num_classes": int(state["fc.weight"].shape[0]),
    }


# ------------------------------------------------------------------------------ entry point
def convert_weights(
    source: str, input_path: str, model_name: str | None, output_path: str
) -> dict:
    """Converts a checkpoint into an ``.h5`` that ``create_model(model, weights=...)`` loads.

    Args:
        source: "pytorch" (authors' checkpoints) or "larq_zoo" (BiRealNet ``.h5``).
        input_path: the checkpoint.
        model_name: the registry name to convert for; for PyTorch checkpoints ``None``
            picks ``birealnet{depth}_torch`` from the checkpoint.
        output_path: where to write the ``.h5``.

    Returns:
        A description: model name, the create_model arguments to use, depth, include_top.

    Raises:
        ValueError: unknown source, or a checkpoint that does not fit (see above).
    """
    if source == "pytorch":
        state = read_pytorch_checkpoint(input_path)
        depth = detect_depth(state)
        model_name = model_name or f"birealnet{depth}_torch"
        kwargs = pytorch_model_overrides(state)
        model = create_model(model_name, **kwargs)
        load_pytorch_state_dict(model, state)
        include_top = True
    elif source == "larq_zoo":
        if not os.path.isfile(input_path):
            raise FileNotFoundError(f"larq-zoo weights {input_path!r} not found")
        model_name = model_name or "birealnet18"
        include_top = _h5_has_classifier(input_path)
        kwargs = {"include_top": include_top}
        if include_top:
            kwargs["num_classes"] = _h5_classifier_width(input_path)
        get_model_config(model_name)  # validates the name
        model = create_model(model_name, weights=input_path, **kwargs)
        depth = model.bireal_config.depth
    else:
        raise ValueError(f"Unknown source {source!r}; valid: 'pytorch', 'larq_zoo'")
    save_weights(model, output_path)  # by name, readable back whatever the file is called
    return {
        "model": model_name,
        "create_model_kwargs": kwargs,
        "depth": depth,
        "include_top": include_top,
        "output": output_path,
    }


def _h5_dense_kernels(path: str) -> list[tuple[int, ...]]:
    import h5py

    shapes = []
    try:
        f = h5py.File(path, "r")
    except OSError as err:
        raise ValueError(
            f"{path!r} is not an HDF5 weights file ({err}); valid: a larq-zoo BiRealNet .h5 "
            "weights file"
        ) from None
    with f:
        group = f["model_weights"] if "model_weights" in f else f

        def visit(name, obj):
            if isinstance(obj, h5py.Dataset) and name.endswith("kernel:0") and obj.ndim == 2:
                shapes.append(obj.shape)

        group.visititems(visit)
    return shapes


def _h5_has_classifier(path: str) -> bool:
    return bool(_h5_dense_kernels(path))


def _h5_classifier_width(path: str) -> int:
    return int(_h5_dense_kernels(path)[-1][1])
