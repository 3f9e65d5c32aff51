"""Export to Larq Compute Engine: conversion, the binary-fusion check, verification.

``export_model(model, "model.tflite")`` converts, checks that every binary conv became an
``LceBconv2d``, verifies the flatbuffer against Keras and writes a JSON report beside it.
``python -m bireal_larq.export`` is its command line.
"""

from bireal_larq.export.backends import BACKENDS, KERNELS, default_backend, interpreter_options
from bireal_larq.export.core import (
    BCONV_OP,
    TARGETS,
    ExportError,
    FusionCheck,
    binary_conv_layers,
    check_fusion,
    convert,
    export_model,
    grouped_convs_lce_cannot_fuse,
    load_model_for_export,
    read_report,
    report_path,
)
from bireal_larq.export.flatbuffer import (
    NotAFlatbufferError,
    is_flatbuffer,
    op_table,
    read_flatbuffer,
)
from bireal_larq.export.verify import compare, interpreter, run_flatbuffer

__all__ = [
    "BACKENDS",
    "BCONV_OP",
    "KERNELS",
    "TARGETS",
    "ExportError",
    "FusionCheck",
    "NotAFlatbufferError",
    "binary_conv_layers",
    "check_fusion",
    "compare",
    "convert",
    "default_backend",
    "export_model",
    "grouped_convs_lce_cannot_fuse",
    "interpreter",
    "interpreter_options",
    "is_flatbuffer",
    "load_model_for_export",
    "op_table",
    "read_flatbuffer",
    "read_report",
    "report_path",
    "run_flatbuffer",
]
