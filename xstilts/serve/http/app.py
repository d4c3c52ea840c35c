"""The FastAPI application: routes, auth, error bodies, OpenAPI, and a lifespan that loads and drains.

Models load in the background once the server listens, so liveness answers while a large model (or a TensorRT
engine build) takes its time; readiness turns true when every model is loaded. On shutdown readiness turns
false at once and new inference gets 503, while requests already in flight finish (:mod:`.server` drains).
Every request gets an id and, with tracing on, a span (:mod:`.middleware`). With a gRPC port set, the lifespan
also runs the v2 gRPC service (:mod:`xstilts.serve.grpc`) on the same event loop, models and limits.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
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
from xstilts.serve.core.auth import authorize
from xstilts.serve.core.errors import ErrorKind, ServeError, internal, invalid, unavailable
from xstilts.serve.core.state import ServerState
from xstilts.serve.core.tracing import NO_TRACER, Tracer
from xstilts.serve.drain import Drain
from xstilts.serve.http.bodies import json_response
from xstilts.serve.http.errors import error_body, error_response, kind_of, openapi_errors
from xstilts.serve.http.metrics import Metrics
from xstilts.serve.http.middleware import RequestContext
from xstilts.serve.http.openai_api import routes as openai_api
from xstilts.serve.http.openai_api.protocol import EmbeddingsRequest
from xstilts.serve.http.v1 import routes as v1
from xstilts.serve.http.v1.protocol import EmbedRequest, PredictRequest
from xstilts.serve.http.v1.spans import AnswerRequest
from xstilts.serve.http.v2 import repository
from xstilts.serve.http.v2 import routes as v2
from xstilts.serve.http.v2.protocol import InferenceRequest
from xstilts.serve.http.v2.repository import LoadRequest, RepositoryIndexRequest, UnloadRequest

log = logging.getLogger("xstilts.serve")

DESCRIPTION = """Cross-lingual classifiers, multiple-choice and extractive question-answering models trained with
intermediate tasks, and sentence encoders, exported to ONNX. Three APIs: a JSON one (`/v1`), OpenAI's embeddings API
(`/v1/embeddings`) and the Open Inference Protocol (KServe v2, `/v2`).
Every error is `{"error": "message", "error_type": "kind"}`."""

bearer = HTTPBearer(auto_error=False, description="the server's API key, when one is configured")


BEARER = Security(bearer)


async def require_key(request: Request, credentials: HTTPAuthorizationCredentials | None = BEARER) -> None:
    """401 unless the bearer token matches the configured key (no key configured: open)."""
    authorize(request.app.state.xstilts.api_key, credentials.credentials if credentials is not None else None)


def _openapi(app: FastAPI) -> Callable[[], dict[str, Any]]:
    """OpenAPI with the request bodies the inference routes parse themselves (for limits and binary tensors)."""

    def build() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        bodies = (PredictRequest, AnswerRequest, EmbedRequest, EmbeddingsRequest, InferenceRequest)
        for model in (*bodies, RepositoryIndexRequest, LoadRequest, UnloadRequest):
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
    grpc = None
    if state.settings.grpc_port is not None:
        from xstilts.serve.grpc.server import start_grpc

        grpc = await start_grpc(state, app.state.metrics, app.state.drain, app.state.tracer)
    app.state.grpc = grpc  # its port, for those who asked for port 0
    try:
        yield
    finally:
        state.begin_drain()
        if grpc is not None:
            await grpc.stop(app.state.drain)
        shutdown = getattr(app.state.tracer, "shutdown", None)
        if shutdown is not None:  # send the spans still buffered
            await asyncio.to_thread(shutdown)
        if not loading.done():
            loading.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await loading
        await state.close()


def create_app(state: ServerState, tracer: Tracer | None = None) -> FastAPI:
    """The application for ``state`` (its settings decide auth, limits, gRPC and tracing); ``tracer`` replaces the
    one the settings give (tests pass one that keeps its spans in memory)."""
    settings = state.settings
    if tracer is None:
        from xstilts.serve.tracing import tracer_from_settings

        tracer = tracer_from_settings(settings) or NO_TRACER
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
    app.state.metrics = Metrics()
    app.state.drain = Drain(settings.drain_seconds)
    app.state.tracer = tracer
    app.add_middleware(RequestContext, state=state, drain=app.state.drain, tracer=tracer)
    state.observe(app.state.metrics)
    # the key check (and its OpenAPI security scheme) only exist when a key is configured
    api_auth = [Depends(require_key)] if state.api_key is not None else []
    open_auth = api_auth if settings.auth_health else []
    auth_kinds = (ErrorKind.UNAUTHORIZED,) if state.api_key is not None else ()
    health_kinds = auth_kinds if settings.auth_health else ()

    @app.exception_handler(ServeError)
    async def serve_error(_: Request, exc: ServeError) -> Response:
        return error_response(exc)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, exc: StarletteHTTPException) -> Response:
        body = error_body(kind_of(exc.status_code), str(exc.detail))
        return json_response(body, exc.status_code, dict(exc.headers or {}))

    @app.exception_handler(RequestValidationError)
    async def validation_error(_: Request, exc: RequestValidationError) -> Response:
        parts = [f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()[:3]]
        return error_response(invalid("; ".join(parts) or "invalid request"))

    @app.exception_handler(Exception)
    async def internal_error(_: Request, exc: Exception) -> Response:
        log.error("unhandled error", exc_info=exc)
        return error_response(internal())

    probe = {
        "dependencies": open_auth,
        "responses": openapi_errors(*health_kinds, ErrorKind.UNAVAILABLE),
        "tags": ["probes"],
    }

    @app.get("/healthz", summary="Liveness: 200 while the process runs, draining or not", **probe)
    async def healthz() -> dict[str, str]:
        return {"status": "alive"}

    @app.get("/readyz", summary="Readiness: 200 when every model is loaded and the server is not draining", **probe)
    async def readyz(request: Request) -> Response:
        state: ServerState = request.app.state.xstilts
        if state.ready:
            return json_response({"status": "ready"})
        return error_response(unavailable(f"not ready: {state.not_ready_reason()}"))

    @app.get(
        "/metrics",
        summary="Prometheus metrics",
        response_class=Response,
        responses={200: {"content": {CONTENT_TYPE_LATEST: {}}}, **openapi_errors(*health_kinds)},
        dependencies=open_auth,
        tags=["probes"],
    )
    async def metrics(request: Request) -> Response:
        registry = request.app.state.metrics.registry
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    @app.get("/openapi.json", include_in_schema=False, dependencies=open_auth)
    async def openapi_json() -> Response:
        return JSONResponse(app.openapi())

    @app.get("/docs", include_in_schema=False, dependencies=open_auth)
    async def docs() -> HTMLResponse:
        return get_swagger_ui_html(openapi_url="/openapi.json", title="xstilts API")

    api_errors = openapi_errors(
        ErrorKind.BAD_REQUEST,
        *auth_kinds,
        ErrorKind.NOT_FOUND,
        ErrorKind.TOO_LARGE,
        ErrorKind.VALIDATION,
        ErrorKind.OVERLOADED,
        ErrorKind.UNAVAILABLE,
    )
    names = sorted(state.models)
    versions = sorted({m.variant for m in state.models.values()})
    app.include_router(v1.build_router(api_errors, api_auth, names))
    app.include_router(openai_api.build_router(api_errors, api_auth))
    health_errors = openapi_errors(*health_kinds)
    app.include_router(v2.build_router(api_errors, health_errors, api_auth, open_auth, names, versions))
    control_errors = {**api_errors, **openapi_errors(ErrorKind.CONFLICT)}
    app.include_router(repository.build_router(control_errors, api_auth))
    app.openapi = _openapi(app)  # type: ignore[method-assign]
    return app
