"""The report's rendering on small fake inputs: Markdown, the self-contained HTML page, the
figures, the demo report's content, and the page as headless Chromium draws it."""

from __future__ import annotations

import base64
import io
import pathlib
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from bireal_larq import report as R

NAMES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker",
         "Bag", "Ankle boot"]
MAGENTA = (255, 0, 255)  # a colour no other part of the page uses


def _png(path, color=MAGENTA, size=(60, 40)):
    Image.new("RGB", size, color).save(path)
    return path


def _colors(png) -> np.ndarray:
    """The distinct RGB colours of a PNG (path or bytes), one row each."""
    image = Image.open(io.BytesIO(png) if isinstance(png, bytes) else png).convert("RGB")
    return np.unique(np.asarray(image).reshape(-1, 3), axis=0)


def _near(colors: np.ndarray, hex_color: str, tolerance: int = 40) -> bool:
    rgb = np.array([int(hex_color[i:i + 2], 16) for i in (1, 3, 5)])
    return bool((np.abs(colors.astype(int) - rgb).max(axis=1) <= tolerance).any())


def _img_sources(page: str) -> list[str]:
    return re.findall(r'<img src="([^"]*)"', page)


def _decoded_pngs(page: str) -> list[bytes]:
    """Every <img> of the page, which must be a PNG data URI that PIL reads."""
    pngs = []
    for src in _img_sources(page):
        assert src.startswith("data:image/png;base64,"), src[:60]
        data = base64.b64decode(src.split(",", 1)[1], validate=True)
        Image.open(io.BytesIO(data)).verify()
        pngs.append(data)
    return pngs


# ------------------------------------------------------------------------------ rendering
def test_markdown_writes_each_kind_of_block():
    text = R.to_markdown([
        R.Heading("Title", 1),
        R.Paragraph("Some `code` and **bold**."),
        R.Bullets(("one", "two")),
        R.Table(("a", "b"), (("1", "x|y"),)),
        R.Figure("fig.png", "a figure"),
        R.Code("ls -l\n\necho hi"),
    ])
    assert text == (
        "# Title\n\nSome `code` and **bold**.\n\n- one\n- two\n\n"
        "| a | b |\n| --- | --- |\n| 1 | x\\|y |\n\n![a figure](fig.png)\n\n"
        "    ls -l\n\n    echo hi\n"
    )


def test_a_table_row_must_have_a_cell_per_column():
    with pytest.raises(ValueError, match="has 1 cells; the header has 2"):
        R.Table(("a", "b"), (("only one",),))


def test_html_escapes_text_and_renders_inline_code_bold_and_links(tmp_path):
    page = R.to_html([
        R.Heading("<b>x</b> & y"),
        R.Paragraph("a <script>alert(1)</script> `x < y` **big** [LCE](https://larq.dev/a?b=1)"),
        R.Code("<tag> & 'quote'"),
    ], str(tmp_path), "t<i>")
    assert "<script>" not in page and "&lt;script&gt;" in page
    assert "<h2>&lt;b&gt;x&lt;/b&gt; &amp; y</h2>" in page
    assert "<code>x &lt; y</code>" in page and "<strong>big</strong>" in page
    assert '<a href="https://larq.dev/a?b=1">LCE</a>' in page
    assert "<pre>&lt;tag&gt; &amp; &#x27;quote&#x27;</pre>" in page
    assert "<title>t&lt;i&gt;</title>" in page


def test_html_inlines_every_figure_as_a_png_data_uri(tmp_path):
    (tmp_path / "sub").mkdir()
    first = _png(tmp_path / "a.png")
    second = _png(tmp_path / "sub" / "b.png", color=(0, 128, 0))
    page = R.to_html([R.Figure("a.png", "A"), R.Figure("sub/b.png", "B")], str(tmp_path), "t")
    assert _decoded_pngs(page) == [first.read_bytes(), second.read_bytes()]
    assert 'alt="A"' in page and 'alt="B"' in page


def test_html_refuses_a_missing_figure_and_a_file_that_is_not_an_image(tmp_path):
    with pytest.raises(FileNotFoundError):
        R.to_html([R.Figure("missing.png", "x")], str(tmp_path), "t")
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(ValueError, match="not an image to inline"):
        R.to_html([R.Figure("notes.txt", "x")], str(tmp_path), "t")


def test_write_report_writes_both_files(tmp_path):
    _png(tmp_path / "a.png")
    md, page = R.write_report([R.Heading("T", 1), R.Figure("a.png", "A")], str(tmp_path),
                              "report", title="T")
    assert open(md).read() == "# T\n\n![A](a.png)\n"
    assert len(_decoded_pngs(open(page).read())) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.png", "report.html", "report.md"]


