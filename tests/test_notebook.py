"""Executes examples/quickstart.ipynb (build, fit, evaluate, export) on tiny synthetic data."""

from __future__ import annotations

import os

import nbformat
import pytest
from nbclient import NotebookClient
from train_support import ROOT, processes

pytestmark = processes


@pytest.mark.smoke
def test_quickstart_notebook_runs_end_to_end(tmp_path, monkeypatch):
    monkeypatch.setenv("BIREAL_QUICKSTART_TINY", "1")
    monkeypatch.setenv("BIREAL_QUICKSTART_OUTPUT", str(tmp_path))
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "2")
    notebook = nbformat.read(os.path.join(ROOT, "examples", "quickstart.ipynb"), as_version=4)
    NotebookClient(
        notebook, timeout=600, kernel_name="python3", resources={"metadata": {"path": ROOT}}
    ).execute()
    outputs = "".join(
        o.get("text", "")
        for cell in notebook.cells
        if cell.cell_type == "code"
        for o in cell.get("outputs", [])
    )
    assert "top-1" in outputs
    assert (tmp_path / "model.tflite").stat().st_size > 0
