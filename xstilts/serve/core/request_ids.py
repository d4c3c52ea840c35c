"""Request ids: every request carries one, the client's (``X-Request-Id``, or gRPC metadata ``x-request-id``) when
it is a sane token, a new one otherwise; bound to the request's context so that error bodies and logs can name it.
"""

from __future__ import annotations

import re
import uuid
from contextvars import ContextVar

HEADER = "x-request-id"  # the HTTP header (case-insensitive) and the gRPC metadata key

# a client's id: 1 to 128 visible ASCII characters but quotes and backslashes (safe in headers, logs and JSON)
VALID = re.compile(r"[!#-\[\]-~]{1,128}")

_current: ContextVar[str | None] = ContextVar("xstilts_request_id", default=None)


def new_request_id() -> str:
    return uuid.uuid4().hex


def accept(client_id: str | None) -> str:
    """The client's id when it is a sane token (1 to 128 visible ASCII characters), else a new one."""
    if client_id is not None and VALID.fullmatch(client_id):
        return client_id
    return new_request_id()


def bind(request_id: str) -> None:
    """Make ``request_id`` the current request's id (in this task's context)."""
    _current.set(request_id)


def current() -> str | None:
    """The id of the request being answered in this context, if any."""
    return _current.get()
