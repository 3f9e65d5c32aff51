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
from typing import NoReturn

from absl import app, flags

from bireal_larq import console

_HELP = ("--help", "-h", "-help", "--helpfull", "--helpshort")


def parser_for(
    flag_values: flags.FlagValues, positional: int = 0
) -> Callable[[list[str]], list[str]]:
    """An ``app.run`` flags parser: this CLI's flags first, absl's own (logging) after.

    More than ``positional`` arguments besides the flags is an error: absl reads a bare
    boolean flag as true and leaves a value written after it (``--overwrite false``) as an
    argument, which would otherwise be dropped while the flag meant the opposite.
    """

    if "verbose" not in flag_values:
        flags.DEFINE_bool(
            "verbose", False, "Also print TensorFlow's, TFDS's and the converter's own logs.",
            flag_values=flag_values,
        )

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

    parse.flag_values = flag_values  # for run(): --verbose
    return parse


class Failure(Exception):
    """A documented error exit of a command: its exit ``code`` and the ``message`` printed."""

    def __init__(self, code: int, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


def fail(code: int, message: str) -> NoReturn:
    """Ends the command with exit ``code`` after printing ``message`` (see :func:`run`).

    Raises:
        Failure: always; called in-process (tests, notebooks), it is an ordinary exception.
    """
    raise Failure(code, message)


def run(main: Callable[[list[str]], int | None], parser: Callable[[list[str]], list[str]]):
    """``app.run(main)`` with this CLI's flag ``parser``; a :class:`Failure` prints its
    message to stderr and ends the process with its code at once.

    At once (``os._exit``), not through ``sys.exit``: an input pipeline's worker threads may
    still be inside a ``tf.py_function`` when the error reaches the main thread, and the
    interpreter's shutdown can then wait on them forever. Everything the command wrote is
    already on disk (atomic writes); only the interpreter's own clean-up is skipped.
    """

    def guarded(argv: list[str]) -> int | None:
        flag_values = getattr(parser, "flag_values", None)
        if not (flag_values is not None and "verbose" in flag_values and flag_values.verbose):
            console.quiet = True
            console.quiet_python_logs()
        try:
            return main(argv)
        except Failure as err:
            print(err.message, file=sys.stderr)
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(err.code)

    app.run(guarded, flags_parser=parser)
