"""What every inference route shares: the server state and metrics of a request, and :func:`answer`, which runs
an inference handler with the draining check, the model lookup, error mapping and request metrics
(:func:`observed`: the same for any transport; the gRPC service calls it too)."""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from fastapi import Path, Request

from xstilts.serve.core.errors import ServeError, internal
from xstilts.serve.core.model import ServedModel
from xstilts.serve.core.state import ServerState
from xstilts.serve.http.errors import status_of
from xstilts.serve.http.metrics import Metrics

log = logging.getLogger("xstilts.serve")

R = TypeVar("R")
OK = 200


def state_of(request: Request) -> ServerState:
    return request.app.state.xstilts


def metrics_of(request: Request) -> Metrics:
    return request.app.state.metrics


def model_name_parameter(names: list[str]) -> Any:
    """The ``{name}`` path parameter, documented with the names this server serves."""
    return Path(description="the model's name (see GET /v1/models)", json_schema_extra={"enum": names})


async def answer(request: Request, name: str, endpoint: str, handler: Callable[[ServedModel], Awaitable[R]]) -> R:
    """``handler(model)`` for the model called ``name``, counted in the request metrics under ``endpoint``.

    A core error goes on to the app's error handler; any other exception is logged and becomes ``internal``.
    """
    return await observed(state_of(request), metrics_of(request), name, endpoint, handler)


async def observed(
    state: ServerState, metrics: Metrics, name: str, endpoint: str, handler: Callable[[ServedModel], Awaitable[R]]
) -> R:
    """:func:`answer` without the HTTP request: any transport's inference, with the same checks and metrics (the
    ``status`` label is the HTTP status of the outcome's error kind, whichever transport answered)."""
    started = time.perf_counter()
    label = name if name in state.models else ""  # unknown names cannot grow the label set
    in_flight = metrics.in_flight.labels(label)
    in_flight.inc()
    status: int | None = None  # stays None for a request cancelled (a client gone): it is not counted
    try:
        state.check_accepting()
        with state.hold(name) as model:  # a reload meanwhile: this request finishes on the model it got
            result = await handler(model)
        status = OK
        return result
    except ServeError as exc:
        status = status_of(exc.kind)
        raise
    except Exception:
        log.exception("%s %s failed", endpoint, name)
        error = internal()
        status = status_of(error.kind)
        raise error from None
    finally:
        in_flight.dec()
        if status is not None:
            metrics.requests.labels(label, endpoint, str(status)).inc()
            metrics.request_duration.labels(label, endpoint).observe(time.perf_counter() - started)