# -------------------------------------------------------------------------------- figures
def test_confusion_matrix_counts_true_rows_and_predicted_columns():
    matrix = R.confusion_matrix([0, 0, 1, 2, 2, 2], [0, 1, 1, 2, 2, 0], 3)
    assert matrix.tolist() == [[1, 1, 0], [0, 1, 0], [1, 0, 2]]
    with pytest.raises(ValueError, match="outside 0..2"):
        R.confusion_matrix([0, 3], [0, 0], 3)


def _fake_images(n, seed=0):
    rng = np.random.default_rng(seed)
    return rng.random((n, 28, 28, 1)).astype(np.float32)


def test_prediction_grid_marks_right_in_green_and_wrong_in_red(tmp_path):
    labels = [0, 1, 2, 3, 4, 5]
    right = [[(label, 0.9), ((label + 1) % 10, 0.05)] for label in labels]
    path = R.plot_predictions(_fake_images(6), labels, right, NAMES, str(tmp_path / "right.png"))
    colors = _colors(path)
    assert len(colors) > 100  # the images are drawn, not a blank canvas
    assert _near(colors, R.RIGHT_COLOR, 10) and not _near(colors, R.WRONG_COLOR, 60)

    wrong = [list(r) for r in right]
    wrong[2] = [(7, 0.6), (2, 0.3)]
    path = R.plot_predictions(_fake_images(6), labels, wrong, NAMES, str(tmp_path / "wrong.png"))
    assert _near(_colors(path), R.WRONG_COLOR, 10)


def test_prediction_grid_refuses_mismatched_inputs(tmp_path):
    with pytest.raises(ValueError, match="expected the same number"):
        R.plot_predictions(_fake_images(3), [0, 1], [[(0, 1.0)]] * 3, NAMES,
                           str(tmp_path / "x.png"))


def test_confusion_figure_is_drawn(tmp_path):
    rng = np.random.default_rng(0)
    matrix = rng.integers(0, 50, (10, 10)) + np.eye(10, dtype=int) * 900
    path = R.plot_confusion(matrix, NAMES, str(tmp_path / "c.png"), title="t")
    image = Image.open(path)
    assert image.size[0] > 300 and image.size[1] > 300
    assert len(_colors(path)) > 50
    with pytest.raises(ValueError, match="for 10 class names"):
        R.plot_confusion(matrix[:3, :3], NAMES, str(tmp_path / "d.png"))


# ------------------------------------------------------------------- the demo's report
def _timing(model, runtime, threads, median, iqr=0.05, size=None):
    return {"model": model, "runtime": runtime, "threads": threads, "runs": 20, "warmup": 5,
            "median_ms": median, "mean_ms": median, "std_ms": 0.1, "min_ms": median * 0.9,
            "max_ms": median * 1.5, "p25_ms": median - iqr / 2, "p75_ms": median + iqr / 2,
            "size_bytes": size}


