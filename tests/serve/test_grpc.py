"""The v2 gRPC service against ``xstilts serve`` on 127.0.0.1 with the tiny repository: the stock
``tritonclient.grpc`` client and a plain grpcio stub get the HTTP v2 route's answers; auth; each error kind's code;
metrics; request ids; the generated modules are protoc's output of the vendored proto."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path

import grpc
import httpx
import numpy as np
import pytest

from tests.helpers import unavailable
from tests.serve.conftest import ServerProcess, loading_server, metric_total
from xstilts.bench.servers import free_port
from xstilts.serve.grpc.proto import grpc_predict_v2_pb2 as pb
from xstilts.serve.grpc.proto import grpc_predict_v2_pb2_grpc as pb_grpc
from xstilts.serve.http.v2.codec import pack_texts

KEY = "grpc-s3cret"
AUTH = (("authorization", f"Bearer {KEY}"),)
PAIRS = [("Ein Mann spielt Gitarre.", "Jemand macht Musik."), ("ça va ?", "oui"), ("A dog runs.", "A cat sleeps.")]
OUTPUTS = ("label", "index", "probabilities", "logits", "truncated")
GENERATED_WITH = "1.75.1"  # grpcio-tools of the dev extra, which made the checked-in modules


@pytest.fixture(scope="module")
def grpc_server(repository: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    log_file = tmp_path_factory.mktemp("grpc") / "server.log"
    env = {"XSTILTS_GRPC_PORT": str(free_port()), "XSTILTS_API_KEY": KEY, "XSTILTS_MAX_ITEMS": "8"}
    server = ServerProcess(repository, log_file, env).start()
    server.grpc = f"127.0.0.1:{env['XSTILTS_GRPC_PORT']}"  # type: ignore[attr-defined]
    yield server
    assert server.stop() == 0, server.logs()


@pytest.fixture()
def stub(grpc_server: ServerProcess) -> Iterator[pb_grpc.GRPCInferenceServiceStub]:
    with grpc.insecure_channel(grpc_server.grpc) as channel:  # type: ignore[attr-defined]
        yield pb_grpc.GRPCInferenceServiceStub(channel)


def http_infer(server: ServerProcess, model: str, inputs: list[dict]) -> dict[str, np.ndarray]:
    response = httpx.post(
        f"{server.url}/v2/models/{model}/infer",
        json={"inputs": inputs},
        headers={"Authorization": f"Bearer {KEY}"},
        timeout=60,
    )
    assert response.status_code == 200, response.text
    return {o["name"]: np.asarray(o["data"]).reshape(o["shape"]) for o in response.json()["outputs"]}


def assert_same(grpc_outputs: dict[str, np.ndarray], http_outputs: dict[str, np.ndarray]) -> None:
    assert set(grpc_outputs) == set(http_outputs)
    for name, expected in http_outputs.items():
        got = grpc_outputs[name]
        if got.dtype == object:
            got = np.asarray([v.decode() for v in got.ravel()]).reshape(got.shape)
        assert got.shape == expected.shape, name
        if expected.dtype.kind == "f":
            np.testing.assert_allclose(got, expected, atol=1e-5, err_msg=name)
        else:
            assert got.tolist() == expected.tolist(), name


def test_tritonclient_grpc_answers_as_the_http_route(grpc_server: ServerProcess) -> None:
    tritonclient = pytest.importorskip("tritonclient.grpc")
    triton = tritonclient.InferenceServerClient(grpc_server.grpc)  # type: ignore[attr-defined]
    headers = {"authorization": f"Bearer {KEY}"}
    assert triton.is_server_live() and triton.is_server_ready() and triton.is_model_ready("tiny-xnli")
    metadata = triton.get_model_metadata("tiny-xnli", headers=headers, as_json=True)
    http_metadata = httpx.get(f"{grpc_server.url}/v2/models/tiny-xnli", headers={"Authorization": f"Bearer {KEY}"})
    assert [i["name"] for i in metadata["inputs"]] == [i["name"] for i in http_metadata.json()["inputs"]]
    assert metadata["versions"] == ["int8"] and metadata["platform"] == "onnx_onnxv1"
    assert triton.get_server_metadata(headers=headers, as_json=True)["name"] == "xstilts"

    text_a = tritonclient.InferInput("text_a", [len(PAIRS)], "BYTES")
    text_a.set_data_from_numpy(np.array([a for a, _ in PAIRS], dtype=object))
    text_b = tritonclient.InferInput("text_b", [len(PAIRS)], "BYTES")
    text_b.set_data_from_numpy(np.array([b for _, b in PAIRS], dtype=object))
    result = triton.infer("tiny-xnli", [text_a, text_b], request_id="r-1", headers=headers)
    assert result.get_response().id == "r-1"
    expected = http_infer(
        grpc_server,
        "tiny-xnli",
        [
            {"name": "text_a", "shape": [len(PAIRS)], "datatype": "BYTES", "data": [a for a, _ in PAIRS]},
            {"name": "text_b", "shape": [len(PAIRS)], "datatype": "BYTES", "data": [b for _, b in PAIRS]},
        ],
    )
    assert_same({name: result.as_numpy(name) for name in OUTPUTS}, expected)

    premise = tritonclient.InferInput("premise", [1], "BYTES")
    premise.set_data_from_numpy(np.array(["The glass fell."], dtype=object))
    choices = tritonclient.InferInput("choices", [1, 2], "BYTES")
    choices.set_data_from_numpy(np.array([["It broke.", "It sang."]], dtype=object))
    result = triton.infer("tiny-xcopa", [premise, choices], model_version="fp32", headers=headers)
    expected = http_infer(
        grpc_server,
        "tiny-xcopa",
        [
            {"name": "premise", "shape": [1], "datatype": "BYTES", "data": ["The glass fell."]},
            {"name": "choices", "shape": [1, 2], "datatype": "BYTES", "data": [["It broke.", "It sang."]]},
        ],
    )
    assert_same({name: result.as_numpy(name) for name in OUTPUTS}, expected)


def infer_request(pairs: list[tuple[str, str]], raw: bool = False, model: str = "tiny-xnli") -> pb.ModelInferRequest:
    request = pb.ModelInferRequest(model_name=model, id="plain")
    for index, name in enumerate(("text_a", "text_b")):
        texts = [pair[index].encode() for pair in pairs]
        tensor = request.inputs.add(name=name, datatype="BYTES", shape=[len(pairs)])
        if raw:
            request.raw_input_contents.append(pack_texts(texts))
        else:
            tensor.contents.bytes_contents.extend(texts)
    return request


def decoded(response: pb.ModelInferResponse) -> dict[str, np.ndarray]:
    types = {"FP32": "<f4", "INT64": "<i8", "BOOL": "?"}
    found = {}
    for output, raw in zip(response.outputs, response.raw_output_contents, strict=True):
        if output.datatype == "BYTES":
            values, offset = [], 0
            while offset < len(raw):
                length = int.from_bytes(raw[offset : offset + 4], "little")
                values.append(raw[offset + 4 : offset + 4 + length])
                offset += 4 + length
            array = np.asarray(values, dtype=object)
        else:
            array = np.frombuffer(raw, dtype=types[output.datatype])
        found[output.name] = array.reshape(list(output.shape))
    return found


@pytest.mark.parametrize("raw", [False, True], ids=["bytes_contents", "raw_input_contents"])
def test_a_plain_grpcio_stub_gets_the_same_answers(grpc_server, stub, raw: bool) -> None:
    response, call = stub.ModelInfer.with_call(infer_request(PAIRS, raw), metadata=(*AUTH, ("x-request-id", "stub-9")))
    assert (response.model_name, response.model_version, response.id) == ("tiny-xnli", "int8", "plain")
    assert ("x-request-id", "stub-9") in call.initial_metadata()
    expected = http_infer(
        grpc_server,
        "tiny-xnli",
        [
            {"name": "text_a", "shape": [len(PAIRS)], "datatype": "BYTES", "data": [a for a, _ in PAIRS]},
            {"name": "text_b", "shape": [len(PAIRS)], "datatype": "BYTES", "data": [b for _, b in PAIRS]},
        ],
    )
    assert_same(decoded(response), expected)
    # the pair matters: swapping the texts answers otherwise (the sensitive tiny model)
    swapped = decoded(stub.ModelInfer(infer_request([(b, a) for a, b in PAIRS], raw), metadata=AUTH))
    assert not np.allclose(swapped["logits"], expected["logits"], atol=1e-3)
    text = httpx.get(f"{grpc_server.url}/metrics").text
    assert metric_total(text, "xstilts_requests_total", model="tiny-xnli", endpoint="grpc_infer", status="200") >= 2


def test_health_is_open_and_the_rest_needs_the_key(stub) -> None:
    assert stub.ServerLive(pb.ServerLiveRequest()).live
    assert stub.ServerReady(pb.ServerReadyRequest()).ready
    assert stub.ModelReady(pb.ModelReadyRequest(name="tiny-xnli")).ready
    for call, request in (
        (stub.ModelInfer, infer_request(PAIRS)),
        (stub.ModelMetadata, pb.ModelMetadataRequest(name="tiny-xnli")),
        (stub.ServerMetadata, pb.ServerMetadataRequest()),
    ):
        for metadata in ((), (("authorization", "Bearer wrong"),), (("authorization", KEY),)):
            with pytest.raises(grpc.RpcError) as error:
                call(request, metadata=metadata)
            assert error.value.code() == grpc.StatusCode.UNAUTHENTICATED, metadata
            assert "API key" in error.value.details()
        assert call(request, metadata=AUTH) is not None


def bytes_input(request: pb.ModelInferRequest, name: str, texts: list[bytes], shape: list[int] | None = None) -> None:
    tensor = request.inputs.add(name=name, datatype="BYTES", shape=shape or [len(texts)])
    tensor.contents.bytes_contents.extend(texts)


def broken(change) -> pb.ModelInferRequest:
    request = infer_request(PAIRS[:1])
    change(request)
    return request


def cut_raw(request: pb.ModelInferRequest) -> pb.ModelInferRequest:
    request.raw_input_contents[0] = b"\x09\x00\x00\x00abc"  # an element of 9 bytes, 3 sent
    return request


ERROR_CASES = {
    "unknown model": (pb.ModelInferRequest(model_name="nope"), grpc.StatusCode.NOT_FOUND, "no model 'nope'"),
    "unknown version": (
        broken(lambda r: setattr(r, "model_version", "fp16")),
        grpc.StatusCode.NOT_FOUND,
        "no loaded version 'fp16'",
    ),
    "unknown input": (
        broken(lambda r: bytes_input(r, "text_c", [b"x"])),
        grpc.StatusCode.INVALID_ARGUMENT,
        "has no input text_c",
    ),
    "not BYTES": (
        broken(lambda r: r.inputs[0].__setattr__("datatype", "INT64")),
        grpc.StatusCode.INVALID_ARGUMENT,
        "must be BYTES",
    ),
    "empty text": (
        broken(lambda r: r.inputs[0].contents.bytes_contents.__setitem__(0, b"")),
        grpc.StatusCode.INVALID_ARGUMENT,
        "element 0",
    ),
    "shape and data disagree": (
        broken(lambda r: r.inputs[0].shape.__setitem__(0, 2)),
        grpc.StatusCode.INVALID_ARGUMENT,
        "batch size",
    ),
    "negative shape": (
        broken(lambda r: r.inputs[0].shape.__setitem__(0, -1)),
        grpc.StatusCode.INVALID_ARGUMENT,
        "inputs.0.shape",
    ),
    "not UTF-8": (
        broken(lambda r: r.inputs[0].contents.bytes_contents.__setitem__(0, b"\xff\xfe")),
        grpc.StatusCode.INVALID_ARGUMENT,
        "not valid UTF-8",
    ),
    "raw for one input of two": (
        broken(lambda r: (r.inputs[0].ClearField("contents"), r.raw_input_contents.append(pack_texts([b"x"])))),
        grpc.StatusCode.INVALID_ARGUMENT,
        "raw_input_contents holds 1 tensors for 2 inputs",
    ),
    "raw ends inside an element": (
        cut_raw(infer_request(PAIRS[:1], raw=True)),
        grpc.StatusCode.INVALID_ARGUMENT,
        "runs past the end",
    ),
    "too many items": (infer_request(PAIRS * 3), grpc.StatusCode.RESOURCE_EXHAUSTED, "max_items"),
    "unknown output": (
        broken(lambda r: r.outputs.add(name="embedding")),
        grpc.StatusCode.INVALID_ARGUMENT,
        "has no output embedding",
    ),
}


@pytest.mark.parametrize("case", list(ERROR_CASES))
def test_each_mistake_gets_its_code_and_a_clear_message(grpc_server, stub, case: str) -> None:
    request, code, message = ERROR_CASES[case]
    with pytest.raises(grpc.RpcError) as error:
        stub.ModelInfer(request, metadata=(*AUTH, ("x-request-id", f"bad-{len(case)}")))
    assert error.value.code() == code, error.value.details()
    assert message in error.value.details(), error.value.details()
    trailing = dict(error.value.trailing_metadata())
    assert trailing["x-request-id"] == f"bad-{len(case)}" and trailing["xstilts-error-type"]
    # the HTTP route refuses the same mistake with the same message (one codec)
    assert stub.ModelInfer(infer_request(PAIRS[:1]), metadata=AUTH).model_name == "tiny-xnli"


def test_a_message_over_the_body_limit_is_refused(stub) -> None:
    with pytest.raises(grpc.RpcError) as error:
        stub.ModelInfer(infer_request([("x" * 600_000, "y" * 600_000)]), metadata=AUTH)
    assert error.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED


def test_the_repository_rpcs_are_unimplemented_with_a_reason(grpc_server) -> None:
    with grpc.insecure_channel(grpc_server.grpc) as channel:  # type: ignore[attr-defined]
        for method in ("RepositoryIndex", "RepositoryModelLoad", "RepositoryModelUnload"):
            call = channel.unary_unary(f"/inference.GRPCInferenceService/{method}")
            with pytest.raises(grpc.RpcError) as error:
                call(b"", metadata=AUTH)
            assert error.value.code() == grpc.StatusCode.UNIMPLEMENTED
            assert "repository extension is not served" in error.value.details()


def test_a_loading_model_and_a_draining_server_are_unavailable(repository: Path) -> None:
    with loading_server(repository, models=["tiny-xnli"], grpc_port=0) as (server, gate):
        port = server.app.state.grpc.port
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = pb_grpc.GRPCInferenceServiceStub(channel)
            assert not stub.ServerReady(pb.ServerReadyRequest()).ready
            with pytest.raises(grpc.RpcError) as error:
                stub.ModelInfer(infer_request(PAIRS[:1]))
            assert error.value.code() == grpc.StatusCode.UNAVAILABLE and "still loading" in error.value.details()
            assert dict(error.value.trailing_metadata())["retry-after"] == "5"
            gate.set()
            server.wait_ready()
            assert stub.ModelInfer(infer_request(PAIRS[:1])).model_name == "tiny-xnli"
            server.state.begin_drain()
            with pytest.raises(grpc.RpcError) as error:
                stub.ModelInfer(infer_request(PAIRS[:1]))
            assert error.value.code() == grpc.StatusCode.UNAVAILABLE and "shutting down" in error.value.details()
            assert not stub.ModelReady(pb.ModelReadyRequest(name="tiny-xnli")).ready


def test_the_generated_modules_are_protocs_output_of_the_vendored_proto() -> None:
    tools = pytest.importorskip("grpc_tools")
    from importlib.metadata import version

    if version("grpcio-tools") != GENERATED_WITH:
        unavailable(f"grpcio-tools {version('grpcio-tools')} is installed; the modules were made with {GENERATED_WITH}")
    from xstilts.serve.grpc.proto import generate

    assert tools is not None
    with tempfile.TemporaryDirectory() as scratch:
        for name, text in generate.generate(Path(scratch)).items():
            assert (generate.HERE / name).read_text() == text, f"{name} is stale: python -m {generate.__name__}"


def test_every_kind_has_a_code_and_the_readme_shows_them() -> None:
    from xstilts.serve.core.errors import ErrorKind
    from xstilts.serve.grpc.errors import CODES, codes_table

    assert set(CODES) == set(ErrorKind)
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    assert codes_table() in readme, "README's gRPC table is not codes_table(): paste its output"
