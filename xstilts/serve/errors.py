"""One error type for every failed request, mapped to a status and a JSON body ``{"error": message}``.

The body is the Open Inference Protocol's error object, used by both APIs, the probes and auth alike.
"""

from __future__ import annotations

from xstilts.errors import XstiltsError


class ServeError(XstiltsError):
    """A request that cannot be answered: ``status`` is the HTTP status, ``headers`` any extra response headers."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}


def bad_request(message: str) -> ServeError:
    return ServeError(400, message)


def unauthorized(message: str = "missing or wrong API key: send 'Authorization: Bearer <key>'") -> ServeError:
    return ServeError(401, message, {"WWW-Authenticate": "Bearer"})


def not_found(message: str) -> ServeError:
    return ServeError(404, message)


def too_large(message: str) -> ServeError:
    return ServeError(413, message)


def unprocessable(message: str) -> ServeError:
    return ServeError(422, message)


def overloaded(message: str, retry_after: int = 1) -> ServeError:
    return ServeError(429, message, {"Retry-After": str(retry_after)})


def unavailable(message: str, retry_after: int | None = None) -> ServeError:
    return ServeError(503, message, {"Retry-After": str(retry_after)} if retry_after else None)


# status -> short description, for the OpenAPI responses and the README
ERROR_STATUSES: dict[int, str] = {
    400: "malformed request: not JSON, not UTF-8, or a broken binary tensor",
    401: "API key missing or wrong (only when a key is configured)",
    404: "no such model (or route)",
    413: "body larger than max_body_bytes, or more items than max_items",
    422: "well-formed but invalid: empty or non-string text, wrong fields for the model's kind, bad shapes",
    429: "the model's queue is full: retry after the Retry-After seconds",
    500: "a bug: the server's fault, logged with its traceback",
    503: "model not ready yet, or the server is draining for shutdown",
}
