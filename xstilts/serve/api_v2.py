"""The Open Inference Protocol (KServe v2) over HTTP/REST, as its specification has it.

Health (``/v2/health/live``, ``/v2/health/ready``), server and model metadata (``/v2``, ``/v2/models/{name}``),
model readiness and inference, with or without ``/versions/{version}`` (a version is a bundle variant; only the
loaded one answers). See :mod:`xstilts.serve.protocol_v2` for the tensors each kind of model takes and returns.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from math import prod
from typing import Any

import numpy as np
from fastapi import APIRouter, Path, Request
from starlette.responses import Response

from xstilts import __version__
from xstilts.serve.api_v1 import model_name_parameter
from xstilts.serve.bodies import JSON, json_response, parse, read_body
from xstilts.serve.errors import bad_request, not_found, too_large, unprocessable
from xstilts.serve.metrics import V2_INFER
from xstilts.serve.protocol_v1 import MAX_CHOICES, check_text
from xstilts.serve.protocol_v2 import (
    EXTENSIONS,
    HEADER_LENGTH,
    PLATFORM,
    InferenceRequest,
    InferenceResponse,
    MetadataTensor,
    ModelMetadata,
    ModelReady,
    RequestInput,
    ServerLive,
    ServerMetadata,
    ServerReady,
)
from xstilts.serve.state import Outcome, ServedModel, ServerState
from xstilts.tasks.encoding import Segments, choice_segments

OUTPUTS = ("label", "index", "probabilities", "logits", "truncated")


def state_of(request: Request) -> ServerState:
    return request.app.state.xstilts


def model_inputs(model: ServedModel) -> list[MetadataTensor]:
    kind = model.manifest.kind
    if model.multiple_choice:
        return [
            MetadataTensor(name="premise", datatype="BYTES", shape=[-1]),
            MetadataTensor(name="question", datatype="BYTES", shape=[-1]),
            MetadataTensor(name="choices", datatype="BYTES", shape=[-1, -1]),
        ]
    tensors = [MetadataTensor(name="text_a", datatype="BYTES", shape=[-1])]
    if kind == "pair_classification":
        tensors.append(MetadataTensor(name="text_b", datatype="BYTES", shape=[-1]))
    return tensors


def model_outputs(model: ServedModel) -> list[MetadataTensor]:
    width = -1 if model.multiple_choice else model.manifest.num_labels
    return [
        MetadataTensor(name="label", datatype="BYTES", shape=[-1]),
        MetadataTensor(name="index", datatype="INT64", shape=[-1]),
        MetadataTensor(name="probabilities", datatype="FP32", shape=[-1, width]),
        MetadataTensor(name="logits", datatype="FP32", shape=[-1, width]),
        MetadataTensor(name="truncated", datatype="BOOL", shape=[-1]),
    ]


def metadata(model: ServedModel) -> ModelMetadata:
    return ModelMetadata(
        name=model.name,
        versions=[model.variant],
        platform=PLATFORM,
        inputs=model_inputs(model),
        outputs=model_outputs(model),
    )


def check_version(model: ServedModel, version: str | None) -> None:
    if version is not None and version != model.variant:
        raise not_found(f"model {model.name} has no loaded version {version!r}; it serves {model.variant!r}")


# -- decoding the request ---------------------------------------------------------------------------------------


def _flatten(data: Any) -> Iterator[Any]:
    for value in data:
        if isinstance(value, list):
            yield from _flatten(value)
        else:
            yield value


def _unpack_bytes(raw: bytes, name: str) -> list[bytes]:
    """Triton's BYTES serialization: each element a little-endian uint32 length, then that many bytes."""
    elements, offset = [], 0
    while offset < len(raw):
        if offset + 4 > len(raw):
            raise bad_request(f"input {name}: binary BYTES data ends inside an element's length")
        (length,) = struct.unpack_from("<I", raw, offset)
        offset += 4
        if offset + length > len(raw):
            raise bad_request(f"input {name}: binary BYTES element runs past the end of its data")
        elements.append(raw[offset : offset + length])
        offset += length
    return elements


