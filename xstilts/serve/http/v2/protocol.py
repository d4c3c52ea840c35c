"""The Open Inference Protocol (KServe v2) bodies, field for field as its REST specification has them.

Texts travel as ``BYTES`` tensors. Classification models take ``text_a`` [batch] and, for pair models, an
optional ``text_b`` [batch]; multiple-choice models take ``premise`` [batch], an optional ``question`` [batch] and
``choices`` [batch, choices]. Outputs: ``label`` (BYTES), ``index`` (INT64), ``probabilities`` and ``logits``
(FP32, [batch, labels or choices]) and ``truncated`` (BOOL). Embedding models take ``text`` [batch] and give
``embedding`` (FP32, [batch, dimension]) and ``truncated``; the server adds the bundle's prefix. Extractive QA
models take ``question`` and ``context`` [batch] and give ``answer`` (BYTES), ``start``, ``end`` (INT64) and
``score`` (FP32) (:mod:`xstilts.serve.http.v2.spans`). Tagging models take ``text`` [batch] (split into words by
the server) and give ``words`` and ``tags`` (BYTES), ``scores`` (FP32), ``starts`` and ``ends`` (INT64 character
offsets), each [batch, most words], shorter items padded with "", 0 or -1. Triton's binary
tensor extension is understood too (``Inference-Header-Content-Length``, ``binary_data_size``,
``binary_data_output``), as stock clients use it.
"""

from __future__ import annotations

from typing import Annotated, Union

from pydantic import BaseModel, ConfigDict, Field
from typing_extensions import TypeAliasType

PLATFORM = "onnx_onnxv1"
SERVER_NAME = "xstilts"
EXTENSIONS = ["binary_tensor_data", "model_repository"]
HEADER_LENGTH = "Inference-Header-Content-Length"

ParameterValue = Union[str, bool, int, float]  # noqa: UP007 - pydantic needs the runtime union
Parameters = dict[str, ParameterValue]
TensorData = TypeAliasType("TensorData", "list[TensorData | str | bool | int | float]")  # type: ignore[misc]
Dimension = Annotated[int, Field(ge=0, le=2**63 - 1)]


class RequestInput(BaseModel):
    name: str
    shape: list[Dimension]
    datatype: str
    parameters: Parameters | None = None
    data: TensorData | None = Field(None, description="required unless parameters.binary_data_size says it follows")


class RequestOutput(BaseModel):
    name: str
    parameters: Parameters | None = None


class InferenceRequest(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "id": "42",
                    "inputs": [
                        {"name": "text_a", "shape": [1], "datatype": "BYTES", "data": ["A man plays a guitar."]},
                        {"name": "text_b", "shape": [1], "datatype": "BYTES", "data": ["Someone makes music."]},
                    ],
                }
            ]
        }
    )

    id: str | None = None
    parameters: Parameters | None = None
    inputs: list[RequestInput] = Field(min_length=1)
    outputs: list[RequestOutput] | None = None


class ResponseOutput(BaseModel):
    name: str
    shape: list[int]
    datatype: str
    parameters: Parameters | None = None
    data: list[Union[str, bool, int, float]] | None = None  # noqa: UP007


class InferenceResponse(BaseModel):
    model_name: str
    model_version: str | None = None
    id: str | None = None
    parameters: Parameters | None = None
    outputs: list[ResponseOutput]


class MetadataTensor(BaseModel):
    name: str
    datatype: str
    shape: list[int]


class ModelMetadata(BaseModel):
    name: str
    versions: list[str] | None = None
    platform: str
    inputs: list[MetadataTensor]
    outputs: list[MetadataTensor]


class ServerMetadata(BaseModel):
    name: str
    version: str
    extensions: list[str]


class ServerLive(BaseModel):
    live: bool


class ServerReady(BaseModel):
    live: bool
    ready: bool


class ModelReady(BaseModel):
    name: str
    ready: bool
