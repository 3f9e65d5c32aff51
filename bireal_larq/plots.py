"""Figures drawn with matplotlib: the pyplot every figure of the package comes from, and the
training curves of a run (``curves.png``).

matplotlib is imported on the first figure drawn (:func:`pyplot`), with its non-interactive
``Agg`` backend, so importing this module, or a module that plots, loads no matplotlib and a
figure needs no display. The figures of the study (``bireal_larq.study``) and of the report
(``bireal_larq.report``) are drawn where their data is; they take pyplot from here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np


def pyplot():
    """``matplotlib.pyplot`` with the ``Agg`` backend (files only, no display)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def history_figure(rows: Sequence[Mapping[str, str]],
                   points: Sequence[tuple[float, float, float]] = ()):
    """The figure of the training curves (loss and top-1 against the run's epochs).

    ``rows``: one per epoch (``history.csv``), drawn with markers at the epoch's end (x = 1,
    2, ...): training and validation. ``points``: ``(x, loss, top1)`` within epochs (x = 0.5
    is the middle of the first epoch), a thin line of the running training values. A
    multi-stage run's stage boundaries are marked and named.
    """
    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    x = list(range(1, len(rows) + 1))
    for index, (ax, key) in enumerate(zip(axes, ("loss", "top1"), strict=True)):
        if points:
            ax.plot([p[0] for p in points], [p[1 + index] for p in points], "-", lw=0.8,
                    alpha=0.6, color="tab:blue", label=f"train {key} (within epochs)")
        for prefix, style, color in (("", "o-", "tab:blue"), ("val_", "s--", "tab:orange")):
            values = [float(r[prefix + key]) if r.get(prefix + key) else np.nan for r in rows]
            ax.plot(x, values, style, color=color, markersize=5,
                    label=("validation " if prefix else "train ") + key + " (epoch end)")
        ax.set_xlabel("epoch")
        ax.set_xlim(left=0)
        ax.set_title(key)
        ax.grid(alpha=0.3)
    _mark_stages(axes, [r.get("stage") for r in rows])
    for ax in axes:
        ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def _mark_stages(axes, stages: list[str | None]) -> None:
    """A grey line at each stage boundary and the stage's name, when the epochs belong to
    more than one stage."""
    for i in range(len(stages)):
        if stages[i] and (i == 0 or stages[i] != stages[i - 1]) and len(set(stages)) > 1:
            for ax in axes:
                if i:
                    ax.axvline(i, color="grey", lw=0.8)
                ax.annotate(stages[i], (i, 1.0), xycoords=("data", "axes fraction"),
                            xytext=(3, -12), textcoords="offset points", fontsize=8,
                            color="grey")


def plot_history(rows: Sequence[Mapping[str, str]], path: str,
                 points: Sequence[tuple[float, float, float]] = ()) -> str:
    """Writes :func:`history_figure` to ``path`` as a PNG; returns ``path``."""
    fig = history_figure(rows, points)
    fig.savefig(path, dpi=100)
    pyplot().close(fig)
    return path
