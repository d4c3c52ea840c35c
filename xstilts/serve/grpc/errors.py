"""The one place an error kind becomes a gRPC status code (the HTTP statuses are in
:mod:`xstilts.serve.http.errors`). A failed call also carries trailing metadata: ``xstilts-error-type`` (the kind),
``x-request-id`` and, when a retry can succeed later, ``retry-after`` (seconds)."""

from __future__ import annotations

import grpc

from xstilts.serve.core.errors import ErrorKind

CODES: dict[ErrorKind, grpc.StatusCode] = {
    ErrorKind.BAD_REQUEST: grpc.StatusCode.INVALID_ARGUMENT,
    ErrorKind.UNAUTHORIZED: grpc.StatusCode.UNAUTHENTICATED,
    ErrorKind.NOT_FOUND: grpc.StatusCode.NOT_FOUND,
    ErrorKind.METHOD_NOT_ALLOWED: grpc.StatusCode.UNIMPLEMENTED,
    ErrorKind.CONFLICT: grpc.StatusCode.FAILED_PRECONDITION,  # model control none: no load or unload
    # gRPC itself answers a message over the size limit with RESOURCE_EXHAUSTED; too many items or windows alike
    ErrorKind.TOO_LARGE: grpc.StatusCode.RESOURCE_EXHAUSTED,
    ErrorKind.VALIDATION: grpc.StatusCode.INVALID_ARGUMENT,
    ErrorKind.OVERLOADED: grpc.StatusCode.RESOURCE_EXHAUSTED,  # with retry-after
    ErrorKind.INTERNAL: grpc.StatusCode.INTERNAL,
    ErrorKind.UNAVAILABLE: grpc.StatusCode.UNAVAILABLE,
}
ERROR_TYPE = "xstilts-error-type"


def code_of(kind: ErrorKind) -> grpc.StatusCode:
    return CODES[kind]


def codes_table() -> str:
    """The error kinds' gRPC codes as a Markdown table, for the README."""
    rows = ["| error_type | gRPC status |", "|---|---|"]
    rows += [f"| `{kind.value}` | `{code.name}` |" for kind, code in CODES.items()]
    return "\n".join(rows)
