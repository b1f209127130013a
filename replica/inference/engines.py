"""Which engine generates, and opening it for a run or a merged folder (`generation.engine`, `--engine`).

`auto` is llama.cpp on a CPU (the run's own GGUF, built once into the run folder) and transformers on a GPU. On a
CPU without llama-cpp-python installed, `auto` says once what that costs and uses transformers.
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Sequence
from pathlib import Path

from replica.errors import ReplicaInputError
from replica.settings import ENGINES

AUTO, TRANSFORMERS, LLAMA_CPP = ENGINES
INSTALL_HINT = ('pip install llama-cpp-python (build line in the README: CMAKE_ARGS="-DGGML_NATIVE=OFF -DGGML_AVX2=ON '
                '-DGGML_FMA=ON -DGGML_F16C=ON")')


def llama_cpp_installed() -> bool:
    return importlib.util.find_spec("llama_cpp") is not None


def choose_engine(requested: str | None, device: str, *, option: str = "generation.engine") -> str:
    """`transformers` or `llama_cpp` for `requested` (auto/None, or a name) on `device`; one clear error when
    llama.cpp is asked for but not installed."""
    requested = requested or AUTO
    if requested not in ENGINES:
        raise ReplicaInputError(f"{_given(option)}{requested}: unknown engine; use one of {', '.join(ENGINES)}")
    if requested == TRANSFORMERS:
        return TRANSFORMERS
    if requested == LLAMA_CPP:
        if not llama_cpp_installed():
            raise ReplicaInputError(f"{_given(option)}llama_cpp: llama.cpp is not installed; {INSTALL_HINT}")
        return LLAMA_CPP
    if device.startswith("cuda"):
        return TRANSFORMERS
    if not llama_cpp_installed():
        print(f"replica: generating with transformers on the CPU, several times slower than llama.cpp; for its speed: "
              f"{INSTALL_HINT}", file=sys.stderr, flush=True)
        return TRANSFORMERS
    return LLAMA_CPP


def is_auto(requested: str | None) -> bool:
    """Whether the engine was left to `auto` (then a run llama.cpp cannot take falls back to transformers)."""
    return requested in (None, AUTO)


def explain_fallback(err: Exception) -> None:
    print(f"replica: llama.cpp cannot run this model ({err}); generating with transformers", file=sys.stderr, flush=True)


def _built_or_none(build, fallback: bool):
    """What `build` returns (the GGUF file or files); None, said in one line, when llama.cpp cannot take the model
    and `fallback` allows transformers instead."""
    try:
        return build()
    except ReplicaInputError as err:
        if not fallback:
            raise
        explain_fallback(err)
        return None


def _given(option: str) -> str:
    return f"{option} " if option.startswith("--") else f"{option}="


def slot_context(formatter, max_new_tokens: int) -> int:
    """Tokens one llama.cpp sequence needs: the longest prompt the formatter builds plus the reply."""
    return formatter.max_length + max_new_tokens


def open_llama_cpp(path: Path, formatter, *, slots: int, max_new_tokens: int, window_s: float = 0.0,
                   queue_size: int | None = None):
    from replica.inference.llama_cpp_engine import LlamaCppEngine

    return LlamaCppEngine(path, formatter, slots=slots, context=slot_context(formatter, max_new_tokens),
                          window_s=window_s, queue_size=queue_size)


def open_run_engines(info, *, engine: str, quant: str, sides: Sequence[bool], slots: int, max_new_tokens: int,
                     model=None, formatter=None, device: str = "cpu", window_s: float = 0.0,
                     queue_size: int | None = None, fallback: bool = False) -> dict[bool, object]:
    """An engine per side of a run (True: adapter on, False: the base model). The transformers engine uses `model`
    (loaded here when not given); llama.cpp uses the run's GGUF files (built here when missing). With `fallback`
    (the engine was `auto`'s choice), a run llama.cpp cannot take (an architecture or tokenizer GGUF export does
    not support) generates with transformers, said in one line."""
    from replica.inference.loading import load_run, quiet_loading, run_formatter

    if engine == LLAMA_CPP:
        from replica.inference.gguf_cache import run_gguf_paths

        paths = _built_or_none(lambda: run_gguf_paths(info, quant, sides), fallback)
        engine = LLAMA_CPP if paths is not None else TRANSFORMERS
    if engine == TRANSFORMERS:
        from replica.inference.transformers_engine import TransformersEngine

        if model is None:
            with quiet_loading():
                model, formatter, _ = load_run(info.run_dir, device=device)
        return {adapter: TransformersEngine(model, formatter, adapter=adapter) for adapter in sides}
    formatter = formatter or run_formatter(info)
    return {adapter: open_llama_cpp(paths[adapter], formatter, slots=slots, max_new_tokens=max_new_tokens,
                                    window_s=window_s, queue_size=queue_size)
            for adapter in sides}


def open_merged_engine(model_dir: Path, *, engine: str, quant: str, slots: int, max_new_tokens: int, device: str = "cpu",
                       window_s: float = 0.0, queue_size: int | None = None, fallback: bool = False):
    """(engine, replica.json) of a `replica merge` folder."""
    from replica.inference.loading import load_merged, merged_formatter, quiet_loading

    if engine == LLAMA_CPP:
        from replica.inference.gguf_cache import merged_gguf_path

        path = _built_or_none(lambda: merged_gguf_path(model_dir, quant), fallback)
        engine = LLAMA_CPP if path is not None else TRANSFORMERS
    if engine == TRANSFORMERS:
        from replica.inference.transformers_engine import TransformersEngine

        with quiet_loading():
            model, formatter, meta = load_merged(model_dir, device=device)
        return TransformersEngine(model, formatter), meta
    formatter, meta = merged_formatter(model_dir)
    return open_llama_cpp(path, formatter, slots=slots, max_new_tokens=max_new_tokens, window_s=window_s,
                          queue_size=queue_size), meta
