"""The server's admission rule: a burst from idle fills the forming batch whatever the thread's wake-up latency, and
at most `queue_size` jobs wait behind a generating batch."""

from __future__ import annotations

import threading

import pytest

from replica.inference.jobs import Busy, Job, Reply
from replica.serve.batcher import Batcher


class HeldGeneration:
    """A generate function that records each batch and holds it until released."""

    def __init__(self) -> None:
        self.started = threading.Event()
        self.release = threading.Event()
        self.batches: list[int] = []

    def __call__(self, jobs) -> list[Reply]:
        self.batches.append(len(jobs))
        self.started.set()
        assert self.release.wait(30), "the test never released the batch"
        return [Reply(text=job.context[-1]["text"], raw="", token_ids=[1], clean_stop=True) for job in jobs]


def job(text: str) -> Job:
    return Job(context=[{"role": "them", "text": text}])


def test_burst_from_idle_fills_the_batch_then_the_queue_then_refuses():
    generation = HeldGeneration()
    batcher = Batcher(generation, max_batch=3, window_s=0.5, queue_size=2)
    burst = [batcher.submit(job(f"b{i}")) for i in range(3)]  # faster than the thread can take the first
    assert generation.started.wait(10)
    waiting = [batcher.submit(job(f"q{i}")) for i in range(2)]
    with pytest.raises(Busy):
        batcher.submit(job("refused"))
    generation.release.set()
    outcomes = [future.result(timeout=30) for future in burst + waiting]
    assert [o.reply.text for o in outcomes] == ["b0", "b1", "b2", "q0", "q1"]
    assert [o.batch_size for o in outcomes] == [3, 3, 3, 2, 2]
    assert generation.batches == [3, 2]


def test_a_burst_larger_than_batch_and_queue_is_refused_beyond_both():
    generation = HeldGeneration()
    batcher = Batcher(generation, max_batch=2, window_s=0.5, queue_size=1)
    admitted = [batcher.submit(job(f"a{i}")) for i in range(3)]
    with pytest.raises(Busy):
        batcher.submit(job("refused"))
    generation.release.set()
    assert [f.result(timeout=30).reply.text for f in admitted] == ["a0", "a1", "a2"]
