"""Spans of one request, without a tracing library: the core calls :func:`tracer` and gets a real tracer only when
the transport activated one for the request (:mod:`xstilts.serve.tracing` builds it from OpenTelemetry).

Live spans (``tokenize``, a codec's ``decode`` and ``encode``) wrap their work; the batcher's spans (``queue``:
from the request's arrival in the queue to its first batch; ``inference``: its batches, with their sizes) are
recorded afterwards from the :class:`Timeline` the batcher filled, since one batch serves many requests.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator, Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any, Protocol

DECODE, TOKENIZE, QUEUE, INFERENCE, ENCODE = "decode", "tokenize", "queue", "inference", "encode"


class Tracer(Protocol):
    """What the serving code needs of a tracer: a transport opens a request's ``server_span`` (its parent read from
    the W3C ``traceparent`` in ``carrier``: headers or gRPC metadata), the serving code its inner spans."""

    enabled: bool

    def server_span(
        self, name: str, carrier: Mapping[str, str], **attributes: Any
    ) -> contextlib.AbstractContextManager[Any]: ...
    def span(self, name: str, **attributes: Any) -> contextlib.AbstractContextManager[Any]: ...
    def record(self, name: str, start_ns: int, end_ns: int, **attributes: Any) -> None: ...


class NoTracer:
    """Tracing off: spans cost nothing."""

    enabled = False

    def server_span(
        self, name: str, carrier: Mapping[str, str], **attributes: Any
    ) -> contextlib.AbstractContextManager[Any]:
        return contextlib.nullcontext()

    def span(self, name: str, **attributes: Any) -> contextlib.AbstractContextManager[Any]:
        return contextlib.nullcontext()

    def record(self, name: str, start_ns: int, end_ns: int, **attributes: Any) -> None: ...


NO_TRACER = NoTracer()
_active: ContextVar[Tracer] = ContextVar("xstilts_tracer", default=NO_TRACER)


def tracer() -> Tracer:
    """The tracer of the request being answered (``NO_TRACER`` unless its transport activated one)."""
    return _active.get()


@contextlib.contextmanager
def activated(active: Tracer) -> Iterator[None]:
    """Trace what runs inside (the current request, in its task's context) with ``active``."""
    token = _active.set(active)
    try:
        yield
    finally:
        _active.reset(token)


@dataclass
class Timeline:
    """When a request's items were queued, when their first batch started and their last one finished
    (wall-clock nanoseconds, as spans take them), and the size of each batch they travelled in."""

    queued_ns: int = field(default_factory=time.time_ns)
    started_ns: int | None = None
    finished_ns: int | None = None
    batch_sizes: list[int] = field(default_factory=list)

    def batch_started(self, size: int) -> None:
        if self.started_ns is None:
            self.started_ns = time.time_ns()
        self.batch_sizes.append(size)

    def batch_finished(self) -> None:
        self.finished_ns = time.time_ns()

    def report(self, to: Tracer) -> None:
        """The ``queue`` and ``inference`` spans of this request."""
        if self.started_ns is None or self.finished_ns is None:
            return
        to.record(QUEUE, self.queued_ns, self.started_ns)
        to.record(
            INFERENCE,
            self.started_ns,
            self.finished_ns,
            batch_size=max(self.batch_sizes),
            batches=len(self.batch_sizes),
        )
