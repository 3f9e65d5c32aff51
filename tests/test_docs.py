"""The docs stay true to the project: links resolve, documented command lines use only flags
that the CLIs define, the study table shows the committed runs, and sources are cited by
names a reader can look up."""

import importlib
import importlib.util
import json
import pathlib
import re
import shlex

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]

# The files whose docstrings and comments cite sources (besides README, docs and experiments).
# Every module of the package, the scripts and the benchmarks.
CITING_MODULES = sorted(
    str(p.relative_to(ROOT))
    for folder in ("bireal_larq", "scripts", "benchmarks")
    for p in (ROOT / folder).rglob("*.py")
)
HELP_FLAGS = {"help", "helpfull", "helpshort"}


def _rel(path: pathlib.Path) -> str:
    return path.relative_to(ROOT).as_posix()


def _slug(heading: str) -> str:
    """GitHub's anchor of a markdown heading."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower().replace("`", ""))
    return text.replace(" ", "-")


def _anchors(path: pathlib.Path) -> set[str]:
    text = re.sub(r"```.*?```", "", path.read_text(encoding="utf-8"), flags=re.S)
    return {_slug(h) for h in re.findall(r"^#{1,6} (.+)$", text, flags=re.M)}


def _links(path: pathlib.Path) -> list[str]:
    text = re.sub(r"```.*?```", "", path.read_text(encoding="utf-8"), flags=re.S)
    return re.findall(r"\]\(([^)\s]+)\)", text)


@pytest.mark.parametrize("page", PAGES, ids=_rel)
def test_relative_links_resolve(page):
    broken = []
    for target in _links(page):
        if re.match(r"[a-z]+:", target):  # https:, mailto:
            continue
        file_part, _, anchor = target.partition("#")
        linked = (page.parent / file_part).resolve() if file_part else page
        if not linked.exists():
            broken.append(f"{target} (no file {linked})")
        elif anchor and linked.suffix == ".md" and anchor not in _anchors(linked):
            broken.append(f"{target} (no heading #{anchor} in {_rel(linked)})")
    assert not broken, f"{_rel(page)} has broken links: {broken}"


def _command_lines(text: str) -> list[str]:
    """``python -m bireal_larq.<cli> ...`` lines of the code blocks and inline code spans."""
    spans = re.findall(r"```[^\n]*\n(.*?)```", text, flags=re.S)
    spans += re.findall(r"(?<!`)`([^`]+)`(?!`)", re.sub(r"```.*?```", "", text, flags=re.S))
    lines = []
    for span in spans:
        joined = re.sub(r"\\\n", " ", span)  # shell line continuations
        for line in joined.splitlines():
            line = re.sub(r"\s#.*$", "", line)  # shell comments
            lines += [m.group(0) for m in re.finditer(r"python -m bireal_larq\.\S+[^|]*", line)]
    return lines


def _cli_flags(module: str) -> set[str]:
    """The flags that ``python -m <module>`` accepts (each CLI has its own FlagValues)."""
    is_package = importlib.util.find_spec(module).submodule_search_locations is not None
    target = f"{module}.__main__" if is_package else module
    flag_values = importlib.import_module(target).FLAGS
    names = set(flag_values)
    names |= {f"no{name}" for name in flag_values if flag_values[name].boolean}
    return names | HELP_FLAGS


def _documented_commands() -> list[tuple[str, str]]:
    found = []
    for page in PAGES:
        found += [(_rel(page), line) for line in _command_lines(page.read_text("utf-8"))]
    return found


def test_docs_show_command_lines():
    commands = _documented_commands()
    modules = {shlex.split(line)[2] for _, line in commands}
    assert len(commands) > 20 and {"bireal_larq.train", "bireal_larq.export"} <= modules


def test_documented_command_lines_use_defined_flags():
    unknown = []
    for page, line in _documented_commands():
        words = shlex.split(line)
        module = words[2]
        assert importlib.util.find_spec(module), f"{page}: no module {module} ({line})"
        defined = _cli_flags(module)
        for word in words[3:]:
            if word.startswith("--"):
                name = word[2:].split("=", 1)[0]
                if name not in defined:
                    unknown.append(f"{page}: --{name} in `{line}`")
    assert not unknown, "documented flags that the CLI does not define:\n" + "\n".join(unknown)


def test_study_table_shows_exactly_the_committed_study_rows():
    runs = ROOT / "results" / "fashion_mnist_runs"
    measured = {f"{100 * json.loads(p.read_text())['keras_top1']:.2f}"
                for p in runs.glob("*/study_row.json")}
    assert measured, "no finished study rows under results/fashion_mnist_runs"
    study = (ROOT / "docs" / "study.md").read_text(encoding="utf-8")
    table = re.search(r"\| configuration \| top-1 % \|.*?\n\n", study, re.S)
    assert table, "docs/study.md lacks the study table"
    shown = set()
    for line in table.group(0).strip().splitlines()[2:]:
        shown |= set(re.findall(r"\d+\.\d\d", line.split("|")[2]))
    assert shown == measured, (
        f"docs/study.md table and results/fashion_mnist_runs disagree: only in the docs "
        f"{sorted(shown - measured)}, only in the runs {sorted(measured - shown)}")


# Names that only the project's makers could look up, and narration of how the work went.
INTERNAL = re.compile(
    r"seed 00\d|\bseed's\b|\[T#\d|REFERENCE(\.md| section)|"
    r"\b(this|earlier|previous|last) sessions?\b|\bsessions'|the issue's", re.I)


def test_sources_are_cited_by_their_public_names():
    files = [*PAGES, *sorted((ROOT / "experiments").glob("*.py")),
             *(ROOT / name for name in CITING_MODULES)]
    hits = []
    for path in files:
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if INTERNAL.search(line):
                hits.append(f"{_rel(path)}:{number}: {line.strip()}")
    assert not hits, ("cite the paper or repository by name (docs/references.md), and "
                      "describe the project as it is:\n" + "\n".join(hits))
