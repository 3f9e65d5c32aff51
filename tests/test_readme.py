"""The README stays a short, true front page: the two commands first, the registry's model
table, a link to every docs page, and under 12 KB."""

import pathlib
import re

from bireal_larq.models.registry import model_table_markdown

ROOT = pathlib.Path(__file__).resolve().parents[1]
README_PATH = ROOT / "README.md"
README = README_PATH.read_text(encoding="utf-8")
MAX_README_BYTES = 12 * 1024


def test_readme_is_short():
    size = len(README.encode("utf-8"))
    assert size < MAX_README_BYTES, (
        f"README.md is {size:,} bytes, over {MAX_README_BYTES:,}: move the detail to a page "
        "under docs/ and link it")


def test_model_table_matches_registry():
    match = re.search(r"<!-- model-table:begin -->\n(.*?)\n<!-- model-table:end -->", README,
                      re.S)
    assert match, "README.md lacks the model table markers"
    assert match.group(1) == model_table_markdown(), (
        "README model table is stale: run `.venv/bin/python scripts/update_readme_table.py`")


def test_readme_opens_with_the_two_commands():
    head = README[:600]
    assert "make demo" in head and "make test" in head


def test_readme_links_every_docs_page():
    linked = {pathlib.PurePosixPath(target.split("#")[0]).as_posix()
              for target in re.findall(r"\]\(([^)\s]+)\)", README)}
    pages = sorted(p.relative_to(ROOT).as_posix() for p in (ROOT / "docs").glob("*.md"))
    assert pages, "no pages under docs/"
    missing = [page for page in pages if page not in linked]
    assert not missing, f"README.md does not link these docs pages: {missing}"
