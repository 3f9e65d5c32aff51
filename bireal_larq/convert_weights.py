"""Convert existing Bi-Real Net weights into this package's ``.h5`` format.

    python -m bireal_larq.convert_weights --source=pytorch --input=checkpoint.pth.tar \
        --output=birealnet18_torch.h5 [--model=birealnet18_torch]
    python -m bireal_larq.convert_weights --source=larq_zoo --input=birealnet_weights.h5 \
        --model=birealnet18 --output=birealnet18.h5

The output loads with ``create_model(MODEL, weights=OUTPUT, **kwargs)``; the command prints
the exact call (PyTorch checkpoints may imply a width and class count).
"""

import json

from absl import flags

from bireal_larq import cli
from bireal_larq.cli import parser_for
from bireal_larq.models.convert import convert_weights

# A private flag set: several CLIs can be imported into one process (see bireal_larq.cli).
FLAGS = flags.FlagValues()
PARSER = parser_for(FLAGS)  # app.run's flags parser: no positional arguments
flags.DEFINE_enum("source", None, ["pytorch", "larq_zoo"], "Checkpoint format.", flag_values=FLAGS)
flags.DEFINE_string(
    "input", None, "Checkpoint to convert (.pth / .pth.tar / .h5).", flag_values=FLAGS
)
flags.DEFINE_string(
    "model", None, "Registry name to convert for (default: from the file).", flag_values=FLAGS
)
flags.DEFINE_string("output", None, "Where to write the .h5 weights.", flag_values=FLAGS)
flags.mark_flags_as_required(["source", "input", "output"], flag_values=FLAGS)


def main(argv):
    del argv
    f = FLAGS
    try:
        result = convert_weights(f.source, f.input, f.model, f.output)
    except (ValueError, FileNotFoundError, ImportError) as err:
        cli.fail(1, f"convert_weights: {err}")
    kwargs = ", ".join(f"{k}={v!r}" for k, v in result["create_model_kwargs"].items())
    print(json.dumps(result, indent=2))
    print(
        f"Load with: create_model({result['model']!r}, weights={f.output!r}"
        + (f", {kwargs})" if kwargs else ")")
    )


def run() -> None:
    """The command-line entry point (parses this module's flags)."""
    cli.run(main, PARSER)


if __name__ == "__main__":
    run()
