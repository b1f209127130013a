"""Dataset statistics: counts only, no message text and no contact names (contacts are ranked `contact_n`)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence

import numpy as np

from replica.ingest.message import Message
from replica.prepare.dedup import Overlaps
from replica.prepare.turns import Session
from replica.settings import SPLITS

PERCENTILES = (10, 50, 90, 99)


def sender_labels(counts: Counter[str], me_senders: set[str]) -> Counter[str]:
    """Messages per sender with the user's aliases summed as "me" and contacts as "contact_1".. by volume."""
    labelled: Counter[str] = Counter({"me": sum(counts[sender] for sender in me_senders)})
    contacts = [(sender, count) for sender, count in counts.most_common() if sender not in me_senders]
    labelled.update({f"contact_{rank}": count for rank, (_, count) in enumerate(contacts, start=1)})
    return labelled


def compute_stats(
    *,
    loaded: int,
    files: int,
    skipped_files: int,
    dropped: Mapping[str, int],
    kept: Sequence[Message],
    me_senders: set[str],
    chat_languages: Mapping[tuple[str, str], str],
    sessions: Sequence[Session],
    splits: Mapping[str, list[dict]],
    overlaps: Overlaps | None = None,
    placeholders: Sequence[Mapping] = (),
) -> dict:
    per_sender = sender_labels(Counter(message.sender for message in kept), me_senders)
    targets = [len(example["target"]) for name in SPLITS for example in splits[name]]
    examples_per_language = Counter(example["language"] for name in SPLITS for example in splits[name])
    chats_per_language = Counter(chat_languages.values())
    kept_chats = {(message.platform, message.chat) for message in kept}
    times = [message.time for message in kept]
    overlaps = overlaps or Overlaps()
    dropped = {**dropped, "duplicate": overlaps.dropped} if overlaps.dropped else dropped
    return {
        "files": files,
        "skipped_files": skipped_files,
        "messages": {"loaded": loaded, "kept": len(kept), "dropped": dict(sorted(dropped.items()))},
        "messages_per_sender": dict(per_sender.most_common()),
        "me_share": round(per_sender["me"] / len(kept), 4) if kept else 0.0,
        "chats": {"found": len(chat_languages), "kept": len(kept_chats)},
        "sessions": len(sessions),
        "turns": sum(len(session.turns) for session in sessions),
        "examples": {**{name: len(splits[name]) for name in SPLITS}, "total": len(targets)},
        "examples_per_relationship": dict(sorted(
            Counter(example.get("relationship", "other") for name in SPLITS for example in splits[name]).items()
        )),
        "languages": {
            language: {"chats": chats_per_language[language], "examples": examples_per_language[language]}
            for language in sorted(chats_per_language)
        },
        "date_span": {
            "first": min(times).isoformat(timespec="seconds") if times else None,
            "last": max(times).isoformat(timespec="seconds") if times else None,
            "days": (max(times) - min(times)).days + 1 if times else 0,
        },
        "target_chars": {
            **{f"p{q}": float(np.percentile(targets, q)) if targets else 0.0 for q in PERCENTILES},
            "max": max(targets, default=0),
        },
        "duplicates": overlaps.to_json(),
        "suspected_placeholders": [dict(row) for row in placeholders],
    }


def format_stats(stats: Mapping) -> str:
    """A short plain-text table of the stats."""
    messages, examples, span = stats["messages"], stats["examples"], stats["date_span"]
    dropped = ", ".join(f"{reason} {count}" for reason, count in messages["dropped"].items()) or "none"
    languages = ", ".join(
        f"{language} {info['chats']} chats/{info['examples']} ex" for language, info in stats["languages"].items()
    )
    top_senders = ", ".join(f"{label} {count}" for label, count in list(stats["messages_per_sender"].items())[:6])
    lengths = stats["target_chars"]
    rows = [
        ("files", f"{stats['files']} read, {stats['skipped_files']} skipped"),
        ("messages", f"{messages['loaded']} loaded, {messages['kept']} kept (dropped: {dropped})"),
        ("senders", f"{top_senders}; your share {stats['me_share']:.1%}"),
        ("chats", f"{stats['chats']['kept']}/{stats['chats']['found']} kept; {stats['sessions']} sessions, "
                  f"{stats['turns']} turns"),
        ("languages", languages or "none"),
        ("dates", f"{span['first']} .. {span['last']} ({span['days']} days)"),
        ("examples", " / ".join(f"{name} {examples[name]}" for name in SPLITS) + f" (total {examples['total']})"),
        ("relationship", ", ".join(f"{label} {count}" for label, count in
                                    stats.get("examples_per_relationship", {}).items()) or "none"),
        ("target chars", ", ".join(f"{key} {value:g}" for key, value in lengths.items())),
        ("duplicates", _duplicates_row(stats.get("duplicates"))),
        ("placeholders", _placeholders_row(stats.get("suspected_placeholders"))),
    ]
    width = max(len(label) for label, _ in rows)
    return "\n".join(f"{label.ljust(width)}  {value}" for label, value in rows)


def _duplicates_row(duplicates: Mapping | None) -> str:
    """"412 dropped (file 2 whatsapp 2021-03-01..2021-09-30: 300; ...)", or "none"."""
    if not duplicates or not duplicates["dropped"]:
        return "none"
    files = "; ".join(
        f"file {row['file']} {row['platform']} {row['first']}..{row['last']}: {row['dropped']}"
        for row in duplicates["files"]
    )
    return f"{duplicates['dropped']} dropped ({files}); chats read from several exports: {duplicates['merged_chats']}"


def _placeholders_row(rows: Sequence[Mapping] | None) -> str:
    """The most repeated short messages across senders: placeholders as written, other text as its shape."""
    if not rows:
        return "none"
    return ", ".join(
        f"{row['shown']!r} {row['messages']}x by {row['senders']} senders"
        + (" (made media)" if row["placeholder"] else "")
        for row in rows[:5]
    )
