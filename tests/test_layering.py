"""Imports only point down: every module of replica/, callbacks/, data_modules/ and the entry points sits in one layer
and imports only from its own layer or the ones below it; packages of one layer never import each other in a cycle.

The layers are listed lowest first (docs/architecture.md draws them). Every import counts: module level or inside a
function, under `if TYPE_CHECKING:`, `from replica import __version__` and relative imports alike.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCANNED = ("replica", "callbacks", "data_modules", "train.py", "evaluate.py")
FIRST_PARTY = ("replica", "callbacks", "data_modules", "train", "evaluate")
TOP_PACKAGE = "replica"  # as a layer entry it names only replica/__init__.py, not the packages inside it

LAYERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("ground", ("replica", "replica.errors", "replica.privacy", "replica.atomic", "replica.devices", "replica.notices",
                "replica.task")),
    ("settings", ("replica.settings", "replica.config")),
    ("ingest", ("replica.ingest",)),
    ("prepare", ("replica.prepare",)),
    ("feedback", ("replica.feedback",)),
    ("model", ("replica.model",)),
    ("gguf", ("replica.gguf",)),
    ("inference", ("replica.inference",)),
    ("training", ("replica.training", "callbacks", "data_modules")),
    ("evaluation", ("replica.evaluation",)),
    ("serve and export", ("replica.serve", "replica.export")),
    ("commands", ("replica.commands", "replica.cli", "replica.sweep")),
    ("entry points", ("train", "evaluate")),
)


@dataclass(frozen=True)
class Import:
    """One first-party import: the importing module, the line, and the module it reaches."""

    source: str
    line: int
    target: str


def module_files() -> dict[str, Path]:
    """Every scanned module by dotted name (a package by its own name, for its __init__.py)."""
    files: dict[str, Path] = {}
    for scanned in SCANNED:
        path = ROOT / scanned
        for file in [path] if path.is_file() else sorted(path.rglob("*.py")):
            parts = list(file.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            files[".".join(parts)] = file
    return files


MODULES = module_files()


def covers(entry: str, module: str) -> bool:
    """`entry` is `module` itself, or a package holding it (the top package covers only its own __init__.py)."""
    return module == entry or (entry != TOP_PACKAGE and module.startswith(entry + "."))


def entry_of(module: str) -> tuple[int, str] | None:
    """(layer index, layer entry) of `module`: the most specific entry that covers it; None when no layer lists it."""
    found = [(len(entry), index, entry) for index, (_, entries) in enumerate(LAYERS) for entry in entries if covers(entry, module)]
    if not found:
        return None
    _, index, entry = max(found)
    return index, entry


def resolve(module: str, name: str) -> str:
    """The scanned module `name` refers to from `module`: the longest dotted prefix of `name` that is a module."""
    parts = name.split(".")
    while parts and ".".join(parts) not in MODULES:
        parts.pop()
    return ".".join(parts) if parts else name


def package_of(module: str) -> str:
    """The package a relative import in `module` starts from."""
    return module if MODULES[module].name == "__init__.py" else module.rpartition(".")[0]


def imports_of(module: str) -> list[Import]:
    """Every first-party import written anywhere in `module`, resolved to the scanned module it reaches."""
    found = []
    for node in ast.walk(ast.parse(MODULES[module].read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package_of(module).split(".")
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, *([base] if base else [])])
            names = [f"{base}.{alias.name}" for alias in node.names]
        else:
            continue
        for name in names:
            if name.split(".")[0] in FIRST_PARTY:
                found.append(Import(module, node.lineno, resolve(module, name)))
    return found


ALL_IMPORTS = [found for module in sorted(MODULES) for found in imports_of(module)]


def where(found: Import) -> str:
    return f"{MODULES[found.source].relative_to(ROOT)}:{found.line}"


def test_every_module_has_a_layer() -> None:
    assert {"replica", "replica.cli", "train", "evaluate", "callbacks", "data_modules.chat_datamodule"} <= MODULES.keys()
    unplaced = sorted(module for module in MODULES if entry_of(module) is None)
    assert not unplaced, f"modules in no layer: {unplaced}; add their package to LAYERS in tests/test_layering.py"


def test_every_import_targets_a_known_module() -> None:
    unknown = sorted(f"{where(found)} imports {found.target}" for found in ALL_IMPORTS if found.target not in MODULES)
    assert not unknown, f"imports of first-party modules that do not exist: {unknown}"


def test_imports_point_down() -> None:
    upward = []
    for found in ALL_IMPORTS:
        source, target = entry_of(found.source), entry_of(found.target)
        if source is not None and target is not None and target[0] > source[0]:
            upward.append(
                f"{where(found)} ({LAYERS[source[0]][0]}) imports {found.target} ({LAYERS[target[0]][0]}, a layer above)"
            )
    assert not upward, "imports that point up:\n" + "\n".join(upward)


def package_graph() -> dict[str, set[str]]:
    """Edges between the entries of one layer: entry -> the entries of the same layer it imports."""
    graph: dict[str, set[str]] = {}
    for found in ALL_IMPORTS:
        source, target = entry_of(found.source), entry_of(found.target)
        if source is not None and target is not None and source[0] == target[0] and source[1] != target[1]:
            graph.setdefault(source[1], set()).add(target[1])
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of `graph` as a path that returns to its start, None if it has none."""
    done: set[str] = set()

    def visit(node: str, path: list[str]) -> list[str] | None:
        if node in path:
            return path[path.index(node):] + [node]
        if node in done:
            return None
        for following in sorted(graph.get(node, ())):
            cycle = visit(following, [*path, node])
            if cycle:
                return cycle
        done.add(node)
        return None

    for start in sorted(graph):
        cycle = visit(start, [])
        if cycle:
            return cycle
    return None


