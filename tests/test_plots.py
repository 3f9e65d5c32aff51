"""The plotting module and the reading of a run's history and points: matplotlib loads on the
first figure only, with the Agg backend; the curves of a multi-stage run name its stages; a
history and its points read back as written, a line cut short skipped."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
from PIL import Image

from bireal_larq import plots
from bireal_larq.training.rundir import read_history, read_points

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_importing_the_plotting_modules_loads_no_matplotlib():
    probe = ("import sys\nimport bireal_larq.plots, bireal_larq.report, bireal_larq.study\n"
             "assert 'matplotlib' not in sys.modules\n"
             "import matplotlib\nplt = bireal_larq.plots.pyplot()\n"
             "print(matplotlib.get_backend().lower(), plt is sys.modules['matplotlib.pyplot'])")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                          timeout=300, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split()[-2:] == ["agg", "True"]


def _rows(stages):
    return [{"stage": stage, "loss": str(2.0 - 0.2 * i), "top1": str(0.1 * i),
             "val_loss": str(2.1 - 0.2 * i), "val_top1": str(0.1 * i)}
            for i, stage in enumerate(stages)]


def test_the_curves_of_a_two_stage_run_mark_and_name_the_second_stage(tmp_path):
    fig = plots.history_figure(_rows(["real", "real", "binary"]), [(0.5, 2.0, 0.05)])
    loss, top1 = fig.axes[:2]
    assert [t.get_text() for t in loss.texts] == ["real", "binary"]
    assert [line.get_xdata()[0] for line in loss.get_lines() if line.get_color() == "grey"] == [2]
    assert [line.get_label() for line in top1.get_lines()][:3] == [
        "train top1 (within epochs)", "train top1 (epoch end)", "validation top1 (epoch end)"]
    plots.pyplot().close(fig)
    one_stage = plots.history_figure(_rows(["binary", "binary"]))
    assert not one_stage.axes[0].texts
    plots.pyplot().close(one_stage)

    path = plots.plot_history(_rows(["binary"]), str(tmp_path / "curves.png"))
    assert Image.open(path).size == (1000, 400)


def test_a_history_and_its_points_read_back_on_the_run_epoch_axis(tmp_path):
    history = tmp_path / "history.csv"
    history.write_text("epoch,loss,top1\n0,1.5,0.4\n1,1.2,0.6\n", encoding="utf-8")
    assert read_history(str(history)) == [{"epoch": "0", "loss": "1.5", "top1": "0.4"},
                                          {"epoch": "1", "loss": "1.2", "top1": "0.6"}]
    assert read_history(str(tmp_path / "missing.csv")) == []

    points = tmp_path / "points.csv"
    points.write_text("epoch,step,loss,top1\n1,4,1.0,0.5\n0,2,2.0,0.25\n1,8,0.9,0.55\n",
                      encoding="utf-8")
    read = read_points(str(points), offset=3.0, steps_per_epoch=8)
    # sorted, on the run's axis: the stage starts at epoch 3
    assert read == [(3.25, 2.0, 0.25), (4.5, 1.0, 0.5), (5.0, 0.9, 0.55)]
    with open(points, "a", encoding="utf-8") as f:
        f.write("2,")  # a line cut short when the process was killed
    assert read_points(str(points), offset=3.0, steps_per_epoch=8) == read
    points.write_text("epoch,step,loss,top1\n0,4,1.0,\n", encoding="utf-8")
    assert np.isnan(read_points(str(points), 0.0, 8)[0][2])  # no top-1 logged
    assert read_points(str(tmp_path / "missing.csv"), 0.0, 8) == []
