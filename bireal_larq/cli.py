"""Private flag sets for the thin CLIs (train, evaluate, export, benchmark, study, ...).

Importing several of them into one process never collides.

absl keeps one global flag registry; two modules that both define ``--model`` (export,
benchmark, train, ...) cannot be imported into one process. Each CLI defines its flags on its
own :class:`absl.flags.FlagValues` and passes :func:`parser_for` to ``app.run``.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable

from absl import flags

_HELP = ("--help", "-h", "-help", "--helpfull", "--helpshort")


def parser_for(
    flag_values: flags.FlagValues, positional: int = 0
) -> Callable[[list[str]], list[str]]:
    """An ``app.run`` flags parser: this CLI's flags first, absl's own (logging) after.

    More than ``positional`` arguments besides the flags is an error: absl reads a bare
    boolean flag as true and leaves a value written after it (``--overwrite false``) as an
    argument, which would otherwise be dropped while the flag meant the opposite.
    """

    def parse(argv: list[str]) -> list[str]:
        if any(arg in _HELP for arg in argv[1:]):
            print(flag_values.main_module_help() or str(flag_values))
            sys.exit(0)
        try:
            rest = flags.FLAGS(flag_values(argv, known_only=True))
        except flags.Error as e:
            print(f"FATAL Flags parsing error: {e}\nPass --help to see the flags.", file=sys.stderr)
            sys.exit(1)
        extra = rest[1 + positional:]
        if extra:
            takes = f"takes {positional}" if positional else "takes no"
            print(
                f"FATAL Unexpected argument(s) {extra}: this command {takes} positional "
                "argument(s). A boolean flag takes its value after '=' (--overwrite=false, or "
                "--nooverwrite), never after a space. Pass --help to see the flags.",
                file=sys.stderr,
            )
            sys.exit(1)
        return rest

    return parse


def fail(code: int, message: str) -> None:
    """Prints ``message`` to stderr and ends the process with ``code`` at once.

    The documented error exits of the CLIs (an unreadable image, a non-finite loss, a run
    directory conflict, ...) end here rather than through ``sys.exit``: an input pipeline's
    worker threads may still be inside a ``tf.py_function`` when the error reaches the main
    thread, and the interpreter's shutdown can then wait on them forever. Everything the run
    wrote is already on disk (atomic writes); only the interpreter's own clean-up is skipped.
    """
    print(message, file=sys.stderr)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
