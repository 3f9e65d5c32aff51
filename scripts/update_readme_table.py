"""Rewrites the model table of README.md from the registry (between the table markers).

    .venv/bin/python scripts/update_readme_table.py
"""

import pathlib
import re
import sys

from absl import app

from bireal_larq.models.registry import model_table_markdown

README = pathlib.Path(__file__).resolve().parents[1] / "README.md"
BEGIN, END = "<!-- model-table:begin -->", "<!-- model-table:end -->"


def main(argv: list[str]) -> int:
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    text = README.read_text(encoding="utf-8")
    if BEGIN not in text or END not in text:
        print(f"README.md lacks the markers {BEGIN} / {END}", file=sys.stderr)
        return 1
    pattern = re.compile(re.escape(BEGIN) + ".*?" + re.escape(END), re.S)
    text = pattern.sub(lambda _: f"{BEGIN}\n{model_table_markdown()}\n{END}", text)
    README.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    app.run(main)
