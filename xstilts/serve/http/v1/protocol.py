"""The friendly JSON API's bodies: ``POST /v1/models/{name}/predict``, ``POST /v1/models/{name}/embed`` and
``GET /v1/models``.

An item is a text (``"..."``), a text pair (``{"text": ..., "text_pair": ...}``) for classification models, or
``{"premise": ..., "question": ..., "choices": [...]}`` for multiple-choice models. Each prediction gives the label,
its index and probability (``score``), every probability (in the order of ``labels``, or of the choices), and
whether the input was cut to the model's ``max_length``. A tagging model takes texts or ``{"words": [...]}`` and
answers each item with its words (character offsets, tag, score) and, for named entities, the entities.
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Discriminator, Field, Tag

from xstilts.contracts.embedding import EmbeddingSpec
from xstilts.contracts.kinds import TaskKind
from xstilts.contracts.span import SpanSpec
from xstilts.serve.core.model import ModelStatus

MAX_CHOICES = 16
_NON_SPACE = re.compile(r"\S")


def check_text(value: str) -> str:
    """A text must hold something besides whitespace."""
    if not _NON_SPACE.search(value):
        raise ValueError("text is empty or only whitespace")
    return value


Text = Annotated[str, AfterValidator(check_text), Field(min_length=1, json_schema_extra={"pattern": r"\S"})]


class PairInput(BaseModel):
    """One text, or a text pair (premise and hypothesis, two sentences...), for a classification model."""

    model_config = ConfigDict(extra="forbid")

    text: Text
    text_pair: Text | None = None


class ChoiceInput(BaseModel):
    """A multiple-choice item: a premise (or context), an optional question and the candidate answers."""

    model_config = ConfigDict(extra="forbid")

    premise: Text
    question: Text | None = None
    choices: list[Text] = Field(min_length=1, max_length=MAX_CHOICES)


class WordsInput(BaseModel):
    """A sentence already split into words, for a tagging model (the server joins them by single spaces)."""

    model_config = ConfigDict(extra="forbid")

    words: list[Text] = Field(min_length=1)


def _item_kind(value: Any) -> str | None:
    if isinstance(value, str):
        return "text"
    if isinstance(value, dict):
        if "words" in value:
            return "words"
        return "choices" if "choices" in value or "premise" in value else "pair"
    if isinstance(value, PairInput):
        return "pair"
    if isinstance(value, ChoiceInput):
        return "choices"
    if isinstance(value, WordsInput):
        return "words"
    return None


Item = Annotated[
    Annotated[Text, Tag("text")]
    | Annotated[PairInput, Tag("pair")]
    | Annotated[ChoiceInput, Tag("choices")]
    | Annotated[WordsInput, Tag("words")],
    Discriminator(
        _item_kind,
        custom_error_type="item_type",
        custom_error_message="an item is a string, {text, text_pair}, {premise, question, choices} or {words}",
    ),
]


class PredictRequest(BaseModel):
    """A batch of items for one model; ``truncate: false`` refuses (422) inputs longer than the model's max_length."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"inputs": [{"text": "A man plays a guitar.", "text_pair": "Someone makes music."}]},
                {"inputs": [{"premise": "The glass fell.", "question": "effect", "choices": ["It broke.", "It ran."]}]},
            ]
        },
    )

    inputs: list[Item] = Field(min_length=1, description="the items; at most the server's max_items")
    truncate: bool = Field(True, description="cut inputs to the model's max_length (else 422 when one is too long)")


class Prediction(BaseModel):
    label: str = Field(description="the predicted label, or the text of the chosen choice")
    index: int = Field(description="index of the label in `labels`, or of the chosen choice")
    score: float = Field(description="probability of the prediction")
    probabilities: list[float] = Field(description="every label's probability (order of `labels`), or every choice's")
    truncated: bool = Field(description="true when the input was cut to the model's max_length")


class PredictResponse(BaseModel):
    model: str
    variant: str
    labels: list[str] | None = Field(None, description="label order of `probabilities` (classification models)")
    predictions: list[Prediction]


class TaggedWordOut(BaseModel):
    text: str
    start: int = Field(description="character offset of the word in the item's text")
    end: int = Field(description="character offset just after the word (text[start:end] is the word)")
    tag: str
    score: float = Field(description="probability of the tag")


class EntityOut(BaseModel):
    text: str = Field(description="the entity as it is written in the item's text: text[start:end]")
    type: str = Field(description="the entity type: PER, ORG, LOC...")
    start: int
    end: int
    score: float = Field(description="mean probability of the entity's word tags")


class TagPrediction(BaseModel):
    text: str = Field(description="the text the offsets point into (pre-split words joined by single spaces)")
    words: list[TaggedWordOut]
    entities: list[EntityOut] | None = Field(None, description="named entities (BIO tag sets only)")
    windows: int = Field(description="how many model windows the item took (long sentences are split, not cut)")


class TagResponse(BaseModel):
    model: str
    variant: str
    labels: list[str] = Field(description="the model's tag set")
    predictions: list[TagPrediction]


class EmbedRequest(BaseModel):
    """Texts for an embedding model; the server adds the model's prefix (``query: ``...) itself."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"inputs": ["A man plays a guitar."]}]})

    inputs: list[Text] = Field(min_length=1, description="the texts; at most the server's max_items")
    normalize: bool | None = Field(
        None, description="unit-length vectors (default: as the bundle's graph gives them; false only if it does not)"
    )
    truncate: bool = Field(True, description="cut inputs to the model's max_length (else 422 when one is too long)")


class EmbedResponse(BaseModel):
    model: str
    variant: str
    dimension: int
    embeddings: list[list[float]] = Field(description="one vector per text, in the order of `inputs`")
    truncated: list[bool] = Field(description="per text: true when it was cut to the model's max_length")


class ModelInfo(BaseModel):
    name: str
    variant: str
    variants: list[str]
    task: str
    kind: TaskKind
    labels: list[str]
    languages: list[str]
    max_length: int
    precision: str
    optimization: str | None = None
    provider: str | None = Field(None, description="the ONNX Runtime execution provider that runs it")
    state: ModelStatus
    error: str | None = None
    input: str = Field(description="what an item looks like for this model")
    embedding: EmbeddingSpec | None = Field(None, description="an embedding model's layer, pooling, prefix...")
    span_qa: SpanSpec | None = Field(None, description="a QA model's window overlap (doc_stride), longest answer")


class ModelList(BaseModel):
    models: list[ModelInfo]
