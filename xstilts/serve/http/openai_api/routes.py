"""``POST /v1/embeddings``: OpenAI's embeddings API over the served embedding models (the model named in the body)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from xstilts.serve.core.model import ServedModel
from xstilts.serve.http.bodies import check_item_count, parse, read_body
from xstilts.serve.http.metrics import OPENAI_EMBEDDINGS
from xstilts.serve.http.openai_api.codec import embeddings_response, request_texts
from xstilts.serve.http.openai_api.protocol import EmbeddingsRequest, EmbeddingsResponse
from xstilts.serve.http.routing import answer, state_of
from xstilts.serve.http.v1.routes import body_schema


def build_router(error_responses: dict[int | str, dict[str, Any]], dependencies: list) -> APIRouter:
    router = APIRouter(prefix="/v1", tags=["OpenAI embeddings API"], dependencies=dependencies)

    @router.post(
        "/embeddings",
        response_model=EmbeddingsResponse,
        responses=error_responses,
        summary="Sentence vectors in the shape of OpenAI's embeddings API",
        openapi_extra=body_schema("EmbeddingsRequest"),
    )
    async def embeddings(request: Request) -> EmbeddingsResponse:
        settings = state_of(request).settings
        # the body names the model, so it is read before the request is counted under that model
        body = parse(EmbeddingsRequest, await read_body(request, settings.max_body_bytes))

        async def handle(model: ServedModel) -> EmbeddingsResponse:
            texts = request_texts(model, body)
            check_item_count(len(texts), settings.max_items)
            return embeddings_response(model, body, await model.embed(texts))

        return await answer(request, body.model, OPENAI_EMBEDDINGS, handle)

    return router
