"""User-facing errors: one clear line, exit code 2, no traceback."""

from __future__ import annotations

from replica.privacy import display_path

EXIT_INPUT = 2  # bad input the user can fix (ReplicaInputError)
EXIT_INTERRUPTED = 130  # 128 + SIGINT: stopped by Ctrl-C (a training run is left finished and resumable)
EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE, what `cat` and friends return under `| head`


class ReplicaInputError(Exception):
    """Bad input the user can fix; the message names the file/line/key and how to fix it."""

    exit_code = EXIT_INPUT

    def __init__(self, message: str, *, path: str | None = None, line: int | None = None) -> None:
        where = ""
        if path is not None:
            path = display_path(path)  # file names carry contacts' names and numbers
            where = f"{path}:{line}: " if line is not None else f"{path}: "
        super().__init__(f"{where}{message}")
        self.path = path  # as shown: personal parts masked
        self.line = line
