"""Dynamic batching, with an engine that records its batches and can be held busy."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from xstilts.serve.core.batcher import Batcher, BatcherClosed, BatchLimits, QueueFull, padding_share
from xstilts.serve.core.encoder import EncodedItem
from xstilts.serve.settings import Settings


class RecordingEngine:
    """Logits that identify each sequence ([first id, length] per item, or each choice's first id).

    ``hold`` keeps the engine busy inside its first batch until the test releases it.
    """

    def __init__(self, multiple_choice: bool = False, hold: bool = False, fail_on: int | None = None) -> None:
        self.multiple_choice = multiple_choice
        self.batches: list[tuple[int, int, list[list[int]]]] = []
        self.entered = threading.Event()
        self.release = threading.Event()
        if not hold:
            self.release.set()
        self.fail_on = fail_on

    def infer(self, sequences: Sequence[Sequence[int]], items: int, choices: int = 1) -> np.ndarray:
        self.batches.append((items, choices, [list(s) for s in sequences]))
        self.entered.set()
        self.release.wait(10)
        if self.fail_on is not None and any(s[0] == self.fail_on for s in sequences):
            raise RuntimeError("broken batch")
        if self.multiple_choice:
            return np.array([[float(s[0]) for s in sequences[i * choices : (i + 1) * choices]] for i in range(items)])
        return np.array([[float(s[0]), float(len(s))] for s in sequences])

    @property
    def sizes(self) -> list[int]:
        return [items for items, _, _ in self.batches]


def limits(**changes) -> BatchLimits:
    """The server's default limits as on a GPU (any padding), with ``changes``."""
    return replace(BatchLimits.from_settings(Settings(repository=Path(".")), gpu=True), **changes)


def test_the_limits_are_the_settings() -> None:
    settings = Settings(repository=Path("."), max_batch_size=16, max_queue_delay_ms=4, max_padding="auto")
    cpu = BatchLimits.from_settings(settings, gpu=False)
    assert (cpu.max_batch_size, cpu.max_queue_delay, cpu.max_padding) == (16, 0.004, 0.2)
    assert (cpu.max_batch_tokens, cpu.max_queue_size) == (settings.max_batch_tokens, settings.max_queue_size)
    assert BatchLimits.from_settings(settings, gpu=True).max_padding == 1.0
    assert BatchLimits.from_settings(settings, gpu=True, max_batch=4).max_batch_size == 4  # a TensorRT profile's cap
    assert BatchLimits.from_settings(settings, gpu=True, max_batch=64).max_batch_size == 16


def item(first: int, length: int = 4) -> EncodedItem:
    return EncodedItem([[first] * length], truncated=False)


def choice_item(*firsts: int) -> EncodedItem:
    return EncodedItem([[f, 9, 9] for f in firsts], truncated=False)


async def wait_until(condition, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.001)


def run(coroutine):
    return asyncio.run(asyncio.wait_for(coroutine, 60))


def test_an_idle_engine_runs_a_request_at_once() -> None:
    async def main() -> float:
        batcher = Batcher(RecordingEngine(), "m", limits(max_queue_delay=120.0))
        batcher.start()
        started = time.perf_counter()
        (logits,) = await batcher.submit([item(7)])
        elapsed = time.perf_counter() - started
        await batcher.close()
        assert logits.tolist() == [7.0, 4.0]
        return elapsed

    assert run(main()) < 30.0  # far below the 120 s queue delay: no waiting to fill a batch


def test_requests_arriving_while_busy_leave_as_one_batch() -> None:
    async def main() -> None:
        engine = RecordingEngine(hold=True)
        batcher = Batcher(engine, "m", limits(max_batch_size=32, max_queue_delay=0.0))
        batcher.start()
        first = asyncio.create_task(batcher.submit([item(1)]))
        await wait_until(engine.entered.is_set)
        rest = [asyncio.create_task(batcher.submit([item(i)])) for i in range(2, 7)]
        await wait_until(lambda: batcher.queued_items == 5)
        engine.release.set()
        results = await asyncio.gather(first, *rest)
        assert [r[0][0] for r in results] == [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]  # each answer is its own
        assert engine.sizes == [1, 5]
        await batcher.close()

    run(main())


def test_batches_respect_the_size_and_token_limits() -> None:
    async def main() -> None:
        engine = RecordingEngine(hold=True)
        batcher = Batcher(engine, "m", limits(max_batch_size=4, max_batch_tokens=30, max_queue_delay=0.0))
        batcher.start()
        first = asyncio.create_task(batcher.submit([item(0)]))
        await wait_until(engine.entered.is_set)
        short = [asyncio.create_task(batcher.submit([item(i, 5)])) for i in range(1, 7)]  # 4 fit by size
        long = asyncio.create_task(batcher.submit([item(50, 10), item(51, 10), item(52, 40)]))  # 2 by tokens
        await wait_until(lambda: batcher.queued_items == 9)
        engine.release.set()
        await asyncio.gather(first, *short, long)
        # [0] | 4 short (4x5=20) | 2 short + 1 long would be 3x10=30 ok, then 4x10 > 30 | 1 long | the 40-token
        # item alone, beyond the budget but never refused
        assert engine.sizes == [1, 4, 3, 1, 1]
        for items, choices, sequences in engine.batches:
            assert items == 1 or items * choices * max(len(s) for s in sequences) <= 30
        await batcher.close()

    run(main())


def test_a_large_request_is_split_and_reassembled_in_order() -> None:
    async def main() -> None:
        engine = RecordingEngine()
        batcher = Batcher(engine, "m", limits(max_batch_size=3))
        batcher.start()
        logits = await batcher.submit([item(i) for i in range(10)])
        assert [row[0] for row in logits] == list(range(10))
        assert engine.sizes == [3, 3, 3, 1]
        await batcher.close()

    run(main())


def test_a_full_queue_refuses_at_once_and_recovers() -> None:
    async def main() -> None:
        engine = RecordingEngine(hold=True)
        batcher = Batcher(engine, "m", limits(max_queue_size=4, max_queue_delay=0.0))
        batcher.start()
        running = asyncio.create_task(batcher.submit([item(0)]))
        await wait_until(engine.entered.is_set)
        queued = asyncio.create_task(batcher.submit([item(1), item(2), item(3)]))
        await wait_until(lambda: batcher.queued_items == 3)
        with pytest.raises(QueueFull) as refused:
            await batcher.submit([item(4), item(5)])
        assert refused.value.retry_after >= 1
        fits = asyncio.create_task(batcher.submit([item(6)]))  # 3 + 1 <= 4
        await wait_until(lambda: batcher.queued_items == 4)
        engine.release.set()
        await asyncio.gather(running, queued, fits)
        assert batcher.queued_items == 0
        await batcher.submit([item(7), item(8), item(9), item(10)])
        await batcher.close()

    run(main())


def test_a_failing_batch_fails_only_its_requests() -> None:
    async def main() -> None:
        engine = RecordingEngine(fail_on=13)
        batcher = Batcher(engine, "m", limits())
        batcher.start()
        with pytest.raises(RuntimeError, match="broken batch"):
            await batcher.submit([item(13)])
        (logits,) = await batcher.submit([item(14)])
        assert logits[0] == 14.0
        await batcher.close()

    run(main())


def test_cancelled_requests_are_dropped_from_the_queue() -> None:
    async def main() -> None:
        engine = RecordingEngine(hold=True)
        batcher = Batcher(engine, "m", limits(max_queue_delay=0.0))
        batcher.start()
        running = asyncio.create_task(batcher.submit([item(0)]))
        await wait_until(engine.entered.is_set)
        gone = asyncio.create_task(batcher.submit([item(1), item(2)]))
        kept = asyncio.create_task(batcher.submit([item(3)]))
        await wait_until(lambda: batcher.queued_items == 3)
        gone.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await gone
        engine.release.set()
        await asyncio.gather(running, kept)
        assert [s[0] for s in engine.batches[1][2]] == [3]
        assert batcher.queued_items == 0
        await batcher.close()

    run(main())


def test_multiple_choice_items_with_fewer_choices_are_padded_and_cut() -> None:
    async def main() -> None:
        engine = RecordingEngine(multiple_choice=True)
        batcher = Batcher(engine, "m", limits(), multiple_choice=True)
        batcher.start()
        two, three = await batcher.submit([choice_item(1, 2), choice_item(3, 4, 5)])
        assert two.tolist() == [1.0, 2.0] and three.tolist() == [3.0, 4.0, 5.0]
        items, choices, sequences = engine.batches[0]
        assert (items, choices) == (2, 3)
        assert [s[0] for s in sequences] == [1, 2, 1, 3, 4, 5]  # the short item repeats its first choice
        await batcher.close()

    run(main())


def test_closing_fails_what_is_queued() -> None:
    async def main() -> None:
        engine = RecordingEngine(hold=True)
        batcher = Batcher(engine, "m", limits(max_queue_delay=0.0))
        batcher.start()
        running = asyncio.create_task(batcher.submit([item(0)]))
        await wait_until(engine.entered.is_set)
        waiting = asyncio.create_task(batcher.submit([item(1)]))
        await wait_until(lambda: batcher.queued_items == 1)
        closing = asyncio.create_task(batcher.close())
        await wait_until(lambda: batcher.closed)  # close() has begun: the worker is cancelled mid-batch
        engine.release.set()
        await closing
        for task in (running, waiting):
            with pytest.raises(BatcherClosed):
                await task
        with pytest.raises(BatcherClosed):
            await batcher.submit([item(2)])

    run(main())


def test_the_queue_delay_gathers_a_busy_engines_next_batch() -> None:
    async def main() -> None:
        engine = RecordingEngine(hold=True)
        batcher = Batcher(engine, "m", limits(max_batch_size=2, max_queue_delay=120.0))
        batcher.start()
        first = asyncio.create_task(batcher.submit([item(0)]))
        await wait_until(engine.entered.is_set)
        early = asyncio.create_task(batcher.submit([item(1)]))
        await wait_until(lambda: batcher.queued_items == 1)
        engine.release.set()  # the engine frees while item 1 is younger than the delay: it waits for more
        await first  # the worker went from delivering this batch straight to waiting: item 1 has not left
        assert engine.sizes == [1] and batcher.queued_items == 1
        late = asyncio.create_task(batcher.submit([item(2)]))  # a full batch leaves before the deadline
        await asyncio.gather(early, late)
        assert engine.sizes == [1, 2]
        await batcher.close()

    run(main())


def test_a_batch_is_the_oldest_item_and_its_nearest_lengths() -> None:
    async def main() -> None:
        engine = RecordingEngine(hold=True)
        batcher = Batcher(engine, "m", limits(max_batch_size=8, max_queue_delay=0.0, max_padding=0.2))
        batcher.start()
        first = asyncio.create_task(batcher.submit([item(0)]))
        await wait_until(engine.entered.is_set)
        widths = {50: 50, 10: 10, 48: 48, 100: 100, 52: 52, 11: 11}
        waiting = [asyncio.create_task(batcher.submit([item(i, w)])) for i, w in widths.items()]
        await wait_until(lambda: batcher.queued_items == 6)
        engine.release.set()
        await asyncio.gather(first, *waiting)
        assert [[s[0] for s in seqs] for _, _, seqs in engine.batches[1:]] == [[50, 48, 52], [10, 11], [100]]
        for _, _, seqs in engine.batches[1:]:
            assert padding_share([EncodedItem([s], False) for s in seqs]) <= 0.2
        await batcher.close()

    run(main())


def test_items_of_one_request_may_travel_in_different_batches() -> None:
    async def main() -> None:
        engine = RecordingEngine(hold=True)
        batcher = Batcher(engine, "m", limits(max_queue_delay=0.0, max_padding=0.2))
        batcher.start()
        first = asyncio.create_task(batcher.submit([item(0)]))
        await wait_until(engine.entered.is_set)
        mixed = asyncio.create_task(batcher.submit([item(1, 10), item(2, 100), item(3, 12), item(4, 95)]))
        await wait_until(lambda: batcher.queued_items == 4)
        engine.release.set()
        await first
        logits = await mixed
        assert [row.tolist() for row in logits] == [[1, 10], [2, 100], [3, 12], [4, 95]]
        assert [sorted(s[0] for s in seqs) for _, _, seqs in engine.batches[1:]] == [[1, 3], [2, 4]]
        await batcher.close()

    run(main())
