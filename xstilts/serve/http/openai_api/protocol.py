"""The bodies of ``POST /v1/embeddings`` in the shape of OpenAI's embeddings API, so that stock clients work.

``input`` is a text or a list of texts (token arrays are refused: the server tokenizes with the bundle's
tokenizer); ``encoding_format`` ``base64`` gives each vector as the base64 of its little-endian float32 bytes,
as OpenAI's clients decode it. Errors keep the server's one error body (``{"error", "error_type"}``).
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from xstilts.serve.http.v1.protocol import Text


class EmbeddingsRequest(BaseModel):
    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"model": "me5-small", "input": ["A man plays a guitar."]}]}
    )

    model: str = Field(description="the served model's name (see GET /v1/models)")
    input: Text | Annotated[list[Text], Field(min_length=1)] = Field(
        description="a text or a list of texts; at most the server's max_items"
    )
    encoding_format: Literal["float", "base64"] = "float"
    dimensions: int | None = Field(None, description="must be the model's dimension when given (no truncation)")
    user: str | None = Field(None, description="accepted and ignored")


class EmbeddingItem(BaseModel):
    object: Literal["embedding"] = "embedding"
    index: int
    embedding: list[float] | str = Field(description="floats, or base64 of little-endian float32 bytes")


class Usage(BaseModel):
    prompt_tokens: int = Field(description="real (unpadded) tokens read, the prefix and special tokens included")
    total_tokens: int


class EmbeddingsResponse(BaseModel):
    object: Literal["list"] = "list"
    data: list[EmbeddingItem]
    model: str
    usage: Usage
