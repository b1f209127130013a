"""Generation on llama.cpp: the run's GGUF, many sequences decoded together in one context (continuous batching).

One worker thread owns the llama.cpp context. Jobs queue up; each free slot (a llama.cpp sequence) takes the oldest
waiting job, reusing the longest prefix of its prompt already in that slot's KV cache (a chat's next turn decodes
only the new turns). Every step decodes one batch holding each running row's last token and the next chunk of any
prompt being read, then samples every row that produced logits with its own llama.cpp sampler chain (its own seed,
temperature, top-k, top-p, repetition penalty). Rows stop by `rows.Row`'s rules, the same as on transformers, and a
finished row frees its slot at once for the next job. The prompt is the formatter's token ids, never re-tokenized.
"""

from __future__ import annotations

import collections
import ctypes
import itertools
import logging
import os
import threading
import time
from collections.abc import Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path

from replica.errors import ReplicaInputError
from replica.inference.generation import progress_bar
from replica.inference.jobs import Busy, GenerationFailed, Job, Outcome, Reply, Sampling
from replica.inference.rows import Row, StopRules

log = logging.getLogger(__name__)

PROMPT_CHUNK = 512  # prompt tokens decoded per step (llama.cpp's n_batch): long prompts are read in chunks
QUEUE_WINDOW = 64  # waiting jobs considered for a free slot (the rest wait their turn)
FAIR_WAIT_S = 0.5  # a job waiting this long starts next, whatever the others could reuse


@dataclass(eq=False)
class _Pending:
    job: Job
    prompt: list[int]
    future: Future
    group: int  # the submission it came with: one `generate` call's jobs, or one `submit`
    queued_at: float = field(default_factory=time.monotonic)


@dataclass(eq=False)
class _Slot:
    """One llama.cpp sequence: the tokens its KV cache holds and the row it is generating, if any."""

    seq: int
    cached: list[int] = field(default_factory=list)
    pending: _Pending | None = None
    row: Row | None = None
    sampler: int | None = None  # the llama_sampler pointer of the running row
    to_read: list[int] = field(default_factory=list)  # prompt tokens not yet decoded
    last: int | None = None  # the sampled token to feed next step
    peak: int = 1
    used_at: float = 0.0


_LOG_SINK: list = []  # keeps the ctypes callback alive for as long as llama.cpp may call it


def _quiet(lib) -> None:
    """Route llama.cpp's own log lines (load notices, context sizes) nowhere: failures surface as Replica errors."""
    if not _LOG_SINK:
        _LOG_SINK.append(lib.llama_log_callback(lambda level, text, data: None))
        lib.llama_log_set(_LOG_SINK[0], None)


def _penalties_sampler(lib):
    """llama.cpp's `llama_sampler_init_penalties(last_n, repeat, freq, present)`, declared as the library defines it
    (llama-cpp-python 0.3.x still declares an older signature with a leading n_vocab, which silently disables it)."""
    function = lib.llama_cpp._lib.llama_sampler_init_penalties
    function.argtypes = [ctypes.c_int32, ctypes.c_float, ctypes.c_float, ctypes.c_float]
    function.restype = lib.llama_cpp.llama_sampler_p_ctypes
    return function


def threads() -> int:
    """CPU threads for llama.cpp: the cores this process may use."""
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1))


