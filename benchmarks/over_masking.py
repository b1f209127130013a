"""Over-masking on an export: the share of words the masking replaces although they are not personal data.

A replaced word counts as over-masked when it is an everyday word of the chat's language
(replica/prepare/data/common_words) replaced as a contact's name — the only way the masking can hit a word that is
not personal data (phones, e-mails, URLs, IBANs and cards are checked by shape and checksum). Also printed: every
replacement by kind, and the everyday-word uses of name tokens that were kept ("maglietta rosa").

    python benchmarks/over_masking.py examples/exports --me "Marco Bianchi"
"""

from __future__ import annotations

import argparse
import re
from collections import Counter

from replica.ingest import load_exports
from replica.prepare.clean import clean_messages
from replica.prepare.identity import resolve_me, sender_counts
from replica.prepare.language import chat_key, detect_chat_languages
from replica.prepare.names import common_words, fold
from replica.prepare.pii import PiiMasker, regions_seen

_WORD = re.compile(r"[^\W\d_]+")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("exports", nargs="+")
    parser.add_argument("--me", action="append", required=True, help="your sender name (repeatable)")
    parser.add_argument("--region", default="IT")
    args = parser.parse_args()
    loaded = load_exports(args.exports)
    me = resolve_me(loaded.messages, args.me, loaded.owners)
    contacts = [sender for sender, _ in sender_counts(loaded.messages).most_common() if sender not in me]
    cleaned, _ = clean_messages(loaded.messages, media="tag")
    languages = detect_chat_languages(cleaned, sample=40, seed=0)
    texts = [(message.text, languages.get(chat_key(message))) for message in cleaned]
    masker = PiiMasker(contacts, own_names=[*args.me, *me], region=args.region,
                       regions=regions_seen([*(text for text, _ in texts), *contacts]))
    words = 0
    kinds: Counter[str] = Counter()
    over = kept = 0
    for text, language in texts:
        words += len(_WORD.findall(text))
        everyday = common_words(language) if language else frozenset()
        for kind, key in masker.detect(text, [language] if language else []):
            kinds[kind] += 1
        for raw_kind, raw in _replaced_names(masker, text, language):
            if raw_kind == "NAME" and fold(raw) in everyday:
                over += 1
        survivors = _WORD.findall(fold(masker.mask(text, language)))
        kept += sum(1 for token in survivors if token in masker.names.people and token in everyday)
    replaced_kinds = sum(kinds.values())
    print(f"messages {len(texts)}, words {words}, values masked {replaced_kinds} ({dict(kinds)})")
    print(f"over-masked words (everyday words replaced as names): {over} = {over / max(words, 1):.4%} of all words")
    print(f"everyday-word uses of contact-name tokens kept as words: {kept}")


def _replaced_names(masker: PiiMasker, text: str, language: str | None) -> list[tuple[str, str]]:
    """(kind, raw text) of every name replacement in `text`."""
    return [("NAME", text[hit.start:hit.end]) for hit in masker.names.find(text, [language] if language else [])]


if __name__ == "__main__":
    main()
