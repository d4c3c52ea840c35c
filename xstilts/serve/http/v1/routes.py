"""The friendly JSON API's routes: ``GET /v1/models``, ``GET /v1/models/{name}``, ``POST /v1/models/{name}/predict``."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from xstilts.serve.core.errors import too_large
from xstilts.serve.core.model import ServedModel
from xstilts.serve.http.bodies import JSON, parse, read_body
from xstilts.serve.http.metrics import V1_PREDICT
from xstilts.serve.http.routing import answer, model_name_parameter, state_of
from xstilts.serve.http.v1.codec import item_segments, model_info, predict_response
from xstilts.serve.http.v1.protocol import ModelInfo, ModelList, PredictRequest, PredictResponse

# the body is read and parsed by the route itself (within max_body_bytes), so OpenAPI is told its schema
PREDICT_BODY = {
    "requestBody": {"required": True, "content": {JSON: {"schema": {"$ref": "#/components/schemas/PredictRequest"}}}}
}


def build_router(error_responses: dict[int | str, dict[str, Any]], dependencies: list, names: list[str]) -> APIRouter:
    router = APIRouter(prefix="/v1", tags=["v1: JSON API"], dependencies=dependencies)
    model_name = model_name_parameter(names)

    @router.get("/models", response_model=ModelList, responses=error_responses, summary="List the served models")
    async def list_models(request: Request) -> ModelList:
        return ModelList(models=[model_info(m) for m in state_of(request).models.values()])

    @router.get("/models/{name}", response_model=ModelInfo, responses=error_responses, summary="Describe a model")
    async def describe_model(request: Request, name: str = model_name) -> ModelInfo:
        return model_info(state_of(request).get(name))

    @router.post(
        "/models/{name}/predict",
        response_model=PredictResponse,
        responses=error_responses,
        summary="Classify texts or text pairs, or pick among choices",
        openapi_extra=PREDICT_BODY,
    )
    async def predict(request: Request, name: str = model_name) -> PredictResponse:
        settings = state_of(request).settings

        async def handle(model: ServedModel) -> PredictResponse:
            body = parse(PredictRequest, await read_body(request, settings.max_body_bytes))
            if len(body.inputs) > settings.max_items:
                raise too_large(f"{len(body.inputs)} items is more than the limit of {settings.max_items} (max_items)")
            outcome = await model.infer(item_segments(model, body), body.truncate)
            return predict_response(model, body, outcome)

        return await answer(request, name, V1_PREDICT, handle)

    return router
