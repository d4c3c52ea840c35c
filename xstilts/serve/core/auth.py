"""The API key check every transport makes (HTTP's ``Authorization`` header, gRPC's ``authorization`` metadata)."""

from __future__ import annotations

import secrets

from xstilts.serve.core.errors import unauthorized

SCHEME = "bearer"


def bearer_token(authorization: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` value (None for any other form)."""
    if authorization is None:
        return None
    scheme, _, token = authorization.strip().partition(" ")
    return token.strip() or None if scheme.lower() == SCHEME else None


def authorize(api_key: str | None, token: str | None) -> None:
    """unauthorized unless no key is configured (auth off) or ``token`` is the key (compared in constant time)."""
    if api_key is None:
        return
    if token is None or not secrets.compare_digest(token.encode(), api_key.encode()):
        raise unauthorized()
