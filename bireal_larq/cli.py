"""Private flag sets for the thin CLIs (train, evaluate, export, benchmark, study, ...).

Importing several of them into one process never collides.

absl keeps one global flag registry; two modules that both define ``--model`` (export,
benchmark, train, ...) cannot be imported into one process. Each CLI defines its flags on its
own :class:`absl.flags.FlagValues` and passes :func:`parser_for` to ``app.run``.
"""

from __future__ import annotations

import sys
from collections.abc import Callable

from absl import flags

_HELP = ("--help", "-h", "-help", "--helpfull", "--helpshort")


def parser_for(flag_values: flags.FlagValues) -> Callable[[list[str]], list[str]]:
    """An ``app.run`` flags parser: this CLI's flags first, absl's own (logging) after."""

    def parse(argv: list[str]) -> list[str]:
        if any(arg in _HELP for arg in argv[1:]):
            print(flag_values.main_module_help() or str(flag_values))
            sys.exit(0)
        try:
            rest = flag_values(argv, known_only=True)
            return flags.FLAGS(rest)
        except flags.Error as e:
            print(f"FATAL Flags parsing error: {e}\nPass --help to see the flags.", file=sys.stderr)
            sys.exit(1)

    return parse
