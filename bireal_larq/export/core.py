"""Keras -> Larq Compute Engine: conversion, the binary-fusion check, the report.

:func:`export_model` is the one entry point; ``python -m bireal_larq.export`` only parses
flags and calls it. The converter says nothing when a binary conv is not fused into
``LceBconv2d`` (LCE issues #692, #744), so the op table is checked against the binary layers
of the Keras model, and the result goes into a JSON report beside the ``.tflite``.

LCE's ``convert_keras_model`` writes the model as a SavedModel and converts that; when either
step raises, it only warns and converts a graph traced from the Keras model instead, which can
differ from the SavedModel's. :func:`convert` turns that fallback into an :class:`ExportError`
naming the exception behind it.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import re
import warnings
from collections.abc import Sequence
from typing import Any

import larq as lq
import numpy as np
import tensorflow as tf

from bireal_larq import runs
from bireal_larq.data import load_class_names
from bireal_larq.data.info import check_name
from bireal_larq.export import flatbuffer as fb
from bireal_larq.export import verify as verify_lib
from bireal_larq.models import builder, create_model, get_entry, list_models
from bireal_larq.models.layers import iter_layers
from bireal_larq.stack import import_lce
from bireal_larq.utils import atomic_path, dtype_policy, jsonable

TARGETS = ("arm", "xcore")
BCONV_OP = "LceBconv2d"
QUANTIZE_OP = "LceQuantize"
REPORT_SUFFIX = ".json"

log = logging.getLogger(__name__)


# The start of the warning with which LCE 0.16's convert_keras_model gives up on the SavedModel
# and converts a traced graph instead (it warns from inside its ``except Exception`` block).
LCE_FALLBACK_WARNING = "Saved-model conversion failed"

# Cause messages longer than this are cut in ExportError messages (the exception stays chained).
_MAX_CAUSE_CHARS = 600


class ExportError(RuntimeError):
    """Export refused, failed a check or could not convert; the message names what was wrong."""


@dataclasses.dataclass(frozen=True)
class FusionCheck:
    """How many binary convs of the Keras model became ``LceBconv2d`` ops."""

    binary_layers: tuple[str, ...]
    fused: int
    unfused_layers: tuple[str, ...]

    @property
    def ok(self) -> bool:
        return not self.unfused_layers and self.fused >= len(self.binary_layers)


def report_path(output: str, failed: bool = False) -> str:
    """The JSON report written beside ``output`` (``model.tflite`` -> ``model.json``); a failed
    export's goes to ``model.failed.json``, so a good flatbuffer's report is never replaced."""
    root, _ = os.path.splitext(os.fspath(output))
    return root + (".failed" if failed else "") + REPORT_SUFFIX


def binary_conv_layers(model: tf.keras.Model) -> list[str]:
    """Names of the binary convs: ``QuantConv2D`` layers with a kernel quantizer.

    A ``QuantConv2D`` without an input quantizer has binary weights but real inputs; LCE
    cannot fuse it, so it counts here and fails the fusion check, as it should.
    """
    return [
        layer.name
        for layer in iter_layers(model)
        if isinstance(layer, lq.layers.QuantConv2D) and layer.kernel_quantizer is not None
    ]


def zero_padding_below_kernel(model: tf.keras.Model) -> list[str]:
    """Binary convs that LCE computes wrongly: zero padding on inputs smaller than the kernel.

    Measured with LCE 0.16.0's interpreter (``tests/test_export.py`` keeps the evidence): a
    'same' binary conv with ``pad_values=0`` on a 1x1 or 2x2 feature map gives outputs that
    differ from Keras by O(1), while 3x3 and larger inputs, and ``pad_values=1``, match to
    1e-6. The converter says nothing, so export refuses such layers.
    """
    bad = []
    for layer in iter_layers(model):
        if not isinstance(layer, lq.layers.QuantConv2D) or layer.input_quantizer is None:
            continue
        if layer.padding != "same" or float(layer.pad_values) != 0.0:
            continue
        height, width = layer.input_shape[1:3]
        kh, kw = layer.kernel_size
        if (height is not None and height < kh and kh > 1) or (
            width is not None and width < kw and kw > 1
        ):
            bad.append(f"{layer.name} ({height}x{width} input, {kh}x{kw} kernel)")
    return bad


# LCE fuses a grouped binary conv only when each group's input channels fill whole 32-bit
# words of packed signs (measured with LCE 0.16.0; tests/test_export.py keeps the evidence).
GROUP_CHANNEL_MULTIPLE = 32


def grouped_convs_lce_cannot_fuse(model: tf.keras.Model) -> list[str]:
    """Binary grouped convs whose input channels per group are not a multiple of 32."""
    return [
        layer.name
        for layer in iter_layers(model)
        if isinstance(layer, lq.layers.QuantConv2D)
        and layer.kernel_quantizer is not None
        and layer.groups > 1
        and (layer.kernel.shape[-2] % GROUP_CHANNEL_MULTIPLE) != 0
    ]


def check_fusion(model: tf.keras.Model, flatbuffer: bytes) -> FusionCheck:
    """Counts the ``LceBconv2d`` ops of ``flatbuffer`` against the binary convs of ``model``.

    Unfused layers are named by looking for each layer's name in the tensors of the
    ``LceBconv2d`` ops (TFLite keeps ``model/layer/...`` prefixes in tensor names).
    """
    binary = binary_conv_layers(model)
    ops = fb.ops_with_tensors(flatbuffer)
    bconv_tensors = [" ".join(tensors) for op, tensors in ops if op == BCONV_OP]
    fused = len(bconv_tensors)
    unfused: list[str] = []
    if fused < len(binary):
        text = " ".join(bconv_tensors)
        unfused = [name for name in binary if f"/{name}/" not in text]
        if len(unfused) != len(binary) - fused:
            # Tensor names do not always carry the layer name (truncated in long models, or
            # folded away): use the known rule if it explains the count, else the count.
            grouped = grouped_convs_lce_cannot_fuse(model)
            if len(grouped) == len(binary) - fused:
                unfused = grouped
            else:
                unfused = [f"{len(binary) - fused} of {len(binary)} binary convs"]
    return FusionCheck(tuple(binary), fused, tuple(unfused))


def _describe(error: BaseException) -> str:
    text = str(error).strip()
    if len(text) > _MAX_CAUSE_CHARS:
        text = text[:_MAX_CAUSE_CHARS] + " [...]"
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


def _raised_in(error: BaseException, function: str) -> bool:
    """Whether ``function`` is on the traceback of ``error``."""
    tb = error.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code.co_name == function:
            return True
        tb = tb.tb_next
    return False


def _fallback_error(model: tf.keras.Model, warning: Warning) -> ExportError:
    """The error for LCE's fallback from its SavedModel conversion, naming the cause."""
    cause = warning.__context__
    refused = (
        "LCE would then convert a graph traced from the Keras model instead, which can differ "
        "from the SavedModel's (fewer fused binary convs, other ops) without saying so; export "
        "does not take that path"
    )
    if cause is None:
        return ExportError(
            f"LCE's SavedModel conversion of model {model.name!r} failed without naming the cause "
            f"({warning}); {refused}. Check that model.save(directory, save_format='tf') and "
            "larq_compute_engine.convert_saved_model(directory) work for this model"
        )
    if _raised_in(cause, "convert_saved_model"):
        return ExportError(
            f"LCE's converter failed on the SavedModel of model {model.name!r}: "
            f"{_describe(cause)}. {refused}. Replace the layer or op that the error names (one "
            "that neither TFLite nor LCE converts) and export again"
        )
    return ExportError(
        f"Model {model.name!r} could not be written as a SavedModel, the first step of LCE's "
        f"conversion: {_describe(cause)}. {refused}. Make model.save(directory, "
        "save_format='tf') succeed for this model (custom layers need a get_config() that "
        "rebuilds them) and export again"
    )


