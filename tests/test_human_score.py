"""The blind test's score: Wilson intervals against published values, and the guesses file round trip."""

from __future__ import annotations

import pytest

from replica.errors import ReplicaInputError
from replica.evaluation.human import guesses_path, human_markdown, human_score, record_guess, wilson_interval


@pytest.mark.parametrize(
    ("successes", "trials", "low", "high"),
    [(7, 10, 0.3968, 0.8922), (0, 10, 0.0, 0.2775), (10, 10, 0.7225, 1.0), (50, 100, 0.4038, 0.5962)],
)
def test_wilson_interval_matches_published_values(successes, trials, low, high):
    assert wilson_interval(successes, trials) == pytest.approx((low, high), abs=5e-4)


def test_no_guesses_means_no_score(tmp_path):
    assert human_score(tmp_path) is None


def test_guesses_round_trip(tmp_path):
    for real, choice in [("a", "a"), ("b", "a"), ("b", "b"), ("a", "a")]:
        record_guess(tmp_path, 3, real, choice)
    score = human_score(tmp_path)
    assert score["guesses"] == 4 and score["spotted"] == 3 and score["rate"] == 0.75
    assert score["ci95"][0] < 0.75 < score["ci95"][1]
    assert "3 of 4" in human_markdown(score)


def test_guess_outside_a_or_b_is_refused_by_the_file_itself(tmp_path):
    import sqlite3

    record_guess(tmp_path, 0, "a", "a")
    with pytest.raises(sqlite3.IntegrityError):
        record_guess(tmp_path, 0, "a", "c")
    assert human_score(tmp_path)["guesses"] == 1


def test_corrupt_guesses_file_is_one_clear_error(tmp_path):
    path = guesses_path(tmp_path)
    path.parent.mkdir()
    path.write_bytes(b"this is not a database" * 100)
    with pytest.raises(ReplicaInputError, match="guesses.sqlite"):
        human_score(tmp_path)
