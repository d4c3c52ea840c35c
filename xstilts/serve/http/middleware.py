"""Every HTTP request's context, as a plain ASGI middleware: its id, its trace, and the drain's rules.

* The id: the client's ``X-Request-Id`` when it is a sane token, a new one otherwise; bound to the request's context
  (error bodies and the access log name it) and echoed in the response's ``X-Request-Id``.
* The trace: with tracing on, a server span whose parent is the client's W3C ``traceparent``, and the tracer the
  serving core's spans (decode, tokenize, queue, inference, encode) go to.
* The drain: a request that arrived before the drain began is work the drain waits for; during the drain every
  answer carries ``Connection: close``, so that no client sends another request on a connection the server closes.
"""

from __future__ import annotations

from typing import Any

from xstilts.serve.core import request_ids
from xstilts.serve.core.state import ServerState
from xstilts.serve.core.tracing import NO_TRACER, Tracer, activated
from xstilts.serve.drain import Drain

Scope = dict[str, Any]
HEADER = request_ids.HEADER.encode("latin-1")


def header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key.lower() == name:
            return value.decode("latin-1")
    return None


class RequestContext:
    """The ASGI middleware (see the module docstring); ``tracer`` is :data:`NO_TRACER` when tracing is off."""

    def __init__(self, app: Any, state: ServerState, drain: Drain, tracer: Tracer = NO_TRACER) -> None:
        self.app = app
        self.state = state
        self.drain = drain
        self.tracer = tracer

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = request_ids.accept(header(scope, HEADER))
        request_ids.bind(request_id)
        echoed = request_id.encode("latin-1")

        async def send_with_context(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", ()))
                names = {key.lower() for key, _ in headers}
                if HEADER not in names:
                    headers.append((HEADER, echoed))
                if self.state.draining and b"connection" not in names:
                    headers.append((b"connection", b"close"))
                message = {**message, "headers": headers}
            await send(message)

        carrier: dict[str, str] = {}
        if self.tracer.enabled:
            carrier = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", ())}
        span = self.tracer.server_span(f"{scope['method']} {scope['path']}", carrier, request_id=request_id)
        with self.drain.request(), activated(self.tracer), span:
            await self.app(scope, receive, send_with_context)
