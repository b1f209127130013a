"""Requests that arrive within a short window share one batched `generate`, run on one worker thread."""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass

from replica.inference.generation import Job, Reply

log = logging.getLogger(__name__)


class Busy(Exception):
    """The waiting queue is full: the client should retry later."""


@dataclass(eq=False)
class _Pending:
    job: Job
    future: Future


class Batcher:
    """A bounded queue of jobs in front of one generation thread.

    The thread takes the oldest job, waits up to `window_s` for more (at most `max_batch` in all), drops the
    ones already cancelled, generates the rest together and resolves each job's future with its Reply.
    """

    def __init__(self, generate: Callable[[Sequence[Job]], list[Reply]], *, max_batch: int, window_s: float, queue_size: int) -> None:
        self.generate = generate
        self.max_batch = max_batch
        self.window_s = window_s
        self._queue: queue.Queue[_Pending] = queue.Queue(maxsize=queue_size)
        self._thread = threading.Thread(target=self._loop, name="replica-generate", daemon=True)
        self._thread.start()

    def submit(self, job: Job) -> Future:
        """Queue `job`; its future resolves to a Reply. Raises Busy when the queue is full."""
        pending = _Pending(job, Future())
        try:
            self._queue.put_nowait(pending)
        except queue.Full:
            raise Busy from None
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
            live = [p for p in batch if not (p.job.cancelled and p.job.cancelled())]
            for pending in batch:
                if pending not in live:
                    pending.future.cancel()
            if not live:
                continue
            try:
                replies = self.generate([p.job for p in live])
            except Exception as err:  # one failed batch must not stop the server
                log.error("generation failed: %s", type(err).__name__)
                for pending in live:
                    pending.future.set_exception(err)
                continue
            for pending, reply in zip(live, replies):
                pending.future.set_result(reply)
