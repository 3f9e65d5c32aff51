"""Run reports: the figures that need the exported model, and the rendering of a report as
Markdown and as one self-contained HTML page.

The figures (``python -m bireal_larq.report``)::

    python -m bireal_larq.report runs/demo/model.tflite --samples=10000

classify the first SAMPLES test images of the model's dataset with the exported model through
LCE's interpreter (:class:`bireal_larq.deploy.Classifier`, the same preprocessing as training's
evaluation) and write, beside the model (or into ``--output_dir``):

* ``test_predictions.json``: top-1, the confusion matrix, the top predictions of the pictured
  images, and the parameter counts of the model and of its real-valued twin;
* ``predictions.png``: the first ``--shown`` test images with the model's top predictions, the
  right ones in green and the wrong ones in red;
* ``confusion.png``: the confusion matrix.

The rendering: a report is a list of blocks (:class:`Heading`, :class:`Paragraph`,
:class:`Table`, :class:`Figure`, :class:`Code`, :class:`Bullets`) written out by
:func:`to_markdown` and :func:`to_html`; :func:`write_report` writes both files. The HTML page
holds its images as base64 data URIs, so it can be mailed or archived as one file. Paragraphs,
bullets and table cells take a small part of Markdown's inline syntax: ```code```,
``**bold**`` and ``[text](url)``.
"""

from __future__ import annotations

import base64
import html
import json
import os
import re
import shlex
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from absl import app, flags

from bireal_larq import cli, data
from bireal_larq.cli import parser_for
from bireal_larq.deploy import Classifier
from bireal_larq.export import read_report
from bireal_larq.export.verify import dataset_images
from bireal_larq.models import create_model
from bireal_larq.plots import pyplot
from bireal_larq.utils import WriteError, atomic_path

PREDICTIONS_JSON = "test_predictions.json"
PREDICTIONS_PNG = "predictions.png"
CONFUSION_PNG = "confusion.png"

RIGHT_COLOR = "#1a9641"  # green: the top-1 prediction is the true class
WRONG_COLOR = "#d7191c"  # red: it is not


# --------------------------------------------------------------------------------- blocks
@dataclass(frozen=True)
class Heading:
    text: str
    level: int = 2


@dataclass(frozen=True)
class Paragraph:
    text: str


@dataclass(frozen=True)
class Bullets:
    items: tuple[str, ...]


@dataclass(frozen=True)
class Table:
    header: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]

    def __post_init__(self):
        for row in self.rows:
            if len(row) != len(self.header):
                raise ValueError(
                    f"Table row {row!r} has {len(row)} cells; the header has {len(self.header)}"
                )


@dataclass(frozen=True)
class Figure:
    """An image file, its path relative to the report's directory."""

    path: str
    alt: str


@dataclass(frozen=True)
class Code:
    """A block of commands or output, shown verbatim."""

    text: str


Block = Heading | Paragraph | Bullets | Table | Figure | Code

_IMAGE_TYPES = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg",
                ".gif": "image/gif", ".svg": "image/svg+xml"}


def _md_cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def to_markdown(blocks: Sequence[Block]) -> str:
    """The report as Markdown (GitHub's dialect: pipe tables)."""
    out: list[str] = []
    for block in blocks:
        if isinstance(block, Heading):
            out.append("#" * block.level + " " + block.text)
        elif isinstance(block, Paragraph):
            out.append(block.text)
        elif isinstance(block, Bullets):
            out.append("\n".join("- " + item for item in block.items))
        elif isinstance(block, Table):
            lines = ["| " + " | ".join(_md_cell(c) for c in block.header) + " |",
                     "|" + " --- |" * len(block.header)]
            lines += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in block.rows]
            out.append("\n".join(lines))
        elif isinstance(block, Figure):
            out.append(f"![{block.alt}]({block.path})")
        elif isinstance(block, Code):
            out.append("\n".join("    " + line if line else "" for line in
                                 block.text.splitlines()))
        else:
            raise TypeError(f"{block!r} is not a report block; valid: {Block}")
    return "\n\n".join(out) + "\n"


_INLINE = re.compile(r"\*\*(.+?)\*\*|\[([^\]]+)\]\(([^)\s]+)\)")


def _inline_html(text: str) -> str:
    """Markdown's inline code, bold and links as HTML; everything else escaped."""
    parts = re.split(r"(`[^`]+`)", text)
    out = []
    for part in parts:
        if len(part) > 1 and part.startswith("`") and part.endswith("`"):
            out.append("<code>" + html.escape(part[1:-1]) + "</code>")
            continue
        pos, pieces = 0, []
        for m in _INLINE.finditer(part):
            pieces.append(html.escape(part[pos:m.start()]))
            if m.group(1) is not None:
                pieces.append("<strong>" + html.escape(m.group(1)) + "</strong>")
            else:
                pieces.append(f'<a href="{html.escape(m.group(3))}">{html.escape(m.group(2))}</a>')
            pos = m.end()
        pieces.append(html.escape(part[pos:]))
        out.append("".join(pieces))
    return "".join(out)