def fake_facts(figures: dict | None = None, study: bool = True, predictions: bool = True,
               machine: str = "x86_64", load: float = 0.5) -> dict:
    twin = "birealnet18_small (float twin)"
    shown = [{"index": i, "label": i % 10,
              "top": [[i % 10 if i != 3 else 6, 0.8], [(i + 1) % 10, 0.1]]} for i in range(8)]
    matrix = (np.eye(10, dtype=int) * 90 + 1).tolist()
    matrix[6][2] = 40
    return {
        "summary": {"model": "birealnet18_small", "experiment": "demo_fashion_mnist",
                    "epochs": 1, "train_time_s": 150.0, "train_images_per_s": 400.0},
        "evaluation": {"top1": 0.8123, "top5": 0.9957, "examples": 10000},
        "export": {
            "model": "birealnet18_small", "model_overrides": {"base_filters": 16},
            "file_size_bytes": 162120, "binary_layers": 16, "lce_bconv2d_ops": 16,
            "op_table": {"LceBconv2d": 16, "CONV_2D": 4},
            "versions": {"larq_compute_engine": "0.16.0"},
            "verification": {"samples": 10000, "lce_top1_accuracy": 0.8125,
                             "keras_top1_accuracy": 0.8123, "top1_agreement": 0.9994,
                             "max_output_difference": 0.29},
        },
        "benchmark": {
            "backend": "indirect_bgemm+xnnpack",
            "backend_probe_ms": {"default": 6.5, "indirect_bgemm+xnnpack": 0.7},
            "float_twin_size_bytes": 2811316,
            "timings": [
                _timing("birealnet18_small", "lce/indirect_bgemm+xnnpack", 1, 1.30, size=162120),
                _timing("birealnet18_small", "lce/indirect_bgemm+xnnpack", 2, 6.73, iqr=104.3),
                _timing(twin, "tflite/xnnpack", 1, 0.76, size=2811316),
                _timing(twin, "tflite/xnnpack", 2, 0.47),
            ],
        },
        "predictions": {
            "samples": 10000, "top1": 0.8125, "class_names": NAMES, "confusion": matrix,
            "shown": shown, "parameters": {"binary": 703578, "real_valued_twin": 703578},
        } if predictions else None,
        "predictions_note": "(--verify_samples=0)",
        "study": {
            "doc": "results/fashion_mnist.md", "runs": "results/fashion_mnist_runs",
            "twin": {"name": "real_valued_twin", "keras_top1": 0.9058, "epochs": 2},
            "binary": {"name": "bireal", "keras_top1": 0.8497, "epochs": 2},
            "differences": ["2 epochs (this run: 1)"],
        } if study else None,
        "study_note": "the study's rows are not readable here",
        "host": {"machine": machine, "cpu": "Test CPU", "cpus": 2, "load": load},
        "generated": "2026-12-06 10:00:00",
        "figures": figures or {},
        "tflite": "runs/demo/model.tflite",
        "steps": [{"title": "Train", "seconds": 150.0, "reused": True,
                   "command": "python -m bireal_larq.train --experiment=demo_fashion_mnist"}],
        "data_dir": "/data/tfds dir",
    }


def _row(text: str, first_cell: str) -> list[str]:
    line = next(x for x in text.splitlines() if x.startswith(f"| {first_cell} |"))
    return [c.strip() for c in line.strip("|").split(" | ")]


def test_demo_report_puts_the_binary_model_beside_its_twin():
    text = R.to_markdown(R.demo_blocks(fake_facts()))
    assert _row(text, "test top-1, Fashion-MNIST")[1:] == [
        "**81.25 %** LCE on 10,000 images; Keras 81.23 % on 10,000 (1 epoch)",
        "**90.58 %** after 2 epochs: study row `real_valued_twin`, not measured in this run "
        "(see below)",
    ]
    assert _row(text, "parameters")[1:] == ["703,578", "703,578"]
    assert _row(text, ".tflite file")[1:] == ["**0.162 MB** (LCE, 1-bit weights)",
                                             "**2.811 MB** (TFLite, float32 weights)"]
    assert _row(text, "latency on this host, 1 thread (median)")[1:] == [
        "1.30 ms (`lce/indirect_bgemm+xnnpack`)", "0.76 ms (`tflite/xnnpack`)"]
    # a spread larger than half the median is flagged
    assert "6.73 ms (`lce/indirect_bgemm+xnnpack`), noisy: IQR 104.30 ms" in text
    assert "a file 17.3x smaller than the twin's for the same 703,578 parameters" in text
    assert "it cost 5.61 points of test top-1 at the study's 2-epoch budget" in text
    assert "`results/fashion_mnist.md`, row `real_valued_twin`" in text
    assert "trained with 2 epochs (this run: 1)" in text


def test_demo_report_explains_x86_against_arm_with_the_published_figures():
    text = R.to_markdown(R.demo_blocks(fake_facts()))
    assert "LCE has hand-written binary kernels only for 64-bit ARM (aarch64)" in text
    assert "This host is x86_64" in text
    assert "the binary model takes 1.7x its twin's time at 1 thread" in text
    assert "41.7 ms on a Pixel 1 phone, 85.4 ms on a Raspberry Pi 4B, 64-bit OS" in text
    assert "The host was busy" not in text
    busy = R.to_markdown(R.demo_blocks(fake_facts(load=3.5)))
    assert "The host was busy (load average 3.5 on 2 CPUs" in busy
    arm = R.to_markdown(R.demo_blocks(fake_facts(machine="aarch64")))
    assert "This host is aarch64, so the latencies above use them." in arm


def test_demo_report_gives_the_raspberry_pi_commands():
    text = R.to_markdown(R.demo_blocks(fake_facts()))
    assert "    scp runs/demo/model.tflite pi@raspberrypi.local:~/" in text
    assert "    ./lce_benchmark_model --graph=model.tflite --num_threads=1" in text
    assert "LCE v0.16.0 release" in text
    assert "    export TFDS_DATA_DIR='/data/tfds dir'" in text


