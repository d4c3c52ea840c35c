"""The session alone, in process: throughput per batch size and one-item latency, on pre-tokenized texts (the
wrk measurement's yardstick).

The yardstick for the server: the very engine the server builds (same settings, same session options), fed
batches of sequences padded to their longest, as the server's batches are; tokenization is left out. An item is
one sequence (a text, a pair) or several (an extractive QA context's windows, a long sentence's tagging
windows): throughput counts sequences, each item's sequences in turn, as the server's batcher sees them; latency
is one call per item with all its sequences. Batches are measured two ways: sequences in arrival order, and sorted
by length within blocks of four batches (about what a length-aware batcher can do at best); the better of the two
is the bar.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from xstilts.serve.core.engine import OnnxEngine


def batches(sequences: Sequence[list[int]], batch: int, by_length: bool) -> list[list[list[int]]]:
    """Consecutive batches of ``batch`` texts; ``by_length``: sorted by length within blocks of four batches
    first (no bias towards short texts: every text is used)."""
    usable = len(sequences) - len(sequences) % (4 * batch) or len(sequences)
    texts = list(sequences[:usable])
    if by_length:
        block = 4 * batch
        texts = [s for start in range(0, len(texts), block) for s in sorted(texts[start : start + block], key=len)]
    return [texts[i : i + batch] for i in range(0, len(texts) - batch + 1, batch)]


class Bare:
    """Timing runs of one engine on a fixed list of pre-tokenized items (each one or more sequences)."""

    def __init__(self, engine: OnnxEngine, items: Sequence[list[list[int]]]) -> None:
        self.engine = engine
        self.items = [item for item in items if item]
        self.sequences = [sequence for item in self.items for sequence in item]
        self.mean_tokens = sum(len(s) for s in self.sequences) / len(self.sequences)
        self.sequences_per_item = len(self.sequences) / len(self.items)

    def throughput(self, batch: int, by_length: bool, seconds: float) -> float:
        """Sequences per second running batches of ``batch`` in turn for at least ``seconds``."""
        plan = batches(self.sequences, batch, by_length)
        engine = self.engine
        engine.infer(plan[0], len(plan[0]))  # warm up
        done = position = 0
        started = time.perf_counter()
        while time.perf_counter() - started < seconds:
            chunk = plan[position % len(plan)]
            position += 1
            engine.infer(chunk, len(chunk))
            done += len(chunk)
        return done / (time.perf_counter() - started)

    def latency(self, seconds: float) -> dict[str, float | int]:
        """One-item latency percentiles (ms), one call per item (all its sequences) in turn, for ``seconds``."""
        engine = self.engine
        times: list[float] = []
        started = time.perf_counter()
        while time.perf_counter() - started < seconds:
            item = self.items[len(times) % len(self.items)]
            begin = time.perf_counter()
            engine.infer(item, len(item))
            times.append(time.perf_counter() - begin)
        times.sort()
        return {
            "p50": round(1000 * statistics.median(times), 2),
            "p99": round(1000 * times[int(0.99 * (len(times) - 1))], 2),
            "calls": len(times),
        }

    def scan(self, batch_sizes: Sequence[int], seconds: float) -> dict[str, float]:
        """Throughput of every batch size, in arrival order (``"8"``) and by length (``"8 by length"``)."""
        found = {}
        for batch in batch_sizes:
            found[str(batch)] = round(self.throughput(batch, False, seconds), 1)
            if batch > 1:
                found[f"{batch} by length"] = round(self.throughput(batch, True, seconds), 1)
        return found

    def run(self, key: str, seconds: float) -> float:
        """Throughput of a ``scan`` key such as ``"16 by length"``."""
        batch, _, mode = key.partition(" ")
        return round(self.throughput(int(batch), mode == "by length", seconds), 1)
