"""User-facing errors: one clear line, exit code 2, no traceback."""

from __future__ import annotations

from replica.privacy import display_path


class ReplicaInputError(Exception):
    """Bad input the user can fix; the message names the file/line/key and how to fix it."""

    exit_code = 2

    def __init__(self, message: str, *, path: str | None = None, line: int | None = None) -> None:
        where = ""
        if path is not None:
            path = display_path(path)  # file names carry contacts' names and numbers
            where = f"{path}:{line}: " if line is not None else f"{path}: "
        super().__init__(f"{where}{message}")
        self.path = path  # as shown: personal parts masked
        self.line = line
