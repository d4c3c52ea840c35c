"""Reading request bodies within limits, parsing them into protocol models, and writing JSON responses.

A body that breaks a limit or does not parse raises a core :class:`~xstilts.serve.core.errors.ServeError`.
"""

from __future__ import annotations

import json
import zlib
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError
from starlette.requests import Request
from starlette.responses import Response

from xstilts.serve.core.errors import bad_request, invalid, too_large

M = TypeVar("M", bound=BaseModel)
JSON = "application/json"


async def read_body(request: Request, limit: int) -> bytes:
    """The whole body, refused (too_large) as soon as it is known to exceed ``limit`` bytes (gzip/deflate undone)."""
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            size = int(declared)
        except ValueError:
            raise bad_request("Content-Length is not a number") from None
        if size > limit:
            raise too_large(f"body of {size} bytes is larger than the limit of {limit} bytes (max_body_bytes)")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise too_large(f"body is larger than the limit of {limit} bytes (max_body_bytes)")
        chunks.append(chunk)
    body = b"".join(chunks)
    encoding = request.headers.get("content-encoding", "identity").strip().lower()
    if encoding in ("", "identity"):
        return body
    if encoding not in ("gzip", "deflate"):
        raise bad_request(f"Content-Encoding {encoding!r} is not supported (gzip, deflate)")
    inflater = zlib.decompressobj(wbits=47)  # gzip or zlib, detected from the header
    try:
        plain = inflater.decompress(body, limit + 1)
    except zlib.error as exc:
        raise bad_request(f"body is not valid {encoding}: {exc}") from None
    if len(plain) > limit or inflater.unconsumed_tail:
        raise too_large(f"decompressed body is larger than the limit of {limit} bytes (max_body_bytes)")
    return plain


def describe_errors(exc: ValidationError, limit: int = 3) -> str:
    """A short message from pydantic's errors: where and what, for the first few."""
    parts = []
    for error in exc.errors(include_url=False)[:limit]:
        where = ".".join(str(p) for p in error["loc"]) or "body"
        parts.append(f"{where}: {error['msg']}")
    more = len(exc.errors()) - limit
    if more > 0:
        parts.append(f"and {more} more")
    return "; ".join(parts)


def parse(model: type[M], body: bytes) -> M:
    """Validate a JSON body: bad_request when it is not JSON (or not UTF-8), validation when it does not fit."""
    if not body.strip():
        raise bad_request("the body is empty: send a JSON object")
    try:
        return model.model_validate_json(body)
    except ValidationError as exc:
        if any(e["type"] == "json_invalid" for e in exc.errors()):
            raise bad_request(f"the body is not valid JSON in UTF-8: {exc.errors()[0]['msg']}") from None
        raise invalid(describe_errors(exc)) from None


def check_item_count(count: int, limit: int) -> None:
    """too_large when a request holds more than ``limit`` items (the server's ``max_items``)."""
    if count > limit:
        raise too_large(f"{count} items is more than the limit of {limit} (max_items)")


def json_response(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    body = json.dumps(data, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode("utf-8")
    return Response(body, status_code=status, media_type=JSON, headers=headers)