def tensor_texts(tensor: RequestInput, binary: bytes | None) -> list[str]:
    """A BYTES input's elements as checked texts, from JSON ``data`` or from its binary section."""
    if tensor.datatype != "BYTES":
        raise unprocessable(f"input {tensor.name} must be BYTES (texts), not {tensor.datatype}")
    if binary is not None:
        values: list[Any] = []
        for element in _unpack_bytes(binary, tensor.name):
            try:
                values.append(element.decode("utf-8"))
            except UnicodeDecodeError:
                raise bad_request(f"input {tensor.name}: an element is not valid UTF-8") from None
    elif tensor.data is None:
        raise unprocessable(f"input {tensor.name} has no data (and no binary_data_size parameter)")
    else:
        values = list(_flatten(tensor.data))
    if len(values) != prod(tensor.shape):
        raise unprocessable(
            f"input {tensor.name} has shape {tensor.shape} ({prod(tensor.shape)} elements) but {len(values)} elements"
        )
    for index, value in enumerate(values):
        if not isinstance(value, str):
            raise unprocessable(f"input {tensor.name}: element {index} is not a string")
        try:
            check_text(value)
        except ValueError as exc:
            raise unprocessable(f"input {tensor.name}: element {index}: {exc}") from None
    return values


def split_binary(request: InferenceRequest, binary: bytes) -> dict[str, bytes]:
    """Each input's binary section, in input order, per its ``binary_data_size`` parameter."""
    sections: dict[str, bytes] = {}
    offset = 0
    for tensor in request.inputs:
        size = (tensor.parameters or {}).get("binary_data_size")
        if size is None:
            continue
        if isinstance(size, bool) or not isinstance(size, int) or size < 0:
            raise bad_request(f"input {tensor.name}: binary_data_size must be a non-negative integer")
        if offset + size > len(binary):
            raise bad_request(f"input {tensor.name}: binary_data_size {size} runs past the end of the body")
        sections[tensor.name] = binary[offset : offset + size]
        offset += size
    if offset != len(binary):
        raise bad_request(f"{len(binary) - offset} bytes of binary data after the inputs belong to no input")
    return sections


def batch_of(tensor: RequestInput, matrix: bool = False) -> int:
    """The batch size a text input's shape gives: [batch] or [batch, 1]; [batch, choices] for a ``matrix``."""
    shape = tensor.shape
    if not matrix:
        if len(shape) == 1 or (len(shape) == 2 and shape[1] == 1):
            return shape[0]
        raise unprocessable(f"input {tensor.name} must have shape [batch] or [batch, 1], not {shape}")
    if len(shape) != 2 or shape[1] < 1:
        raise unprocessable(f"input {tensor.name} must have shape [batch, choices], not {shape}")
    if shape[1] > MAX_CHOICES:
        raise unprocessable(f"input {tensor.name} has {shape[1]} choices, more than {MAX_CHOICES}")
    return shape[0]


@dataclass
class Items:
    """A request's items as segment pairs, and for multiple choice the choices' own texts (the labels)."""

    segments: list[list[Segments]]
    choices: list[list[str]] | None = None


def decode_items(model: ServedModel, request: InferenceRequest, binary: bytes, max_items: int) -> Items:
    """The items an inference request holds, by the training rule for the model's kind."""
    names = [t.name for t in request.inputs]
    if len(set(names)) != len(names):
        raise unprocessable(f"inputs name one tensor twice: {names}")
    allowed = [t.name for t in model_inputs(model)]
    unknown = [n for n in names if n not in allowed]
    if unknown:
        raise unprocessable(f"{model.name} has no input {', '.join(unknown)}; its inputs are {', '.join(allowed)}")
    sections = split_binary(request, binary)
    tensors = {t.name: t for t in request.inputs}
    required = ("premise", "choices") if model.multiple_choice else ("text_a",)
    missing = [name for name in required if name not in tensors]
    if missing:
        raise unprocessable(f"{model.name} needs the inputs {', '.join(required)}; missing: {', '.join(missing)}")
    sizes = {name: batch_of(t, matrix=name == "choices") for name, t in tensors.items()}
    batch = sizes[required[0]]
    if len(set(sizes.values())) != 1:
        raise unprocessable(f"inputs disagree on the batch size (first dimension): {sizes}")
    if batch < 1:
        raise unprocessable(f"input {required[0]} holds no items")
    if batch > max_items:
        raise too_large(f"{batch} items is more than the limit of {max_items} (max_items)")
    texts = {name: tensor_texts(t, sections.get(name)) for name, t in tensors.items()}
    if model.multiple_choice:
        width = tensors["choices"].shape[1]
        questions = texts.get("question")
        choices = [texts["choices"][i * width : (i + 1) * width] for i in range(batch)]
        segments = [
            choice_segments(texts["premise"][i], questions[i] if questions else None, choices[i]) for i in range(batch)
        ]
        return Items(segments, choices)
    pairs = texts.get("text_b")
    return Items([[(texts["text_a"][i], pairs[i] if pairs else None)] for i in range(batch)])