class LlamaCppEngine:
    """The GGUF at `path` with `formatter` (the run's prompts and stop rules), `slots` sequences at once, each with
    room for `context` tokens (prompt and reply)."""

    name = "llama_cpp"

    def __init__(self, path: str | Path, formatter, *, slots: int = 8, context: int = 1024, window_s: float = 0.0,
                 queue_size: int | None = None) -> None:
        import llama_cpp

        _quiet(llama_cpp)
        self.formatter = formatter
        self.slots_count = slots
        self.context = context
        self.window_s = window_s
        self.queue_size = queue_size
        self.rules = StopRules.of(formatter)
        self._lib = llama_cpp
        llama_cpp.llama_backend_init()
        model_params = llama_cpp.llama_model_default_params()
        self._model = llama_cpp.llama_model_load_from_file(str(path).encode(), model_params)
        if not self._model:
            raise ReplicaInputError("llama.cpp could not load this GGUF file (damaged? delete it to rebuild)", path=str(path))
        params = llama_cpp.llama_context_default_params()
        params.n_ctx = slots * context
        params.n_batch = max(PROMPT_CHUNK, slots)
        params.n_ubatch = params.n_batch
        params.n_seq_max = slots
        params.kv_unified = False  # each sequence its own cells: a reply never depends on what else is generating
        params.n_threads = params.n_threads_batch = threads()
        params.no_perf = True
        self._ctx = llama_cpp.llama_init_from_model(self._model, params)
        if not self._ctx:
            llama_cpp.llama_model_free(self._model)
            raise ReplicaInputError(f"llama.cpp could not create a context of {slots} x {context} tokens (memory?)", path=str(path))
        self._memory = llama_cpp.llama_get_memory(self._ctx)
        self._batch = llama_cpp.llama_batch_init(params.n_batch, 0, 1)
        self._batch_capacity = params.n_batch
        self._slots = [_Slot(seq) for seq in range(slots)]
        self.prompt_tokens_read = 0  # prompt tokens decoded so far (a cached prefix is not read again)
        self._queue: collections.deque[_Pending] = collections.deque()
        self._groups = itertools.count()
        self._lock = threading.Condition()
        self._closed = False
        self._thread = threading.Thread(target=self._loop, name="replica-llama-cpp", daemon=True)
        self._thread.start()

    # ---- the callers' side ----------------------------------------------------------------------------
    def submit(self, job: Job) -> Future:
        """Queue `job`; its future resolves to an Outcome. Raises Busy when the waiting queue is full."""
        return self._submit(job, self.prompt_ids(job), next(self._groups))

    def prompt_ids(self, job: Job) -> list[int]:
        return self.formatter.prompt_ids(job.context, job.relationship, job.group)

    def _submit(self, job: Job, prompt: list[int], group: int) -> Future:
        pending = _Pending(job, prompt, Future(), group)
        if len(prompt) + job.sampling.max_new_tokens > self.context:
            pending.future.set_exception(GenerationFailed(
                f"the prompt ({len(prompt)} tokens) and max_tokens ({job.sampling.max_new_tokens}) exceed the "
                f"engine's {self.context} tokens per conversation"))
            return pending.future
        with self._lock:
            if self._closed:
                raise RuntimeError("the llama.cpp engine is closed")
            free = sum(slot.pending is None for slot in self._slots)
            if self.queue_size is not None and len(self._queue) >= self.queue_size + free:
                raise Busy
            self._queue.append(pending)
            self._lock.notify()
        return pending.future

    def generate(self, jobs: Sequence[Job], *, batch_size: int = 16, progress: bool = False) -> list[Reply]:
        """One reply per job, in order. All jobs are queued at once, as one submission, jobs with the same prompt
        next to each other: a slot that read a prompt takes its next job with that prompt and reads it once."""
        bar = progress_bar(len(jobs), progress)
        prompts = [self.prompt_ids(job) for job in jobs]
        first_seen: dict[tuple[int, ...], int] = {}
        order = sorted(range(len(jobs)), key=lambda index: first_seen.setdefault(tuple(prompts[index]), index))
        group = next(self._groups)
        futures = {index: self._submit(jobs[index], prompts[index], group) for index in order}
        replies = []
        for index in range(len(jobs)):
            replies.append(futures[index].result().reply)
            if bar is not None:
                bar.update(1)
        if bar is not None:
            bar.close()
        return replies

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._lock.notify_all()
        self._thread.join()
        for slot in self._slots:
            self._drop_sampler(slot)
        lib = self._lib
        lib.llama_batch_free(self._batch)
        lib.llama_free(self._ctx)
        lib.llama_model_free(self._model)

    # ---- the worker thread ----------------------------------------------------------------------------
    def _loop(self) -> None:
        while True:
            with self._lock:
                while not self._closed and not self._queue and not self._running():
                    self._lock.wait()
                if self._closed:
                    self._fail_all(RuntimeError("closed"))
                    return
            if not self._running() and self.window_s > 0:
                self._gather()
            self._admit()
            if not self._running():
                continue
            try:
                self._step()
            except Exception as err:  # noqa: BLE001 - a failed step fails its rows, never the engine
                log.error("llama.cpp generation failed (%s)", type(err).__name__)
                self._fail_running(err)

    def _running(self) -> list[_Slot]:
        return [slot for slot in self._slots if slot.pending is not None]

    def _gather(self) -> None:
        """Nothing is generating: wait up to the batch window for more jobs (at most one per slot)."""
        deadline = time.monotonic() + self.window_s
        with self._lock:
            while len(self._queue) < len(self._slots) and (left := deadline - time.monotonic()) > 0:
                self._lock.wait(left)

    def _admit(self) -> None:
        """Give waiting jobs the free slots (see `_pick`)."""
        while True:
            free = [slot for slot in self._slots if slot.pending is None]
            with self._lock:
                if not free or not self._queue:
                    return
                pending, slot = self._pick(free)
            job = pending.job
            if job.cancelled is not None and job.cancelled():
                pending.future.cancel()
                continue
            if not pending.future.set_running_or_notify_cancel():
                continue
            try:
                self._start(slot, pending)
            except Exception as err:  # noqa: BLE001 - a job that cannot start fails alone
                log.error("llama.cpp could not start a reply (%s)", type(err).__name__)
                self._release(slot)
                slot.cached = []
                pending.future.set_exception(GenerationFailed(f"the reply could not be generated ({type(err).__name__})"))

    def _pick(self, free: list[_Slot]) -> tuple[_Pending, _Slot]:
        """The next (job, slot) to start, taken off the queue: among the first waiting jobs, the pair whose prompt
        shares the longest prefix with the slot's cache, preferring a job whose prompt is not being read by a
        running row (it can wait to reuse that row's cache: several samples of one context read it once). Once the
        oldest job has waited FAIR_WAIT_S, its submission goes first, so no request waits behind others for long
        (the jobs of one `generate` call are one submission: they keep choosing among themselves)."""
        head = self._queue[0]
        window = list(itertools.islice(self._queue, QUEUE_WINDOW))
        if time.monotonic() - head.queued_at >= FAIR_WAIT_S:
            window = [pending for pending in window if pending.group == head.group]
        running = {tuple(slot.pending.prompt) for slot in self._slots if slot.pending is not None}

        def score(choice: tuple[_Pending, _Slot]) -> tuple:
            pending, slot = choice
            shared = _shared(slot.cached, pending.prompt)
            return (shared, tuple(pending.prompt) not in running, -pending.queued_at, -slot.used_at)

        pending, slot = max(((pending, slot) for pending in window for slot in free), key=score)
        self._queue.remove(pending)
        return pending, slot

    def _start(self, slot: _Slot, pending: _Pending) -> None:
        prompt = pending.prompt
        keep = min(_shared(slot.cached, prompt), len(prompt) - 1)  # the last prompt token is read again for its logits
        self._lib.llama_memory_seq_rm(self._memory, slot.seq, keep, -1)
        slot.cached = slot.cached[:keep]
        slot.to_read = list(prompt[keep:])
        slot.pending = pending
        slot.row = Row(self.rules, pending.job, len(prompt))
        slot.sampler = self._sampler(pending.job.sampling, prompt)
        slot.last = None
        slot.peak = len(self._running())
        slot.used_at = time.monotonic()

    def _sampler(self, sampling: Sampling, prompt: Sequence[int]) -> int:
        """A llama.cpp sampler chain for one row: penalty, then temperature, top-k, top-p and a seeded draw, in the
        order the transformers engine applies them; greedy when the row does not sample."""
        lib = self._lib
        chain = lib.llama_sampler_chain_init(lib.llama_sampler_chain_default_params())
        if sampling.repetition_penalty != 1.0:
            penalties = _penalties_sampler(lib)(self.context, sampling.repetition_penalty, 0.0, 0.0)
            lib.llama_sampler_chain_add(chain, penalties)
        if not sampling.do_sample:
            lib.llama_sampler_chain_add(chain, lib.llama_sampler_init_greedy())
        else:
            lib.llama_sampler_chain_add(chain, lib.llama_sampler_init_temp(sampling.temperature))
            if sampling.top_k > 0:
                lib.llama_sampler_chain_add(chain, lib.llama_sampler_init_top_k(sampling.top_k))
            if sampling.top_p < 1.0:
                lib.llama_sampler_chain_add(chain, lib.llama_sampler_init_top_p(sampling.top_p, 1))
            lib.llama_sampler_chain_add(chain, lib.llama_sampler_init_dist(int(sampling.seed) % 2**32))
        if sampling.repetition_penalty != 1.0:
            for token in prompt:  # the penalty counts the prompt's tokens too, as transformers does
                lib.llama_sampler_accept(chain, token)
        return chain

    def _step(self) -> None:
        """Decode one batch: every running row's last token, then prompt chunks while there is room."""
        lib, batch = self._lib, self._batch
        running = self._running()
        for slot in running:
            if slot.to_read and slot.row.cancelled():  # a row still reading its prompt (a generating row polls per token)
                slot.row.cancel()
        wanted: list[tuple[_Slot, int]] = []  # (slot, batch index) of the rows whose logits are sampled
        count = 0
        for slot in running:
            if slot.row.done or slot.last is None:
                continue
            count = self._put(slot, [slot.last], count, logits_last=True)
            wanted.append((slot, count - 1))
            slot.last = None
        for slot in running:
            if slot.row.done or not slot.to_read or count >= self._batch_capacity:
                continue
            chunk = slot.to_read[: self._batch_capacity - count]
            slot.to_read = slot.to_read[len(chunk):]
            self.prompt_tokens_read += len(chunk)
            count = self._put(slot, chunk, count, logits_last=not slot.to_read)
            if not slot.to_read:
                wanted.append((slot, count - 1))
        if count:
            batch.n_tokens = count
            status = lib.llama_decode(self._ctx, batch)
            if status != 0:
                raise RuntimeError(f"llama_decode returned {status}")
        busy = len(running)
        for slot, index in wanted:
            token = lib.llama_sampler_sample(slot.sampler, self._ctx, index)
            slot.peak = max(slot.peak, busy)
            if not slot.row.advance(token):
                slot.last = token
        for slot in running:
            if slot.row.done:
                self._finish(slot)

    def _put(self, slot: _Slot, tokens: Sequence[int], count: int, *, logits_last: bool) -> int:
        batch = self._batch
        position = len(slot.cached)
        for offset, token in enumerate(tokens):
            index = count + offset
            batch.token[index] = token
            batch.pos[index] = position + offset
            batch.n_seq_id[index] = 1
            batch.seq_id[index][0] = slot.seq
            batch.logits[index] = 1 if logits_last and offset == len(tokens) - 1 else 0
        slot.cached.extend(tokens)
        return count + len(tokens)

    def _finish(self, slot: _Slot) -> None:
        pending, row = slot.pending, slot.row
        self._release(slot)
        pending.future.set_result(Outcome(row.reply(), slot.peak))

    def _release(self, slot: _Slot) -> None:
        """Free the slot for the next job (its cache stays for a prompt that shares its prefix)."""
        self._drop_sampler(slot)
        slot.pending, slot.row, slot.last, slot.to_read = None, None, None, []
        slot.used_at = time.monotonic()

    def _drop_sampler(self, slot: _Slot) -> None:
        if slot.sampler is not None:
            self._lib.llama_sampler_free(slot.sampler)
            slot.sampler = None

    def _fail_running(self, err: Exception) -> None:
        """A failed decode: its rows fail, the KV cache is cleared (its state is unknown), waiting jobs go on."""
        self._lib.llama_memory_clear(self._memory, True)
        for slot in self._slots:
            slot.cached = []
            if slot.pending is not None:
                pending = slot.pending
                self._release(slot)
                pending.future.set_exception(GenerationFailed(f"the reply could not be generated ({type(err).__name__})"))

    def _fail_all(self, err: Exception) -> None:
        self._fail_running(err)
        while self._queue:
            self._queue.popleft().future.cancel()


def _shared(cached: Sequence[int], prompt: Sequence[int]) -> int:
    """How many leading tokens `cached` and `prompt` share."""
    count = 0
    for a, b in zip(cached, prompt):
        if a != b:
            break
        count += 1
    return count
