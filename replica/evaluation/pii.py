"""Privacy check: how many generated replies contain personal data of the exports, found with the same detection
that masks the training data (`replica.prepare.pii`): contacts' names in any case/accent/width, and phones,
e-mails (also obfuscated), URLs, IBANs and cards whose value occurs in the exports, in any spelling."""

from __future__ import annotations

from collections.abc import Sequence

from replica.prepare.pii import PrivateValues


def pii_leak_count(generated: Sequence[str], secrets: PrivateValues) -> int:
    """Number of generated replies containing at least one of the exports' personal values."""
    return sum(1 for reply in generated if secrets.leaks(reply))
