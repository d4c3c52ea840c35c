"""The friendly JSON API's routes: ``GET /v1/models``, ``GET /v1/models/{name}``, ``POST /v1/models/{name}/predict``
and ``POST /v1/models/{name}/embed``."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from xstilts.contracts.kinds import TaskKind
from xstilts.serve.core.model import ServedModel
from xstilts.serve.http.bodies import JSON, check_item_count, parse, read_body
from xstilts.serve.http.metrics import V1_EMBED, V1_PREDICT
from xstilts.serve.http.routing import answer, model_name_parameter, state_of
from xstilts.serve.http.v1.codec import (
    embed_response,
    item_segments,
    model_info,
    predict_response,
    tag_items,
    tag_response,
)
from xstilts.serve.http.v1.protocol import (
    EmbedRequest,
    EmbedResponse,
    ModelInfo,
    ModelList,
    PredictRequest,
    PredictResponse,
    TagResponse,
)
from xstilts.serve.http.v1.spans import AnswerResponse, answer_questions


def body_schema(*models: str) -> dict[str, Any]:
    """The body a route reads and parses itself (within max_body_bytes), for OpenAPI: the schema of ``models``
    (one of them, when several: the model's kind decides)."""
    refs = [{"$ref": f"#/components/schemas/{model}"} for model in models]
    schema = refs[0] if len(refs) == 1 else {"oneOf": refs}
    return {"requestBody": {"required": True, "content": {JSON: {"schema": schema}}}}


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
        response_model=PredictResponse | AnswerResponse | TagResponse,
        responses=error_responses,
        summary="Classify texts or text pairs, pick among choices, answer questions about contexts, or tag words",
        openapi_extra=body_schema("PredictRequest", "AnswerRequest"),
    )
    async def predict(request: Request, name: str = model_name) -> PredictResponse | AnswerResponse | TagResponse:
        settings = state_of(request).settings

        async def handle(model: ServedModel) -> PredictResponse | AnswerResponse | TagResponse:
            raw = await read_body(request, settings.max_body_bytes)
            if model.manifest.kind is TaskKind.SPAN_QA:
                return await answer_questions(model, raw, settings.max_items, settings.max_windows)
            body = parse(PredictRequest, raw)
            check_item_count(len(body.inputs), settings.max_items)
            if model.tagging:
                return tag_response(model, await model.tag(tag_items(model, body)))
            outcome = await model.infer(item_segments(model, body), body.truncate)
            return predict_response(model, body, outcome)

        return await answer(request, name, V1_PREDICT, handle)

    @router.post(
        "/models/{name}/embed",
        response_model=EmbedResponse,
        responses=error_responses,
        summary="Sentence vectors of texts (embedding models)",
        openapi_extra=body_schema("EmbedRequest"),
    )
    async def embed(request: Request, name: str = model_name) -> EmbedResponse:
        settings = state_of(request).settings

        async def handle(model: ServedModel) -> EmbedResponse:
            body = parse(EmbedRequest, await read_body(request, settings.max_body_bytes))
            check_item_count(len(body.inputs), settings.max_items)
            return embed_response(model, await model.embed(body.inputs, body.normalize, body.truncate))

        return await answer(request, name, V1_EMBED, handle)

    return router
