"""The README stays true: its model table is the registry's, and it opens with the commands."""

import pathlib
import re

from bireal_larq.models.registry import model_table_markdown

README = (pathlib.Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")


def test_model_table_matches_registry():
    match = re.search(r"<!-- model-table:begin -->\n(.*?)\n<!-- model-table:end -->", README,
                      re.S)
    assert match, "README.md lacks the model table markers"
    assert match.group(1) == model_table_markdown(), (
        "README model table is stale: run `.venv/bin/python scripts/update_readme_table.py`")


def test_readme_opens_with_the_two_commands():
    head = README[:600]
    assert "make demo" in head and "make test" in head


def test_study_table_shows_exactly_the_committed_study_rows():
    import json

    runs = pathlib.Path(__file__).resolve().parents[1] / "results" / "fashion_mnist_runs"
    measured = {f"{100 * json.loads(p.read_text())['keras_top1']:.2f}"
                for p in runs.glob("*/study_row.json")}
    assert measured, "no finished study rows under results/fashion_mnist_runs"
    table = re.search(r"\| configuration \| top-1 % \|.*?\n\n", README, re.S)
    assert table, "README.md lacks the study table"
    shown = set()
    for line in table.group(0).strip().splitlines()[2:]:
        shown |= set(re.findall(r"\d+\.\d\d", line.split("|")[2]))
    assert shown == measured, (
        f"README study table and results/fashion_mnist_runs disagree: only in README "
        f"{sorted(shown - measured)}, only in the runs {sorted(measured - shown)}")
