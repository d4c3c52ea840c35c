"""The Open Inference Protocol's codec: tensors to core items (segment pairs), a core outcome to tensors.

Texts arrive as ``BYTES`` tensors in JSON ``data`` or in Triton's binary sections; the outputs go back the same
way (see :mod:`xstilts.serve.http.v2.protocol` for the tensors each kind of model takes and returns).
"""

from __future__ import annotations

import json
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from math import prod
from typing import Any

import numpy as np
from fastapi import Request
from starlette.responses import Response

from xstilts.contracts.kinds import TaskKind
from xstilts.serve.core.errors import bad_request, invalid, not_found
from xstilts.serve.core.model import Embeddings, Outcome, ServedModel
from xstilts.serve.core.spans import Spans
from xstilts.serve.core.tagging import Tagged
from xstilts.serve.http.bodies import check_item_count, json_response
from xstilts.serve.http.v1.protocol import MAX_CHOICES, check_text
from xstilts.serve.http.v2.protocol import (
    HEADER_LENGTH,
    PLATFORM,
    InferenceRequest,
    MetadataTensor,
    ModelMetadata,
    RequestInput,
)
from xstilts.serve.http.v2.spans import CONTEXT, QUESTION, span_inputs, span_outputs, span_tensors
from xstilts.tasks.encoding import Segments, choice_segments

TEXT, EMBEDDING = "text", "embedding"  # an embedding model's input and output (a tagging model takes text too)
# a tagging model's outputs, each [batch, most words in an item]: (datatype, word field, padding of shorter items)
TAG_OUTPUTS = {
    "words": ("BYTES", "text", ""),
    "tags": ("BYTES", "tag", ""),
    "scores": ("FP32", "score", 0.0),
    "starts": ("INT64", "start", -1),
    "ends": ("INT64", "end", -1),
}
NUMPY_TYPES = {"FP32": np.float32, "INT64": np.int64}


def model_inputs(model: ServedModel) -> list[MetadataTensor]:
    kind = model.manifest.kind
    if kind is TaskKind.SPAN_QA:
        return span_inputs()
    if model.embedding is not None or model.tagging:
        return [MetadataTensor(name=TEXT, datatype="BYTES", shape=[-1])]
    if model.multiple_choice:
        return [
            MetadataTensor(name="premise", datatype="BYTES", shape=[-1]),
            MetadataTensor(name="question", datatype="BYTES", shape=[-1]),
            MetadataTensor(name="choices", datatype="BYTES", shape=[-1, -1]),
        ]
    tensors = [MetadataTensor(name="text_a", datatype="BYTES", shape=[-1])]
    if kind is TaskKind.PAIR:
        tensors.append(MetadataTensor(name="text_b", datatype="BYTES", shape=[-1]))
    return tensors


def model_outputs(model: ServedModel) -> list[MetadataTensor]:
    if model.manifest.kind is TaskKind.SPAN_QA:
        return span_outputs()
    if model.tagging:
        return [MetadataTensor(name=name, datatype=spec[0], shape=[-1, -1]) for name, spec in TAG_OUTPUTS.items()]
    if model.embedding is not None:
        return [
            MetadataTensor(name=EMBEDDING, datatype="FP32", shape=[-1, model.embedding.dimension or -1]),
            MetadataTensor(name="truncated", datatype="BOOL", shape=[-1]),
        ]
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


def pack_texts(texts: list[bytes]) -> bytes:
    """Triton's BYTES serialization of ``texts`` (what :func:`_unpack_bytes` reads)."""
    return b"".join(struct.pack("<I", len(t)) + t for t in texts)


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
        raise invalid(f"input {tensor.name} must be BYTES (texts), not {tensor.datatype}")
    if binary is not None:
        values: list[Any] = []
        for element in _unpack_bytes(binary, tensor.name):
            try:
                values.append(element.decode("utf-8"))
            except UnicodeDecodeError:
                raise bad_request(f"input {tensor.name}: an element is not valid UTF-8") from None
    elif tensor.data is None:
        raise invalid(f"input {tensor.name} has no data (and no binary_data_size parameter)")
    else:
        values = list(_flatten(tensor.data))
    if len(values) != prod(tensor.shape):
        raise invalid(
            f"input {tensor.name} has shape {tensor.shape} ({prod(tensor.shape)} elements) but {len(values)} elements"
        )
    for index, value in enumerate(values):
        if not isinstance(value, str):
            raise invalid(f"input {tensor.name}: element {index} is not a string")
        try:
            check_text(value)
        except ValueError as exc:
            raise invalid(f"input {tensor.name}: element {index}: {exc}") from None
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
        raise invalid(f"input {tensor.name} must have shape [batch] or [batch, 1], not {shape}")
    if len(shape) != 2 or shape[1] < 1:
        raise invalid(f"input {tensor.name} must have shape [batch, choices], not {shape}")
    if shape[1] > MAX_CHOICES:
        raise invalid(f"input {tensor.name} has {shape[1]} choices, more than {MAX_CHOICES}")
    return shape[0]


@dataclass
class Items:
    """A request's items as segment pairs, and for multiple choice the choices' own texts (the labels); an
    extractive QA request's items are (question, context) pairs."""

    segments: list[list[Segments]]
    choices: list[list[str]] | None = None

    @property
    def pairs(self) -> list[tuple[str, str]]:
        """An extractive QA request's (question, context) pairs."""
        return [(segments[0][0], segments[0][1] or "") for segments in self.segments]

    @property
    def texts(self) -> list[str]:
        """An embedding request's texts (one single-text segment per item)."""
        return [segments[0][0] for segments in self.segments]