def _carries_int8_ranges(flatbuffer: bytes) -> bool:
    """Whether LCE quantized part of the model: it then has ``QUANTIZE``/``DEQUANTIZE`` ops."""
    ops = fb.op_table(flatbuffer)
    return "QUANTIZE" in ops or "DEQUANTIZE" in ops


def convert(model: tf.keras.Model, *, target: str = "arm", int8: bool = False) -> bytes:
    """Converts a float32 Keras model with LCE's converter, through a SavedModel only.

    LCE's ``convert_keras_model`` falls back to converting a traced graph, with only a warning,
    when writing or converting the SavedModel raises; that fallback is an error here.

    Args:
        model: a float32 Keras model (rebuild mixed-precision models in float32 first, e.g.
            with :func:`bireal_larq.runs.model_from_run`).
        target: "arm" (phones, Raspberry Pi) or "xcore".
        int8: ask for int8 input and output. This only takes effect for models that carry
            int8 quantization ranges; otherwise the I/O stays float32 (see the report).

    Raises:
        ValueError: an invalid target, or a model that is not float32.
        ExportError: LCE could not write or convert the model as a SavedModel; the message
            names the exception (also chained as ``__cause__``) and what to change.
    """
    lce = import_lce()

    if target not in TARGETS:
        raise ValueError(f"target={target!r} is invalid; valid: {list(TARGETS)}")
    policy = getattr(model, "dtype_policy", None)
    if policy is not None and policy.name != "float32":
        raise ValueError(
            f"Model {model.name!r} uses the dtype policy {policy.name!r}; LCE converts float32 "
            "models only: rebuild it in float32 (bireal_larq.runs.model_from_run does)"
        )
    with warnings.catch_warnings():
        # LCE warns from inside the except block that caught the SavedModel step's exception:
        # as an error, the warning carries that exception as __context__ and the fallback
        # conversion never runs.
        warnings.filterwarnings(
            "error", message=re.escape(LCE_FALLBACK_WARNING), category=UserWarning
        )
        try:
            # float32 I/O always: LCE's SavedModel path raises (and so falls back) when asked
            # for int8 I/O on a model without quantization ranges.
            flatbuffer = lce.convert_keras_model(model, target=target)
        except UserWarning as warning:
            if not str(warning).startswith(LCE_FALLBACK_WARNING):
                raise
            raise _fallback_error(model, warning) from warning.__context__
    if int8 and _carries_int8_ranges(flatbuffer):
        # What LCE's convert_saved_model does after converting, when given int8 I/O types.
        modify_integer_quantized_model_io_type = import_lce(
            "larq_compute_engine.mlir.python.util"
        ).modify_integer_quantized_model_io_type

        flatbuffer = modify_integer_quantized_model_io_type(
            flatbuffer, inference_input_type=tf.int8, inference_output_type=tf.int8
        )
    return flatbuffer


