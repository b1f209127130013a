"""The blind test's human score: how often people spotted the real reply next to a fresh replica reply.

Guesses live in `<run>/blind/guesses.sqlite` (written by `replica serve`'s /blind page, one transaction per guess):
time, example (row of the test split), position of the real reply ("a"/"b"), the choice and the client (a random
id from the guesser's browser cookie; files from before it have none). No message text is stored. 50% spotted means the replica is indistinguishable from the user; the 95% interval is Wilson's.
"""

from __future__ import annotations

import math
import sqlite3
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from replica.errors import ReplicaInputError

GUESSES_FILE = Path("blind") / "guesses.sqlite"
POSITIONS = ("a", "b")
Z_95 = 1.959963984540054
SCHEMA = """CREATE TABLE IF NOT EXISTS guesses (
    id INTEGER PRIMARY KEY,
    time TEXT NOT NULL,
    example INTEGER NOT NULL,
    real_position TEXT NOT NULL CHECK (real_position IN ('a', 'b')),
    choice TEXT NOT NULL CHECK (choice IN ('a', 'b')),
    client TEXT
)"""


def guesses_path(run_dir: str | Path) -> Path:
    return Path(run_dir) / GUESSES_FILE


def record_guess(run_dir: str | Path, example: int, real_position: str, choice: str, client: str | None = None) -> None:
    """Append one guess in its own transaction (a crash mid-write leaves the earlier guesses intact)."""
    path = guesses_path(run_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    connection = sqlite3.connect(path, timeout=10)
    try:
        with connection:
            connection.execute(SCHEMA)
            if not _has_client_column(connection):  # a file from before clients were recorded
                connection.execute("ALTER TABLE guesses ADD COLUMN client TEXT")
            connection.execute(
                "INSERT INTO guesses (time, example, real_position, choice, client) VALUES (?, ?, ?, ?, ?)",
                (datetime.now(timezone.utc).isoformat(timespec="seconds"), int(example), real_position, choice, client),
            )
    finally:
        connection.close()


def client_history(run_dir: str | Path, client: str, since: str) -> tuple[set[int], int]:
    """(examples this client has guessed, how many of its guesses are at or after the ISO time `since`)."""
    path = guesses_path(run_dir)
    if not path.is_file():
        return set(), 0
    connection = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=10)
    try:
        if not _has_client_column(connection):
            return set(), 0
        rows = connection.execute("SELECT example, time >= ? FROM guesses WHERE client = ?", (since, client)).fetchall()
    finally:
        connection.close()
    return {example for example, _ in rows}, sum(recent for _, recent in rows)


def _has_client_column(connection: sqlite3.Connection) -> bool:
    return any(row[1] == "client" for row in connection.execute("PRAGMA table_info(guesses)"))


def wilson_interval(successes: int, trials: int, z: float = Z_95) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion; (0, 1) when there are no trials."""
    if trials == 0:
        return 0.0, 1.0
    p = successes / trials
    denominator = 1 + z * z / trials
    centre = (p + z * z / (2 * trials)) / denominator
    half = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / denominator
    return max(0.0, centre - half), min(1.0, centre + half)


def human_score(run_dir: str | Path) -> dict[str, Any] | None:
    """{"guesses", "spotted", "rate", "ci95", "clients"} from the run's blind-test file; None when nobody has guessed
    yet. `clients` counts the distinct guessers (browser cookies) the score comes from."""
    path = guesses_path(run_dir)
    if not path.is_file():
        return None
    try:
        connection = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=10)
        try:
            total, spotted = connection.execute(
                "SELECT COUNT(*), COALESCE(SUM(choice = real_position), 0) FROM guesses"
            ).fetchone()
            clients = connection.execute("SELECT COUNT(DISTINCT client) FROM guesses").fetchone()[0] if _has_client_column(connection) else 0
        finally:
            connection.close()
    except sqlite3.DatabaseError as err:
        raise ReplicaInputError(f"unreadable blind-test guesses ({err}); move the file away to start over", path=str(path)) from None
    if not total:
        return None
    low, high = wilson_interval(spotted, total)
    return {"guesses": total, "spotted": spotted, "rate": spotted / total, "ci95": [low, high], "clients": clients}


def human_markdown(score: dict[str, Any]) -> str:
    """The report.md section for the blind test."""
    low, high = score["ci95"]
    if low > 0.5:
        verdict = "people could tell the replica apart"
    elif high < 0.5:
        verdict = "people took the replica for the real person more often than chance"
    else:
        verdict = "not distinguishable from the real replies at this sample size"
    return (
        "\n## Blind test (humans)\n\n"
        f"People spotted the real reply **{score['spotted']} of {score['guesses']}** times "
        f"({score['rate']:.0%}, 95% interval {low:.0%}–{high:.0%}; Wilson), from {score.get('clients', 0)} "
        f"{'client' if score.get('clients', 0) == 1 else 'clients'} (browsers). 50% means the replica is "
        f"indistinguishable: {verdict}.\n"
    )
