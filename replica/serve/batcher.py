"""Requests that arrive within a short window share one batched `generate`, run on one worker thread.

A request's failure is its own: when a batch fails, its jobs are retried one at a time, so only the job that
caused the error fails (a streaming job that already sent text is not retried: it fails with the batch).
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, replace

from replica.inference.jobs import Busy, GenerationFailed, Job, Outcome, Reply

log = logging.getLogger(__name__)


@dataclass(eq=False)
class _Pending:
    job: Job
    future: Future
    streamed: bool = False  # some text already went to the client

    def tracked(self) -> Job:
        """The job with its streaming hook noting that text went out (such a job cannot be retried)."""
        if self.job.on_text is None:
            return self.job
        forward = self.job.on_text

        def on_text(piece: str) -> None:
            self.streamed = True
            forward(piece)

        return replace(self.job, on_text=on_text)


class Batcher:
    """A bounded queue of jobs in front of one generation thread.

    The thread takes the oldest job, waits up to `window_s` for more (at most `max_batch` in all), drops the
    ones already cancelled, generates the rest together and resolves each job's future with its Outcome. At most
    `queue_size` jobs wait behind a generating batch; more raise Busy.
    """

    def __init__(self, generate: Callable[[Sequence[Job]], list[Reply]], *, max_batch: int, window_s: float, queue_size: int) -> None:
        self.generate = generate
        self.max_batch = max_batch
        self.window_s = window_s
        self.queue_size = queue_size
        self._queue: queue.Queue[_Pending] = queue.Queue()
        self._admission = threading.Lock()
        self._waiting = 0  # admitted jobs not yet in a generating batch (the forming one included)
        self._generating = False
        self._thread = threading.Thread(target=self._loop, name="replica-generate", daemon=True)
        self._thread.start()

    def submit(self, job: Job) -> Future:
        """Queue `job`; its future resolves to an Outcome. Raises Busy when the queue is full."""
        pending = _Pending(job, Future())
        with self._admission:
            # While no batch generates, the batch being formed takes up to max_batch jobs beyond the queue, however
            # fast they arrive (the generation thread may not have woken to take the first yet).
            if self._waiting >= self.queue_size + (0 if self._generating else self.max_batch):
                raise Busy
            self._waiting += 1
        self._queue.put(pending)
        return pending.future

    def _collect(self) -> list[_Pending]:
        batch = [self._queue.get()]
        deadline = time.monotonic() + self.window_s
        while len(batch) < self.max_batch:
            try:
                batch.append(self._queue.get(timeout=max(0.0, deadline - time.monotonic())))
            except queue.Empty:
                break
        return batch

    def _loop(self) -> None:
        while True:
            batch = self._collect()
            with self._admission:
                self._waiting -= len(batch)
                self._generating = True
            live = [p for p in batch if not (p.job.cancelled and p.job.cancelled())]
            for pending in batch:
                if pending not in live:
                    pending.future.cancel()
            try:
                if live:
                    self._run(live)
            finally:
                with self._admission:
                    self._generating = False

    def _run(self, batch: list[_Pending]) -> None:
        try:
            replies = self.generate([p.tracked() for p in batch])
        except Exception as err:  # noqa: BLE001 - one failed batch must not stop the server or fail its neighbours
            if len(batch) == 1:
                _fail(batch[0], err)
                return
            log.warning("generation failed for a batch of %d (%s): retrying its requests one at a time", len(batch), type(err).__name__)
            for pending in batch:
                if pending.streamed:
                    _fail(pending, err)
                elif not (pending.job.cancelled and pending.job.cancelled()):
                    self._run([pending])
                else:
                    pending.future.cancel()
            return
        for pending, reply in zip(batch, replies):
            pending.future.set_result(Outcome(reply, len(batch)))


def _fail(pending: _Pending, err: Exception) -> None:
    log.error("generation failed for one request (%s)", type(err).__name__)  # the type only: no text, no traceback
    pending.future.set_exception(GenerationFailed(f"the reply could not be generated ({type(err).__name__})"))
