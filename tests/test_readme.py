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