def data_uri(path: str) -> str:
    """The file as a ``data:`` URI.

    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: not an image type a browser shows (by its extension).
    """
    kind = _IMAGE_TYPES.get(os.path.splitext(path)[1].lower())
    if kind is None:
        raise ValueError(f"{path!r} is not an image to inline; valid extensions: "
                         f"{sorted(_IMAGE_TYPES)}")
    with open(path, "rb") as f:
        return f"data:{kind};base64," + base64.b64encode(f.read()).decode("ascii")


_STYLE = """
body { font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; color: #1f2328;
       max-width: 1000px; margin: 24px auto; padding: 0 16px; line-height: 1.45; }
h1 { font-size: 1.6em; border-bottom: 1px solid #d0d7de; padding-bottom: .2em; }
h2 { font-size: 1.25em; margin-top: 1.6em; border-bottom: 1px solid #d0d7de; }
table { border-collapse: collapse; margin: .6em 0; }
th, td { border: 1px solid #d0d7de; padding: 4px 10px; text-align: left; vertical-align: top; }
th { background: #f6f8fa; }
code, pre { font-family: ui-monospace, Menlo, Consolas, monospace; font-size: .9em;
            background: #f6f8fa; }
code { padding: 0 3px; border-radius: 3px; }
pre { padding: 8px 12px; overflow-x: auto; border-radius: 6px; }
img { max-width: 100%; height: auto; display: block; margin: .6em 0; }
"""


def to_html(blocks: Sequence[Block], base_dir: str, title: str) -> str:
    """The report as one HTML page; every :class:`Figure` is read from ``base_dir`` and
    inlined as a data URI, so the page needs no other file.

    Raises:
        FileNotFoundError: a figure's file does not exist.
    """
    body: list[str] = []
    for block in blocks:
        if isinstance(block, Heading):
            body.append(f"<h{block.level}>{_inline_html(block.text)}</h{block.level}>")
        elif isinstance(block, Paragraph):
            body.append(f"<p>{_inline_html(block.text)}</p>")
        elif isinstance(block, Bullets):
            items = "".join(f"<li>{_inline_html(i)}</li>" for i in block.items)
            body.append(f"<ul>{items}</ul>")
        elif isinstance(block, Table):
            head = "".join(f"<th>{_inline_html(c)}</th>" for c in block.header)
            rows = "".join(
                "<tr>" + "".join(f"<td>{_inline_html(c)}</td>" for c in row) + "</tr>"
                for row in block.rows
            )
            body.append(f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>")
        elif isinstance(block, Figure):
            uri = data_uri(os.path.join(base_dir, block.path))
            body.append(f'<img src="{uri}" alt="{html.escape(block.alt)}">')
        elif isinstance(block, Code):
            body.append(f"<pre>{html.escape(block.text)}</pre>")
        else:
            raise TypeError(f"{block!r} is not a report block; valid: {Block}")
    return (
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
        f"<title>{html.escape(title)}</title>\n<style>{_STYLE}</style>\n</head>\n<body>\n"
        + "\n".join(body)
        + "\n</body>\n</html>\n"
    )


def write_report(blocks: Sequence[Block], directory: str, name: str = "report",
                 title: str = "report") -> tuple[str, str]:
    """Writes ``directory/name.md`` and ``directory/name.html`` (atomically); returns both
    paths. Figure paths are relative to ``directory``."""
    markdown = to_markdown(blocks)
    page = to_html(blocks, directory, title)
    paths = []
    for ext, text in ((".md", markdown), (".html", page)):
        path = os.path.join(directory, name + ext)
        with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
        paths.append(path)
    return paths[0], paths[1]


# --------------------------------------------------------------------------------- figures
def confusion_matrix(labels: Sequence[int], predicted: Sequence[int], num_classes: int):
    """``matrix[true, predicted]``: how many images of each true class got each prediction."""
    import numpy as np

    labels, predicted = np.asarray(labels, int), np.asarray(predicted, int)
    if labels.shape != predicted.shape:
        raise ValueError(f"{labels.shape[0]} labels for {predicted.shape[0]} predictions")
    for what, v in (("label", labels), ("prediction", predicted)):
        if v.size and (v.min() < 0 or v.max() >= num_classes):
            raise ValueError(f"a {what} is outside 0..{num_classes - 1}")
    matrix = np.zeros((num_classes, num_classes), np.int64)
    np.add.at(matrix, (labels, predicted), 1)
    return matrix


def _save(fig, path: str) -> str:
    """Lays out ``fig``, writes it to ``path`` as a PNG (atomically) and closes it."""
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=100, format="png")
    pyplot().close(fig)
    return path


