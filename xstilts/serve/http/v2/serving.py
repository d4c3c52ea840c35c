"""Serving one Open Inference Protocol request, whichever transport brought it (the HTTP route and the gRPC
service both call :func:`run_inference`): the inputs decoded into the core's items by the one codec, then run by
the model's kind."""

from __future__ import annotations

from xstilts.contracts.kinds import TaskKind
from xstilts.serve.core.model import Embeddings, Outcome, ServedModel
from xstilts.serve.core.spans import Spans
from xstilts.serve.core.tagging import Tagged, TagItem
from xstilts.serve.core.tracing import DECODE, tracer
from xstilts.serve.http.v2.codec import Items, decode_items
from xstilts.serve.http.v2.protocol import InferenceRequest
from xstilts.serve.settings import Settings

Answer = Outcome | Embeddings | Spans | list[Tagged]


async def run_inference(
    model: ServedModel, request: InferenceRequest, binary: bytes, settings: Settings
) -> tuple[Items, Answer]:
    """The request's items and the model's answer to them (``binary``: the inputs' binary sections)."""
    with tracer().span(DECODE):
        items = decode_items(model, request, binary, settings.max_items)
    answer: Answer
    if model.manifest.kind is TaskKind.SPAN_QA:
        answer = await model.answer(items.pairs, 1, settings.max_windows)
    elif model.embedding is not None:
        answer = await model.embed(items.texts)
    elif model.tagging:
        answer = await model.tag([TagItem.from_text(text) for text in items.texts])
    else:
        answer = await model.infer(items.segments)
    return items, answer
