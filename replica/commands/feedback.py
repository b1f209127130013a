"""`replica feedback RUN_DIR`: what the owner taught a run in `replica chat` (`/fix`, `/good`): counts, entries, deletion.

Everything shown was masked before it was stored; it is printed only on the owner's own terminal when asked
(`--list`). Errors never show message text.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from replica.commands.arguments import OneLineParser, positive_int
from replica.errors import ReplicaInputError
from replica.feedback.store import NO_LABEL, Entry, FeedbackStore
from replica.task import run_task

PROG = "replica feedback"


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog=PROG,
        description="Show or delete the feedback given in replica chat with /fix TEXT (corrections) and /good: by "
                    "default, how many corrections and good replies each relationship label has.",
    )
    parser.add_argument("run_dir", metavar="RUN_DIR", help="the run folder train.py printed, or a replica merge folder")
    action = parser.add_mutually_exclusive_group()
    action.add_argument("--list", action="store_true", help="print every entry: id, label, kind and its masked text")
    action.add_argument("--delete", nargs="+", type=positive_int, metavar="ID", help="delete the entries with these ids (see --list)")
    action.add_argument("--delete-label", metavar="LABEL", help=f"delete every entry of one relationship label ({NO_LABEL}: the entries without one)")
    action.add_argument("--clear", action="store_true", help="delete every entry")
    return parser


def main(argv: Sequence[str]) -> int:
    """`replica feedback ARGV`: bad input is one `replica feedback: error: ...` line and exit code 2."""
    args = build_parser().parse_args(list(argv))
    return run_task(PROG, lambda: run(args))


def run(args: argparse.Namespace) -> int:
    """Do what the flags ask on the folder's store and print its outcome."""
    store = store_of(args.run_dir)
    if args.list:
        print("\n".join(entry_lines(store.entries())) or "no feedback yet")
    elif args.delete:
        print(deleted(store.delete(known_ids(store, args.delete))))
    elif args.delete_label is not None:
        print(deleted(store.delete(relationship=known_label(store, args.delete_label))))
    elif args.clear:
        print(deleted(store.delete(everything=True)))
    else:
        print("\n".join(count_lines(store.counts())) or "no feedback yet")
    return 0


def store_of(folder: str) -> FeedbackStore:
    """The feedback store of a run folder or of a `replica merge` folder (with the metadata it recorded)."""
    from replica.model.run_dir import inspect_run
    from replica.model.run_meta import is_merged_dir, read_meta

    path = Path(folder).expanduser()
    if is_merged_dir(path):
        try:
            return FeedbackStore.of_run(path, read_meta(path))
        except (OSError, ValueError) as err:
            raise ReplicaInputError(f"unreadable merged-model metadata ({err})", path=str(path)) from None
    info = inspect_run(path)
    return FeedbackStore.of_run(info.run_dir, info.config)


def known_ids(store: FeedbackStore, ids: Sequence[int]) -> list[int]:
    """`ids` when every one names a stored entry; else one error naming those that do not, before anything goes."""
    stored = {entry.id for entry in store.entries()}
    unknown = sorted(set(ids) - stored)
    if unknown:
        raise ReplicaInputError(f"--delete: no feedback entry has id {', '.join(map(str, unknown))}; nothing was "
                                "deleted (--list shows the ids)")
    return list(ids)


def known_label(store: FeedbackStore, label: str) -> str:
    """`label` when some entry has it; else one error listing the labels that do (the value typed is not echoed:
    it may be a name)."""
    labels = list(store.counts())
    if label not in labels:
        raise ReplicaInputError(f"--delete-label: no feedback entry has this label; the labels with entries: "
                                f"{', '.join(labels) or 'none'}")
    return label


def deleted(count: int) -> str:
    """How many entries went, as printed."""
    return f"deleted {count} {'entry' if count == 1 else 'entries'}"


def count_lines(counts: dict[str, dict[str, int]]) -> list[str]:
    """One aligned line per relationship label: corrections and good replies; a header first (none when empty)."""
    if not counts:
        return []
    width = max(len("label"), *map(len, counts))
    rows = [("label", "corrections", "good"), *((label, str(c["corrections"]), str(c["good"])) for label, c in counts.items())]
    return [f"{label:<{width}}  {fixes:>11}  {good:>4}" for label, fixes, good in rows]


def entry_lines(entries: Sequence[Entry]) -> list[str]:
    """One aligned line per entry: id, label, kind (correction or good), then its masked texts."""
    id_width = max((len(str(entry.id)) for entry in entries), default=0)
    label_width = max((len(entry.relationship or NO_LABEL) for entry in entries), default=0)
    return [f"{entry.id:>{id_width}}  {entry.relationship or NO_LABEL:<{label_width}}  "
            f"{'good' if entry.good else 'correction':<10}  {entry_text(entry)}" for entry in entries]


def entry_text(entry: Entry) -> str:
    """An entry's masked texts on one line: `them: …  replica: …  you: …` (the newest turn it answered, its reply,
    the correction)."""
    parts = [(entry.context[-1]["role"], entry.context[-1]["text"])] if entry.context else []
    parts.append(("replica", entry.reply))
    if entry.correction is not None:
        parts.append(("you", entry.correction))
    return "  ".join(f"{who}: {one_line(text)}" for who, text in parts)


def one_line(text: str) -> str:
    """A text's lines (a burst's messages) joined by ` / `."""
    return " / ".join(line.strip() for line in text.splitlines() if line.strip())
