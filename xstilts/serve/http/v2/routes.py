"""The Open Inference Protocol (KServe v2) routes over HTTP/REST, as its specification has them.

Health (``/v2/health/live``, ``/v2/health/ready``), server and model metadata (``/v2``, ``/v2/models/{name}``),
model readiness and inference, with or without ``/versions/{version}`` (a version is a bundle variant; only the
loaded one answers).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Path, Request
from starlette.responses import Response

from xstilts import __version__
from xstilts.serve.core.model import ServedModel
from xstilts.serve.core.tracing import ENCODE, tracer
from xstilts.serve.http.bodies import JSON, json_response, parse, read_body
from xstilts.serve.http.metrics import V2_INFER
from xstilts.serve.http.routing import answer, model_name_parameter, state_of
from xstilts.serve.http.v2.codec import check_version, infer_response, metadata, split_header
from xstilts.serve.http.v2.protocol import (
    EXTENSIONS,
    SERVER_NAME,
    InferenceRequest,
    InferenceResponse,
    ModelMetadata,
    ModelReady,
    ServerLive,
    ServerMetadata,
    ServerReady,
)
from xstilts.serve.http.v2.serving import run_inference


def build_router(
    error_responses: dict[int | str, dict[str, Any]],
    health_responses: dict[int | str, dict[str, Any]],
    api_dependencies: list,
    health_dependencies: list,
    names: list[str],
    versions: list[str],
) -> APIRouter:
    router = APIRouter(prefix="/v2", tags=["v2: Open Inference Protocol"])
    model_name = model_name_parameter(names)
    model_version = Path(description="a version: the variant the server loaded", json_schema_extra={"enum": versions})
    health = {"dependencies": health_dependencies, "responses": health_responses}
    api = {"dependencies": api_dependencies, "responses": error_responses}
    not_ready = {503: {"model": ServerReady, "description": "not ready: loading, failed or draining"}}
    model_not_ready = {
        404: error_responses[404],
        503: {"model": ModelReady, "description": "the model is not ready (or the server is draining)"},
    }

    @router.get("/health/live", response_model=ServerLive, summary="Server live", **health)
    async def server_live() -> ServerLive:
        return ServerLive(live=True)

    @router.get(
        "/health/ready",
        response_model=ServerReady,
        summary="Server ready",
        dependencies=health_dependencies,
        responses={**health_responses, **not_ready},
    )
    async def server_ready(request: Request) -> Response:
        ready = state_of(request).ready
        return json_response({"live": True, "ready": ready}, 200 if ready else 503)

    @router.get("", response_model=ServerMetadata, summary="Server metadata", **api)
    async def server_metadata() -> ServerMetadata:
        return ServerMetadata(name=SERVER_NAME, version=__version__, extensions=EXTENSIONS)

    async def _model_metadata(request: Request, name: str, version: str | None) -> ModelMetadata:
        model = state_of(request).get(name)
        check_version(model, version)
        return metadata(model)

    @router.get("/models/{name}", response_model=ModelMetadata, summary="Model metadata", **api)
    async def model_metadata(request: Request, name: str = model_name) -> ModelMetadata:
        return await _model_metadata(request, name, None)

    @router.get(
        "/models/{name}/versions/{version}", response_model=ModelMetadata, summary="Model metadata (version)", **api
    )
    async def model_version_metadata(
        request: Request, name: str = model_name, version: str = model_version
    ) -> ModelMetadata:
        return await _model_metadata(request, name, version)

    async def _model_ready(request: Request, name: str, version: str | None) -> Response:
        state = state_of(request)
        model = state.get(name)
        check_version(model, version)
        ready = model.ready and not state.draining
        return json_response({"name": name, "ready": ready}, 200 if ready else 503)

    @router.get(
        "/models/{name}/ready",
        response_model=ModelReady,
        summary="Model ready",
        dependencies=health_dependencies,
        responses={**health_responses, **model_not_ready},
    )
    async def model_ready(request: Request, name: str = model_name) -> Response:
        return await _model_ready(request, name, None)

    @router.get(
        "/models/{name}/versions/{version}/ready",
        response_model=ModelReady,
        summary="Model ready (version)",
        dependencies=health_dependencies,
        responses={**health_responses, **model_not_ready},
    )
    async def model_version_ready(request: Request, name: str = model_name, version: str = model_version) -> Response:
        return await _model_ready(request, name, version)

    async def _infer(request: Request, name: str, version: str | None) -> Response:
        state = state_of(request)

        async def handle(model: ServedModel) -> Response:
            check_version(model, version)
            body = await read_body(request, state.settings.max_body_bytes)
            header, binary = split_header(request, body)
            inference = parse(InferenceRequest, header)
            items, outcome = await run_inference(model, inference, binary, state.settings)
            with tracer().span(ENCODE):
                return infer_response(model, inference, outcome, items)

        return await answer(request, name, V2_INFER, handle)

    infer_body = {
        "requestBody": {
            "required": True,
            "content": {JSON: {"schema": {"$ref": "#/components/schemas/InferenceRequest"}}},
        }
    }

    @router.post(
        "/models/{name}/infer",
        response_model=InferenceResponse,
        summary="Inference",
        openapi_extra=infer_body,
        **api,
    )
    async def infer(request: Request, name: str = model_name) -> Response:
        return await _infer(request, name, None)

    @router.post(
        "/models/{name}/versions/{version}/infer",
        response_model=InferenceResponse,
        summary="Inference (version)",
        openapi_extra=infer_body,
        **api,
    )
    async def infer_version(request: Request, name: str = model_name, version: str = model_version) -> Response:
        return await _infer(request, name, version)

    return router
