"""Where a model runs: the one place that turns a requested device (`auto`, `cpu`, `cuda`, `cuda:1`) into a torch one."""

from __future__ import annotations

import re

from replica.errors import ReplicaInputError

AUTO = "auto"
DEVICES = "auto, cpu, cuda or cuda:N"  # what every device option (eval.device, chat's and serve's --device) accepts
_DEVICE = re.compile(r"auto|cpu|cuda(:\d+)?")


def is_device(value: object) -> bool:
    """Whether `value` names a device (`auto`, `cpu`, `cuda`, `cuda:N`); whether torch sees it is `resolve_device`'s."""
    return isinstance(value, str) and _DEVICE.fullmatch(value) is not None


def device_flag(text: str) -> str:
    """argparse type of `--device`: the text when it names a device, else the parser's one-line error."""
    import argparse

    if not is_device(text):
        raise argparse.ArgumentTypeError(f"{text!r} is not a device: use {DEVICES}")
    return text


def resolve_device(requested: str | None, *, option: str = "device") -> str:
    """`auto` or None -> `cuda` when torch sees a GPU, else `cpu`; a CUDA device torch cannot see is one clear error
    naming `option` (the flag or config key the user set)."""
    import torch

    if requested in (None, AUTO):
        return "cuda" if torch.cuda.is_available() else "cpu"
    given = f"{option} " if option.startswith("--") else f"{option}="  # a flag or a config key
    if not is_device(requested):
        raise ReplicaInputError(f"{given}{requested}: not a device; use {DEVICES}")
    if requested.startswith("cuda"):
        index = int(requested.partition(":")[2] or 0)
        if not torch.cuda.is_available():
            raise ReplicaInputError(f"{given}{requested}: no CUDA GPU is visible to torch; use {given}cpu")
        if index >= torch.cuda.device_count():
            raise ReplicaInputError(f"{given}{requested}: torch sees {torch.cuda.device_count()} GPU(s), cuda:0 to "
                                    f"cuda:{torch.cuda.device_count() - 1}")
    return requested
