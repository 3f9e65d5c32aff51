"""The tricks study: many short training runs on one budget, each exported and checked on LCE.

    python -m bireal_larq.study --suite=fashion_mnist [--only=bireal,prelu] [--results_dir=results]

The suite is the file ``experiments/study_<suite>.py`` (its ``entries(runs_dir)`` lists the
configurations). For every configuration, in order: train (resuming an interrupted run),
export to LCE, and evaluate the Keras and the LCE model on the full test set; the row is
written to ``<run>/study_row.json`` so a rerun skips finished configurations. Then the table
``results/<suite>.md`` and the bar plot ``results/<suite>.png`` are (re)written from every
finished row, with the seed-to-seed spread of plain Bi-Real next to them.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import time
import traceback

from absl import flags

from bireal_larq import cli
from bireal_larq.cli import fail, parser_for
from bireal_larq.data import get_dataset
from bireal_larq.export import export_model
from bireal_larq.plots import pyplot
from bireal_larq.runs import model_from_run
from bireal_larq.stack import keras_version
from bireal_larq.training import run_training
from bireal_larq.training.experiments import load_experiment
from bireal_larq.training.overrides import override_config
from bireal_larq.training.rundir import HISTORY, read_history
from bireal_larq.utils import WriteError, atomic_path, cpu_model, write_failed

# A private flag set: several CLIs can be imported into one process (see bireal_larq.cli).
FLAGS = flags.FlagValues()
PARSER = parser_for(FLAGS)  # app.run's flags parser: no positional arguments
flags.DEFINE_string(
    "suite", "fashion_mnist", "Study suite: experiments/study_<suite>.py.", flag_values=FLAGS
)
flags.DEFINE_string(
    "results_dir", "results", "Where the table, plot and runs go.", flag_values=FLAGS
)
flags.DEFINE_list(
    "only", None, "Run only these configurations (the table shows all finished).", flag_values=FLAGS
)
flags.DEFINE_string("data_dir", None, "Data directory of bireal_larq.data.", flag_values=FLAGS)
flags.DEFINE_bool(
    "table_only", False, "Rewrite the table from finished rows; train nothing.", flag_values=FLAGS
)
flags.DEFINE_bool(
    "recheck",
    False,
    "Train nothing: export and evaluate every finished row's weights again on the installed "
    "stack and compare with its row (results/<suite>_recheck_tf<version>.md); exit 1 when one "
    "moved by more than 0.05 points.",
    flag_values=FLAGS,
)

ROW_FILE = "study_row.json"


class MissingRunError(ValueError):
    """A configuration needs another one (its teacher) that has not finished."""
TEST_IMAGES = 10_000  # the whole Fashion-MNIST / CIFAR test split


def load_suite(suite: str):
    try:
        return load_experiment(f"study_{suite}")
    except ValueError as err:
        raise ValueError(f"Unknown study suite {suite!r}: {err}") from None


def run_entry(entry, runs_dir: str, data_dir: str | None = None) -> dict:
    """Trains, exports and evaluates one configuration; returns (and stores) its row."""
    run_dir = os.path.join(runs_dir, entry.name)
    row_path = os.path.join(run_dir, ROW_FILE)
    if os.path.exists(row_path):
        with open(row_path, encoding="utf-8") as f:
            return json.load(f)
    for need in entry.needs:
        if not os.path.exists(os.path.join(runs_dir, need, ROW_FILE)):
            raise MissingRunError(
                f"{entry.name!r} needs the finished run {need!r} first; run it with "
                f"--only={need},{entry.name}"
            )
    import tensorflow as tf

    tf.keras.backend.clear_session()
    summary = run_training(override_config(entry.config, data_dir=data_dir), run_dir)
    row = measure_entry(entry, run_dir, os.path.join(run_dir, "model.tflite"), data_dir)
    row.update(
        train_minutes=summary["train_time_s"] / 60,
        epochs=summary["epochs"],
        train_images_per_s=summary.get("train_images_per_s"),
    )
    with atomic_path(row_path) as tmp, open(tmp, "w", encoding="utf-8") as f:
        json.dump(row, f, indent=2)
    return row


def measure_entry(entry, run_dir: str, tflite_path: str, data_dir: str | None = None) -> dict:
    """Exports a finished run's weights with LCE and evaluates both models on the test split.

    Returns:
        The measured part of a study row (accuracies, agreement, size, fused binary convs).
    """
    import tensorflow as tf

    tf.keras.backend.clear_session()
    config = override_config(entry.config, data_dir=data_dir)
    model, _ = model_from_run(run_dir)
    # The whole test split, preprocessed by the data package's eval function (with the last
    # stage's evaluation resize ratio, as training validated it).
    test, count = get_dataset(
        config.dataset,
        "test",
        batch_size=250,
        training=False,
        data_dir=data_dir,
        num_classes=config.num_classes,
        augment=config.stages[-1].augment,
        **config.dataset_kwargs,
    )
    report = export_model(
        model,
        tflite_path,
        model_name=config.model,
        verify_images=test,
        verify_samples=min(count, TEST_IMAGES),
        metadata={"study": entry.name},
        # A row's accuracy is measured either way; the table shows how many binary convs LCE
        # fused (grouped convs with < 32 input channels per group run as float convs).
        allow_float_fallback=True,
    )
    verification = report.get("verification") or {}
    return {
        "name": entry.name,
        "description": entry.description,
        "binary": entry.binary,
        "seed": config.seed,
        "keras_top1": verification.get("keras_top1_accuracy"),
        "lce_top1": verification.get("lce_top1_accuracy"),
        "test_images": verification.get("samples"),
        "top1_agreement": verification.get("top1_agreement"),
        "parameters": int(model.count_params()),
        "flatbuffer_bytes": report.get("file_size_bytes"),
        "binary_convs_fused": f"{report.get('lce_bconv2d_ops')}/{report.get('binary_layers')}",
    }


RECHECK_TOLERANCE = 0.0005  # 0.05 points of top-1


def _machine() -> str:
    """The CPU model and core count, for the header of a measured table."""
    return f"{cpu_model()}, {os.cpu_count()} cores"


def _suite_entries(suite_module, runs_dir: str, only: list[str] | None) -> list:
    """The suite's entries; raises ValueError when ``only`` names one it does not have."""
    entries = suite_module.entries(runs_dir)
    names = [e.name for e in entries]
    unknown = sorted(set(only or ()) - set(names))
    if unknown:
        raise ValueError(f"Unknown study configurations {unknown}; valid: {names}")
    return entries


