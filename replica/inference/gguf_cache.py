"""The llama.cpp files a run generates with, built once and kept in the run folder (`<run>/engine/`).

`replica-<key>-<quant>.gguf` is the run's model (base + adapter), keyed by the adapter folder's content;
`base-<key>-<quant>.gguf` is its base model with the run's tokenizer and stop tokens (the "adapter off" side of an
evaluation). A file is written under an exclusive lock and published by an atomic rename, so two processes never
build the same file twice nor read a partial one; a file whose key no longer matches (a new adapter) is removed
once its replacement exists.
"""

from __future__ import annotations

import fcntl
import hashlib
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from replica.errors import ReplicaInputError
from replica.model.run_dir import RunInfo

ENGINE_DIR = "engine"
WRITER_VERSION = 1  # bump when what a GGUF file holds changes (tensor layout, tokenizer keys, stop tokens)
KINDS = {True: "replica", False: "base"}  # adapter on / off
TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model", "tokenizer_config.json", "special_tokens_map.json",
                   "vocab.json", "merges.txt", "added_tokens.json", "chat_template.jinja")
BASE_META_KEYS = ("base_model", "format", "role_tokens", "end_of_turn", "stop_strings", "max_length")


def run_gguf_paths(info: RunInfo, quant: str, sides: Sequence[bool] = (True,)) -> dict[bool, Path]:
    """The run's GGUF file for each side (True: adapter on, False: base), building the missing ones (one model load
    for all of them)."""
    folder = info.run_dir / ENGINE_DIR
    paths = {adapter: run_gguf_path(info, quant, adapter) for adapter in sides}
    if all(path.is_file() for path in paths.values()):
        return paths
    with _locked(folder):
        missing = [adapter for adapter, path in paths.items() if not path.is_file()]  # another process may have built them
        if missing:
            _in_child("run", str(info.run_dir), quant, *(KINDS[adapter] for adapter in missing))
    return paths


def run_gguf_path(info: RunInfo, quant: str, adapter: bool) -> Path:
    """Where the run's GGUF file of one side lives (named by its key)."""
    return info.run_dir / ENGINE_DIR / f"{KINDS[adapter]}-{_run_key(info, adapter, quant)}-{quant}.gguf"


def merged_gguf_path(model_dir: Path, quant: str) -> Path:
    """The GGUF file of a `replica merge` folder, built on first use (keyed by its files' names, sizes and times)."""
    folder = model_dir / ENGINE_DIR
    path = folder / f"replica-{_merged_key(model_dir, quant)}-{quant}.gguf"
    if path.is_file():
        return path
    with _locked(folder):
        if not path.is_file():
            _in_child("merged", str(model_dir), quant, str(path))
    return path


def _in_child(*args: str) -> None:
    """Build in a child process: the 16-bit model it loads is freed with it, and the process that generates never
    ran torch's kernels before llama.cpp's (a reply must not depend on whether this process built the file)."""
    import subprocess

    done = subprocess.run([sys.executable, "-m", __name__, *args], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    for line in lines:
        if line.startswith("replica: ") and done.returncode == 0:
            print(line, file=sys.stderr, flush=True)
    if done.returncode != 0:
        last = lines[-1] if lines else f"exit code {done.returncode}"
        if done.returncode == 2 and last.startswith("replica: error: "):
            raise ReplicaInputError(last.removeprefix("replica: error: "))
        raise RuntimeError(f"building the llama.cpp model failed: {last}")


def _main(argv: Sequence[str]) -> int:
    """`python -m replica.inference.gguf_cache run RUN QUANT replica|base ...` or `... merged DIR QUANT PATH`."""
    from replica.model.run_dir import inspect_run

    kind, folder, quant, *rest = argv
    try:
        if kind == "run":
            info = inspect_run(folder)
            adapters = [adapter for adapter, name in KINDS.items() if name in rest]
            _build_run(info, {adapter: Path(run_gguf_path(info, quant, adapter)) for adapter in adapters}, quant)
        else:
            _build_merged(Path(folder), Path(rest[0]), quant)
    except ReplicaInputError as err:
        print(f"replica: error: {err}", file=sys.stderr)
        return 2
    return 0


def _run_key(info: RunInfo, adapter: bool, quant: str) -> str:
    digest = hashlib.sha256(f"{WRITER_VERSION}:{quant}:{KINDS[adapter]}".encode())
    if adapter:
        files = sorted(p for p in info.adapter_dir.iterdir() if p.is_file())
    else:  # the base side depends on the base model and the run's tokenizer and format, not on the adapter
        files = [info.adapter_dir / name for name in TOKENIZER_FILES if (info.adapter_dir / name).is_file()]
        digest.update(repr([(key, info.meta.get(key)) for key in BASE_META_KEYS]).encode())
    for path in files:
        digest.update(path.name.encode() + b"\0")
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()[:16]


def _merged_key(model_dir: Path, quant: str) -> str:
    digest = hashlib.sha256(f"{WRITER_VERSION}:{quant}:merged".encode())
    for path in sorted(p for p in model_dir.iterdir() if p.is_file()):
        stat = path.stat()
        digest.update(f"{path.name}:{stat.st_size}:{stat.st_mtime_ns}\0".encode())
    return digest.hexdigest()[:16]


@contextmanager
def _locked(folder: Path) -> Iterator[None]:
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / ".lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _build_run(info: RunInfo, paths: dict[bool, Path], quant: str) -> None:
    from replica.gguf.gguf_file import write_live_gguf
    from replica.inference.loading import load_run, quiet_loading
    from replica.model.chat_template import chat_template

    started = time.perf_counter()
    print(f"replica: building the llama.cpp model of this run ({quant}; once per adapter)", file=sys.stderr, flush=True)
    with quiet_loading():
        model, formatter, _ = load_run(info.run_dir, device="cpu", quantized=False)
    template = chat_template(formatter) or formatter.tokenizer.chat_template
    for adapter, path in paths.items():
        write_live_gguf(model, formatter, path, quant, adapter=adapter, name=f"{info.run_dir.name}-{KINDS[adapter]}",
                        chat_template=template)
        _remove_stale(path)
    print(f"replica: built in {time.perf_counter() - started:.1f} s", file=sys.stderr, flush=True)


def _build_merged(model_dir: Path, path: Path, quant: str) -> None:
    from replica.gguf.gguf_file import write_gguf
    from replica.inference.loading import load_merged, quiet_loading
    from replica.model.chat_template import chat_template

    print(f"replica: building the llama.cpp model of this folder ({quant}; once)", file=sys.stderr, flush=True)
    with quiet_loading():
        model, formatter, _ = load_merged(model_dir)
    write_gguf(model, formatter, path, quant, name=model_dir.resolve().name,
               chat_template=chat_template(formatter) or formatter.tokenizer.chat_template)
    _remove_stale(path)


def _remove_stale(path: Path) -> None:
    """Delete the older files of the same kind and quant (a reader that has one open keeps it until it closes)."""
    kind, quant = path.name.split("-", 1)[0], path.name.rsplit("-", 1)[-1]
    for other in path.parent.glob(f"{kind}-*-{quant}"):
        if other != path:
            other.unlink(missing_ok=True)


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
