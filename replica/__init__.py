"""Replica: clone how one person texts with QLoRA."""

__version__ = "0.1.0"

from replica.notices import quiet_library_loggers  # noqa: E402  (before any import of bitsandbytes)

quiet_library_loggers()