def _registry_name(model: tf.keras.Model, model_name: str | None) -> str | None:
    if model_name is not None:
        get_entry(model_name)  # raises for an unknown name, listing the valid ones
        return model_name
    return model.name if model.name in list_models() else None


def _versions() -> dict[str, str]:
    lce = import_lce()

    return {
        "larq_compute_engine": lce.__version__,
        "larq": lq.__version__,
        "tensorflow": tf.__version__,
    }


def write_report(path: str, report: dict[str, Any]) -> str:
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as f:
        json.dump(jsonable(report), f, indent=2)
        f.write("\n")
    return path


def read_report(tflite_path: str) -> dict[str, Any] | None:
    """The report written beside ``tflite_path`` by :func:`export_model`, or ``None``."""
    path = report_path(tflite_path)
    if not os.path.isfile(path):
        return None
    with open(path, encoding="utf-8") as f:
        return json.load(f)


@dataclasses.dataclass(frozen=True)
class _ExportJob:
    """The checked arguments of one :func:`export_model` call, handed to each of its steps."""

    model: tf.keras.Model
    output: str  # the .tflite path
    name: str | None  # the registry name, None for a model outside the registry
    target: str
    int8: bool
    allow_float_fallback: bool
    verify_dataset: str | None
    verify_samples: int
    verify_images: np.ndarray | tf.data.Dataset | None
    data_dir: str | None
    min_agreement: float


