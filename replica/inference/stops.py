"""Did generation stop cleanly: end-of-turn/eos within the token budget, and no other speaker's turn leaked in?"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class StopCheck:
    stop_ids: frozenset[int]  # end-of-turn and eos token ids
    role_markers: tuple[str, ...]  # strings that open another speaker's turn ("<|im_start|>user", "\nFriend:")

    @classmethod
    def build(cls, stop_ids: Iterable[int], role_markers: Iterable[str]) -> StopCheck:
        return cls(frozenset(int(token) for token in stop_ids), tuple(marker for marker in role_markers if marker))

    def is_clean_stop(self, token_ids: Sequence[int], text: str, max_new_tokens: int) -> bool:
        """`token_ids` are the generated ids only (prompt excluded, trailing padding allowed) and `text` their
        decoding; clean when a stop id is among the first `max_new_tokens` ids and no role marker is in `text`."""
        ended = any(int(token) in self.stop_ids for token in list(token_ids)[:max_new_tokens])
        return ended and not any(marker in text for marker in self.role_markers)

    def clean_stop_rate(self, generations: Sequence[tuple[Sequence[int], str]], max_new_tokens: int) -> float:
        """Fraction of (token_ids, text) generations that stopped cleanly; 0 for none."""
        if not generations:
            return 0.0
        clean = sum(self.is_clean_stop(ids, text, max_new_tokens) for ids, text in generations)
        return clean / len(generations)
