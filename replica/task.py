"""How every entry point ends (train.py, evaluate.py, `replica`): one place for errors, exit codes and interrupts.

An error the user can fix is one `PROGRAM: error: ...` line on stderr with its exit code (2); Ctrl-C exits 130 and a
reader that went away (`| head`) 141, both without a traceback. Anything else is a bug: its traceback is kept.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from typing import TypeVar

from replica.errors import EXIT_BROKEN_PIPE, EXIT_INTERRUPTED, ReplicaInputError

T = TypeVar("T")


def run_task(program: str, work: Callable[[], T], *, on_failure: Callable[[], None] | None = None,
             timed: bool = False) -> T:
    """`work()`, ended as the module docstring says; `on_failure` runs first whenever it does not return (e.g.
    remove a run folder nothing was written to); `timed` prints how long it took on stderr when it succeeds."""
    started = time.perf_counter()
    try:
        result = work()
    except ReplicaInputError as err:
        _cleanup(on_failure)
        print(f"{program}: error: {' '.join(str(err).split())}", file=sys.stderr, flush=True)
        raise SystemExit(err.exit_code) from None
    except KeyboardInterrupt:
        _cleanup(on_failure)
        raise SystemExit(EXIT_INTERRUPTED) from None
    except BrokenPipeError:
        _silence_stdout()
        raise SystemExit(EXIT_BROKEN_PIPE) from None
    except BaseException:
        _cleanup(on_failure)
        raise
    if timed:
        print(f"{program}: finished in {_duration(time.perf_counter() - started)}", file=sys.stderr, flush=True)
    return result


def exit_code(program: str, work: Callable[[], int | None]) -> int:
    """`run_task` for a function that returns its exit code (the `replica` console script): the code either way."""
    try:
        return run_task(program, work) or 0
    except SystemExit as stop:
        return stop.code if isinstance(stop.code, int) else 1


def _cleanup(on_failure: Callable[[], None] | None) -> None:
    if on_failure is not None:
        on_failure()


def _duration(seconds: float) -> str:
    minutes, seconds = divmod(round(seconds), 60)
    return f"{minutes} min {seconds} s" if minutes else f"{seconds} s"


def _silence_stdout() -> None:
    """The reader went away: point stdout at /dev/null so the interpreter's final flush stays quiet."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
