"""The JSON API's codec: a predict request to core items (segment pairs, or texts and words to tag), a core outcome
to its response."""

from __future__ import annotations

from xstilts.contracts.kinds import TaskKind
from xstilts.serve.core.errors import invalid
from xstilts.serve.core.model import Embeddings, Outcome, ServedModel
from xstilts.serve.core.tagging import Tagged, TagItem
from xstilts.serve.http.v1.protocol import (
    ChoiceInput,
    EmbedResponse,
    EntityOut,
    ModelInfo,
    PairInput,
    Prediction,
    PredictRequest,
    PredictResponse,
    TaggedWordOut,
    TagPrediction,
    TagResponse,
    WordsInput,
)
from xstilts.serve.http.v1.spans import QA_INPUT
from xstilts.tasks.encoding import Segments, choice_segments

# what an item looks like, per kind (GET /v1/models/{name} says it, and so do the errors)
PAIR_INPUT = 'a text, or {"text": ..., "text_pair": ...}'
SINGLE_INPUT = 'a text, or {"text": ...}'
CHOICE_INPUT = '{"premise": ..., "question": ... (optional), "choices": [...]}'
EMBED_INPUT = "a text (the server adds the model's prefix); POST /v1/models/{name}/embed or /v1/embeddings"
TAG_INPUT = 'a text (split into words by the server), or {"words": [...]}'
INPUTS = {
    TaskKind.PAIR: PAIR_INPUT,
    TaskKind.SINGLE: SINGLE_INPUT,
    TaskKind.MULTIPLE_CHOICE: CHOICE_INPUT,
    TaskKind.EMBEDDING: EMBED_INPUT,
    TaskKind.SPAN_QA: QA_INPUT,
    TaskKind.TOKEN_CLASSIFICATION: TAG_INPUT,
}


def model_info(model: ServedModel) -> ModelInfo:
    m = model.manifest
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
        input=INPUTS[m.kind],
        embedding=m.embedding,
        span_qa=m.span_qa,
    )


def item_segments(model: ServedModel, request: PredictRequest) -> list[list[Segments]]:
    """Each item's segment pairs, by the training rule; a validation error when an item does not suit the kind."""
    kind = model.manifest.kind
    items: list[list[Segments]] = []
    for index, item in enumerate(request.inputs):
        if model.multiple_choice:
            if not isinstance(item, ChoiceInput):
                raise invalid(f"inputs.{index}: {model.name} is a multiple-choice model: send {CHOICE_INPUT}")
            items.append(choice_segments(item.premise, item.question, item.choices))
        elif isinstance(item, ChoiceInput | WordsInput):
            raise invalid(f"inputs.{index}: {model.name} is a {kind} model: send {INPUTS[kind]}")
        elif isinstance(item, str):
            items.append([(item, None)])
        else:
            assert isinstance(item, PairInput)
            if item.text_pair is not None and kind is TaskKind.SINGLE:
                raise invalid(f"inputs.{index}: {model.name} classifies single texts: drop text_pair")
            items.append([(item.text, item.text_pair)])
    return items


def predict_response(model: ServedModel, request: PredictRequest, outcome: Outcome) -> PredictResponse:
    """Each item's label (a label of the model's, or the chosen choice's text), index, score and probabilities."""
    labels = model.manifest.labels
    predictions = []
    for index, item in enumerate(request.inputs):
        probabilities = outcome.probabilities[index]
        best = int(probabilities.argmax())
        predictions.append(
            Prediction(
                label=item.choices[best] if isinstance(item, ChoiceInput) else labels[best],
                index=best,
                score=float(probabilities[best]),
                probabilities=probabilities.tolist(),
                truncated=outcome.truncated[index],
            )
        )
    return PredictResponse(
        model=model.name,
        variant=model.variant,
        labels=None if model.multiple_choice else labels,
        predictions=predictions,
    )


def embed_response(model: ServedModel, embeddings: Embeddings) -> EmbedResponse:
    """The vectors, in the order of the texts, with their dimension and truncation flags."""
    vectors = [v.astype(float).tolist() for v in embeddings.vectors]
    return EmbedResponse(
        model=model.name,
        variant=model.variant,
        dimension=len(vectors[0]),
        embeddings=vectors,
        truncated=embeddings.truncated,
    )


def tag_items(model: ServedModel, request: PredictRequest) -> list[TagItem]:
    """A tagging request's items: raw texts (split by the word rule) or pre-split words."""
    items = []
    for index, item in enumerate(request.inputs):
        if isinstance(item, str):
            items.append(TagItem.from_text(item))
        elif isinstance(item, WordsInput):
            items.append(TagItem.from_words(item.words))
        else:
            raise invalid(f"inputs.{index}: {model.name} is a tagging model: send {TAG_INPUT}")
    return items


def tag_response(model: ServedModel, tagged: list[Tagged]) -> TagResponse:
    """Each item's words with offsets, tags and scores, and its entities (BIO tag sets)."""
    predictions = [
        TagPrediction(
            text=item.text,
            words=[TaggedWordOut(**vars(word)) for word in item.words],
            entities=None if item.entities is None else [EntityOut(**vars(e)) for e in item.entities],
            windows=item.windows,
        )
        for item in tagged
    ]
    return TagResponse(model=model.name, variant=model.variant, labels=model.manifest.labels, predictions=predictions)
