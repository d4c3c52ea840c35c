"""Dynamic batching: one bounded queue and one engine thread per model.

Requests put their encoded items on the model's queue and wait. A single worker coroutine takes batches off
the queue and runs each in the model's own thread, so the event loop keeps serving while ONNX Runtime computes
(its intra-op threads do the parallel work):

* When the engine is idle, whatever is queued runs at once: a lone request pays no batching delay.
* While the engine is busy, arrivals wait; when it is free again the next batch leaves: up to
  ``max_batch_size`` items and ``max_batch_tokens`` padded tokens (items x choices x longest sequence). If its
  oldest item arrived less than ``max_queue_delay`` ago and the queue holds less than a full batch, the worker
  waits until that deadline for more (Triton's ``max_queue_delay``), never longer.
* A batch is padded to its longest sequence, and padding is wasted work: on a CPU it can cost more than
  batching gains, since texts vary in length. So a batch is the oldest waiting item plus the waiting items
  closest to it in length, as many as keep padding within ``max_padding`` of the batch's tokens
  (``max_padding`` 1: any length, as on GPUs where a larger batch matters more). Nothing waits for long:
  every item becomes the oldest in its turn. A request's items may travel in different batches.
* The queue holds at most ``max_queue_size`` items: a request that does not fit is refused at once
  (:class:`QueueFull`, with a Retry-After estimate).

The limits come from the settings (:meth:`BatchLimits.from_settings`); the batcher has no defaults of its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections import deque
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from xstilts.serve.core.encoder import EncodedItem
from xstilts.serve.core.tracing import Timeline
from xstilts.serve.settings import Settings

log = logging.getLogger("xstilts.serve")

# how many waiting items (from the oldest) a batch is chosen from
WINDOW = 256


class Engine(Protocol):
    def infer(self, sequences: Sequence[Sequence[int]], items: int, choices: int = 1) -> np.ndarray: ...


class QueueFull(Exception):
    """The model's queue cannot take the request; ``retry_after`` is a whole-second estimate of when it could."""

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class BatcherClosed(Exception):
    """The model is shutting down."""


class BatchObserver(Protocol):
    """Metric hooks of one model's batcher (:class:`xstilts.serve.http.metrics.ModelObserver` in the server)."""

    def queue_depth(self, items: int) -> None: ...
    def queued(self, seconds: float) -> None: ...
    def batch(self, items: int, tokens: int, seconds: float) -> None: ...


class NoObserver:
    """Hooks that do nothing: a batcher (or a model) without metrics, as tests and benchmarks run it."""

    def queue_depth(self, items: int) -> None: ...
    def queued(self, seconds: float) -> None: ...
    def batch(self, items: int, tokens: int, seconds: float) -> None: ...
    def tokenized(self, seconds: float) -> None: ...


@dataclass(frozen=True)
class BatchLimits:
    """A batcher's limits (see the module docstring); ``max_queue_delay`` in seconds."""

    max_batch_size: int
    max_batch_tokens: int
    max_queue_delay: float
    max_queue_size: int
    max_padding: float

    @classmethod
    def from_settings(cls, settings: Settings, gpu: bool, max_batch: int | None = None) -> BatchLimits:
        """The settings' limits for a model on a GPU provider (``gpu``) or a CPU; ``max_batch`` caps the batch
        size (a limit of the provider, such as a TensorRT profile's largest batch)."""
        size = settings.max_batch_size if max_batch is None else min(settings.max_batch_size, max_batch)
        return cls(
            max_batch_size=size,
            max_batch_tokens=settings.max_batch_tokens,
            max_queue_delay=settings.max_queue_delay_ms / 1000,
            max_queue_size=settings.max_queue_size,
            max_padding=settings.padding_limit(gpu),
        )


@dataclass(eq=False)
class Job:
    """One request's items and, as batches finish, their logits."""

    items: list[EncodedItem]
    future: asyncio.Future
    timeline: Timeline | None = None
    logits: list[np.ndarray | None] = field(default_factory=list)
    remaining: int = 0
    cancelled: bool = False

    def __post_init__(self) -> None:
        self.logits = [None] * len(self.items)
        self.remaining = len(self.items)


