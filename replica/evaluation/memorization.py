"""Memorization: does a reply copy a training reply, and how long is the longest stretch it shares with one?

`normalize` folds case and whitespace. A reply is a *copy* when its normalized text equals some normalized
training reply. The longest common substring (in characters, normalized) with any training reply is found with a
suffix automaton of all training replies (linear in their total length), so one scan per reply suffices.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Sequence

SEPARATOR = "\x00"  # never inside a normalized reply, so no match spans two training replies


def normalize(text: str) -> str:
    return " ".join(text.lower().split())


class SubstringIndex:
    """Suffix automaton of the training replies: longest substring of a query found in any of them."""

    def __init__(self, texts: Iterable[str]) -> None:
        self.next: list[dict[str, int]] = [{}]
        self.link: list[int] = [-1]
        self.length: list[int] = [0]
        last = 0
        for text in texts:
            for char in normalize(text) + SEPARATOR:
                last = self._extend(last, char)

    def _extend(self, last: int, char: str) -> int:
        nxt, link, length = self.next, self.link, self.length
        current = len(length)
        nxt.append({})
        link.append(-1)
        length.append(length[last] + 1)
        state = last
        while state != -1 and char not in nxt[state]:
            nxt[state][char] = current
            state = link[state]
        if state == -1:
            link[current] = 0
            return current
        target = nxt[state][char]
        if length[state] + 1 == length[target]:
            link[current] = target
            return current
        clone = len(length)
        nxt.append(dict(nxt[target]))
        link.append(link[target])
        length.append(length[state] + 1)
        while state != -1 and nxt[state].get(char) == target:
            nxt[state][char] = clone
            state = link[state]
        link[target] = link[current] = clone
        return current

    def longest_common_substring(self, text: str) -> int:
        """Length in characters of the longest substring of normalized `text` that occurs in a training reply."""
        state, matched, best = 0, 0, 0
        for char in normalize(text):
            while state and char not in self.next[state]:
                state = self.link[state]
                matched = self.length[state]
            if char in self.next[state]:
                state = self.next[state][char]
                matched += 1
            best = max(best, matched)
        return best


class Memorization:
    """Copy and overlap measures of replies against the training replies.

    Copies are checked against every training reply. The substring index costs ~400 bytes per indexed character,
    so past `max_indexed_chars` it is built on a seeded sample of the distinct training replies (`indexed` says
    how many), keeping memory bounded on large chat histories.
    """

    def __init__(self, training_replies: Sequence[str], max_indexed_chars: int, seed: int = 0) -> None:
        self.training = {normalize(text) for text in training_replies} - {""}
        distinct = sorted(self.training)
        random.Random(seed).shuffle(distinct)
        kept, budget = [], max_indexed_chars
        for text in distinct:
            if len(text) + 1 > budget:
                continue
            kept.append(text)
            budget -= len(text) + 1
        self.indexed = len(kept)
        self.index = SubstringIndex(kept)

    def is_copy(self, text: str) -> bool:
        return normalize(text) in self.training

    def longest_common_substring(self, text: str) -> int:
        return self.index.longest_common_substring(text)