def required_inputs(model: ServedModel) -> tuple[str, ...]:
    """The inputs a request for ``model`` must hold (the first gives the batch size)."""
    if model.manifest.kind is TaskKind.SPAN_QA:
        return (QUESTION, CONTEXT)
    if model.embedding is not None or model.tagging:
        return (TEXT,)
    return ("premise", "choices") if model.multiple_choice else ("text_a",)


def decode_items(model: ServedModel, request: InferenceRequest, binary: bytes, max_items: int) -> Items:
    """The items an inference request holds, by the training rule for the model's kind."""
    names = [t.name for t in request.inputs]
    if len(set(names)) != len(names):
        raise invalid(f"inputs name one tensor twice: {names}")
    allowed = [t.name for t in model_inputs(model)]
    unknown = [n for n in names if n not in allowed]
    if unknown:
        raise invalid(f"{model.name} has no input {', '.join(unknown)}; its inputs are {', '.join(allowed)}")
    sections = split_binary(request, binary)
    tensors = {t.name: t for t in request.inputs}
    required = required_inputs(model)
    missing = [name for name in required if name not in tensors]
    if missing:
        raise invalid(f"{model.name} needs the inputs {', '.join(required)}; missing: {', '.join(missing)}")
    sizes = {name: batch_of(t, matrix=name == "choices") for name, t in tensors.items()}
    batch = sizes[required[0]]
    if len(set(sizes.values())) != 1:
        raise invalid(f"inputs disagree on the batch size (first dimension): {sizes}")
    if batch < 1:
        raise invalid(f"input {required[0]} holds no items")
    check_item_count(batch, max_items)
    texts = {name: tensor_texts(t, sections.get(name)) for name, t in tensors.items()}
    if model.multiple_choice:
        width = tensors["choices"].shape[1]
        questions = texts.get("question")
        choices = [texts["choices"][i * width : (i + 1) * width] for i in range(batch)]
        segments = [
            choice_segments(texts["premise"][i], questions[i] if questions else None, choices[i]) for i in range(batch)
        ]
        return Items(segments, choices)
    if TEXT in required:
        return Items([[(text, None)] for text in texts[TEXT]])
    if model.manifest.kind is TaskKind.SPAN_QA:
        return Items([[(texts[QUESTION][i], texts[CONTEXT][i])] for i in range(batch)])
    pairs = texts.get("text_b")
    return Items([[(texts["text_a"][i], pairs[i] if pairs else None)] for i in range(batch)])


# -- encoding the response --------------------------------------------------------------------------------------


def tag_tensors(tagged: list[Tagged]) -> dict[str, tuple]:
    """A tagging answer as [batch, most words] tensors, shorter items padded (``TAG_OUTPUTS``)."""
    width = max(len(item.words) for item in tagged)
    tensors = {}
    for name, (datatype, field, padding) in TAG_OUTPUTS.items():
        values = [
            value
            for item in tagged
            for value in [*(getattr(w, field) for w in item.words), *[padding] * (width - len(item.words))]
        ]
        array = np.asarray(values, dtype=NUMPY_TYPES[datatype]) if datatype in NUMPY_TYPES else None
        tensors[name] = (datatype, [len(tagged), width], values, array)
    return tensors


def output_tensors(
    model: ServedModel, outcome: Outcome | Embeddings | Spans | list[Tagged], items: Items
) -> dict[str, tuple]:
    """Every output as (datatype, shape, flat values, numpy array for binary)."""
    if isinstance(outcome, Spans):
        return span_tensors(outcome)
    if isinstance(outcome, list):
        return tag_tensors(outcome)
    if isinstance(outcome, Embeddings):
        vectors = np.stack(outcome.vectors).astype(np.float32)
        flags = np.asarray(outcome.truncated, dtype=np.bool_)
        return {
            EMBEDDING: ("FP32", list(vectors.shape), vectors.ravel().tolist(), vectors),
            "truncated": ("BOOL", [len(flags)], outcome.truncated, flags),
        }
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


def chosen_outputs(model: ServedModel, tensors: dict[str, tuple], wanted: list[str]) -> list[str]:
    """The outputs a request asked for (all when it named none), each one the model has."""
    names = wanted or list(tensors)
    unknown = [n for n in names if n not in tensors]
    if unknown:
        raise invalid(f"{model.name} has no output {', '.join(unknown)}; its outputs are {', '.join(tensors)}")
    return names


def pack(datatype: str, values: list, array: np.ndarray | None) -> bytes:
    """A tensor's raw bytes: Triton's BYTES serialization, or the little-endian array."""
    if datatype == "BYTES":
        return pack_texts([v.encode("utf-8") for v in values])
    assert array is not None
    return np.ascontiguousarray(array).astype(array.dtype.newbyteorder("<"), copy=False).tobytes()


def _flag(value: Any) -> bool:
    return value is True or (isinstance(value, str) and value.lower() == "true")


def infer_response(
    model: ServedModel, request: InferenceRequest, outcome: Outcome | Embeddings | Spans | list[Tagged], items: Items
) -> Response:
    tensors = output_tensors(model, outcome, items)
    wanted = request.outputs or []
    names = chosen_outputs(model, tensors, [o.name for o in wanted])
    binary_all = _flag((request.parameters or {}).get("binary_data_output"))
    per_output = {o.name: (o.parameters or {}).get("binary_data") for o in wanted}
    outputs, sections = [], []
    for name in names:
        datatype, shape, values, array = tensors[name]
        binary = _flag(per_output[name]) if per_output.get(name) is not None else binary_all
        entry: dict[str, Any] = {"name": name, "datatype": datatype, "shape": shape}
        if binary:
            packed = pack(datatype, values, array)
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
