"""The OpenAI embeddings API's codec: a request to texts, an embedding outcome to OpenAI's response shape."""

from __future__ import annotations

import base64

import numpy as np

from xstilts.serve.core.errors import invalid
from xstilts.serve.core.model import Embeddings, ServedModel
from xstilts.serve.http.openai_api.protocol import EmbeddingItem, EmbeddingsRequest, EmbeddingsResponse, Usage


def request_texts(model: ServedModel, request: EmbeddingsRequest) -> list[str]:
    """The texts to embed; a ``dimensions`` other than the model's is refused (vectors are not shortened)."""
    dimension = model.embedding.dimension if model.embedding else None
    if request.dimensions is not None and request.dimensions != dimension:
        raise invalid(f"dimensions: {model.name} gives vectors of {dimension} dimensions, not {request.dimensions}")
    return [request.input] if isinstance(request.input, str) else list(request.input)


def _encode(vector: np.ndarray, encoding_format: str) -> list[float] | str:
    if encoding_format == "base64":
        return base64.b64encode(vector.astype("<f4").tobytes()).decode("ascii")
    return vector.astype(float).tolist()


def embeddings_response(model: ServedModel, request: EmbeddingsRequest, outcome: Embeddings) -> EmbeddingsResponse:
    data = [
        EmbeddingItem(index=index, embedding=_encode(vector, request.encoding_format))
        for index, vector in enumerate(outcome.vectors)
    ]
    return EmbeddingsResponse(
        data=data, model=model.name, usage=Usage(prompt_tokens=outcome.tokens, total_tokens=outcome.tokens)
    )
