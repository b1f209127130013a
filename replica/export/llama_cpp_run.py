"""Run an exported GGUF file in llama.cpp (llama-cpp-python): replies that end where llama.cpp ends generation."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from replica.inference.stops import StopCheck


@dataclass(frozen=True)
class LlamaCppReply:
    token_ids: list[int]  # generated ids, the end-of-generation token included when llama.cpp stopped on one
    text: str  # their decoding, special tokens shown
    ended_by_eog: bool  # llama.cpp's own end-of-generation test stopped it before the token limit
    seconds: float


def load_gguf(path: str | Path, *, n_ctx: int = 1024, seed: int = 0, threads: int = 1, logits_all: bool = False):
    """A llama.cpp model for `path` (CPU, quiet)."""
    from llama_cpp import Llama

    return Llama(model_path=str(path), n_ctx=n_ctx, seed=seed, n_threads=threads, n_threads_batch=threads,
                 logits_all=logits_all, verbose=False)


def is_end_of_generation(llm, token: int) -> bool:
    """Whether llama.cpp itself ends generation at `token` (its EOG set: eos, eot and the like)."""
    import llama_cpp

    return bool(llama_cpp.llama_vocab_is_eog(llama_cpp.llama_model_get_vocab(llm.model), token))


def generate(llm, prompt_ids: Sequence[int], sampling, seed: int) -> LlamaCppReply:
    """One reply to `prompt_ids` with Replica's sampling settings; stops only where llama.cpp says generation ends."""
    llm.set_seed(seed)
    started = time.perf_counter()
    ids: list[int] = []
    ended = False
    stream = llm.generate(
        list(prompt_ids), temp=sampling.temperature if sampling.do_sample else 0.0, top_p=sampling.top_p,
        top_k=sampling.top_k, min_p=0.0, repeat_penalty=sampling.repetition_penalty, reset=True,
    )
    for token in stream:
        ids.append(int(token))
        if is_end_of_generation(llm, token):
            ended = True
            break
        if len(ids) >= sampling.max_new_tokens:
            break
    text = llm.detokenize(ids, special=True).decode("utf-8", errors="replace")
    return LlamaCppReply(ids, text, ended, time.perf_counter() - started)


def clean_stop_rate(llm, formatter, contexts: Sequence[Sequence[dict]], sampling) -> tuple[float, list[LlamaCppReply]]:
    """Replica's clean-stop rate (StopCheck) over llama.cpp replies that llama.cpp itself ended; context i samples
    with seed + i, as `generate_replies` does."""
    check = StopCheck.build(formatter.stop_token_ids, formatter.stop_strings)
    label = formatter.addressee(None)  # a labelled run answers its most common label, as the Modelfile's SYSTEM says
    replies = [generate(llm, formatter.prompt_ids(context, label), sampling, sampling.seed + i)
               for i, context in enumerate(contexts)]
    clean = [r.ended_by_eog and check.is_clean_stop(r.token_ids, r.text, sampling.max_new_tokens) for r in replies]
    return sum(clean) / max(1, len(replies)), replies
