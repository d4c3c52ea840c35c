"""The drain's clock and its count of work in flight, shared by the transports (HTTP and gRPC).

A request that arrived before the drain began is work the drain waits for; one that arrives during the drain is
answered at once (503 or UNAVAILABLE for inference, the probes as usual) and is not waited for.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterator


class Drain:
    """When the drain began, how long it may last (``seconds``), and the requests still in flight."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.deadline: float | None = None  # monotonic seconds, once the drain began
        self.in_flight = 0

    @property
    def started(self) -> bool:
        return self.deadline is not None

    def begin(self) -> None:
        if self.deadline is None:
            self.deadline = time.monotonic() + self.seconds

    def remaining(self) -> float:
        """Seconds left of the drain (all of it before it began, 0 once it is over)."""
        if self.deadline is None:
            return self.seconds
        return max(0.0, self.deadline - time.monotonic())

    @contextlib.contextmanager
    def request(self) -> Iterator[None]:
        """Count a request as work in flight while it runs, unless it arrived during the drain."""
        counted = not self.started
        if counted:
            self.in_flight += 1
        try:
            yield
        finally:
            if counted:
                self.in_flight -= 1

    async def work_done(self, poll: float = 0.01) -> bool:
        """Wait until no request that arrived before the drain is in flight (True) or the drain time is up (False)."""
        self.begin()
        while self.in_flight > 0:
            if self.remaining() <= 0:
                return False
            await asyncio.sleep(min(poll, self.remaining()))
        return True
