"""Training throughput, side by side in one process: this project vs larq-zoo vs the twin.

    .venv/bin/python benchmarks/training.py --rounds=3 --steps=4 --out=runs/bench/training.json

For each input size it times ``model.fit`` steps (after a warm-up) of:
  * ``birealnet18`` (this project) and ``larq_zoo.literature.BiRealNet`` (same data, batch,
    optimizer), which are the same network: the ratio shows the cost of this project's code;
  * the real-valued twin of ``birealnet18``: the ratio shows the cost of binarization.
At the small-input size the project's ``birealnet18_small`` and its twin are added, and
``birealnet18_small`` once more with larq's stock quantizers in place of this project's fused
ones (``bireal_larq.models.quantizers``): the ratio shows what the fusion saves.
Rounds interleave the models (A B C A B C ...) so machine noise hits all of them alike; the
table rates each model by its best round (this host's rounds fall into a fast and a slow
mode), with the median beside it, and the ratios compare best rounds. ``--xla=off,on`` times
every model also with XLA-compiled train steps (``TrainConfig.jit_compile``), ratios within
each mode. Results are ratios on this host only.

``--trainer_cost`` measures the trainer itself instead (:func:`trainer_cost`)::

    .venv/bin/python benchmarks/training.py --trainer_cost --rounds=3 \
        --out=benchmarks/results/trainer_cost.json
"""

from __future__ import annotations

import contextlib
import datetime
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

# bireal_larq first: on the main stack its import selects Keras 2 (TF_USE_LEGACY_KERAS=1),
# which must happen before TensorFlow, larq or larq_zoo is imported.
import bireal_larq  # noqa: E402, F401, I001 - before TensorFlow, on purpose
import larq_zoo  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from absl import app, flags  # noqa: E402

from bireal_larq import create_model  # noqa: E402
from bireal_larq.utils import cpu_model  # noqa: E402
from bireal_larq.models import quantizers  # noqa: E402

FLAGS = flags.FLAGS
XLA_MODES = ("off", "on")
# The flags, in the order the result file records them ("args").
FLAG_NAMES = ("sizes", "batch", "steps", "rounds", "classes", "small_base_filters", "out", "xla",
              "table_from", "trainer_cost", "steps_per_execution", "cost_steps")
# --trainer_cost's batch unless --batch is given: the size where host overhead dominates on a CPU
TRAINER_COST_BATCH = 8


def _define_flags() -> None:
    """The command-line flags (defined when run as a script, not when imported)."""
    flags.DEFINE_string("sizes", "224,32", "Input sizes, comma separated.")
    flags.DEFINE_integer("batch", 32, "Batch size (with --trainer_cost: "
                         f"{TRAINER_COST_BATCH} unless given).")
    flags.DEFINE_integer("steps", 4, "Timed steps per round.")
    flags.DEFINE_integer("rounds", 3, "Rounds (each model once per round, interleaved).")
    flags.DEFINE_integer("classes", 1000, "Classes of the inputs larger than 32x32 (10 at "
                         "32x32 and below).")
    flags.DEFINE_integer("small_base_filters", None, "base_filters of the birealnet18_small "
                         "rows (the tricks study uses 16); default: the registry's.")
    flags.DEFINE_string("out", "runs/bench/training.json", "JSON results (with "
                        "--trainer_cost also the markdown, .md beside it).")
    flags.DEFINE_string("xla", "off", "Train steps without / with XLA: off, on or off,on (each "
                        "model in each mode; ratios within a mode).")
    flags.DEFINE_string("table_from", None, "Render the table of an earlier run's --out file "
                        "from its samples (printed and stored back in the file) and measure "
                        "nothing.")
    flags.DEFINE_bool("trainer_cost", False, "Measure the trainer's own cost instead: "
                      "run_training vs a bare model.fit, marginal ms per step (--rounds, "
                      "--batch, --steps_per_execution, --cost_steps, --out; .md beside --out).")
    flags.DEFINE_string("steps_per_execution", "1,16", "With --trainer_cost: the values to "
                        "compare, comma separated.")
    flags.DEFINE_string("cost_steps", ",".join(map(str, TRAINER_COST_STEPS)), "With "
                        "--trainer_cost: the two step counts (low,high).")
    flags.register_validator(
        "xla", lambda value: all(m.strip() in XLA_MODES for m in value.split(",")),
        message="--xla is invalid; valid: off, on, off,on")


