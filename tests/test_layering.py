"""Imports only point down: the shared layers never import the packages built on top of them."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TOP = ("replica.commands", "replica.evaluation", "replica.serve", "callbacks", "replica.training.module", "replica.training.run")
# module file -> package prefixes it must never import (at module level or inside a function)
FORBIDDEN = {
    "replica/model/run_dir.py": TOP + ("replica.inference", "replica.training"),
    "replica/errors.py": TOP + ("replica.inference", "replica.training", "replica.model.run_dir"),
    "replica/atomic.py": TOP + ("replica.inference", "replica.training", "replica.model.run_dir"),
    "replica/model/formatting.py": TOP + ("replica.inference",),
    "replica/model/tokens.py": TOP + ("replica.inference",),
    "replica/model/base_model.py": TOP + ("replica.inference",),
    **{str(p.relative_to(ROOT)): TOP for p in (ROOT / "replica" / "inference").glob("*.py")},
    **{str(p.relative_to(ROOT)): ("replica.commands", "replica.evaluation", "replica.serve") for p in (ROOT / "callbacks").glob("*.py")},
}


def imported_modules(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


@pytest.mark.parametrize("relative", sorted(FORBIDDEN))
def test_imports_point_down(relative: str) -> None:
    path = ROOT / relative
    assert path.is_file(), relative
    bad = sorted(
        name for name in imported_modules(path) for banned in FORBIDDEN[relative] if name == banned or name.startswith(banned + ".")
    )
    assert not bad, f"{relative} imports {bad} from a layer above it"


def test_shared_generation_lives_in_one_place() -> None:
    """chat, evaluate and the stop-sequence callback all generate through replica.inference.generation."""
    users = ["replica/commands/chat.py", "replica/evaluation/run.py", "callbacks/stop_sequence_eval.py"]
    for relative in users:
        assert "replica.inference.generation" in imported_modules(ROOT / relative), relative
    assert not (ROOT / "replica" / "generation.py").exists()
    assert not (ROOT / "replica" / "evaluation" / "stops.py").exists()
