"""Exports a Bi-Real Net to a Larq Compute Engine flatbuffer, with a JSON report beside it.

Examples::

    # a trained run (mixed-precision runs are rebuilt in float32), verified on real images
    python -m bireal_larq.export --checkpoint=runs/demo --output=demo.tflite \
        --verify_dataset=fashion_mnist --verify_samples=500
    # an untrained model, for latency work
    python -m bireal_larq.export --model=birealnet18 --output=birealnet18.tflite
"""

from __future__ import annotations

import json

from absl import app, flags

from bireal_larq import cli, console
from bireal_larq.cli import fail, parser_for
from bireal_larq.data import CorruptImageError
from bireal_larq.export import ExportError, export_model, load_model_for_export
from bireal_larq.stack import LceUnavailableError, import_lce
from bireal_larq.utils import WriteError

FLAGS = flags.FlagValues()
PARSER = parser_for(FLAGS)  # app.run's flags parser: no positional arguments
flags.DEFINE_string(
    "checkpoint", None, "A run directory, or a weights file (needs --model).", flag_values=FLAGS
)
flags.DEFINE_string(
    "model", None, "Registry name; alone: an untrained model (latency work).", flag_values=FLAGS
)
flags.DEFINE_list(
    "input_shape", None, "H,W,C for --model (default: the model's default).", flag_values=FLAGS
)
flags.DEFINE_integer(
    "num_classes", None, "Classifier width for --model (default 1000).", flag_values=FLAGS
)
flags.DEFINE_string(
    "output", "model.tflite", "The .tflite to write; the report goes beside it.", flag_values=FLAGS
)
flags.DEFINE_enum("target", "arm", ["arm", "xcore"], "LCE target.", flag_values=FLAGS)
flags.DEFINE_bool(
    "int8", False, "int8 input/output where the model carries int8 ranges.", flag_values=FLAGS
)
flags.DEFINE_bool(
    "allow_float_fallback",
    False,
    "Warn (in the report) instead of failing on unfused convs.",
    flag_values=FLAGS,
)
flags.DEFINE_string(
    "verify_dataset", None, "Verify on this dataset's test images (else random).", flag_values=FLAGS
)
flags.DEFINE_integer("verify_samples", 100, "Images to verify on (0: skip).", flag_values=FLAGS)
flags.DEFINE_string("data_dir", None, "Data directory of bireal_larq.data.", flag_values=FLAGS)


def _input_shape() -> tuple[int, ...] | None:
    if FLAGS.input_shape is None:
        return None
    try:
        shape = tuple(int(v) for v in FLAGS.input_shape)
    except ValueError:
        shape = ()
    if len(shape) != 3:
        raise app.UsageError(
            f"--input_shape={','.join(FLAGS.input_shape)} is invalid; valid: H,W,C e.g. 32,32,3"
        )
    return shape


def main(argv: list[str]) -> int:
    try:
        import_lce()  # before any work: where LCE has no wheels, say so at once
        model, metadata = load_model_for_export(
            checkpoint=FLAGS.checkpoint,
            model=FLAGS.model,
            input_shape=_input_shape(),
            num_classes=FLAGS.num_classes,
        )
        with console.held_if_quiet():  # the converter's and XLA's native logs
            report = export_model(
                model,
                FLAGS.output,
                model_name=metadata.pop("model"),
                target=FLAGS.target,
                int8=FLAGS.int8,
                allow_float_fallback=FLAGS.allow_float_fallback,
                verify_dataset=FLAGS.verify_dataset,
                verify_samples=FLAGS.verify_samples,
                data_dir=FLAGS.data_dir,
                # The report's dataset is what the model was trained on (the inference API
                # preprocesses and names classes by it); verification may use another.
                metadata={**metadata, "dataset": metadata.get("dataset") or FLAGS.verify_dataset},
            )
    except CorruptImageError as e:  # a verification image: the file and the remedy
        fail(4, f"export failed: {e}")
    except WriteError as e:  # the flatbuffer or its report: the previous files are kept
        fail(6, f"export failed: {e.strerror}")
    except (ExportError, LceUnavailableError, ValueError, OSError) as e:
        fail(1, f"export failed: {e}")
    summary = {k: report[k] for k in ("output", "file_size_bytes", "op_table", "warnings")}
    summary["binary_layers_fused"] = f"{report['lce_bconv2d_ops']}/{report['binary_layers']}"
    summary["verification"] = report["verification"]
    print(json.dumps(summary, indent=2))
    return 0


def run() -> None:
    """The command-line entry point (parses this module's flags)."""
    cli.run(main, PARSER)


if __name__ == "__main__":
    run()
