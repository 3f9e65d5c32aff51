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
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

# bireal_larq first: on the main stack its import selects Keras 2 (TF_USE_LEGACY_KERAS=1),
# which must happen before TensorFlow, larq or larq_zoo is imported.
import bireal_larq  # noqa: E402, F401, I001 - before TensorFlow, on purpose
import larq_zoo  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from bireal_larq import create_model  # noqa: E402
from bireal_larq.models import quantizers  # noqa: E402


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="224,32", help="input sizes, comma separated")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--steps", type=int, default=4, help="timed steps per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--classes", type=int, default=1000)
    parser.add_argument("--small_base_filters", type=int, default=None,
                        help="base_filters of the birealnet18_small rows (the tricks study uses "
                        "16); default: the registry's")
    parser.add_argument("--out", default="runs/bench/training.json")
    parser.add_argument("--xla", default="off", help="train steps without / with XLA: off, on "
                        "or off,on (each model in each mode; ratios within a mode)")
    parser.add_argument("--table_from", default=None, help="render the table of an earlier "
                        "run's --out file from its samples (printed and stored back in the "
                        "file) and measure nothing")
    args = parser.parse_args()
    if args.table_from:
        with open(args.table_from, encoding="utf-8") as f:
            saved = json.load(f)
        saved["table"] = render_table(saved["results"])
        print(saved["table"])
        with open(args.table_from, "w", encoding="utf-8") as f:  # the stored table follows
            json.dump(saved, f, indent=2)
        return
    modes = [m.strip() for m in args.xla.split(",")]
    if not modes or any(m not in ("off", "on") for m in modes):
        parser.error(f"--xla={args.xla!r} is invalid; valid: off, on, off,on")

    small_overrides = {} if args.small_base_filters is None else {
        "base_filters": args.small_base_filters}
    results = []
    for size in [int(s) for s in args.sizes.split(",")]:
        classes = args.classes if size > 32 else 10
        runners = {
            name + (" +XLA" if mode == "on" else ""): _fitter(
                build, size, classes, args.batch, args.steps, jit=mode == "on")
            for mode in modes
            for name, build in _models(size, classes, small_overrides).items()
        }
        samples: dict[str, list[float]] = {name: [] for name in runners}
        for _ in range(args.rounds):
            for name, run in runners.items():
                samples[name].append(run())
        for name, values in samples.items():
            results.append({"size": size, "model": name, "images_per_s": statistics.median(values),
                            "samples": values})
        tf.keras.backend.clear_session()

    table = render_table(results)
    print(table)
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w", encoding="utf-8") as f:
        json.dump({"args": vars(args), "results": results, "table": table}, f, indent=2)


if __name__ == "__main__":
    main()