def _with_larq_quantizers(model: tf.keras.Model) -> tf.keras.Model:
    """The same model with larq's own (unfused) quantizer of each name, for comparison."""
    for layer in model.layers:
        for attr in ("input_quantizer", "kernel_quantizer"):
            quantizer = getattr(layer, attr, None)
            if isinstance(quantizer, tuple(quantizers.CUSTOM_OBJECTS.values())):
                stock = type(quantizer).__mro__[1]  # the larq class it subclasses
                setattr(layer, attr, stock(**quantizer.get_config()))
    return model


def _models(size: int, classes: int, small_overrides: dict) -> dict[str, tf.keras.Model]:
    shape = (size, size, 3)
    models = {
        "birealnet18 (bireal_larq)": lambda: create_model(
            "birealnet18", input_shape=shape, num_classes=classes),
        "BiRealNet (larq-zoo)": lambda: larq_zoo.literature.BiRealNet(
            weights=None, input_shape=shape, num_classes=classes),
        "birealnet18 real-valued twin": lambda: create_model(
            "birealnet18", input_shape=shape, num_classes=classes, real_valued=True),
    }
    if size <= 32:
        models["birealnet18_small (bireal_larq)"] = lambda: create_model(
            "birealnet18_small", input_shape=shape, num_classes=classes, **small_overrides)
        models["birealnet18_small real-valued twin"] = lambda: create_model(
            "birealnet18_small", input_shape=shape, num_classes=classes, real_valued=True,
            **small_overrides)
        models["birealnet18_small (larq's quantizers)"] = lambda: _with_larq_quantizers(
            create_model("birealnet18_small", input_shape=shape, num_classes=classes,
                         **small_overrides))
    return models


def _fitter(build, size: int, classes: int, batch: int, steps: int, jit: bool):
    model = build()
    model.compile(tf.keras.optimizers.Adam(1e-3), "categorical_crossentropy", jit_compile=jit)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(batch * steps, size, size, 3)).astype("float32")
    y = tf.one_hot(rng.integers(0, classes, batch * steps), classes).numpy()
    data = tf.data.Dataset.from_tensor_slices((x, y)).batch(batch).cache()
    model.fit(data, epochs=1, verbose=0)  # warm-up: tracing and first-step costs

    def run() -> float:
        start = time.perf_counter()
        model.fit(data, epochs=1, verbose=0)
        return batch * steps / (time.perf_counter() - start)

    return run


def render_table(results: list[dict]) -> str:
    """The README table. Ratios compare the best round of each model: on a shared machine
    interference only ever slows a round down (rounds here fall into a fast and a slow mode,
    the slow one hitting every model), so the best round is the model's own speed; the
    median is shown beside it."""
    lines = ["| input | model | images/s (best) | images/s (median) | vs larq-zoo | "
             "vs real-valued twin |", "| --- | --- | --- | --- | --- | --- |"]
    for row in results:
        xla = " +XLA" if row["model"].endswith(" +XLA") else ""
        same = {r["model"]: max(r["samples"]) for r in results if r["size"] == row["size"]}
        best = max(row["samples"])
        zoo = same.get("BiRealNet (larq-zoo)" + xla)
        twin_name = ("birealnet18_small real-valued twin" if "small" in row["model"]
                     else "birealnet18 real-valued twin") + xla
        twin = same.get(twin_name)
        ratio_zoo = f"{best / zoo:.2f}x" if zoo and "twin" not in row["model"] \
            and "small" not in row["model"] else ""
        ratio_twin = f"{best / twin:.2f}x" if twin and "twin" not in row[
            "model"] and "larq-zoo" not in row["model"] else ""
        lines.append(f"| {row['size']}x{row['size']} | {row['model']} | {best:.1f} | "
                     f"{statistics.median(row['samples']):.1f} | {ratio_zoo} | {ratio_twin} |")
    return "\n".join(lines)


TRAINER_COST_STEPS = (40, 640)  # default step counts: their difference is the marginal steps


def _cost_config(steps: int, per_execution: int, batch: int, examples: int):
    from bireal_larq.training import StageConfig, TrainConfig

    shape = (16, 16, 3)
    return TrainConfig(
        model="birealnet18_small",
        dataset="synthetic",
        model_overrides={"base_filters": 16},
        input_shape=shape,
        num_classes=10,
        dataset_kwargs={"image_shape": shape,
                        "num_examples": {"train": examples, "test": 64}},
        batch_size=batch,
        steps_per_epoch=steps,
        validation_steps=1,
        steps_per_execution=per_execution,
        stages=(StageConfig("train", 1),),
    )


