"""Replica: clone how one person texts with QLoRA."""

__version__ = "0.1.0"

from replica.notices import silence_kernel_download_notice  # noqa: E402  (before any import of bitsandbytes)

silence_kernel_download_notice()
