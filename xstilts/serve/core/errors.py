"""One transport-free error type for every request the server cannot answer, with a kind.

The kind says what went wrong (as text-embeddings-inference's ``ErrorType`` does); the HTTP layer alone turns a
kind into a status (:mod:`xstilts.serve.http.errors`). ``retry_after`` is data: the seconds after which the
same request may succeed (a full queue, a model still loading, a draining server).
"""

from __future__ import annotations

from xstilts.contracts.names import Name


class ErrorKind(Name):
    """What kind of failure an error is (the ``error_type`` of an error body)."""

    BAD_REQUEST = "bad_request"  # malformed: not JSON, not UTF-8, a broken binary tensor or encoding
    UNAUTHORIZED = "unauthorized"  # the API key is missing or wrong
    NOT_FOUND = "not_found"  # no such model, version or route
    METHOD_NOT_ALLOWED = "method_not_allowed"  # a route asked with the wrong method
    CONFLICT = "conflict"  # the server's mode refuses the request (model control none: no load or unload)
    TOO_LARGE = "too_large"  # a body or a request beyond the server's limits
    VALIDATION = "validation"  # well-formed but invalid for the model
    OVERLOADED = "overloaded"  # the model's queue is full
    UNAVAILABLE = "unavailable"  # the model is not ready, a model cannot be loaded, or the server is draining
    INTERNAL = "internal"  # a bug, logged with its traceback


class ServeError(Exception):
    """A request that cannot be answered: its ``kind``, a message for the client, and ``retry_after`` seconds."""

    def __init__(self, kind: ErrorKind, message: str, retry_after: int | None = None) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.retry_after = retry_after


def bad_request(message: str) -> ServeError:
    return ServeError(ErrorKind.BAD_REQUEST, message)


def unauthorized(message: str = "missing or wrong API key: send 'Authorization: Bearer <key>'") -> ServeError:
    return ServeError(ErrorKind.UNAUTHORIZED, message)


def not_found(message: str) -> ServeError:
    return ServeError(ErrorKind.NOT_FOUND, message)


def conflict(message: str) -> ServeError:
    return ServeError(ErrorKind.CONFLICT, message)


def too_large(message: str) -> ServeError:
    return ServeError(ErrorKind.TOO_LARGE, message)


def invalid(message: str) -> ServeError:
    return ServeError(ErrorKind.VALIDATION, message)


def overloaded(message: str, retry_after: int = 1) -> ServeError:
    return ServeError(ErrorKind.OVERLOADED, message, retry_after)


def unavailable(message: str, retry_after: int | None = None) -> ServeError:
    return ServeError(ErrorKind.UNAVAILABLE, message, retry_after)


def internal(message: str = "internal server error (logged)") -> ServeError:
    return ServeError(ErrorKind.INTERNAL, message)
