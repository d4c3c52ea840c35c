"""The one place an error kind becomes an HTTP status, and the error body every route writes.

Every error is ``{"error": "one-line message", "error_type": "<kind>", "request_id": "<id>"}`` (the Open Inference
Protocol's error object, plus the kind and the request's id), on both APIs, the probes, auth and the routes the
server does not have alike.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel
from starlette.responses import Response

from xstilts.serve.core import request_ids
from xstilts.serve.core.errors import ErrorKind, ServeError
from xstilts.serve.http.bodies import json_response

# kind -> HTTP status, and what it means (for the OpenAPI responses and the README)
STATUSES: dict[ErrorKind, tuple[int, str]] = {
    ErrorKind.BAD_REQUEST: (400, "malformed request: not JSON, not UTF-8, or a broken binary tensor"),
    ErrorKind.UNAUTHORIZED: (401, "API key missing or wrong (only when a key is configured)"),
    ErrorKind.NOT_FOUND: (404, "no such model or variant (or route)"),
    ErrorKind.METHOD_NOT_ALLOWED: (405, "the route does not take that method"),
    ErrorKind.CONFLICT: (
        409,
        "the repository API's load or unload while model_control is none (models load at start only)",
    ),
    ErrorKind.TOO_LARGE: (
        413,
        "body larger than max_body_bytes, more items than max_items, or a QA context of more windows than max_windows",
    ),
    ErrorKind.VALIDATION: (
        422,
        "well-formed but invalid: empty or non-string text, wrong fields or route for the model's kind (an "
        "embedding model asked to predict, a classifier asked to embed, a QA item without its question or context), "
        "bad shapes",
    ),
    ErrorKind.OVERLOADED: (429, "the model's queue is full: retry after the Retry-After seconds"),
    ErrorKind.INTERNAL: (500, "a bug: the server's fault, logged with its traceback"),
    ErrorKind.UNAVAILABLE: (
        503,
        "model not ready yet (loading, failed or unloaded), a model load that failed (the reason is in the "
        "repository index), or the server is draining for shutdown",
    ),
}


class ErrorBody(BaseModel):
    """Every error, on every route: the Open Inference Protocol's error object, plus the kind of error and the
    request's id (the client's ``X-Request-Id``, or the one the server gave it, as in the response's header)."""

    error: str
    error_type: ErrorKind
    request_id: str | None = None


def status_of(kind: ErrorKind) -> int:
    return STATUSES[kind][0]


def kind_of(status: int) -> ErrorKind:
    """The kind of an error another layer answered with ``status`` (Starlette's 404 and 405, for example)."""
    for kind, (known, _) in STATUSES.items():
        if known == status:
            return kind
    return ErrorKind.INTERNAL if status >= 500 else ErrorKind.BAD_REQUEST


def error_body(kind: ErrorKind, message: str) -> dict[str, str]:
    body = {"error": message, "error_type": kind.value}
    request_id = request_ids.current()
    if request_id is not None:
        body["request_id"] = request_id
    return body


def error_response(exc: ServeError) -> Response:
    """The JSON error for ``exc``, with ``Retry-After`` when it says when to retry and the auth challenge on 401."""
    headers: dict[str, str] = {}
    request_id = request_ids.current()
    if request_id is not None:  # an error answered outside the request middleware still names its request
        headers[request_ids.HEADER] = request_id
    if exc.retry_after is not None:
        headers["Retry-After"] = str(exc.retry_after)
    if exc.kind is ErrorKind.UNAUTHORIZED:
        headers["WWW-Authenticate"] = "Bearer"
    return json_response(error_body(exc.kind, exc.message), status_of(exc.kind), headers)


def openapi_errors(*kinds: ErrorKind) -> dict[int | str, dict[str, Any]]:
    """The OpenAPI ``responses`` of a route that can fail with ``kinds``."""
    return {status_of(k): {"model": ErrorBody, "description": STATUSES[k][1]} for k in kinds}


def errors_table() -> str:
    """The error statuses as a Markdown table (status, error_type, when), for the README."""
    rows = ["| status | error_type | when |", "|---|---|---|"]
    for kind, (status, meaning) in sorted(STATUSES.items(), key=lambda item: item[1][0]):
        rows.append(f"| {status} | `{kind.value}` | {meaning} |")
    return "\n".join(rows)