@dataclass(eq=False)
class Entry:
    """One waiting item: ``job.items[index]``, queued at ``enqueued`` (monotonic seconds); ``busy``: it arrived
    while the engine was running a batch (only such items may wait for their batch to fill)."""

    job: Job
    index: int
    enqueued: float
    busy: bool

    @property
    def item(self) -> EncodedItem:
        return self.job.items[self.index]


def padding_share(items: Sequence[EncodedItem]) -> float:
    """The share of a padded batch of ``items`` that is padding (short multiple-choice items' repeats included)."""
    choices = max(len(item.sequences) for item in items)
    padded = len(items) * choices * max(item.width for item in items)
    return 1 - sum(item.tokens for item in items) / padded


class Batcher:
    """The queue and worker of one model (see the module docstring)."""

    def __init__(
        self,
        engine: Engine,
        name: str,
        limits: BatchLimits,
        observer: BatchObserver | None = None,
        multiple_choice: bool = False,
    ) -> None:
        self.engine = engine
        self.name = name
        self.multiple_choice = multiple_choice
        self.max_padding = limits.max_padding
        self.max_batch_size = limits.max_batch_size
        self.max_batch_tokens = limits.max_batch_tokens
        self.max_queue_delay = limits.max_queue_delay
        self.max_queue_size = limits.max_queue_size
        self.observer = observer or NoObserver()
        self.queue: deque[Entry] = deque()
        self.busy = False
        self.closed = False
        self.items_per_second = 0.0  # moving average, for Retry-After
        self._wakeup: asyncio.Event | None = None
        self._task: asyncio.Task | None = None
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"engine-{name}")

    @property
    def queued_items(self) -> int:
        return len(self.queue)

    # -- the request side -------------------------------------------------------------------------------------

    def start(self) -> None:
        self._wakeup = asyncio.Event()
        self._task = asyncio.get_running_loop().create_task(self._work(), name=f"batcher-{self.name}")

    async def submit(self, items: list[EncodedItem], timeline: Timeline | None = None) -> list[np.ndarray]:
        """Queue ``items`` and wait for their logits (one array per item); raises :class:`QueueFull` at once.
        ``timeline``, when given, is filled with the times and sizes of the batches the items travel in."""
        if self.closed or self._wakeup is None:
            raise BatcherClosed(f"model {self.name} is not running")
        if len(self.queue) + len(items) > self.max_queue_size:
            raise QueueFull(
                f"model {self.name} has {len(self.queue)} items queued (at most {self.max_queue_size}): retry later",
                self.retry_after(len(items)),
            )
        job = Job(items, asyncio.get_running_loop().create_future(), timeline)
        now = time.monotonic()
        self.queue.extend(Entry(job, index, now, self.busy) for index in range(len(items)))
        self.observer.queue_depth(len(self.queue))
        self._wakeup.set()
        try:
            return await job.future
        except asyncio.CancelledError:
            job.cancelled = True
            raise

    def retry_after(self, extra: int = 0) -> int:
        """Whole seconds until the queue has likely drained enough for ``extra`` more items (at least 1)."""
        if self.items_per_second <= 0:
            return 1
        return max(1, min(60, math.ceil((len(self.queue) + extra) / self.items_per_second)))

    # -- the worker side --------------------------------------------------------------------------------------

    async def _work(self) -> None:
        assert self._wakeup is not None
        loop = asyncio.get_running_loop()
        while True:
            while not self.queue:
                self._wakeup.clear()
                await self._wakeup.wait()
            if self.queue[0].busy and self.max_queue_delay > 0:
                await self._fill()
            batch = self._take()
            if not batch:
                continue
            self.busy = True
            started = time.monotonic()
            for entry in batch:
                self.observer.queued(started - entry.enqueued)
            timelines = {id(e.job.timeline): e.job.timeline for e in batch if e.job.timeline is not None}
            for timeline in timelines.values():
                timeline.batch_started(len(batch))
            try:
                rows = await loop.run_in_executor(self._executor, self._run, [e.item for e in batch])
            except asyncio.CancelledError:
                self._fail(batch, BatcherClosed(f"model {self.name} stopped"))
                raise
            except Exception as exc:  # a broken batch fails its requests, never the worker
                log.exception("%s: inference failed for a batch of %d items", self.name, len(batch))
                self._fail(batch, exc)
            else:
                self._deliver(batch, rows)
            finally:
                self.busy = False
                for timeline in timelines.values():
                    timeline.batch_finished()
            rate = len(batch) / max(time.monotonic() - started, 1e-6)
            self.items_per_second = rate if self.items_per_second == 0 else 0.8 * self.items_per_second + 0.2 * rate

    async def _fill(self) -> None:
        """The engine was busy: wait for more items until a batch is full or the oldest item's deadline passes."""
        assert self._wakeup is not None
        deadline = self.queue[0].enqueued + self.max_queue_delay
        while len(self.queue) < self.max_batch_size:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            self._wakeup.clear()
            try:
                await asyncio.wait_for(self._wakeup.wait(), remaining)
            except asyncio.TimeoutError:
                return

    def _take(self) -> list[Entry]:
        """The next batch: the oldest waiting item and those closest to it in length that keep within the limits."""
        while self.queue and self.queue[0].job.cancelled:
            self.queue.popleft()
        if not self.queue:
            self.observer.queue_depth(0)
            return []
        window: list[Entry] = []
        while self.queue and len(window) < WINDOW:
            entry = self.queue.popleft()
            if not entry.job.cancelled:
                window.append(entry)
        anchor = window[0]
        chosen = [anchor]
        width, choices, tokens = anchor.item.width, len(anchor.item.sequences), anchor.item.tokens
        by_closeness = sorted(range(1, len(window)), key=lambda i: abs(window[i].item.width - anchor.item.width))
        taken = {0}
        for i in by_closeness:
            if len(chosen) == self.max_batch_size:
                break
            item = window[i].item
            new_width, new_choices = max(width, item.width), max(choices, len(item.sequences))
            padded = (len(chosen) + 1) * new_choices * new_width
            if padded > self.max_batch_tokens or 1 - (tokens + item.tokens) / padded > self.max_padding:
                continue
            chosen.append(window[i])
            taken.add(i)
            width, choices, tokens = new_width, new_choices, tokens + item.tokens
        self.queue.extendleft(reversed([window[i] for i in range(len(window)) if i not in taken]))
        self.observer.queue_depth(len(self.queue))
        return chosen

    def _run(self, items: list[EncodedItem]) -> list[np.ndarray]:
        """In the engine thread: pad and run one batch; multiple-choice items with fewer choices repeat their
        first one, and the logits of those repeats are dropped."""
        choices = max(len(item.sequences) for item in items)
        sequences: list[list[int]] = []
        for item in items:
            sequences.extend(item.sequences)
            sequences.extend([item.sequences[0]] * (choices - len(item.sequences)))
        started = time.perf_counter()
        rows = self.engine.infer(sequences, len(items), choices)
        self.observer.batch(len(items), sum(item.tokens for item in items), time.perf_counter() - started)
        if self.multiple_choice:
            return [rows[row, : len(item.sequences)] for row, item in enumerate(items)]
        return list(rows)

    def _deliver(self, batch: list[Entry], rows: list[np.ndarray]) -> None:
        for entry, row in zip(batch, rows, strict=True):
            job = entry.job
            job.logits[entry.index] = row
            job.remaining -= 1
            if job.remaining == 0 and not job.future.done():
                job.future.set_result(job.logits)

    def _fail(self, batch: list[Entry], exc: BaseException) -> None:
        for entry in batch:
            if not entry.job.future.done():
                entry.job.future.set_exception(exc)

    # -- shutdown ---------------------------------------------------------------------------------------------

    async def close(self) -> None:
        """Stop the worker, fail what is still queued, and release the engine thread."""
        self.closed = True
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        while self.queue:
            entry = self.queue.popleft()
            if not entry.job.future.done():
                entry.job.future.set_exception(BatcherClosed(f"model {self.name} stopped"))
        self.observer.queue_depth(0)
        await asyncio.get_running_loop().run_in_executor(None, self._executor.shutdown)
