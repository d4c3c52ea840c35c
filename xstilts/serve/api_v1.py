"""The friendly JSON API: ``GET /v1/models``, ``GET /v1/models/{name}``, ``POST /v1/models/{name}/predict``."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Path, Request
from starlette.responses import Response

from xstilts.serve.bodies import json_response, parse, read_body
from xstilts.serve.errors import too_large, unprocessable
from xstilts.serve.metrics import V1_PREDICT
from xstilts.serve.protocol_v1 import (
    ChoiceInput,
    ModelInfo,
    ModelList,
    PairInput,
    PredictRequest,
    PredictResponse,
)
from xstilts.serve.state import ServedModel, ServerState
from xstilts.tasks.encoding import Segments, choice_segments

PAIR_INPUT = 'a text, or {"text": ..., "text_pair": ...}'
SINGLE_INPUT = 'a text, or {"text": ...}'
CHOICE_INPUT = '{"premise": ..., "question": ... (optional), "choices": [...]}'


def state_of(request: Request) -> ServerState:
    return request.app.state.xstilts


def model_info(model: ServedModel) -> ModelInfo:
    m = model.manifest
    expected = {"pair_classification": PAIR_INPUT, "single_classification": SINGLE_INPUT}.get(m.kind, CHOICE_INPUT)
    return ModelInfo(
        name=model.name,
        variant=model.variant,
        variants=model.variants,
        task=m.task,
        kind=m.kind,
        labels=m.labels,
        languages=m.languages,
        max_length=m.max_length,
        precision=m.precision,
        optimization=m.optimization,
        provider=model.provider,
        state=model.status,
        error=model.error,
        input=expected,
    )


def item_segments(model: ServedModel, request: PredictRequest) -> list[list[Segments]]:
    """Each item's segment pairs, by the training rule; 422 when an item does not suit the model's kind."""
    kind = model.manifest.kind
    items: list[list[Segments]] = []
    for index, item in enumerate(request.inputs):
        if model.multiple_choice:
            if not isinstance(item, ChoiceInput):
                raise unprocessable(f"inputs.{index}: {model.name} is a multiple-choice model: send {CHOICE_INPUT}")
            items.append(choice_segments(item.premise, item.question, item.choices))
        elif isinstance(item, ChoiceInput):
            raise unprocessable(f"inputs.{index}: {model.name} is a {kind} model: send {PAIR_INPUT}")
        elif isinstance(item, str):
            items.append([(item, None)])
        else:
            assert isinstance(item, PairInput)
            if item.text_pair is not None and kind == "single_classification":
                raise unprocessable(f"inputs.{index}: {model.name} classifies single texts: drop text_pair")
            items.append([(item.text, item.text_pair)])
    return items


def model_name_parameter(names: list[str]) -> Any:
    """The ``{name}`` path parameter, documented with the names this server serves."""
    return Path(description="the model's name (see GET /v1/models)", json_schema_extra={"enum": names})


def build_router(error_responses: dict, dependencies: list, names: list[str]) -> APIRouter:
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
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/PredictRequest"}}},
            }
        },
    )
    async def predict(request: Request, name: str = model_name) -> Response:
        state = state_of(request)

        async def handle(model: ServedModel) -> Response:
            settings = state.settings
            body = parse(PredictRequest, await read_body(request, settings.max_body_bytes))
            if len(body.inputs) > settings.max_items:
                raise too_large(f"{len(body.inputs)} items is more than the limit of {settings.max_items} (max_items)")
            items = item_segments(model, body)
            model.check_ready()
            outcome = await model.infer(items, body.truncate)
            labels = model.manifest.labels
            predictions = []
            for index, item in enumerate(body.inputs):
                probabilities = outcome.probabilities[index]
                best = int(probabilities.argmax())
                label = item.choices[best] if isinstance(item, ChoiceInput) else labels[best]
                predictions.append(
                    {
                        "label": label,
                        "index": best,
                        "score": float(probabilities[best]),
                        "probabilities": probabilities.tolist(),
                        "truncated": outcome.truncated[index],
                    }
                )
            return json_response(
                {
                    "model": model.name,
                    "variant": model.variant,
                    "labels": None if model.multiple_choice else labels,
                    "predictions": predictions,
                }
            )

        return await state.answer(name, V1_PREDICT, handle)

    return router