# -- encoding the response --------------------------------------------------------------------------------------


def output_tensors(model: ServedModel, outcome: Outcome, items: Items) -> dict[str, tuple]:
    """Every output as (datatype, shape, flat values, numpy array for binary)."""
    batch = len(items.segments)
    best = [int(p.argmax()) for p in outcome.probabilities]
    if items.choices is not None:
        labels = [items.choices[i][best[i]] for i in range(batch)]
    else:
        labels = [model.manifest.labels[b] for b in best]
    probs = np.stack(outcome.probabilities).astype(np.float32)
    logits = np.stack(outcome.logits).astype(np.float32)
    width = probs.shape[1]
    return {
        "label": ("BYTES", [batch], labels, None),
        "index": ("INT64", [batch], best, np.asarray(best, dtype=np.int64)),
        "probabilities": ("FP32", [batch, width], probs.ravel().tolist(), probs),
        "logits": ("FP32", [batch, width], logits.ravel().tolist(), logits),
        "truncated": ("BOOL", [batch], outcome.truncated, np.asarray(outcome.truncated, dtype=np.bool_)),
    }


def _pack(datatype: str, values: list, array: np.ndarray | None) -> bytes:
    if datatype == "BYTES":
        return b"".join(struct.pack("<I", len(b)) + b for b in (v.encode("utf-8") for v in values))
    assert array is not None
    return np.ascontiguousarray(array).astype(array.dtype.newbyteorder("<"), copy=False).tobytes()


def _flag(value: Any) -> bool:
    return value is True or (isinstance(value, str) and value.lower() == "true")


def infer_response(model: ServedModel, request: InferenceRequest, outcome: Outcome, items: Items) -> Response:
    tensors = output_tensors(model, outcome, items)
    wanted = request.outputs or []
    names = [o.name for o in wanted] or list(OUTPUTS)
    unknown = [n for n in names if n not in tensors]
    if unknown:
        raise unprocessable(f"{model.name} has no output {', '.join(unknown)}; its outputs are {', '.join(OUTPUTS)}")
    binary_all = _flag((request.parameters or {}).get("binary_data_output"))
    per_output = {o.name: (o.parameters or {}).get("binary_data") for o in wanted}
    outputs, sections = [], []
    for name in names:
        datatype, shape, values, array = tensors[name]
        binary = _flag(per_output[name]) if per_output.get(name) is not None else binary_all
        entry: dict[str, Any] = {"name": name, "datatype": datatype, "shape": shape}
        if binary:
            packed = _pack(datatype, values, array)
            entry["parameters"] = {"binary_data_size": len(packed)}
            sections.append(packed)
        else:
            entry["data"] = values
        outputs.append(entry)
    body: dict[str, Any] = {"model_name": model.name, "model_version": model.variant}
    if request.id is not None:
        body["id"] = request.id
    body["outputs"] = outputs
    if not sections:
        return json_response(body)
    header = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    return Response(
        header + b"".join(sections),
        media_type="application/octet-stream",
        headers={HEADER_LENGTH: str(len(header))},
    )


def split_header(request: Request, body: bytes) -> tuple[bytes, bytes]:
    """The JSON part and the binary part of a body (binary tensor extension)."""
    declared = request.headers.get(HEADER_LENGTH)
    if declared is None:
        return body, b""
    try:
        length = int(declared)
    except ValueError:
        raise bad_request(f"{HEADER_LENGTH} is not a number") from None
    if not 0 <= length <= len(body):
        raise bad_request(f"{HEADER_LENGTH} {length} is outside the body's {len(body)} bytes")
    return body[:length], body[length:]


# -- routes -----------------------------------------------------------------------------------------------------


