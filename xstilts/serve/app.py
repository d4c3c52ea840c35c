"""The FastAPI application: routes, auth, error bodies, OpenAPI, and a lifespan that loads and drains.

Models load in the background once the server listens, so liveness answers while a large model (or a TensorRT
engine build) takes its time; readiness turns true when every model is loaded. On shutdown readiness turns
false at once and new inference gets 503, while requests already in flight finish.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import AsyncIterator, Callable
from typing import Any

from fastapi import Depends, FastAPI, Request, Security
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.openapi.utils import get_openapi
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import HTMLResponse, JSONResponse, Response

from xstilts import __version__
from xstilts.serve import api_v1, api_v2
from xstilts.serve.bodies import error_response, json_response
from xstilts.serve.errors import ERROR_STATUSES, ServeError, unauthorized
from xstilts.serve.protocol_v1 import ErrorBody, PredictRequest
from xstilts.serve.protocol_v2 import InferenceRequest
from xstilts.serve.state import ServerState

log = logging.getLogger("xstilts.serve")

DESCRIPTION = """Cross-lingual classifiers and multiple-choice models trained with intermediate tasks,
exported to ONNX. Two APIs: a JSON one (`/v1`) and the Open Inference Protocol (KServe v2, `/v2`).
Every error is `{"error": "message"}`."""

bearer = HTTPBearer(auto_error=False, description="the server's API key, when one is configured")


BEARER = Security(bearer)


async def require_key(request: Request, credentials: HTTPAuthorizationCredentials | None = BEARER) -> None:
    """401 unless the bearer token matches the configured key (no key configured: open)."""
    key = request.app.state.xstilts.api_key
    if key is None:
        return
    if credentials is None or not secrets.compare_digest(credentials.credentials.encode(), key.encode()):
        raise unauthorized()


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    return {s: {"model": ErrorBody, "description": ERROR_STATUSES[s]} for s in statuses}


def _openapi(app: FastAPI) -> Callable[[], dict[str, Any]]:
    """OpenAPI with the request bodies the inference routes parse themselves (for limits and binary tensors)."""

    def build() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        for model in (PredictRequest, InferenceRequest):
            model_schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
            for name, definition in model_schema.pop("$defs", {}).items():
                components.setdefault(name, definition)
            components[model.__name__] = model_schema
        app.openapi_schema = schema
        return schema

    return build


@contextlib.asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    state: ServerState = app.state.xstilts
    loading = asyncio.create_task(state.load(), name="load-models")
    try:
        yield
    finally:
        state.begin_drain()
        if not loading.done():
            loading.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await loading
        await state.close()


def create_app(state: ServerState) -> FastAPI:
    """The application for ``state`` (its settings decide auth and limits)."""
    settings = state.settings
    app = FastAPI(
        title="xstilts",
        version=__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
        separate_input_output_schemas=False,
    )
    app.state.xstilts = state
    # the key check (and its OpenAPI security scheme) only exist when a key is configured
    api_auth = [Depends(require_key)] if state.api_key is not None else []
    open_auth = api_auth if settings.auth_health else []
    auth_codes = (401,) if state.api_key is not None else ()
    health_codes = auth_codes if settings.auth_health else ()

    @app.exception_handler(ServeError)
    async def serve_error(_: Request, exc: ServeError) -> Response:
        return error_response(exc)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, exc: StarletteHTTPException) -> Response:
        return json_response({"error": str(exc.detail)}, exc.status_code, dict(exc.headers or {}))

    @app.exception_handler(RequestValidationError)
    async def validation_error(_: Request, exc: RequestValidationError) -> Response:
        parts = [f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()[:3]]
        return json_response({"error": "; ".join(parts) or "invalid request"}, 422)

    @app.exception_handler(Exception)
    async def internal_error(_: Request, exc: Exception) -> Response:
        log.error("unhandled error", exc_info=exc)
        return JSONResponse({"error": "internal server error (logged)"}, 500)

    probe = {"dependencies": open_auth, "responses": error_responses(*health_codes, 503), "tags": ["probes"]}

    @app.get("/healthz", summary="Liveness: 200 while the process runs, draining or not", **probe)
    async def healthz() -> dict[str, str]:
        return {"status": "alive"}

    @app.get("/readyz", summary="Readiness: 200 when every model is loaded and the server is not draining", **probe)
    async def readyz(request: Request) -> Response:
        state: ServerState = request.app.state.xstilts
        if state.ready:
            return json_response({"status": "ready"})
        if state.draining:
            reason = "draining"
        elif state.fatal:
            reason = state.fatal
        else:
            loading = [m.name for m in state.models.values() if m.status == "loading"]
            reason = f"loading {', '.join(loading)}"
        return json_response({"error": f"not ready: {reason}"}, 503)

    @app.get(
        "/metrics",
        summary="Prometheus metrics",
        response_class=Response,
        responses={200: {"content": {CONTENT_TYPE_LATEST: {}}}, **error_responses(*health_codes)},
        dependencies=open_auth,
        tags=["probes"],
    )
    async def metrics(request: Request) -> Response:
        registry = request.app.state.xstilts.metrics.registry
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    @app.get("/openapi.json", include_in_schema=False, dependencies=open_auth)
    async def openapi_json() -> Response:
        return JSONResponse(app.openapi())

    @app.get("/docs", include_in_schema=False, dependencies=open_auth)
    async def docs() -> HTMLResponse:
        return get_swagger_ui_html(openapi_url="/openapi.json", title="xstilts API")

    api_errors = error_responses(400, *auth_codes, 404, 413, 422, 429, 503)
    names = sorted(state.models)
    versions = sorted({m.variant for m in state.models.values()})
    app.include_router(api_v1.build_router(api_errors, api_auth, names))
    health_errors = error_responses(*health_codes)
    app.include_router(api_v2.build_router(api_errors, health_errors, api_auth, open_auth, names, versions))
    app.openapi = _openapi(app)  # type: ignore[method-assign]
    return app
