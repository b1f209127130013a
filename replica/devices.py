"""Where a model runs: the one place that turns a requested device (`auto`, `cpu`, `cuda`, `cuda:1`) into a torch one."""

from __future__ import annotations

from replica.errors import ReplicaInputError

AUTO = "auto"


def resolve_device(requested: str | None, *, option: str = "device") -> str:
    """`auto` or None -> `cuda` when torch sees a GPU, else `cpu`; a CUDA device torch cannot see is one clear error
    naming `option` (the flag or config key the user set)."""
    import torch

    if requested in (None, AUTO):
        return "cuda" if torch.cuda.is_available() else "cpu"
    if requested.startswith("cuda") and not torch.cuda.is_available():
        given = f"{option} " if option.startswith("--") else f"{option}="  # a flag or a config key
        raise ReplicaInputError(f"{given}{requested}: no CUDA GPU is visible to torch; use {given}cpu")
    return requested