def _run_trainer(steps: int, per_execution: int, batch: int, examples: int) -> float:
    """Seconds of one ``run_training`` call of one epoch of ``steps`` steps, every default
    callback on (progress lines: stdout is not a terminal here)."""
    from bireal_larq.training import run_training

    directory = tempfile.mkdtemp(prefix="trainer_cost_")
    try:
        with open(os.devnull, "w") as sink, contextlib.redirect_stdout(sink):
            start = time.perf_counter()
            run_training(_cost_config(steps, per_execution, batch, examples), directory,
                         verbose=1)
            return time.perf_counter() - start
    finally:
        shutil.rmtree(directory, ignore_errors=True)
        tf.keras.backend.clear_session()


def _run_bare(steps: int, per_execution: int, batch: int, examples: int) -> float:
    """Seconds of the same model, optimizer and input pipeline in a plain ``model.fit``
    (no callbacks, no validation, nothing written), model building included as in the
    trainer's call."""
    from bireal_larq.training import compile_for_recipe, get_strategy
    from bireal_larq.training.data import stage_data

    config = _cost_config(steps, per_execution, batch, examples)
    stage = config.stages[0]
    try:
        start = time.perf_counter()
        tf.keras.utils.set_random_seed(config.seed)
        data = stage_data(config, stage, get_strategy("one_device"))
        model = create_model(config.model, input_shape=config.input_shape,
                             num_classes=config.num_classes, **config.model_overrides)
        trainer = compile_for_recipe(model, stage, batch_size=batch,
                                     steps_per_epoch=data.steps_per_epoch,
                                     steps_per_execution=min(per_execution, steps))
        trainer.fit(data.train, epochs=1, steps_per_epoch=data.steps_per_epoch, verbose=0)
        return time.perf_counter() - start
    finally:
        tf.keras.backend.clear_session()


def trainer_cost(
    rounds: int, batch: int, per_executions: list[int], step_counts=TRAINER_COST_STEPS
) -> dict:
    """Marginal milliseconds per step of the full trainer (``run_training`` with every default
    callback) and of a bare ``model.fit`` of the same model, optimizer and pipeline, at each
    ``steps_per_execution``.

    Each variant runs one epoch of each of ``step_counts`` steps; the difference of
    the two times over the difference of the steps is the marginal time per step, from which
    start-up (building, tracing, validation, writing files) drops out. Rounds interleave every
    variant and step count; the table rates each variant by its best round (interference on a
    shared machine only slows a round down), the median beside it.
    """
    low, high = step_counts
    samples: dict[str, list[float]] = {}
    runners = {"trainer (run_training)": _run_trainer, "bare model.fit": _run_bare}
    for run in runners.values():  # warm-up: the process's first-time costs
        run(low, per_executions[0], batch, batch * high)
    for _ in range(rounds):
        for k in per_executions:
            for name, run in runners.items():
                seconds = {steps: run(steps, k, batch, batch * high) for steps in (low, high)}
                ms = 1000 * (seconds[high] - seconds[low]) / (high - low)
                samples.setdefault(f"{name}|{k}", []).append(ms)
                print(f"{name}, steps_per_execution {k}: {ms:.2f} ms/step "
                      f"({seconds[low]:.1f} s / {seconds[high]:.1f} s)", file=sys.stderr,
                      flush=True)
    results = []
    for key, values in samples.items():
        name, k = key.split("|")
        results.append({"variant": name, "steps_per_execution": int(k), "ms_per_step": values,
                        "best_ms": min(values), "median_ms": statistics.median(values)})
    return {"marginal_steps": high - low, "step_counts": [low, high], "rounds": rounds,
            "batch": batch, "results": results}


def render_cost_table(report: dict) -> str:
    """The trainer-cost table: ms/step and images/s (best round), median, trainer vs bare."""
    rows = {(r["variant"], r["steps_per_execution"]): r for r in report["results"]}
    lines = ["| steps_per_execution | variant | ms/step (best) | ms/step (median) | images/s "
             "(best) | trainer overhead vs bare fit |", "| --- | --- | --- | --- | --- | --- |"]
    for (name, k), r in sorted(rows.items(), key=lambda kv: (kv[0][1], kv[0][0] != "bare "
                                                               "model.fit")):
        bare = rows.get(("bare model.fit", k))
        overhead = ""
        if bare and name != "bare model.fit":
            overhead = f"{100 * (r['best_ms'] / bare['best_ms'] - 1):+.1f} %"
        lines.append(f"| {k} | {name} | {r['best_ms']:.2f} | {r['median_ms']:.2f} | "
                     f"{1000 * report['batch'] / r['best_ms']:.0f} | {overhead} |")
    return "\n".join(lines)


