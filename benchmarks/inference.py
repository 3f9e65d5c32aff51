"""Host inference latency, side by side in one run: larq-zoo BiRealNet vs this project.

Rows (224x224x3, 1000 classes, untrained weights: latency does not depend on them):

* ``larq_zoo BiRealNet``: ``larq_zoo.literature.BiRealNet`` converted by LCE;
* ``birealnet18``: this project's layer-for-layer equivalent, converted by LCE;
* ``birealnet18_lce``: the same with ``pad_values=1`` (no border correction);
* ``birealnet18 float twin``: the real-valued twin, plain TFLite converter, XNNPACK.

LCE models run with the fastest backend for the host, probed per model and thread count among
LCE's two bgemm kernels, each with or without XNNPACK for the float layers. All rows are timed
round-robin (one run of each per round), so the drifting load of a shared machine affects
them alike. Targets checked at the end: birealnet18 no slower than the zoo model,
birealnet18_lce faster than the float twin, birealnet18's flatbuffer <= 4.2 MB.

Command (prints a markdown table and writes JSON)::

    TF_CPP_MIN_LOG_LEVEL=2 python benchmarks/inference.py --threads=1,2 \
        --output=benchmarks/results/inference.json

Host numbers are for comparisons on one machine; ARM numbers come from
``lce_benchmark_model`` on the device (docs/raspberry-pi.md).
"""

from __future__ import annotations

import json
import os
import platform
import time

from absl import app, flags

FLAGS = flags.FLAGS
flags.DEFINE_list("threads", ["1", "2"], "Thread counts to time.")
flags.DEFINE_integer("runs", 30, "Timed runs per configuration.")
flags.DEFINE_integer("warmup", 5, "Untimed runs before timing.")
flags.DEFINE_string("output", "benchmarks/results/inference.json", "JSON results.")
flags.DEFINE_float("tolerance", 0.05, "Relative slack for 'no slower than' (timing noise).")

SIZE_TARGET_BYTES = 4.2e6


def _flatbuffers() -> tuple[dict[str, bytes], dict[str, dict]]:
    import larq_compute_engine as lce
    import larq_zoo
    import tensorflow as tf

    from bireal_larq import export
    from bireal_larq.benchmark import float_twin_flatbuffer
    from bireal_larq.models import create_model

    models: dict[str, bytes] = {}
    fusion: dict[str, dict] = {}
    zoo = larq_zoo.literature.BiRealNet(weights=None)
    models["larq_zoo BiRealNet"] = lce.convert_keras_model(zoo)
    for name in ("birealnet18", "birealnet18_lce"):
        tf.keras.backend.clear_session()
        keras_model = create_model(name)
        flatbuffer = export.convert(keras_model)
        check = export.check_fusion(keras_model, flatbuffer)
        fusion[name] = {"binary_layers": len(check.binary_layers), "fused": check.fused}
        models[name] = flatbuffer
    models["birealnet18 float twin"] = float_twin_flatbuffer("birealnet18")
    return models, fusion


def main(argv: list[str]) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    from bireal_larq import benchmark

    threads = [int(t) for t in FLAGS.threads]
    started = time.time()
    models, fusion = _flatbuffers()
    backends, configs = {}, []
    for name, flatbuffer in models.items():
        if name.endswith("float twin"):
            configs += [benchmark.Config(name, flatbuffer, n, "default+xnnpack") for n in threads]
            continue
        backends[name] = {}
        for n in threads:  # the fastest backend can depend on the thread count
            backend, probe = benchmark.fastest_backend(flatbuffer, threads=n)
            backends[name][n] = {"backend": backend, "probe_median_ms": probe}
            configs.append(benchmark.Config(name, flatbuffer, n, backend))
    # Round-robin, so that the load of a shared machine affects every row alike.
    timings = benchmark.time_interleaved(configs, warmup=FLAGS.warmup, runs=FLAGS.runs)

    def med(model: str, n: int) -> float:
        return benchmark.median_of(timings, model, n)

    slack = 1 + FLAGS.tolerance
    targets = {
        f"birealnet18 <= larq_zoo BiRealNet ({n} thread{'s' * (n > 1)})": med("birealnet18", n)
        <= med("larq_zoo BiRealNet", n) * slack
        for n in threads
    }
    targets.update(
        {
            f"birealnet18_lce < float twin ({n} thread{'s' * (n > 1)})": med("birealnet18_lce", n)
            < med("birealnet18 float twin", n)
            for n in threads
        }
    )
    targets["birealnet18 flatbuffer <= 4.2 MB"] = len(models["birealnet18"]) <= SIZE_TARGET_BYTES

    table = benchmark.format_table(timings)
    sizes = {name: len(fb) for name, fb in models.items()}
    print(table)
    print("\n| model | flatbuffer bytes |")
    print("|---|---:|")
    for name, size in sizes.items():
        print(f"| {name} | {size:,} |")
    print("\nBackend probe (median ms of a short round-robin run; the fastest is used above):\n")
    print("| model | threads | " + " | ".join(benchmark.BACKENDS) + " |")
    print("|---|---:|" + "---:|" * len(benchmark.BACKENDS))
    for name, per_thread in backends.items():
        for n, probe in per_thread.items():
            cells = " | ".join(f"{probe['probe_median_ms'][b]:.1f}" for b in benchmark.BACKENDS)
            print(f"| {name} | {n} | {cells} |")
    print("\nTargets:")
    for target, ok in targets.items():
        print(f"- [{'x' if ok else ' '}] {target}")

    os.makedirs(os.path.dirname(os.path.abspath(FLAGS.output)), exist_ok=True)
    import larq
    import larq_compute_engine
    import tensorflow as tf

    with open(FLAGS.output, "w", encoding="utf-8") as f:
        json.dump(
            {
                "host": {
                    "machine": platform.machine(),
                    "processor": platform.processor(),
                    "cpu_count": os.cpu_count(),
                    "load_average": os.getloadavg(),
                },
                "versions": {
                    "tensorflow": tf.__version__,
                    "larq": larq.__version__,
                    "larq_compute_engine": larq_compute_engine.__version__,
                },
                "sizes_bytes": sizes,
                "fusion": fusion,
                "backends": backends,
                "timings": [t.to_dict() for t in timings],
                "targets": targets,
                "table": table,
                "seconds": time.time() - started,
            },
            f,
            indent=2,
        )
    print(f"\nJSON: {FLAGS.output}")


if __name__ == "__main__":
    app.run(main)