def _percent(p: float) -> str:
    return f"{100 * p:.0f} %" if p >= 0.01 else "<1 %"


def plot_predictions(images, labels: Sequence[int], top: Sequence[Sequence[tuple[int, float]]],
                     class_names: Sequence[str], path: str, title: str = "",
                     columns: int = 8) -> str:
    """A grid of images, each under its top prediction and probability: green when it is the
    true class, red (with the true class below) when not; a right one shows its runner-up.

    Args:
        images: (N, H, W, C) pixels in [0, 1] (C = 1: grey) or uint8.
        labels: the true class of each image.
        top: each image's best classes, best first, as (class, probability).
        class_names: names by class index.
        path: the PNG written.
        title: the figure's title.
    """
    import numpy as np

    plt = pyplot()
    images = np.asarray(images)
    n = len(images)
    if not n or len(labels) != n or len(top) != n:
        raise ValueError(f"{n} images, {len(labels)} labels and {len(top)} predictions: "
                         "expected the same number, at least 1")
    columns = min(columns, n)
    rows = -(-n // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(1.55 * columns, 1.95 * rows + 0.5),
                             squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, image, label, best in zip(axes.flat, images, labels, top):
        image = image.astype(np.float32) / 255.0 if image.dtype == np.uint8 else image
        image = np.clip(image, 0.0, 1.0)
        if image.shape[-1] == 1:
            ax.imshow(image[..., 0], cmap="gray", vmin=0.0, vmax=1.0)
        else:
            ax.imshow(image[..., :3])
        cls, prob = best[0]
        right = int(cls) == int(label)
        color = RIGHT_COLOR if right else WRONG_COLOR
        ax.axis("on")
        ax.set_xticks([])
        ax.set_yticks([])
        for spine in ax.spines.values():
            spine.set_color(color)
            spine.set_linewidth(3)
        ax.set_title(f"{class_names[int(cls)]} {_percent(prob)}", color=color, fontsize=8.5,
                     fontweight="bold", pad=3)
        if right:
            note = (f"2nd: {class_names[int(best[1][0])]} {_percent(best[1][1])}"
                    if len(best) > 1 else "")
            ax.set_xlabel(note, fontsize=7, color="#555555", labelpad=2)
        else:
            ax.set_xlabel(f"true: {class_names[int(label)]}", fontsize=8, color=WRONG_COLOR,
                          fontweight="bold", labelpad=2)
    if title:
        fig.suptitle(title, fontsize=11)
    return _save(fig, path)


def plot_confusion(matrix, class_names: Sequence[str], path: str, title: str = "") -> str:
    """The confusion matrix as a heat map with its counts; rows: true class, columns: the
    prediction."""
    import numpy as np

    plt = pyplot()
    matrix = np.asarray(matrix)
    k = len(class_names)
    if matrix.shape != (k, k):
        raise ValueError(f"a confusion matrix of shape {matrix.shape} for {k} class names")
    fig, ax = plt.subplots(figsize=(1.0 + 0.62 * k, 0.8 + 0.55 * k))
    shown = ax.imshow(matrix, cmap="Blues")
    fig.colorbar(shown, ax=ax, fraction=0.046, pad=0.04)
    top = matrix.max() if matrix.size else 0
    for i in range(k):
        for j in range(k):
            ax.text(j, i, str(int(matrix[i, j])), ha="center", va="center", fontsize=7.5,
                    color="white" if matrix[i, j] > top / 2 else "#1f2328")
    ax.set_xticks(range(k), class_names, rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(k), class_names, fontsize=8)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    if title:
        ax.set_title(title, fontsize=10)
    return _save(fig, path)


# ----------------------------------------------------------------------- the model's figures
def parameter_counts(export_report: dict[str, Any]) -> dict[str, int]:
    """Parameters of the exported model and of its real-valued twin, both built untrained
    from the export report's registry name and settings."""
    kwargs = dict(input_shape=tuple(export_report["input_shape"]),
                  num_classes=int(export_report["num_classes"]),
                  **(export_report.get("model_overrides") or {}))
    return {
        "binary": int(create_model(export_report["model"], **kwargs).count_params()),
        "real_valued_twin": int(
            create_model(export_report["model"], real_valued=True, **kwargs).count_params()
        ),
    }


def classify_test_set(tflite: str, samples: int, shown: int = 24, top_k: int = 3) -> dict:
    """Classifies the first ``samples`` test images of the model's dataset with the exported
    model; returns what ``test_predictions.json`` holds, plus the pictured ``images`` (pixels
    in [0, 1]) under the key ``"images"``.

    Raises:
        ValueError: the export report beside the model names no dataset, or ``samples`` < 1.
        FileNotFoundError: the model or the dataset is missing.
    """
    import numpy as np

    if samples < 1 or shown < 1:
        raise ValueError(f"samples={samples}, shown={shown}; valid: at least 1 each")
    report = read_report(tflite) or {}
    classifier = Classifier(tflite)
    if classifier.dataset is None:
        raise ValueError(f"the export report beside {tflite!r} names no dataset; export the "
                         "model with bireal_larq.export from a training run")
    start = time.time()
    images, onehot = dataset_images(classifier.dataset, samples, classifier.input_shape,
                                    resize_ratio=classifier.resize_ratio)
    labels = np.argmax(onehot, axis=-1)
    probabilities = classifier.predict(images, preprocessed=True)
    predicted = np.argmax(probabilities, axis=-1)
    names = list(classifier.class_names or [str(i) for i in range(classifier.num_classes)])
    matrix = confusion_matrix(labels, predicted, classifier.num_classes)
    order = np.argsort(-probabilities, axis=-1, kind="stable")[:, :top_k]
    n = min(shown, len(labels))
    info = data.dataset_info(classifier.dataset).with_image_size(classifier.input_shape[:2])
    pixels = images[:n] * np.asarray(info.std, np.float32) + np.asarray(info.mean, np.float32)
    result = {
        "tflite": os.path.abspath(tflite),
        "dataset": classifier.dataset,
        "backend": classifier.backend,
        "samples": int(len(labels)),
        "top1": float(np.mean(predicted == labels)),
        "class_names": names,
        "confusion": matrix.tolist(),
        "shown": [
            {"index": i, "label": int(labels[i]),
             "top": [[int(c), float(probabilities[i, c])] for c in order[i]]}
            for i in range(n)
        ],
        "seconds": round(time.time() - start, 1),
    }
    if "model" in report:
        result["parameters"] = parameter_counts(report)
    result["images"] = pixels
    return result


def write_test_figures(tflite: str, output_dir: str, samples: int, shown: int = 24) -> dict:
    """:func:`classify_test_set`, written as ``test_predictions.json``, ``predictions.png`` and
    ``confusion.png`` in ``output_dir``; returns the JSON's content."""
    result = classify_test_set(tflite, samples, shown)
    images = result.pop("images")
    names = result["class_names"]
    shown_rows = result["shown"]
    wrong = sum(r["top"][0][0] != r["label"] for r in shown_rows)
    os.makedirs(output_dir, exist_ok=True)
    plot_predictions(
        images, [r["label"] for r in shown_rows], [r["top"] for r in shown_rows], names,
        os.path.join(output_dir, PREDICTIONS_PNG),
        title=f"LCE model on the first {len(shown_rows)} test images: "
              f"{len(shown_rows) - wrong} right (green), {wrong} wrong (red)",
    )
    plot_confusion(
        result["confusion"], names, os.path.join(output_dir, CONFUSION_PNG),
        title=f"LCE model, {result['samples']} test images, top-1 {100 * result['top1']:.2f} %",
    )
    path = os.path.join(output_dir, PREDICTIONS_JSON)
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as f:
        json.dump(result, f, indent=1)
    return result


# ------------------------------------------------------------------------- the demo's report
# Published device figures for the full-size Bi-Real Net 18 (224x224 ImageNet input), measured
# by larq-zoo with lce_benchmark_model at 1 thread (docs/raspberry-pi.md, section 6).
LARQ_ZOO_BIREALNET_MS = (("Pixel 1 phone", 41.7), ("Raspberry Pi 4B, 64-bit OS", 85.4))
LARQ_ZOO_SOURCE = "https://docs.larq.dev/zoo/"
# This project's x86-64 measurement of the full-size model (docs/benchmarks.md, "Inference"):
# model, date, then median ms of LCE and of the float twin at 1 thread, and both at 2 threads.
X86_FULL_SIZE = ("birealnet18_lce", "2026-11-22", 28.08, 43.34, 28.32, 25.89)


def _pct(value) -> str:
    return "n/a" if value is None else f"{100 * float(value):.2f} %"


def _mb(size) -> str:
    return "n/a" if size is None else f"{size / 1e6:.3f} MB"


def _count(value) -> str:
    return "n/a" if value is None else f"{int(value):,}"


def _epochs(n) -> str:
    return f"{n} epoch" + ("" if n == 1 else "s")


def _latency_rows(bench: dict) -> dict[tuple[str, int], dict]:
    """Benchmark timings by (``"binary"`` or ``"twin"``, threads); host rows only."""
    rows = {}
    for t in bench.get("timings") or []:
        if t.get("runtime") == "lce_benchmark_model" or t.get("median_ms") is None:
            continue
        kind = "twin" if str(t.get("model", "")).endswith("(float twin)") else "binary"
        rows[(kind, int(t["threads"]))] = t
    return rows


def _latency_cell(t: dict | None) -> str:
    if t is None:
        return "not measured"
    text = f"{t['median_ms']:.2f} ms (`{t['runtime']}`)"
    if t.get("p25_ms") is not None and t.get("p75_ms") is not None:
        iqr = t["p75_ms"] - t["p25_ms"]
        if iqr > 0.5 * t["median_ms"]:
            text += f", noisy: IQR {iqr:.2f} ms"
    return text


def latency_table(bench: dict) -> Table:
    """The benchmark's timings (``benchmark.json``) as a table."""

    def ms(value) -> str:
        return "-" if value is None else f"{value:.2f}"

    rows = []
    for t in bench.get("timings") or []:
        p25, p75 = t.get("p25_ms"), t.get("p75_ms")
        iqr = None if p25 is None or p75 is None else p75 - p25
        size = t.get("size_bytes")
        rows.append((str(t["model"]), f"`{t['runtime']}`", str(t["threads"]),
                     ms(t.get("median_ms")), ms(iqr), ms(t.get("min_ms")), ms(t.get("max_ms")),
                     str(t.get("runs")), "-" if size is None else f"{size / 1e6:.3f}"))
    return Table(("model", "runtime", "threads", "median ms", "IQR ms", "min ms", "max ms",
                  "runs", "size MB"), tuple(rows))


def _speed_words(binary: dict | None, twin: dict | None) -> str:
    if binary is None or twin is None:
        return "the benchmark has no 1-thread rows for both models"
    ratio = binary["median_ms"] / twin["median_ms"]
    if ratio > 1.1:
        return f"the binary model takes {ratio:.1f}x its twin's time at 1 thread"
    if ratio < 1 / 1.1:
        return f"the binary model takes {ratio:.2f}x its twin's time at 1 thread"
    return f"the binary model is about as fast as its twin at 1 thread ({ratio:.2f}x its time)"


def _confused_pairs(predictions: dict, n: int = 3) -> list[str]:
    matrix = predictions["confusion"]
    names = predictions["class_names"]
    pairs = sorted(
        ((matrix[i][j], i, j) for i in range(len(matrix)) for j in range(len(matrix)) if i != j),
        reverse=True,
    )
    return [f"{names[i]} taken for {names[j]} ({count} times)"
            for count, i, j in pairs[:n] if count]


def demo_blocks(facts: dict[str, Any]) -> list[Block]:
    """The demo's report from what its steps wrote: its sections in order, each from
    ``facts``.

    Args:
        facts: ``summary``, ``evaluation``, ``export`` and ``benchmark`` (the steps' JSON),
            ``predictions`` (``test_predictions.json``, or None), ``study`` (see
            ``bireal_larq.demo.study_rows``, or None with ``study_note`` saying why),
            ``host`` (``machine``, ``cpu``, ``cpus``, ``load``), ``generated``, ``figures``
            (name -> path relative to the report, or None), ``tflite`` (the model's path as
            the user gave it), ``steps`` (the demo's step log) and ``data_dir``.
    """
    return [
        *_title(facts),
        *_binary_vs_twin(facts),
        *_host_and_arm(facts),
        *_pictures(facts),
        *_raspberry_pi(facts),
        *_all_the_numbers(facts),
        *_host_latency(facts),
        *_training_curves(facts),
        *_commands(facts),
    ]


def _title(facts: dict[str, Any]) -> list[Block]:
    """The title and what was trained, exported, when and on which host."""
    summary, host = facts["summary"], facts["host"]
    overrides = (facts["export"] or {}).get("model_overrides") or {}
    settings = (" (" + ", ".join(f"`{k}={v}`" for k, v in sorted(overrides.items())) + ")"
                if overrides else "")
    return [
        Heading("bireal_larq demo report", 1),
        Paragraph(
            f"Bi-Real Net `{summary['model']}`{settings} trained for "
            f"{_epochs(summary.get('epochs'))} on Fashion-MNIST (experiment "
            f"`{summary.get('experiment')}`), exported to Larq Compute Engine (LCE). Written "
            f"{facts['generated']} on {host['machine']}, {host['cpu']}, {host['cpus']} CPUs "
            f"(load average {host['load']:.1f} then)."
        ),
    ]


def _binary_vs_twin(facts: dict[str, Any]) -> list[Block]:
    """The section "Binary model vs its real-valued twin": the table, what binarization
    bought, and where the twin's accuracy comes from."""
    return [Heading("Binary model vs its real-valued twin"), _twin_table(facts),
            *_binarization_gain(facts), *_twin_source(facts)]


def _twin_table(facts: dict[str, Any]) -> Table:
    """Test top-1, parameters, file size and host latency of the binary model (this run) and
    of its real-valued twin (the study's row, when there is one)."""
    summary, evaluation, study = facts["summary"], facts["evaluation"], facts.get("study")
    export, bench = facts["export"] or {}, facts["benchmark"] or {}
    verification = export.get("verification") or {}
    params = (facts.get("predictions") or {}).get("parameters") or {}
    lat = _latency_rows(bench)
    binary_acc = (
        f"**{_pct(verification.get('lce_top1_accuracy'))}** LCE on "
        f"{_count(verification.get('samples'))} images; Keras "
        f"{_pct(evaluation.get('top1'))} on {_count(evaluation.get('examples'))} "
        f"({_epochs(summary.get('epochs'))})"
    )
    if study:
        twin = study["twin"]
        twin_acc = (
            f"**{_pct(twin['keras_top1'])}** after {twin['epochs']} epochs: study row "
            f"`{twin['name']}`, not measured in this run (see below)"
        )
    else:
        twin_acc = "not measured in this run; " + facts.get("study_note", "no study row")
    rows = [
        ("test top-1, Fashion-MNIST", binary_acc, twin_acc),
        ("parameters", _count(params.get("binary")), _count(params.get("real_valued_twin"))),
        (".tflite file", f"**{_mb(export.get('file_size_bytes'))}** (LCE, 1-bit weights)",
         f"**{_mb(bench.get('float_twin_size_bytes'))}** (TFLite, float32 weights)"),
    ]
    for n in sorted({n for _, n in lat}):
        rows.append((f"latency on this host, {n} thread{'s' if n > 1 else ''} (median)",
                     _latency_cell(lat.get(("binary", n))), _latency_cell(lat.get(("twin", n)))))
    return Table(("", "binary (this run)", "real-valued twin"), tuple(rows))


def _binarization_gain(facts: dict[str, Any]) -> list[Block]:
    """What binarization bought (the file size against the twin's) and, with a study row,
    what it cost in test top-1; nothing without both file sizes."""
    size = (facts["export"] or {}).get("file_size_bytes")
    twin_size = (facts["benchmark"] or {}).get("float_twin_size_bytes")
    if not (size and twin_size):
        return []
    params = (facts.get("predictions") or {}).get("parameters") or {}
    bought = (f"a file {twin_size / size:.1f}x smaller than the twin's"
              + (f" for the same {_count(params['binary'])} parameters"
                 if params.get("binary") and
                 params.get("binary") == params.get("real_valued_twin") else ""))
    cost = ""
    study = facts.get("study")
    if study:
        twin, brow = study["twin"], study["binary"]
        gap = 100 * (brow["keras_top1"] - twin["keras_top1"])
        cost = (f"; it cost {-gap:.2f} points of test top-1 at the study's {twin['epochs']}-epoch "
                f"budget (binary row `{brow['name']}`: {_pct(brow['keras_top1'])}, twin "
                f"{_pct(twin['keras_top1'])})")
    return [Paragraph("**Binarization bought** " + bought + cost + ". Its speed "
                      "shows on ARM, not on this host (next section).")]


def _twin_source(facts: dict[str, Any]) -> list[Block]:
    """Where the twin's cited accuracy comes from (the study's document, row and run files);
    nothing without a study row."""
    study = facts.get("study")
    if not study:
        return []
    twin = study["twin"]
    differences = study.get("differences") or []
    return [Paragraph(
        f"The twin's accuracy is cited, not measured: training it here would about double "
        f"the demo's time. It comes from the committed Fashion-MNIST tricks study, "
        f"`{study['doc']}`, row `{twin['name']}` (its run files in "
        f"`{study['runs']}/{twin['name']}/`): the same model and width"
        + (", trained with " + "; ".join(differences) if differences else "")
        + ". The study's binary row at that budget is the one to compare the twin with; "
        f"this run's binary figure ({_epochs(facts['summary'].get('epochs'))}) is not."
    )]


def _host_and_arm(facts: dict[str, Any]) -> list[Block]:
    """The section "Latency: this host and ARM": which kernels LCE ran here, the 1-thread
    speed against the twin's, and the published and measured full-size figures."""
    bench, host = facts["benchmark"] or {}, facts["host"]
    lat = _latency_rows(bench)
    one_b, one_t = lat.get(("binary", 1)), lat.get(("twin", 1))
    backend = bench.get("backend")
    busy = host["load"] > (host["cpus"] or 1)
    name, date, b1, t1, b2, t2 = X86_FULL_SIZE
    zoo = ", ".join(f"{ms} ms on a {device}" for device, ms in LARQ_ZOO_BIREALNET_MS)
    on_arm = host["machine"] in ("aarch64", "arm64")
    return [
        Heading("Latency: this host and ARM"),
        Paragraph(
            "LCE has hand-written binary kernels only for 64-bit ARM (aarch64). "
            + ("This host is aarch64, so the latencies above use them. " if on_arm else
               f"This host is {host['machine']}: LCE runs its binary convolutions with portable "
               f"C++ kernels (backend `{backend}`"
               + (", the fastest the benchmark found here" if bench.get("backend_probe_ms")
                  else "")
               + "), while the twin runs XNNPACK's optimised float kernels. ")
            + f"Here {_speed_words(one_b, one_t)}"
            + ("" if on_arm else "; this says little about a phone or a Raspberry Pi") + "."
            + (f" The host was busy (load average {host['load']:.1f} on {host['cpus']} CPUs "
               "when the report was written), which inflates these latencies, the 2-thread "
               "ones most." if busy else "")
        ),
        Paragraph(
            f"Published figures: larq-zoo measured the full-size Bi-Real Net 18 (224x224 "
            f"ImageNet input) with `lce_benchmark_model` at 1 thread: {zoo} "
            f"([larq-zoo]({LARQ_ZOO_SOURCE}), quoted in `docs/raspberry-pi.md`). This project "
            f"has made no ARM measurement, of the binary model or of a float twin: the "
            f"commands below measure this model on a Pi. On an x86-64 host this project measured "
            f"the full-size `{name}` at {b1} ms with LCE against {t1} ms for its float twin "
            f"with XNNPACK at 1 thread, and {b2} vs {t2} ms at 2 threads (`docs/benchmarks.md`, "
            f"{date}): LCE's x86 kernel uses one thread."
        ),
    ]


def _pictures(facts: dict[str, Any]) -> list[Block]:
    """The test images with the LCE model's predictions and the confusion matrix, each when
    its figure exists; without predictions, a line saying why there are no pictures."""
    predictions, figures = facts.get("predictions"), facts.get("figures") or {}
    if not predictions:
        return [Paragraph("No test images were classified for pictures "
                          + facts.get("predictions_note", "") + ".")]
    blocks: list[Block] = []
    if figures.get("predictions"):
        shown = predictions["shown"]
        wrong = sum(r["top"][0][0] != r["label"] for r in shown)
        blocks += [
            Heading("Test images and the LCE model's predictions"),
            Paragraph(
                f"The first {len(shown)} Fashion-MNIST test images, each under the LCE model's "
                f"best class and its probability: green when right, red when wrong (the true "
                f"class below it; a right one shows the runner-up). {len(shown) - wrong} of "
                f"{len(shown)} are right."
            ),
            Figure(figures["predictions"], "test images with the LCE model's predictions"),
        ]
    if figures.get("confusion"):
        pairs = _confused_pairs(predictions)
        blocks += [
            Heading("Confusion matrix"),
            Paragraph(
                f"The LCE model on {_count(predictions['samples'])} test images "
                f"(top-1 {_pct(predictions['top1'])}); rows: the true class, columns: the "
                f"prediction."
                + (" Most confused: " + "; ".join(pairs) + "." if pairs else "")
            ),
            Figure(figures["confusion"], "confusion matrix of the LCE model"),
        ]
    return blocks


def _raspberry_pi(facts: dict[str, Any]) -> list[Block]:
    """The section "Measure it on a Raspberry Pi": the LCE release to take the benchmark tool
    from, and the commands that copy the model to a Pi and time it at 1 and 4 threads."""
    versions = (facts["export"] or {}).get("versions") or {}
    lce_version = versions.get("larq_compute_engine", "0.16.0")
    tflite = facts["tflite"]
    base = os.path.basename(tflite)
    return [
        Heading("Measure it on a Raspberry Pi"),
        Paragraph(
            f"On a Pi with a 64-bit OS, with the aarch64 `lce_benchmark_model` of the [LCE "
            f"v{lce_version} release](https://github.com/larq/compute-engine/releases) (the "
            f"version that converted this model); `docs/raspberry-pi.md` has every step and "
            f"how to read the output (`Inference (avg)`, in microseconds):"
        ),
        Code(
            f"uname -m        # on the Pi: must print aarch64\n"
            f"scp {tflite} pi@raspberrypi.local:~/\n"
            f"./lce_benchmark_model --graph={base} --num_threads=1\n"
            f"./lce_benchmark_model --graph={base} --num_threads=4"
        ),
    ]


def _all_the_numbers(facts: dict[str, Any]) -> list[Block]:
    """The section "All the numbers": accuracies of both models and their agreement, the
    binary convs LCE fused, the file sizes, the training time, and the flatbuffer's ops."""
    summary, evaluation = facts["summary"], facts["evaluation"]
    export = facts["export"] or {}
    verification = export.get("verification") or {}
    size = export.get("file_size_bytes")
    twin_size = (facts["benchmark"] or {}).get("float_twin_size_bytes")
    ops = export.get("op_table") or {}
    train_minutes = summary.get("train_time_s", 0) / 60
    return [
        Heading("All the numbers"),
        Table(("what", "value"), (
            (f"Keras model, test top-1 / top-5 ({evaluation.get('examples', '?')} images)",
             f"{_pct(evaluation.get('top1'))} / {_pct(evaluation.get('top5'))}"),
            (f"LCE model, test top-1 ({verification.get('samples', '?')} images)",
             f"{_pct(verification.get('lce_top1_accuracy'))} (Keras on the same images: "
             f"{_pct(verification.get('keras_top1_accuracy'))})"),
            ("top-1 agreement Keras vs LCE", _pct(verification.get("top1_agreement"))),
            ("max abs difference of the softmax outputs",
             str(verification.get("max_output_difference", "n/a"))),
            ("binary convs in Keras / LceBconv2d in the flatbuffer",
             f"{export.get('binary_layers')} / {export.get('lce_bconv2d_ops')}"),
            ("flatbuffer size", _mb(size) + f" (float twin: {_mb(twin_size)})"),
            ("training", f"{_epochs(summary.get('epochs'))}, {train_minutes:.1f} min, "
                         f"{summary.get('train_images_per_s', 0):.0f} images/s"),
        )),
        Paragraph("Flatbuffer ops: " + ", ".join(f"{k} x{v}" for k, v in sorted(ops.items()))),
    ]


def _host_latency(facts: dict[str, Any]) -> list[Block]:
    """The section "Inference latency on this host": every benchmark timing and, when the
    benchmark probed the LCE backends, their 1-thread medians."""
    bench = facts["benchmark"] or {}
    blocks: list[Block] = [
        Heading("Inference latency on this host"),
        Paragraph(
            "The LCE model through LCE's interpreter, the float twin (untrained: latency does "
            "not depend on the weights) through TFLite with XNNPACK, in ms (IQR: the spread of "
            "the middle half of the runs):"
        ),
        latency_table(bench),
    ]
    probe = bench.get("backend_probe_ms")
    if probe:
        blocks.append(Paragraph(
            "Backend probe of the LCE model, 1 thread (median ms): "
            + ", ".join(f"`{k}` {v:.2f}" for k, v in probe.items()) + "."
        ))
    return blocks


def _training_curves(facts: dict[str, Any]) -> list[Block]:
    """The run's training curves (``curves.png``), when the figure exists."""
    figures = facts.get("figures") or {}
    if not figures.get("curves"):
        return []
    return [Heading("Training curves"), Figure(figures["curves"], "training curves")]


def _commands(facts: dict[str, Any]) -> list[Block]:
    """The section "Commands": the data directory to set first, then each step's command with
    its duration (and whether an earlier run's result was reused)."""
    blocks: list[Block] = [Heading("Commands (each step can be redone on its own)")]
    if facts.get("data_dir"):
        blocks += [
            Paragraph("The prepared dataset was read from the TFDS data dir of this run (`make "
                      "demo` sets it); set it the same way before redoing a step:"),
            Code(f"export TFDS_DATA_DIR={shlex.quote(facts['data_dir'])}"),
        ]
    for entry in facts.get("steps") or []:
        when = " (reused from an earlier run)" if entry.get("reused") else ""
        blocks += [Paragraph(f"{entry['title']} ({entry['seconds']:.0f} s{when}):"),
                   Code(entry["command"])]
    return blocks


# ------------------------------------------------------------------------------------ CLI
FLAGS = flags.FlagValues()
PARSER = parser_for(FLAGS, positional=1)  # app.run's flags parser: the .tflite path
flags.DEFINE_string("output_dir", None, "Where the figures and test_predictions.json go "
                    "(default: the model's directory).", flag_values=FLAGS)
flags.DEFINE_integer("samples", 10000, "Test images classified: the first N of the test split.",
                     lower_bound=1, flag_values=FLAGS)
flags.DEFINE_integer("shown", 24, "Test images pictured with their predictions.", lower_bound=1,
                     flag_values=FLAGS)


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        raise app.UsageError("Usage: python -m bireal_larq.report MODEL.tflite [flags]")
    path = argv[1]
    output_dir = FLAGS.output_dir or os.path.dirname(os.path.abspath(path))
    try:
        result = write_test_figures(path, output_dir, FLAGS.samples, FLAGS.shown)
    except (ValueError, FileNotFoundError, OSError) as e:
        cli.fail(1, f"report failed: {e.strerror if isinstance(e, WriteError) else e}")
    print(f"top-1 {result['top1']:.4f} of the LCE model on {result['samples']} test images "
          f"({result['seconds']:.0f} s) -> {output_dir}/{{{PREDICTIONS_JSON}, {PREDICTIONS_PNG}, "
          f"{CONFUSION_PNG}}}")
    return 0


def run() -> None:
    """The command-line entry point (parses this module's flags)."""
    cli.run(main, PARSER)


if __name__ == "__main__":
    run()