def test_no_cycle_between_packages_of_one_layer() -> None:
    cycle = find_cycle(package_graph())
    assert cycle is None, f"packages of one layer import each other in a cycle: {' -> '.join(cycle or [])}"


@pytest.mark.parametrize(
    ("graph", "expected"),
    [
        ({"a": {"b"}, "b": {"c"}}, None),
        ({"a": {"b"}, "b": {"c"}, "c": {"a"}}, ["a", "b", "c", "a"]),
        ({"a": {"b"}, "b": {"b2"}, "b2": {"b"}}, ["b", "b2", "b"]),
    ],
)
def test_find_cycle(graph: dict[str, set[str]], expected: list[str] | None) -> None:
    assert find_cycle(graph) == expected


def test_the_scan_sees_every_kind_of_import() -> None:
    """Function-level, relative and `from package import name` imports all resolve to the module they reach."""
    assert entry_of("replica") == (0, "replica") and entry_of("replica.ingest.whatsapp") == (2, "replica.ingest")
    assert entry_of("replica.replica_extra") is None
    assert resolve("train", "replica.__version__") == "replica"
    assert resolve("train", "replica.errors.ReplicaInputError") == "replica.errors"
    assert package_of("replica.ingest") == "replica.ingest" and package_of("replica.ingest.sources") == "replica.ingest"
    cli = {found.target for found in imports_of("replica.cli")}
    assert "replica.commands.ingest" in cli  # imported inside build_parser


def test_shared_generation_lives_in_one_place() -> None:
    """chat, evaluate and the stop-sequence callback all generate through replica.inference.generation."""
    generating = {found.source for found in ALL_IMPORTS if found.target == "replica.inference.generation"}
    for user in ("replica.commands.chat", "replica.evaluation", "callbacks.stop_sequence_eval"):
        assert any(covers(user, source) for source in generating), f"{user} no longer generates through inference"
    assert "replica.generation" not in MODULES and "replica.evaluation.stops" not in MODULES
