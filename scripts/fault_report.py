"""Runs the whole fault-injection suite, slow cases included, and writes its table.

    python scripts/fault_report.py --output=results/faults.md    # what `make faults` runs

The suite is every test of ``tests/test_faults.py`` (kills, failing writes, every command's
error exit), ``tests/test_resilience.py`` (kills mid-epoch and mid-checkpoint, a non-finite
loss, a changed configuration), ``tests/test_odd_inputs.py`` (corrupt and odd image files) and
``tests/test_demo.py`` (the demo killed and rerun). ``make test`` runs all but the cases marked
slow. Each case bounds its own wall-clock time, so a hang fails its case instead of the run.

The table lists every case with its outcome and duration (the whole case: start-up, the
fault, the exit and any rerun), headed by the command, machine, date and commit. The
process's exit code is pytest's.
"""

from __future__ import annotations

import datetime
import os
import platform
import shlex
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET

from absl import app, flags

FLAGS = flags.FLAGS
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SUITE = (
    "tests/test_faults.py",
    "tests/test_resilience.py",
    "tests/test_odd_inputs.py",
    "tests/test_demo.py",
)


def _cases(junit_xml: str) -> list[dict]:
    """(file, case, outcome, seconds, message) of every test case of a JUnit XML report."""
    cases = []
    for case in ET.parse(junit_xml).getroot().iter("testcase"):
        outcome, message = "passed", ""
        for kind in ("failure", "error", "skipped"):
            found = case.find(kind)
            if found is not None:
                outcome = {"failure": "FAILED", "error": "ERROR", "skipped": "skipped"}[kind]
                text = found.get("message") or ""
                message = text.splitlines()[0][:120] if text else ""
                break
        module = case.get("classname", "").rsplit(".", 1)[-1]
        cases.append({
            "file": module + ".py",
            "case": case.get("name", ""),
            "outcome": outcome,
            "seconds": float(case.get("time") or 0.0),
            "message": message,
        })
    return cases


def _machine() -> str:
    from bireal_larq.utils import cpu_model

    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    return (f"{cpu_model()}, {os.cpu_count()} cores, {platform.platform()}; load average at "
            f"the end {load}")


def render(cases: list[dict], command: str, started: str, minutes: float, commit: str) -> str:
    counts = {k: sum(c["outcome"] == k for c in cases) for k in ("passed", "FAILED", "ERROR",
                                                                 "skipped")}
    lines = [
        "# Fault-injection suite",
        "",
        f"- Command: `{command}`",
        f"- Date: {started} ({minutes:.1f} min), commit {commit}",
        f"- Machine: {_machine()}",
        "- Python {}; {}".format(
            platform.python_version(),
            ", ".join(f"{n} {c}" for n, c in counts.items() if c),
        ),
        "",
        "Seconds: the whole case (start-up, the fault, the exit and any rerun), two cases at a "
        "time on the machine's cores.",
        "",
        "| file | case | outcome | seconds |",
        "| --- | --- | --- | ---: |",
    ]
    for c in cases:
        outcome = c["outcome"] + (f": {c['message']}" if c["message"] else "")
        lines.append(f"| {c['file']} | `{c['case']}` | {outcome} | {c['seconds']:.1f} |")
    return "\n".join(lines) + "\n"


def _define_flags() -> None:
    """The command-line flags (defined when run as a script, not when imported)."""
    flags.DEFINE_string("output", "results/faults.md", "The markdown table.")
    flags.DEFINE_integer("workers", 2, "pytest-xdist workers.")


def main(argv: list[str]) -> int:
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    started = datetime.datetime.now(datetime.timezone.utc)
    with tempfile.TemporaryDirectory() as tmp:
        junit = os.path.join(tmp, "faults.xml")
        command = [
            sys.executable, "-m", "pytest", "-q", "-m", "not network", "-n", str(FLAGS.workers),
            "--dist", "loadgroup", "-p", "no:cacheprovider", f"--junitxml={junit}", *SUITE,
        ]
        done = subprocess.run(command, cwd=REPO, check=False)
        if not os.path.exists(junit):
            print(f"fault_report: pytest wrote no report (exit {done.returncode})",
                  file=sys.stderr)
            return done.returncode or 1
        cases = _cases(junit)
    minutes = (datetime.datetime.now(datetime.timezone.utc) - started).total_seconds() / 60
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, check=False,
                            capture_output=True, text=True).stdout.strip() or "unknown"
    workers = [f"--workers={FLAGS.workers}"] if FLAGS.workers != 2 else []
    shown = "python scripts/fault_report.py " + shlex.join([f"--output={FLAGS.output}", *workers])
    text = render(cases, shown, started.strftime("%Y-%m-%d %H:%M UTC"), minutes, commit)
    output = os.path.join(REPO, FLAGS.output) if not os.path.isabs(FLAGS.output) else FLAGS.output
    os.makedirs(os.path.dirname(output), exist_ok=True)
    with open(output, "w", encoding="utf-8") as f:
        f.write(text)
    print(f"fault_report: {len(cases)} cases -> {output}")
    return done.returncode


if __name__ == "__main__":
    _define_flags()
    app.run(main)