def test_demo_report_without_study_rows_or_predictions_says_so(tmp_path):
    text = R.to_markdown(R.demo_blocks(fake_facts(study=False, predictions=False)))
    assert _row(text, "test top-1, Fashion-MNIST")[2] == (
        "not measured in this run; the study's rows are not readable here")
    assert _row(text, "parameters")[1:] == ["n/a", "n/a"]
    assert "No test images were classified for pictures (--verify_samples=0)." in text
    assert "![" not in text


def _figures(tmp_path) -> dict:
    labels = [r["label"] for r in fake_facts()["predictions"]["shown"]]
    top = [r["top"] for r in fake_facts()["predictions"]["shown"]]
    R.plot_predictions(_fake_images(8), labels, top, NAMES, str(tmp_path / "predictions.png"))
    R.plot_confusion(fake_facts()["predictions"]["confusion"], NAMES,
                     str(tmp_path / "confusion.png"))
    _png(tmp_path / "curves.png", size=(400, 160))  # stands for the run's curves.png
    return {"predictions": "predictions.png", "confusion": "confusion.png",
            "curves": "curves.png"}


def test_demo_report_html_embeds_its_figures(tmp_path):
    facts = fake_facts(figures=_figures(tmp_path))
    md, page = R.write_report(R.demo_blocks(facts), str(tmp_path), title="demo")
    text, html = open(md).read(), open(page).read()
    for name in ("predictions.png", "confusion.png", "curves.png"):
        assert f"]({name})" in text
    assert "Most confused: Shirt taken for Pullover (40 times)" in text
    assert "7 of 8 are right" in text
    assert _decoded_pngs(html) == [(tmp_path / n).read_bytes()
                                   for n in ("predictions.png", "confusion.png", "curves.png")]
    assert "<table>" in html and "src=\"predictions.png\"" not in html


CHROMIUM = next((shutil.which(n) for n in ("chromium", "chromium-browser") if shutil.which(n)),
                None)


@pytest.mark.skipif(CHROMIUM is None, reason="headless Chromium is not installed: "
                    "`apt-get install chromium` (as root; `make test` does it when run as root)")
def test_headless_chromium_draws_the_report_with_its_images(tmp_path):
    figures = _figures(tmp_path)
    _png(tmp_path / "curves.png", color=MAGENTA, size=(400, 160))
    _, page = R.write_report(R.demo_blocks(fake_facts(figures=figures)), str(tmp_path),
                             title="demo")
    # The page alone in another directory: nothing but its data URIs can supply the images.
    alone = tmp_path / "alone"
    alone.mkdir()
    shutil.copy(page, alone / "report.html")
    shot = tmp_path / "shot.png"
    done = subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
         f"--user-data-dir={tmp_path / 'profile'}", f"--screenshot={shot}",
         "--window-size=1000,4000", (alone / "report.html").as_uri()],
        capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 0 and shot.exists(), done.stderr[-2000:]
    colors = _colors(str(shot))
    assert len(colors) > 200, "the screenshot is nearly blank"
    assert _near(colors, "#ff00ff", 10), "the inlined curves image was not drawn"
    assert _near(colors, R.RIGHT_COLOR, 10) and _near(colors, R.WRONG_COLOR, 10), (
        "the predictions grid was not drawn")
    assert len(_decoded_pngs((alone / "report.html").read_text())) == 3


def test_the_command_names_a_missing_model(tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "bireal_larq.report", str(tmp_path / "missing.tflite")],
        capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 1, done.stderr[-2000:]
    assert "report failed:" in done.stderr and "missing.tflite" in done.stderr
    assert "Traceback" not in done.stderr
    assert list(tmp_path.iterdir()) == []


def test_the_figures_the_report_cites_are_the_ones_the_docs_give():
    docs = pathlib.Path(__file__).resolve().parents[1] / "docs"
    bench = (docs / "benchmarks.md").read_text(encoding="utf-8")
    name, date, lce_1, twin_1, lce_2, twin_2 = R.X86_FULL_SIZE
    assert date in bench
    for model, runtime, threads, ms in ((name, r"lce/\S+", 1, lce_1), (name, r"lce/\S+", 2, lce_2),
                                        ("birealnet18 float twin", "tflite/xnnpack", 1, twin_1),
                                        ("birealnet18 float twin", "tflite/xnnpack", 2, twin_2)):
        assert re.search(rf"\| {model} \| {runtime} \| {threads} \| {ms:.2f} \|", bench), model
    pi = (docs / "raspberry-pi.md").read_text(encoding="utf-8")
    for _, ms in R.LARQ_ZOO_BIREALNET_MS:
        assert re.search(rf"\| {ms} ms \|", pi), ms
