"""The JSON API for extractive QA models: ``POST /v1/models/{name}/predict`` with questions and contexts.

A request holds ``{"question": ..., "context": ...}`` items and ``top_k`` (default 1); each prediction gives the
``top_k`` best answers (fewer when the context has fewer candidate spans): the answer's text, its character
``start`` and ``end`` (exclusive) in the context as sent, so that ``context[start:end] == text``, and its
``score`` (the span's probability among the item's candidates), with the number of windows the context took.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from xstilts.serve.core.model import ServedModel
from xstilts.serve.core.spans import Pair, Spans
from xstilts.serve.http.bodies import check_item_count, parse
from xstilts.serve.http.v1.protocol import Text

MAX_TOP_K = 20  # the post-processing's n-best per window bounds what is worth asking for
QA_INPUT = '{"question": ..., "context": ...} (and "top_k" in the body)'


class QuestionInput(BaseModel):
    """A question about a context (a paragraph, an article: long contexts are split into windows)."""

    model_config = ConfigDict(extra="forbid")

    question: Text
    context: Text


class AnswerRequest(BaseModel):
    """Questions for an extractive QA model; ``top_k`` answers per question, best first."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "inputs": [{"question": "Who plays?", "context": "On stage, a man plays the guitar."}],
                    "top_k": 1,
                }
            ]
        },
    )

    inputs: list[QuestionInput] = Field(min_length=1, description="the questions; at most the server's max_items")
    top_k: int = Field(1, ge=1, le=MAX_TOP_K, description="answers per question, best first")


class SpanAnswer(BaseModel):
    text: str = Field(description="the answer: context[start:end]")
    start: int = Field(description="character offset of the answer in the context as sent")
    end: int = Field(description="character offset just past the answer")
    score: float = Field(description="probability of this span among the item's candidate spans")


class AnswerPrediction(BaseModel):
    answers: list[SpanAnswer] = Field(description="the best answers, best first (at most top_k)")
    windows: int = Field(description="how many windows of the model's max_length the context took")


class AnswerResponse(BaseModel):
    model: str
    variant: str
    predictions: list[AnswerPrediction]


async def answer_questions(model: ServedModel, body: bytes, max_items: int, max_windows: int) -> AnswerResponse:
    """Parse an answer request, answer it, and shape the response."""
    request = parse(AnswerRequest, body)
    check_item_count(len(request.inputs), max_items)
    spans = await model.answer(item_pairs(request), request.top_k, max_windows)
    return answer_response(model, spans)


def item_pairs(request: AnswerRequest) -> list[Pair]:
    """Each item's (question, context) pair."""
    return [(item.question, item.context) for item in request.inputs]


def answer_response(model: ServedModel, spans: Spans) -> AnswerResponse:
    predictions = [
        AnswerPrediction(
            answers=[SpanAnswer(text=a.text, start=a.start, end=a.end, score=a.score) for a in answers],
            windows=windows,
        )
        for answers, windows in zip(spans.answers, spans.windows, strict=True)
    ]
    return AnswerResponse(model=model.name, variant=model.variant, predictions=predictions)