def _trainer_cost_main(batch: int) -> None:
    started = time.time()
    load = [round(x, 2) for x in os.getloadavg()]
    per_executions = [int(k) for k in FLAGS.steps_per_execution.split(",")]
    low, high = (int(n) for n in FLAGS.cost_steps.split(","))
    if not 0 < low < high:
        raise app.UsageError(f"--cost_steps={FLAGS.cost_steps!r} is invalid; valid: two step "
                             "counts 0 < low < high, e.g. 40,640")
    report = trainer_cost(FLAGS.rounds, batch, per_executions, (low, high))
    report.update(
        command=" ".join([os.path.relpath(sys.executable), *sys.argv]),
        date=datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        seconds=time.time() - started,
        machine={"cpu": cpu_model(), "machine": platform.machine(),
                 "cpu_count": os.cpu_count(), "platform": platform.platform(),
                 "load_average_start": load,
                 "load_average_end": [round(x, 2) for x in os.getloadavg()]},
        versions={"python": platform.python_version(), "tensorflow": tf.__version__},
    )
    report["table"] = render_cost_table(report)
    m = report["machine"]
    low, high = report["step_counts"]
    markdown = "\n".join([
        "# The trainer's own cost",
        "",
        f"- Command: `{report['command']}`",
        f"- Date: {report['date']} ({report['seconds'] / 60:.1f} min)",
        f"- Machine: {m['cpu']} ({m['machine']}), {m['cpu_count']} cores, {m['platform']}; "
        f"load average at the start {' / '.join(map(str, m['load_average_start']))}, at the "
        f"end {' / '.join(map(str, m['load_average_end']))}",
        f"- Python {report['versions']['python']}, TensorFlow {report['versions']['tensorflow']}",
        f"- `birealnet18_small`, base_filters 16, 16x16x3 synthetic images, 10 classes, batch "
        f"{report['batch']}, Adam; marginal time per step = (time of {high} steps - time of "
        f"{low} steps) / {high - low}, one epoch per call; {report['rounds']} interleaved "
        "rounds, best and median",
        "",
        report["table"],
        "",
    ])
    print(markdown)
    os.makedirs(os.path.dirname(os.path.abspath(FLAGS.out)), exist_ok=True)
    with open(FLAGS.out, "w", encoding="utf-8") as f:
        json.dump(report, f, indent=2)
    with open(os.path.splitext(FLAGS.out)[0] + ".md", "w", encoding="utf-8") as f:
        f.write(markdown)


def main(argv: list[str]) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    if FLAGS.trainer_cost:
        _trainer_cost_main(FLAGS.batch if FLAGS["batch"].present else TRAINER_COST_BATCH)
        return
    if FLAGS.table_from:
        with open(FLAGS.table_from, encoding="utf-8") as f:
            saved = json.load(f)
        saved["table"] = render_table(saved["results"])
        print(saved["table"])
        with open(FLAGS.table_from, "w", encoding="utf-8") as f:  # the stored table follows
            json.dump(saved, f, indent=2)
        return
    modes = [m.strip() for m in FLAGS.xla.split(",")]

    small_overrides = {} if FLAGS.small_base_filters is None else {
        "base_filters": FLAGS.small_base_filters}
    results = []
    for size in [int(s) for s in FLAGS.sizes.split(",")]:
        classes = FLAGS.classes if size > 32 else 10
        runners = {
            name + (" +XLA" if mode == "on" else ""): _fitter(
                build, size, classes, FLAGS.batch, FLAGS.steps, jit=mode == "on")
            for mode in modes
            for name, build in _models(size, classes, small_overrides).items()
        }
        samples: dict[str, list[float]] = {name: [] for name in runners}
        for _ in range(FLAGS.rounds):
            for name, run in runners.items():
                samples[name].append(run())
        for name, values in samples.items():
            results.append({"size": size, "model": name, "images_per_s": statistics.median(values),
                            "samples": values})
        tf.keras.backend.clear_session()

    table = render_table(results)
    print(table)
    os.makedirs(os.path.dirname(os.path.abspath(FLAGS.out)), exist_ok=True)
    args = {name: FLAGS[name].value for name in FLAG_NAMES}
    with open(FLAGS.out, "w", encoding="utf-8") as f:
        json.dump({"args": args, "results": results, "table": table}, f, indent=2)


if __name__ == "__main__":
    _define_flags()
    app.run(main)