def build_router(
    error_responses: dict,
    health_responses: dict,
    api_dependencies: list,
    health_dependencies: list,
    names: list[str],
    versions: list[str],
) -> APIRouter:
    router = APIRouter(prefix="/v2", tags=["v2: Open Inference Protocol"])
    model_name = model_name_parameter(names)
    model_version = Path(description="a version: the variant the server loaded", json_schema_extra={"enum": versions})
    health = {"dependencies": health_dependencies, "responses": health_responses}
    api = {"dependencies": api_dependencies, "responses": error_responses}
    not_ready = {503: {"model": ServerReady, "description": "not ready: loading, failed or draining"}}
    model_not_ready = {
        404: error_responses[404],
        503: {"model": ModelReady, "description": "the model is not ready (or the server is draining)"},
    }

    @router.get("/health/live", response_model=ServerLive, summary="Server live", **health)
    async def server_live() -> ServerLive:
        return ServerLive(live=True)

    @router.get(
        "/health/ready",
        response_model=ServerReady,
        summary="Server ready",
        dependencies=health_dependencies,
        responses={**health_responses, **not_ready},
    )
    async def server_ready(request: Request) -> Response:
        ready = state_of(request).ready
        return json_response({"live": True, "ready": ready}, 200 if ready else 503)

    @router.get("", response_model=ServerMetadata, summary="Server metadata", **api)
    async def server_metadata() -> ServerMetadata:
        return ServerMetadata(name="xstilts", version=__version__, extensions=EXTENSIONS)

    async def _model_metadata(request: Request, name: str, version: str | None) -> ModelMetadata:
        model = state_of(request).get(name)
        check_version(model, version)
        return metadata(model)

    @router.get("/models/{name}", response_model=ModelMetadata, summary="Model metadata", **api)
    async def model_metadata(request: Request, name: str = model_name) -> ModelMetadata:
        return await _model_metadata(request, name, None)

    @router.get(
        "/models/{name}/versions/{version}", response_model=ModelMetadata, summary="Model metadata (version)", **api
    )
    async def model_version_metadata(
        request: Request, name: str = model_name, version: str = model_version
    ) -> ModelMetadata:
        return await _model_metadata(request, name, version)

    async def _model_ready(request: Request, name: str, version: str | None) -> Response:
        state = state_of(request)
        model = state.get(name)
        check_version(model, version)
        ready = model.ready and not state.draining
        return json_response({"name": name, "ready": ready}, 200 if ready else 503)

    @router.get(
        "/models/{name}/ready",
        response_model=ModelReady,
        summary="Model ready",
        dependencies=health_dependencies,
        responses={**health_responses, **model_not_ready},
    )
    async def model_ready(request: Request, name: str = model_name) -> Response:
        return await _model_ready(request, name, None)

    @router.get(
        "/models/{name}/versions/{version}/ready",
        response_model=ModelReady,
        summary="Model ready (version)",
        dependencies=health_dependencies,
        responses={**health_responses, **model_not_ready},
    )
    async def model_version_ready(request: Request, name: str = model_name, version: str = model_version) -> Response:
        return await _model_ready(request, name, version)

    async def _infer(request: Request, name: str, version: str | None) -> Response:
        state = state_of(request)

        async def handle(model: ServedModel) -> Response:
            check_version(model, version)
            body = await read_body(request, state.settings.max_body_bytes)
            header, binary = split_header(request, body)
            inference = parse(InferenceRequest, header)
            items = decode_items(model, inference, binary, state.settings.max_items)
            model.check_ready()
            outcome = await model.infer(items.segments)
            return infer_response(model, inference, outcome, items)

        return await state.answer(name, V2_INFER, handle)

    infer_body = {
        "requestBody": {
            "required": True,
            "content": {JSON: {"schema": {"$ref": "#/components/schemas/InferenceRequest"}}},
        }
    }

    @router.post(
        "/models/{name}/infer",
        response_model=InferenceResponse,
        summary="Inference",
        openapi_extra=infer_body,
        **api,
    )
    async def infer(request: Request, name: str = model_name) -> Response:
        return await _infer(request, name, None)

    @router.post(
        "/models/{name}/versions/{version}/infer",
        response_model=InferenceResponse,
        summary="Inference (version)",
        openapi_extra=infer_body,
        **api,
    )
    async def infer_version(request: Request, name: str = model_name, version: str = model_version) -> Response:
        return await _infer(request, name, version)

    return router