def recheck_study(
    suite_name: str,
    suite_module,
    results_dir: str,
    *,
    only: list[str] | None = None,
    data_dir: str | None = None,
) -> tuple[list[dict], list[str]]:
    """Measures every finished row again from its committed weights on the installed stack.

    Writes ``<results_dir>/<suite>_recheck_tf<TF version>.md`` (committed and measured Keras and
    LCE top-1 side by side) and leaves the rows, weights and table of the study untouched.

    Returns:
        The comparison rows and the names of rows whose accuracy moved by more than 0.05
        points (or whose fused-conv count changed).
    """
    import tempfile

    import tensorflow as tf

    runs_dir = os.path.join(results_dir, f"{suite_name}_runs")
    entries = _suite_entries(suite_module, runs_dir, only)
    entries = [e for e in entries if not only or e.name in only]
    compared, moved = [], []
    with tempfile.TemporaryDirectory() as scratch:
        for entry in entries:
            run_dir = os.path.join(runs_dir, entry.name)
            row_path = os.path.join(run_dir, ROW_FILE)
            if not os.path.exists(row_path):
                continue
            with open(row_path, encoding="utf-8") as f:
                committed = json.load(f)
            start = time.time()
            measured = measure_entry(
                entry, run_dir, os.path.join(scratch, f"{entry.name}.tflite"), data_dir
            )
            deltas = [
                abs(measured[k] - committed[k]) for k in ("keras_top1", "lce_top1")
                if measured.get(k) is not None and committed.get(k) is not None
            ]
            ok = (
                len(deltas) == 2
                and max(deltas) <= RECHECK_TOLERANCE + 1e-9
                and measured["binary_convs_fused"] == committed["binary_convs_fused"]
            )
            compared.append({"name": entry.name, "committed": committed, "measured": measured,
                             "ok": ok, "seconds": time.time() - start})
            if not ok:
                moved.append(entry.name)
            print(
                f"### {entry.name}: Keras {_pct(committed['keras_top1'])} -> "
                f"{_pct(measured['keras_top1'])} %, LCE {_pct(committed['lce_top1'])} -> "
                f"{_pct(measured['lce_top1'])} %{'' if ok else '  MOVED'}",
                flush=True,
            )
    versions = f"TensorFlow {tf.__version__}, Keras {keras_version()}, Python " + (
        ".".join(map(str, sys.version_info[:3]))
    )
    lines = [
        f"# {suite_name}: the committed weights measured again ({versions})",
        "",
        f"Command: `python -m bireal_larq.study --suite={suite_name} --recheck`; "
        f"{time.strftime('%Y-%m-%d')}; {_machine()}; {len(compared)} rows, {len(moved)} moved "
        "by more than 0.05 points of top-1.",
        "",
        "| configuration | Keras top-1 % committed | measured | LCE top-1 % committed | measured "
        "| binary convs fused | within 0.05 points |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for c in compared:
        old, new = c["committed"], c["measured"]
        lines.append(
            f"| {c['name']} | {_pct(old['keras_top1'])} | {_pct(new['keras_top1'])} | "
            f"{_pct(old['lce_top1'])} | {_pct(new['lce_top1'])} | "
            f"{new['binary_convs_fused'] if old['binary'] else ''} | "
            f"{'yes' if c['ok'] else 'NO'} |"
        )
    path = os.path.join(results_dir, f"{suite_name}_recheck_tf{tf.__version__}.md")
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
    print(f"Results: {path}", flush=True)
    return compared, moved


def finished_rows(entries, runs_dir: str) -> list[dict]:
    """The stored rows of the finished configurations, described as the suite describes them
    now (a clarified description needs no rerun; the measurements are the stored ones)."""
    rows = []
    for entry in entries:
        path = os.path.join(runs_dir, entry.name, ROW_FILE)
        if os.path.exists(path):
            with open(path, encoding="utf-8") as f:
                rows.append({**json.load(f), "description": entry.description})
    return rows


def _pct(value) -> str:
    return "" if value is None else f"{100 * value:.2f}"


VERDICTS = ("above the seed range", "within the seed range (noise)", "below the seed range")


def suite_labels(suite_module) -> tuple[str | None, str | None, str]:
    """(baseline row, combination marker, metric label) as a suite declares them in
    ``BASELINE``, ``COMBINATION`` and ``METRIC``.

    Without ``BASELINE`` the table has no seed spread and no verdicts; without
    ``COMBINATION`` every non-baseline row is a single trick; ``METRIC`` defaults to
    "test top-1 (%), Keras model".
    """
    return (
        getattr(suite_module, "BASELINE", None),
        getattr(suite_module, "COMBINATION", None),
        getattr(suite_module, "METRIC", "test top-1 (%), Keras model"),
    )


def trick_verdicts(
    rows: list[dict], seeds: list[float], baseline: str, combination: str | None
) -> dict[str, list[str]]:
    """Sorts the single-trick rows (binary, not a ``baseline`` row, not a ``combination``, on
    the budget of the seed rows) by where their top-1 falls against the baseline's seed range;
    each name comes with its difference to the seed mean, best first."""
    if len(seeds) < 2:
        return {}
    budget = next((r.get("epochs") for r in rows if r["name"] == baseline), None)
    low, high, mean = min(seeds), max(seeds), statistics.mean(seeds)
    found: dict[str, list[tuple[float, str]]] = {v: [] for v in VERDICTS}
    for r in rows:
        top1 = r["keras_top1"]
        if (not r["binary"] or top1 is None or r["name"].startswith(baseline)
                or (combination and combination in r["name"]) or r.get("epochs") != budget):
            continue
        verdict = VERDICTS[0] if top1 > high else VERDICTS[2] if top1 < low else VERDICTS[1]
        found[verdict].append((top1 - mean, r["name"]))
    return {
        v: [f"{name} ({100 * d:+.2f})" for d, name in sorted(items, reverse=True)]
        for v, items in found.items()
        if items
    }


def _single_trick_rows(rows: list[dict], baseline: str, combination: str | None) -> list[dict]:
    """The rows :func:`trick_verdicts` sorts: binary single tricks on the baseline's budget."""
    budget = next((r.get("epochs") for r in rows if r["name"] == baseline), None)
    return [
        r for r in rows
        if r["binary"] and r["keras_top1"] is not None and not r["name"].startswith(baseline)
        and not (combination and combination in r["name"]) and r.get("epochs") == budget
    ]


def _plot_deltas(rows: list[dict], seeds: list[float], baseline: str, metric: str,
                 path: str) -> None:
    """Each row's top-1 minus the baseline's seed mean (points), best first, over the seed
    range as a band."""
    plt = pyplot()
    mean = statistics.mean(seeds)
    ordered = sorted(rows, key=lambda r: r["keras_top1"], reverse=True)
    deltas = [100 * (r["keras_top1"] - mean) for r in ordered]
    fig, ax = plt.subplots(figsize=(8, 0.35 * len(ordered) + 1.5))
    colors = ["tab:green" if d > 100 * (max(seeds) - mean) else "tab:red"
              if d < 100 * (min(seeds) - mean) else "tab:gray" for d in deltas]
    ax.barh([r["name"] for r in ordered], deltas, color=colors, zorder=2)
    ax.invert_yaxis()
    ax.axvspan(100 * (min(seeds) - mean), 100 * (max(seeds) - mean), color="tab:orange",
               alpha=0.25, zorder=0, label=f"{baseline} seed range ({len(seeds)} seeds)")
    ax.axvline(0.0, color="black", lw=0.8)
    ax.set_xlabel(f"difference to the {baseline} seed mean, points ({metric})")
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _curve_pairs(suite_module, runs_dir: str | None) -> list[tuple[str, list[dict]]]:
    """(row name, its history rows) of the rows in the suite's ``CURVES`` pairs whose run has
    a history in ``runs_dir``; a pair is kept only whole."""
    if runs_dir is None:
        return []

    found = []
    for pair in getattr(suite_module, "CURVES", ()):
        histories = [(name, read_history(os.path.join(runs_dir, name, HISTORY)))
                     for name in pair]
        if all(h for _, h in histories):
            found += histories
    return found


def _plot_curves(histories: list[tuple[str, list[dict]]], path: str) -> None:
    """Validation top-1 and loss against the epoch for each named run."""
    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for name, rows in histories:
        x = list(range(1, len(rows) + 1))
        for ax, key in zip(axes, ("val_top1", "val_loss"), strict=True):
            ax.plot(x, [float(r[key]) if r.get(key) else float("nan") for r in rows], "o-",
                    markersize=3, label=name)
    for ax, title in zip(axes, ("validation top-1", "validation loss"), strict=True):
        ax.set_title(title)
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def write_results(
    suite_name: str,
    suite_module,
    rows: list[dict],
    total: int,
    md_path: str,
    png_path: str,
    runs_dir: str | None = None,
) -> None:
    """The markdown table (with the seed spread and the twin gap) and the plots: every row's
    top-1 (``png_path``), each single trick's difference to the baseline's seed mean with the
    seed range (``<name>_deltas.png``, with a baseline of 2 seeds or more) and, for the pairs
    of rows the suite names in ``CURVES`` whose runs in ``runs_dir`` have a history, their
    validation curves side by side (``<name>_curves.png``)."""
    baseline, combination, metric = suite_labels(suite_module)
    # Each row is compared with the real-valued twin trained on the same budget (epochs).
    twins = {r.get("epochs"): r for r in rows if not r["binary"]}
    seeds = [
        r["keras_top1"]
        for r in rows
        if baseline is not None
        and r["name"].startswith(baseline)
        and r["binary"]
        and r["keras_top1"] is not None
        and not (combination and combination in r["name"])
    ]
    lines: list[str] = [
        f"# Tricks study: {os.path.basename(md_path)[:-3]}",
        "",
        f"Command: `python -m bireal_larq.study --suite={suite_name}` "
        f"({len(rows)} of {total} configurations finished; rerun to continue).",
        "",
        *[
            paragraph
            for paragraph in (suite_module.__doc__ or "").strip().split("\n\n")
            if not paragraph.lstrip().startswith(("Command", "python", "(resumable", "Expected"))
        ],
        "",
    ]
    if len(seeds) >= 2:
        lines += [
            f"Seed-to-seed spread of {baseline} ({len(seeds)} seeds): mean "
            f"{100 * statistics.mean(seeds):.2f} %, range {100 * min(seeds):.2f}-"
            f"{100 * max(seeds):.2f} % (std {100 * statistics.stdev(seeds):.2f} points). "
            "Differences smaller than the range are noise.",
            "",
        ]
        verdicts = trick_verdicts(rows, seeds, baseline, combination)
        if verdicts:
            lines += ["Each single trick against that range (Keras top-1, same budget):", ""]
            lines += [f"- **{v}**: " + ", ".join(names) for v, names in verdicts.items()]
            lines += [""]
    lines += [
        "| configuration | binary | epochs | Keras top-1 % | LCE top-1 % | "
        "binary convs fused by LCE | vs twin, same epochs (points) | parameters | .tflite KB | "
        "train min | what it changes |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        gap = ""
        twin = twins.get(r.get("epochs"))
        if twin and r["keras_top1"] is not None and twin["keras_top1"] is not None:
            gap = f"{100 * (r['keras_top1'] - twin['keras_top1']):+.2f}"
        size = "" if r["flatbuffer_bytes"] is None else f"{r['flatbuffer_bytes'] / 1024:.0f}"
        lines.append(
            f"| {r['name']} | {'yes' if r['binary'] else 'no'} | {r.get('epochs', '')} | "
            f"{_pct(r['keras_top1'])} | "
            f"{_pct(r['lce_top1'])} | {r.get('binary_convs_fused', '') if r['binary'] else ''} | "
            f"{gap} | {r['parameters']:,} | {size} | "
            f"{r['train_minutes']:.1f} | {r['description']} |"
        )
    stem = os.path.splitext(png_path)[0]
    deltas_path, curves_path = f"{stem}_deltas.png", f"{stem}_curves.png"
    verdict_rows = _single_trick_rows(rows, baseline, combination) if len(seeds) >= 2 else []
    pairs = _curve_pairs(suite_module, runs_dir)
    lines += ["", f"![bar plot]({os.path.basename(png_path)})", ""]
    if verdict_rows:
        lines += [f"![each trick against the {baseline} seed range]"
                  f"({os.path.basename(deltas_path)})", ""]
    if pairs:
        lines += [f"![validation curves]({os.path.basename(curves_path)})", ""]
    with open(md_path, "w", encoding="utf-8") as f:
        f.write("\n".join(lines))
    if verdict_rows:
        _plot_deltas(verdict_rows, seeds, baseline, metric, deltas_path)
    if pairs:
        _plot_curves(pairs, curves_path)

    plt = pyplot()
    plotted = [r for r in rows if r["keras_top1"] is not None]
    if not plotted:
        return
    fig, ax = plt.subplots(figsize=(8, 0.35 * len(plotted) + 1.5))
    names = [r["name"] for r in plotted]
    values = [100 * r["keras_top1"] for r in plotted]
    colors = ["tab:gray" if not r["binary"] else "tab:blue" for r in plotted]
    ax.barh(names, values, color=colors)
    ax.invert_yaxis()
    low = min(values)
    ax.set_xlim(max(0.0, low - 5), min(100.0, max(values) + 1))
    ax.set_xlabel(metric)
    if len(seeds) >= 2:
        ax.axvspan(
            100 * min(seeds),
            100 * max(seeds),
            color="tab:orange",
            alpha=0.2,
            label=f"{baseline} seed range",
        )
        ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(png_path, dpi=120)
    plt.close(fig)


def run_study(
    suite_name: str,
    suite_module,
    results_dir: str,
    *,
    only: list[str] | None = None,
    data_dir: str | None = None,
    table_only: bool = False,
) -> tuple[list[dict], list[str]]:
    """Runs the unfinished configurations of a suite and rewrites its table and plot.

    Returns:
        The finished rows and the names of configurations that failed this time.

    Raises:
        ValueError: ``only`` names an unknown configuration.
    """
    if os.path.exists(results_dir) and not os.path.isdir(results_dir):
        raise ValueError(f"results_dir={results_dir!r} is a file; valid: a directory (created "
                         "when missing)")
    runs_dir = os.path.join(results_dir, f"{suite_name}_runs")
    entries = _suite_entries(suite_module, runs_dir, only)
    try:
        os.makedirs(runs_dir, exist_ok=True)
    except OSError as err:
        raise write_failed(runs_dir, err) from None
    md_path = os.path.join(results_dir, f"{suite_name}.md")
    png_path = os.path.join(results_dir, f"{suite_name}.png")

    def refresh():
        rows = finished_rows(entries, runs_dir)
        write_results(suite_name, suite_module, rows, len(entries), md_path, png_path,
                      runs_dir)
        return rows

    failures = []
    for i, entry in enumerate(entries):
        if table_only or (only and entry.name not in only):
            continue
        print(
            f"\n### study {suite_name}: {i + 1}/{len(entries)} {entry.name}: {entry.description}",
            flush=True,
        )
        start = time.time()
        try:
            row = run_entry(entry, runs_dir, data_dir)
        except (ValueError, OSError, RuntimeError) as err:  # the error names cause and remedy
            # (a missing teacher run or data, an unreadable image, a non-finite loss, a failed
            # export or write): one failed configuration must not stop the others.
            failures.append(entry.name)
            message = err.strerror if isinstance(err, WriteError) else err
            print(f"### {entry.name} failed: {message}", file=sys.stderr, flush=True)
            continue
        except Exception:  # a bug: its traceback, and the other configurations still run
            failures.append(entry.name)
            traceback.print_exc()
            continue
        print(
            f"### {entry.name}: Keras {_pct(row['keras_top1'])} %, LCE "
            f"{_pct(row['lce_top1'])} % ({time.time() - start:.0f} s)",
            flush=True,
        )
        refresh()
    rows = refresh()
    print(f"Results: {md_path}", flush=True)
    return rows, failures


def main(argv) -> None:
    del argv
    try:
        if FLAGS.recheck:
            _, moved = recheck_study(FLAGS.suite, load_suite(FLAGS.suite), FLAGS.results_dir,
                                     only=FLAGS.only, data_dir=FLAGS.data_dir)
            if moved:
                fail(1, f"study: rows moved by more than 0.05 points: {moved}")
            return
        _, failures = run_study(
            FLAGS.suite,
            load_suite(FLAGS.suite),
            FLAGS.results_dir,
            only=FLAGS.only,
            data_dir=FLAGS.data_dir,
            table_only=FLAGS.table_only,
        )
    except WriteError as err:  # the results folder or a file in it cannot be written
        fail(6, f"study: {err.strerror}")
    except ValueError as err:
        fail(1, f"study: {err}")
    if failures:
        fail(1, f"study: configurations failed: {failures}; rerun the same command to retry "
                "them (finished configurations are kept)")


def run() -> None:
    """The command-line entry point (parses this module's flags)."""
    cli.run(main, PARSER)


if __name__ == "__main__":
    run()
