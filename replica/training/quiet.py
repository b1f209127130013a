"""Silence third-party notices a user cannot act on; real warnings and errors still show."""

from __future__ import annotations

import logging
import re
import warnings

# (category, message regex, module regex) of warnings that only describe the libraries' own internals.
NOISE_WARNINGS: tuple[tuple[type[Warning], str, str], ...] = (
    (FutureWarning, "", r"(transformers|peft)(\.|$)"),
    (UserWarning, r"Paged optimizers are not supported on CPU", ""),
    (Warning, r".*isinstance\(treespec, LeafSpec\)", ""),
)
# logger name -> message regexes of records to drop (other records of that logger still show).
NOISE_RECORDS: dict[str, tuple[str, ...]] = {
    "bitsandbytes": (r"kernels-community|pip install kernels",),
    "lightning": (
        r"💡 Tip",
        r"^(GPU|TPU|HPU|IPU) available",
        r"^`Trainer\(val_check_interval",
        r"^Loading `train_dataloader` to estimate",
        r"^Seed set to",
        r"^\s*Detected KeyboardInterrupt",
        r"^`Trainer\.fit` stopped",  # Replica's own end-of-run report says why and where it stopped
    ),
}


class _DropNotices(logging.Filter):
    """Drop the records of NOISE_RECORDS (matched by logger-name prefix and message)."""

    def __init__(self) -> None:
        super().__init__()
        self.patterns = {prefix: re.compile("|".join(f"(?:{p})" for p in pats)) for prefix, pats in NOISE_RECORDS.items()}

    def filter(self, record: logging.LogRecord) -> bool:
        for prefix, pattern in self.patterns.items():
            if (record.name == prefix or record.name.startswith(prefix + ".")) and pattern.search(record.getMessage()):
                return False
        return True


def silence_third_party_notices() -> None:
    """Install the warning filters and, on every console/file handler, the log-record filter (idempotent); hide
    transformers' per-file "Loading weights" / "Writing model shards" bars (Replica logs what it loads)."""
    from transformers.utils import logging as transformers_logging

    transformers_logging.disable_progress_bar()
    for category, message, module in NOISE_WARNINGS:
        warnings.filterwarnings("ignore", message=message, category=category, module=module)
    loggers = [logging.getLogger(), *(logging.getLogger(name) for name in ("lightning.pytorch", "lightning.fabric"))]
    for handler in (h for logger in loggers for h in logger.handlers):
        if not any(isinstance(f, _DropNotices) for f in handler.filters):
            handler.addFilter(_DropNotices())