def export_model(
    model: tf.keras.Model,
    output: str,
    *,
    model_name: str | None = None,
    target: str = "arm",
    int8: bool = False,
    allow_float_fallback: bool = False,
    verify_dataset: str | None = None,
    verify_samples: int = 100,
    verify_images: np.ndarray | tf.data.Dataset | None = None,
    data_dir: str | None = None,
    min_agreement: float = 0.99,
    metadata: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Converts ``model`` with LCE, checks it, writes ``output`` and a JSON report beside it.

    Args:
        model: the float32 Keras model (binary layers from larq).
        output: path of the ``.tflite`` to write; the report goes to ``<output stem>.json``
            (``<output stem>.failed.json`` when the export fails; nothing else is written).
        model_name: its registry name, for the LCE-compatibility check and the report
            (default: ``model.name`` when that is a registered name).
        target: "arm" or "xcore".
        int8: int8 input/output where the model carries quantization ranges.
        allow_float_fallback: report binary convs that LCE left in float as a warning instead
            of failing (also lets models the registry marks not LCE-compatible through).
        verify_dataset: a dataset name of :mod:`bireal_larq.data`; verification then runs on
            its first ``verify_samples`` test images (eval preprocessing) and fails below
            ``min_agreement`` top-1 agreement. ``None``: random inputs, reported only.
        verify_samples: number of images to verify on (0 skips verification).
        verify_images: preprocessed images (array ``(N, H, W, C)`` or a dataset of images or
            ``(image, label)`` pairs) to verify on instead of a named dataset; treated as
            real images.
        data_dir: the data directory of :mod:`bireal_larq.data`.
        min_agreement: the top-1 agreement required on real images.
        metadata: extra keys for the report (run directory, dataset of the run, ...). Its
            ``eval_resize_ratio`` (the run's, from ``load_model_for_export``) is the one
            ``verify_dataset`` preprocesses with, and the inference API reads it back.

    Returns:
        The report (also written to disk).

    Raises:
        ValueError: invalid arguments (target, sample count, unknown model name).
        ExportError: the registry marks the model not LCE-compatible, LCE could not convert it
            through a SavedModel (see :func:`convert`), a binary conv was not fused, or
            verification on real images agreed less than ``min_agreement``. The report is
            still written (with ``"status": "failed"``); the ``.tflite`` is not.
    """
    # Each step below adds its part to the report; a step that fails writes the report as
    # failed (see _failure) and raises, so no .tflite is written.
    output = _check_arguments(
        output,
        target=target,
        verify_samples=verify_samples,
        verify_dataset=verify_dataset,
        verify_images=verify_images,
        min_agreement=min_agreement,
    )
    job = _ExportJob(
        model=model,
        output=output,
        name=_registry_name(model, model_name),
        target=target,
        int8=int8,
        allow_float_fallback=allow_float_fallback,
        verify_dataset=verify_dataset,
        verify_samples=verify_samples,
        verify_images=verify_images,
        data_dir=data_dir,
        min_agreement=min_agreement,
    )
    report = _new_report(job, metadata)
    _check_registry_entry(job, report)
    _check_zero_padding(job, report)
    flatbuffer = _convert_for_export(job, report)
    _check_binary_ops(job, report, flatbuffer)
    _record_io_types(job, report, flatbuffer)
    _verify(job, report, flatbuffer)
    _write_export(job, report, flatbuffer)
    return report


def _check_arguments(
    output: str,
    *,
    target: str,
    verify_samples: int,
    verify_dataset: str | None,
    verify_images: np.ndarray | tf.data.Dataset | None,
    min_agreement: float,
) -> str:
    """Refuses invalid arguments of :func:`export_model` before any work; returns ``output``
    as a ``str``. The dataset name is checked here, so that a typo fails before converting."""
    if target not in TARGETS:
        raise ValueError(f"target={target!r} is invalid; valid: {list(TARGETS)}")
    if not isinstance(verify_samples, int) or verify_samples < 0:
        raise ValueError(f"verify_samples={verify_samples!r} is invalid; valid: an integer >= 0")
    if verify_dataset is not None and verify_images is not None:
        raise ValueError("Pass verify_dataset or verify_images, not both")
    if verify_dataset is not None:  # before the conversion, not after it
        check_name(verify_dataset)
    if not 0.0 <= min_agreement <= 1.0:
        raise ValueError(f"min_agreement={min_agreement} is invalid; valid: 0 <= x <= 1")
    output = os.fspath(output)
    if not output.endswith(".tflite") or os.path.isdir(output):
        raise ValueError(f"output={output!r} is invalid; valid: a file path ending in .tflite "
                         "(not a directory)")
    return output


def _new_report(job: _ExportJob, metadata: dict[str, Any] | None) -> dict[str, Any]:
    """The report as it stands before any check: what is exported, with which versions, and
    the caller's ``metadata`` (whose keys win)."""
    return {
        "status": "ok",
        "model": job.name or job.model.name,
        "output": os.path.abspath(job.output),
        "target": job.target,
        "input_shape": list(job.model.input_shape[1:]),
        "num_classes": int(job.model.output_shape[-1]),
        "versions": _versions(),
        "warnings": [],
        "errors": [],
        **(metadata or {}),
    }


def _failure(job: _ExportJob, report: dict[str, Any], message: str) -> ExportError:
    """Marks ``report`` failed, writes it to ``<output stem>.failed.json`` and returns the
    error to raise, naming that file (and saying so when an earlier export is kept)."""
    report["status"] = "failed"
    report["errors"].append(message)
    failed = report_path(job.output, failed=True)
    write_report(failed, report)
    kept = " (the earlier export at that path is left as it was)" if os.path.exists(
        job.output) else ""
    return ExportError(f"{message} (report: {failed}){kept}")


def _check_registry_entry(job: _ExportJob, report: dict[str, Any]) -> None:
    """Records whether the registry marks the model LCE-compatible; one that is not fails,
    or is a warning with ``allow_float_fallback``. Models outside the registry pass."""
    if job.name is None:
        return
    entry = get_entry(job.name)
    report["lce_compatible"] = entry.lce_compatible
    if not entry.lce_compatible:
        message = f"Model {job.name!r} is not LCE-compatible: {entry.lce_reason}"
        if not job.allow_float_fallback:
            raise _failure(
                job, report, message + "; pass --allow_float_fallback to export it anyway"
            )
        report["warnings"].append(message)


def _check_zero_padding(job: _ExportJob, report: dict[str, Any]) -> None:
    """Fails on binary convs that LCE would compute wrongly (see
    :func:`zero_padding_below_kernel`), before spending time on the conversion."""
    too_small = zero_padding_below_kernel(job.model)
    if too_small:
        raise _failure(
            job,
            report,
            "LCE computes zero-padded binary convs on feature maps smaller than the kernel "
            f"incorrectly (measured with LCE {_versions().get('larq_compute_engine')}): "
            f"{', '.join(too_small)}; use a larger input_shape or pad_values=1",
        )


def _convert_for_export(job: _ExportJob, report: dict[str, Any]) -> bytes:
    """Converts the model through a SavedModel with LCE (:func:`convert`) and records the
    flatbuffer's size and op table; a conversion error fails the export."""
    try:
        flatbuffer = convert(job.model, target=job.target, int8=job.int8)
    except ExportError as e:
        raise _failure(job, report, str(e)) from e.__cause__
    report["file_size_bytes"] = len(flatbuffer)
    report["op_table"] = fb.op_table(flatbuffer)
    return flatbuffer


def _check_binary_ops(job: _ExportJob, report: dict[str, Any], flatbuffer: bytes) -> None:
    """Records how the binary layers were converted, and fails (or, with
    ``allow_float_fallback``, warns) when a binary conv would run in float: each must be an
    ``LceBconv2d`` for target arm, and have an ``LceQuantize`` input for target xcore."""
    fusion = check_fusion(job.model, flatbuffer)
    report["binary_layers"] = len(fusion.binary_layers)
    report["lce_bconv2d_ops"] = fusion.fused
    report["float_fallback_layers"] = list(fusion.unfused_layers)
    binary_dense = [layer.name for layer in iter_layers(job.model)
                    if isinstance(layer, lq.layers.QuantDense) and layer.kernel_quantizer]
    if binary_dense:
        report["warnings"].append(
            f"LCE has no binary dense op: {', '.join(binary_dense)} runs as a float "
            "FULLY_CONNECTED on binarized inputs (same outputs, not faster or smaller)")
    if job.target == "xcore":
        _check_xcore_quantize_ops(job, report, fusion)
    elif not fusion.ok:
        _refuse_unfused_convs(job, report, fusion)


def _check_xcore_quantize_ops(job: _ExportJob, report: dict[str, Any],
                              fusion: FusionCheck) -> None:
    """Target xcore: every binary conv must have its input binarized by an ``LceQuantize``.

    LCE's xcore output leaves each binary conv as ``LceQuantize -> CONV_2D``, for XMOS's own
    tools to lower: there is no ``LceBconv2d`` to count, and the report says so.
    """
    quantized = report["op_table"].get(QUANTIZE_OP, 0)
    report["float_fallback_layers"] = []
    if quantized < len(fusion.binary_layers):
        message = (f"target xcore: {quantized} {QUANTIZE_OP} ops for "
                   f"{len(fusion.binary_layers)} binary convs: some run on real inputs")
        if not job.allow_float_fallback:
            raise _failure(job, report, message + "; pass --allow_float_fallback to accept that")
        report["warnings"].append(message)
    report["warnings"].append(
        f"target xcore: LCE emits each binary conv as {QUANTIZE_OP} + CONV_2D for XMOS's "
        f"tools to lower ({quantized} {QUANTIZE_OP} ops for {len(fusion.binary_layers)} "
        f"binary convs); the {BCONV_OP} fusion check applies to target arm only, and what "
        "XMOS's tools make of the file is not checked here")


def _refuse_unfused_convs(job: _ExportJob, report: dict[str, Any], fusion: FusionCheck) -> None:
    """Target arm, some binary convs not fused into ``LceBconv2d``: fails naming them (and
    the grouped-conv rule when it applies), or, with ``allow_float_fallback``, warns."""
    message = (
        f"{len(fusion.binary_layers) - fusion.fused} of {len(fusion.binary_layers)} binary "
        f"convs were not fused into {BCONV_OP} and would run in float: "
        f"{', '.join(fusion.unfused_layers)}"
    )
    grouped = grouped_convs_lce_cannot_fuse(job.model)
    if grouped:
        message += (
            f" (LCE fuses a grouped binary conv only when its input channels per group are "
            f"a multiple of {GROUP_CHANNEL_MULTIPLE}; not so in {', '.join(grouped)}: use "
            "fewer groups or more channels)"
        )
    if not job.allow_float_fallback:
        raise _failure(job, report, message + "; pass --allow_float_fallback to accept that")
    report["warnings"].append(message)
    log.warning(message)


def _record_io_types(job: _ExportJob, report: dict[str, Any], flatbuffer: bytes) -> None:
    """Records the flatbuffer's input and output types, warning when int8 I/O was asked for
    but the model carries no quantization ranges to make it so."""
    io = verify_lib.io_types(flatbuffer)
    report["io"] = io
    if job.int8 and io["input_type"] != "int8":
        report["warnings"].append(
            "int8 I/O was requested but the model carries no int8 quantization ranges, so "
            "its input and output stay float32"
        )


def _verification_images(
    job: _ExportJob, report: dict[str, Any]
) -> tuple[np.ndarray, np.ndarray | None, str, bool]:
    """``(images, labels, source, real)`` to verify on: the given images, the named dataset's
    test split (preprocessed with the report's ``eval_resize_ratio``) or random inputs."""
    if job.verify_images is not None:
        images, labels = verify_lib.images_from(job.verify_images, job.verify_samples)
        return images, labels, "given images", True
    if job.verify_dataset is not None:
        images, labels = verify_lib.dataset_images(
            job.verify_dataset,
            job.verify_samples,
            job.model.input_shape[1:],
            data_dir=job.data_dir,
            resize_ratio=report.get("eval_resize_ratio"),
        )
        return images, labels, f"{job.verify_dataset} test split", True
    images = verify_lib.random_images(job.model.input_shape[1:], job.verify_samples)
    return images, None, "random normal inputs", False


def _verify(job: _ExportJob, report: dict[str, Any], flatbuffer: bytes) -> None:
    """Compares the flatbuffer's outputs with the Keras model's and records the result; on
    real images, agreement below ``min_agreement`` fails. ``verify_samples=0`` skips it."""
    if job.verify_samples <= 0:
        report["verification"] = None
        return
    images, labels, source, real = _verification_images(job, report)
    result = verify_lib.compare(job.model, flatbuffer, images, labels)
    result.update(
        source=source, real_images=real, min_agreement=job.min_agreement if real else None
    )
    report["verification"] = result
    if real and result["top1_agreement"] < job.min_agreement:
        raise _failure(
            job,
            report,
            f"Verification failed: the LCE model agrees with Keras on "
            f"{result['top1_agreement']:.2%} of {result['samples']} {source} images; "
            f"at least {job.min_agreement:.0%} is required",
        )


def _write_export(job: _ExportJob, report: dict[str, Any], flatbuffer: bytes) -> None:
    """Writes the ``.tflite`` and its report, and removes the report of an earlier failed
    attempt at that path. An existing ``.tflite`` stays as it was unless both are written."""
    with atomic_path(job.output) as tmp:
        with open(tmp, "wb") as f:
            f.write(flatbuffer)
        write_report(report_path(job.output), report)
    stale = report_path(job.output, failed=True)
    if os.path.exists(stale):  # an earlier failed attempt at this path
        os.remove(stale)


def default_input_shape(name: str) -> tuple[int, int, int]:
    """The builder's default input shape of a registered model."""
    return builder.default_input_shape(get_entry(name).config)


def _run_of(checkpoint: str | None) -> tuple[str, str, str | None] | None:
    """(run directory, weights, stage) when ``checkpoint`` is a run directory or a weights
    file inside one (a stage's or an epoch's), else None."""
    if checkpoint is None or not os.path.exists(checkpoint):
        return None
    try:
        return runs.find_run(checkpoint)
    except FileNotFoundError:
        return None


def _class_names(run_dir: str) -> list[str] | None:
    """The run's class names (its ``classes.json``), so the inference API needs no data."""
    try:
        return list(load_class_names(run_dir))
    except FileNotFoundError:  # runs of datasets without names (synthetic)
        return None


def load_model_for_export(
    *,
    checkpoint: str | None = None,
    model: str | None = None,
    input_shape: Sequence[int] | None = None,
    num_classes: int | None = None,
) -> tuple[tf.keras.Model, dict[str, Any]]:
    """Builds the float32 model to export from a run directory, a weights file or a name.

    Args:
        checkpoint: a run directory (``config.json`` + ``model.weights.h5``), a weights file
            inside one (a stage's or an epoch's: rebuilt with that stage's model), or any
            other weights file (then ``model`` names the architecture). Mixed-precision runs
            are rebuilt in float32.
        model: a registry name; alone, an untrained model (for latency work).
        input_shape: (H, W, C) for ``model``; default: the builder's default.
        num_classes: classifier width for ``model``; default 1000.

    Returns:
        ``(keras_model, metadata)``: metadata names the model, checkpoint and run dataset,
        the evaluation resize ratio of the run (None: the dataset's default) and its class
        names.

    Raises:
        ValueError: neither or a wrong combination of arguments (naming what is valid).
        FileNotFoundError: a checkpoint that does not exist.
    """
    if checkpoint is None and model is None:
        raise ValueError(
            "Nothing to export: pass checkpoint (a run directory, or a weights file together "
            "with model) or model (a registry name, untrained)"
        )
    run = _run_of(checkpoint)
    if run is not None:
        run_dir, weights, stage = run
        if input_shape is not None or num_classes is not None:
            raise ValueError(
                f"{checkpoint!r} belongs to the run directory {run_dir!r}: its config.json fixes "
                "input_shape and num_classes; do not pass them"
            )
        keras_model, config = runs.model_from_run(run_dir, weights, stage=stage)
        if model is not None and model != config["model"]:
            raise ValueError(
                f"model={model!r} disagrees with the run directory's model {config['model']!r}"
            )
        return keras_model, {
            "model": config["model"],
            "checkpoint": os.path.abspath(checkpoint),
            "dataset": config.get("dataset"),
            "eval_resize_ratio": runs.eval_resize_ratio(config, stage),
            "class_names": _class_names(run_dir),
            "model_overrides": runs.model_overrides(config, stage),
        }
    if (
        checkpoint is not None
        and not os.path.exists(checkpoint)
        and not os.path.exists(checkpoint + ".index")
    ):
        raise FileNotFoundError(
            f"Checkpoint {checkpoint!r} not found; expected a run directory or a weights file"
        )
    if model is None:
        raise ValueError(
            f"{checkpoint!r} is a weights file: pass model (one of {', '.join(list_models())}) "
            "to say which architecture it holds"
        )
    get_entry(model)
    shape = tuple(input_shape) if input_shape is not None else default_input_shape(model)
    with dtype_policy("float32"):
        keras_model = create_model(
            model,
            input_shape=shape,
            num_classes=1000 if num_classes is None else num_classes,
            weights=checkpoint,
        )
    return keras_model, {
        "model": model,
        "checkpoint": os.path.abspath(checkpoint) if checkpoint else None,
        "dataset": None,
        "model_overrides": {},
    }
