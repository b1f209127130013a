"""Third-party notices a user can do nothing about stay off the console; Replica says what matters in its own words."""

from __future__ import annotations

import logging
import sys

# bitsandbytes (and the `kernels` package it asks) log these at import on CPUs with AVX512-BF16: its fast CPU 4-bit
# kernel is a Hub download that is never there offline. What it costs is said once by `explain_cpu_4bit`.
KERNEL_DOWNLOAD_LOGGERS = ("bitsandbytes.backends.cpu.ops", "kernels._internals.hf_hub")
KERNEL_DOWNLOAD_MESSAGE = "kernels-community"
# The `gguf` package logs every file it writes (its temporary path and tensor count) at INFO: the GGUF cache and the
# stop-sequence callback write such files, and Hydra's console shows INFO.
GGUF_WRITER_LOGGER = "gguf"
_explained = False


class _DropKernelDownloadNotice(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return KERNEL_DOWNLOAD_MESSAGE not in record.getMessage()


def quiet_library_loggers() -> None:
    """Drop bitsandbytes' "Failed to load CPU gemm_4bit_forward from kernels-community" line, the `kernels`
    package's offline notice about it (idempotent; runs before bitsandbytes is imported: they are logged at import)
    and the `gguf` writer's per-file INFO lines."""
    for name in KERNEL_DOWNLOAD_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, _DropKernelDownloadNotice) for f in logger.filters):
            logger.addFilter(_DropKernelDownloadNotice())
    logging.getLogger(GGUF_WRITER_LOGGER).setLevel(logging.WARNING)


def explain_cpu_4bit() -> None:
    """Say once per process what a 4-bit model on the CPU costs."""
    global _explained
    if not _explained:
        _explained = True
        print("replica: 4-bit weights on the CPU take bitsandbytes' portable path (its fast CPU kernel is a download, "
              "not installed): fine for training, several times slower than llama.cpp for generating, which chat, "
              "serve and evaluate use on CPU by default", file=sys.stderr, flush=True)
