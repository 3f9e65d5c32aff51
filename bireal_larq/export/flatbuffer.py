"""Reading TFLite flatbuffers: recognising them and listing the ops they contain.

The op table is what proves that LCE did its job: a binary conv that LCE fused shows up as a
``LceBconv2d`` custom op, one that it left alone as a float ``CONV_2D``.
"""

from __future__ import annotations

import collections
import os

from tensorflow.lite.python import schema_py_generated as schema

# Bytes 4..8 of every TFLite flatbuffer hold this file identifier.
_IDENTIFIER = b"TFL3"

_BUILTIN_NAMES = {
    code: name for name, code in vars(schema.BuiltinOperator).items() if not name.startswith("_")
}


class NotAFlatbufferError(ValueError):
    """The bytes or file given are not a TFLite flatbuffer."""


def is_flatbuffer(data: bytes) -> bool:
    """Whether ``data`` starts like a TFLite flatbuffer (file identifier ``TFL3``)."""
    return len(data) >= 8 and data[4:8] == _IDENTIFIER


def read_flatbuffer(path: str | os.PathLike) -> bytes:
    """Reads a ``.tflite`` file, checking that it is one.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        NotAFlatbufferError: the file is not a TFLite flatbuffer.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"TFLite model {path!r} not found; expected a .tflite file")
    with open(path, "rb") as f:
        data = f.read()
    if not is_flatbuffer(data):
        raise NotAFlatbufferError(
            f"{path!r} is not a TFLite flatbuffer (no 'TFL3' identifier); expected a .tflite "
            "file written by bireal_larq.export"
        )
    return data


def _model(data: bytes) -> schema.ModelT:
    if not is_flatbuffer(data):
        raise NotAFlatbufferError("the data is not a TFLite flatbuffer (no 'TFL3' identifier)")
    return schema.ModelT.InitFromObj(schema.Model.GetRootAsModel(data, 0))


def _op_names(model: schema.ModelT) -> list[str]:
    names = []
    for code in model.operatorCodes:
        # Codes above 127 live in builtinCode only; older files use the deprecated byte.
        builtin = max(code.builtinCode, code.deprecatedBuiltinCode)
        if builtin == schema.BuiltinOperator.CUSTOM:
            names.append(code.customCode.decode())
        else:
            names.append(_BUILTIN_NAMES.get(builtin, f"BUILTIN_{builtin}"))
    return names


def op_table(data: bytes) -> dict[str, int]:
    """Counts the ops of a flatbuffer by type, most frequent first.

    Args:
        data: the flatbuffer bytes.

    Returns:
        ``{"LceBconv2d": 16, "LceQuantize": 16, "ADD": 16, "CONV_2D": 4, ...}``.

    Raises:
        NotAFlatbufferError: ``data`` is not a TFLite flatbuffer.
    """
    model = _model(data)
    names = _op_names(model)
    counts = collections.Counter(
        names[op.opcodeIndex] for graph in model.subgraphs for op in graph.operators
    )
    return dict(counts.most_common())


def ops_with_tensors(data: bytes) -> list[tuple[str, list[str]]]:
    """Every op of the main graph with the names of its input and output tensors."""
    model = _model(data)
    names = _op_names(model)
    graph = model.subgraphs[0]
    result = []
    for op in graph.operators:
        indices = [i for i in [*op.inputs, *op.outputs] if i >= 0]
        tensors = [graph.tensors[i].name.decode() for i in indices]
        result.append((names[op.opcodeIndex], tensors))
    return result
