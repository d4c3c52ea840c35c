"""gRPC messages to and from the Open Inference Protocol's one codec (:mod:`xstilts.serve.http.v2.codec`).

A ``ModelInferRequest`` becomes the HTTP route's :class:`InferenceRequest` plus binary sections, exactly as Triton's
binary tensor extension carries them: each input's ``raw_input_contents`` (Triton's BYTES serialization, a
little-endian uint32 length before each element) is its section as it is, and ``contents.bytes_contents`` is
serialized the same way. So both transports decode inputs with the same code and refuse the same mistakes with the
same messages. Outputs go back as ``raw_output_contents``, as Triton answers.
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from xstilts import __version__
from xstilts.serve.core.errors import bad_request, invalid
from xstilts.serve.core.model import ServedModel
from xstilts.serve.grpc.proto import grpc_predict_v2_pb2 as pb
from xstilts.serve.http.bodies import describe_errors
from xstilts.serve.http.v2.codec import Items, chosen_outputs, metadata, output_tensors, pack, pack_texts
from xstilts.serve.http.v2.protocol import EXTENSIONS, SERVER_NAME, InferenceRequest
from xstilts.serve.http.v2.serving import Answer

BINARY_SIZE = "binary_data_size"


def parameter(value: pb.InferParameter) -> bool | int | str | None:
    choice = value.WhichOneof("parameter_choice")
    return None if choice is None else getattr(value, choice)


def parameters(entries: Any) -> dict[str, bool | int | str]:
    found = {key: parameter(value) for key, value in entries.items()}
    return {key: value for key, value in found.items() if value is not None}


def inference_request(request: pb.ModelInferRequest) -> tuple[InferenceRequest, bytes]:
    """The request as the v2 codec reads it: the JSON part, and the inputs' binary sections in input order."""
    raw = list(request.raw_input_contents)
    if raw and len(raw) != len(request.inputs):
        raise bad_request(f"raw_input_contents holds {len(raw)} tensors for {len(request.inputs)} inputs")
    inputs: list[dict[str, Any]] = []
    sections: list[bytes] = []
    for index, tensor in enumerate(request.inputs):
        given = parameters(tensor.parameters)
        given.pop(BINARY_SIZE, None)
        section: bytes | None = None
        if raw:
            if tensor.HasField("contents"):
                raise bad_request(f"input {tensor.name} has contents, and raw_input_contents is used: send one")
            section = raw[index]
        elif tensor.datatype == "BYTES" and tensor.HasField("contents"):
            section = pack_texts(list(tensor.contents.bytes_contents))
        if section is not None:
            given[BINARY_SIZE] = len(section)
            sections.append(section)
        inputs.append({"name": tensor.name, "shape": list(tensor.shape), "datatype": tensor.datatype})
        if given:
            inputs[-1]["parameters"] = given
    body: dict[str, Any] = {
        "inputs": inputs,
        "outputs": [{"name": output.name} for output in request.outputs] or None,
    }
    if request.id:
        body["id"] = request.id
    try:
        return InferenceRequest.model_validate(body), b"".join(sections)
    except ValidationError as exc:
        raise invalid(describe_errors(exc)) from None


def infer_response(
    model: ServedModel, request: InferenceRequest, answer: Answer, items: Items
) -> pb.ModelInferResponse:
    tensors = output_tensors(model, answer, items)
    names = chosen_outputs(model, tensors, [o.name for o in request.outputs or []])
    response = pb.ModelInferResponse(model_name=model.name, model_version=model.variant, id=request.id or "")
    for name in names:
        datatype, shape, values, array = tensors[name]
        response.outputs.add(name=name, datatype=datatype, shape=shape)
        response.raw_output_contents.append(pack(datatype, values, array))
    return response


def model_metadata(model: ServedModel) -> pb.ModelMetadataResponse:
    described = metadata(model)
    response = pb.ModelMetadataResponse(
        name=described.name, versions=described.versions or [], platform=described.platform
    )
    for tensors, into in ((described.inputs, response.inputs), (described.outputs, response.outputs)):
        for tensor in tensors:
            into.add(name=tensor.name, datatype=tensor.datatype, shape=tensor.shape)
    return response


def server_metadata() -> pb.ServerMetadataResponse:
    return pb.ServerMetadataResponse(name=SERVER_NAME, version=__version__, extensions=EXTENSIONS)
