"""Both APIs over HTTP against ``xstilts serve`` (a subprocess on 127.0.0.1 with the tiny bundles)."""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import pytest

from tests.serve.answers import ANSWER_CHECKS, direct_probabilities
from tests.serve.conftest import ServerProcess, metric_samples, metric_total
from xstilts.contracts.kinds import TaskKind
from xstilts.tasks import Example

XNLI_LABELS = ["entailment", "neutral", "contradiction"]
LONG = "Lorem ipsum dolor sit amet, consectetur adipiscing elit. " * 60
PAIRS = [("A man plays a guitar.", "Someone makes music."), ("Das Wetter ist schön.", "Es regnet."), (LONG, "x")]


@pytest.fixture(scope="module")
def fp32_client(repository: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[httpx.Client]:
    """A server of the fp32 bundles (whose rows do not depend on their batch neighbours), started by the CLI."""
    log_file = tmp_path_factory.mktemp("fp32-server") / "server.log"
    process = ServerProcess(repository, log_file, {"XSTILTS_MODELS": "tiny-xnli=fp32,tiny-xcopa=fp32"}).start()
    with httpx.Client(base_url=process.url, timeout=60) as http:
        yield http
    assert process.stop() == 0, process.logs()


@pytest.mark.parametrize("check", ANSWER_CHECKS, ids=lambda check: check.__name__)
def test_served_answers_are_the_bundles_own(fp32_client: httpx.Client, repository: Path, data_dir: Path, check):
    """Real items in several languages, several per request: each answered as the bundle answers it alone."""
    check(fp32_client, repository, data_dir)


# -- the JSON API -----------------------------------------------------------------------------------------------


def test_models_are_listed_with_the_provider_that_runs_them(client: httpx.Client) -> None:
    models = {m["name"]: m for m in client.get("/v1/models").json()["models"]}
    assert set(models) == {"tiny-xnli", "tiny-xcopa"}
    xnli = models["tiny-xnli"]
    assert (xnli["variant"], xnli["variants"], xnli["kind"]) == ("int8", ["fp32", "int8"], "pair_classification")
    assert xnli["labels"] == XNLI_LABELS and xnli["provider"] == "CPUExecutionProvider" and xnli["state"] == "ready"
    assert client.get("/v1/models/tiny-xcopa").json()["kind"] == "multiple_choice"


def test_predict_pairs_and_single_texts(client: httpx.Client, repository: Path) -> None:
    inputs = [{"text": a, "text_pair": b} for a, b in PAIRS] + ["Just one text."]
    response = client.post("/v1/models/tiny-xnli/predict", json={"inputs": inputs})
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["model"], body["variant"], body["labels"]) == ("tiny-xnli", "int8", XNLI_LABELS)
    predictions = body["predictions"]
    assert [p["truncated"] for p in predictions] == [False, False, True, False]
    examples = [Example(str(i), "en", a, b, 0) for i, (a, b) in enumerate([*PAIRS, ("Just one text.", None)])]
    expected = direct_probabilities(repository / "tiny-xnli" / "int8", TaskKind.PAIR, examples)
    for item, prediction, probabilities in zip(inputs, predictions, expected, strict=True):
        assert prediction["index"] == int(np.argmax(prediction["probabilities"]))
        assert prediction["label"] == XNLI_LABELS[prediction["index"]]
        assert prediction["score"] == max(prediction["probabilities"])
        # int8's dynamic quantization scales each batch by its own range, so an item's int8 probabilities move
        # with its batch neighbours (fp32's do not): alone, the served item equals the bundle run alone
        alone = client.post("/v1/models/tiny-xnli/predict", json={"inputs": [item]}).json()["predictions"][0]
        np.testing.assert_allclose(alone["probabilities"], probabilities, atol=1e-4)
        np.testing.assert_allclose(prediction["probabilities"], probabilities, atol=0.05)


def test_predict_multiple_choice(client: httpx.Client, repository: Path) -> None:
    items = [
        {"premise": "The man turned on the faucet.", "question": "effect", "choices": ["Water flowed.", "It broke."]},
        {"premise": "Il pleut.", "choices": ["Je prends un parapluie.", "Je nage.", "Je dors."]},
    ]
    response = client.post("/v1/models/tiny-xcopa/predict", json={"inputs": items})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["labels"] is None
    examples = [
        Example(str(i), "en", it["premise"], it.get("question"), 0, tuple(it["choices"])) for i, it in enumerate(items)
    ]
    expected = direct_probabilities(repository / "tiny-xcopa" / "fp32", TaskKind.MULTIPLE_CHOICE, examples)
    for item, prediction, probabilities in zip(items, body["predictions"], expected, strict=True):
        assert len(prediction["probabilities"]) == len(item["choices"])
        np.testing.assert_allclose(prediction["probabilities"], probabilities, atol=1e-4)
        assert prediction["label"] == item["choices"][prediction["index"]]


def test_truncate_false_refuses_long_inputs(client: httpx.Client) -> None:
    response = client.post("/v1/models/tiny-xnli/predict", json={"inputs": [LONG], "truncate": False})
    assert response.status_code == 422 and "max_length of 128" in response.json()["error"]


# -- the Open Inference Protocol --------------------------------------------------------------------------------


def test_v2_health_and_metadata(client: httpx.Client) -> None:
    assert client.get("/v2/health/live").json() == {"live": True}
    assert client.get("/v2/health/ready").status_code == 200
    server = client.get("/v2").json()
    assert server["name"] == "xstilts" and "binary_tensor_data" in server["extensions"]
    meta = client.get("/v2/models/tiny-xnli").json()
    assert meta["versions"] == ["int8"] and meta["platform"] == "onnx_onnxv1"
    assert [(t["name"], t["datatype"], t["shape"]) for t in meta["inputs"]] == [
        ("text_a", "BYTES", [-1]),
        ("text_b", "BYTES", [-1]),
    ]
    assert {t["name"] for t in meta["outputs"]} == {"label", "index", "probabilities", "logits", "truncated"}
    xcopa = client.get("/v2/models/tiny-xcopa").json()
    assert [t["name"] for t in xcopa["inputs"]] == ["premise", "question", "choices"]
    assert client.get("/v2/models/tiny-xnli/ready").json() == {"name": "tiny-xnli", "ready": True}
    assert client.get("/v2/models/tiny-xnli/versions/int8/ready").status_code == 200
    assert client.get("/v2/models/tiny-xnli/versions/int8").status_code == 200
    assert client.get("/v2/models/tiny-xnli/versions/fp32").status_code == 404


def test_v2_infer_agrees_with_v1(client: httpx.Client) -> None:
    request = {
        "id": "req-1",
        "inputs": [
            {"name": "text_a", "shape": [3, 1], "datatype": "BYTES", "data": [[a] for a, _ in PAIRS]},
            {"name": "text_b", "shape": [3], "datatype": "BYTES", "data": [b for _, b in PAIRS]},
        ],
        "outputs": [{"name": "label"}, {"name": "probabilities"}, {"name": "truncated"}],
    }
    response = client.post("/v2/models/tiny-xnli/infer", json=request)
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["model_name"], body["model_version"], body["id"]) == ("tiny-xnli", "int8", "req-1")
    outputs = {o["name"]: o for o in body["outputs"]}
    assert list(outputs) == ["label", "probabilities", "truncated"]
    assert outputs["probabilities"]["shape"] == [3, 3] and outputs["probabilities"]["datatype"] == "FP32"
    assert outputs["truncated"]["data"] == [False, False, True]
    v1 = client.post(
        "/v1/models/tiny-xnli/predict", json={"inputs": [{"text": a, "text_pair": b} for a, b in PAIRS]}
    ).json()
    np.testing.assert_allclose(
        np.array(outputs["probabilities"]["data"]).reshape(3, 3),
        [p["probabilities"] for p in v1["predictions"]],
        atol=1e-5,
    )
    assert outputs["label"]["data"] == [p["label"] for p in v1["predictions"]]


def test_a_stock_v2_client_works_unchanged(server) -> None:
    """tritonclient's HTTP client, with its default binary tensors and with JSON tensors."""
    tritonclient = pytest.importorskip("tritonclient.http")
    triton = tritonclient.InferenceServerClient(server.url.removeprefix("http://"))
    assert triton.is_server_live() and triton.is_server_ready() and triton.is_model_ready("tiny-xnli")
    assert triton.get_model_metadata("tiny-xnli")["versions"] == ["int8"]
    for binary in (True, False):
        text_a = tritonclient.InferInput("text_a", [2], "BYTES")
        text_a.set_data_from_numpy(np.array(["Ein Mann spielt Gitarre.", "ça va ?"], dtype=object), binary_data=binary)
        text_b = tritonclient.InferInput("text_b", [2], "BYTES")
        text_b.set_data_from_numpy(np.array(["Jemand macht Musik.", "oui"], dtype=object), binary_data=binary)
        outputs = (
            None
            if binary
            else [tritonclient.InferRequestedOutput(n, binary_data=False) for n in ("label", "probabilities", "index")]
        )
        result = triton.infer("tiny-xnli", [text_a, text_b], outputs=outputs, request_id="7")
        probabilities = result.as_numpy("probabilities")
        assert probabilities.shape == (2, 3) and np.allclose(probabilities.sum(axis=1), 1, atol=1e-5)
        labels = [label.decode() if isinstance(label, bytes) else label for label in result.as_numpy("label")]
        assert labels == [XNLI_LABELS[i] for i in result.as_numpy("index")]
    premise = tritonclient.InferInput("premise", [1], "BYTES")
    premise.set_data_from_numpy(np.array(["The glass fell."], dtype=object))
    choices = tritonclient.InferInput("choices", [1, 2], "BYTES")
    choices.set_data_from_numpy(np.array([["It broke.", "It sang."]], dtype=object))
    result = triton.infer("tiny-xcopa", [premise, choices], model_version="fp32")
    assert result.as_numpy("probabilities").shape == (1, 2)
    assert result.as_numpy("label")[0].decode() in ("It broke.", "It sang.")


# -- operations -------------------------------------------------------------------------------------------------


def test_metrics_have_the_documented_names(client: httpx.Client) -> None:
    client.post("/v1/models/tiny-xnli/predict", json={"inputs": ["Hello."]})
    text = client.get("/metrics").text
    for name in (
        "xstilts_requests_total",
        "xstilts_request_duration_seconds_bucket",
        "xstilts_queue_duration_seconds_bucket",
        "xstilts_tokenization_duration_seconds_bucket",
        "xstilts_inference_duration_seconds_bucket",
        "xstilts_batch_size_bucket",
        "xstilts_queue_depth",
        "xstilts_tokens_total",
        "xstilts_model_info",
        "xstilts_ready",
        "xstilts_requests_in_flight",
    ):
        assert metric_samples(text, name), name
    assert metric_total(text, "xstilts_requests_total", model="tiny-xnli", endpoint="v1_predict", status="200") >= 1
    info = metric_samples(text, "xstilts_model_info")
    assert (
        ("model", "tiny-xnli"),
        ("precision", "int8"),
        ("provider", "CPUExecutionProvider"),
        ("variant", "int8"),
    ) in info
    assert metric_total(text, "xstilts_ready") == 1


def test_probes_and_docs(client: httpx.Client) -> None:
    assert client.get("/healthz").status_code == 200
    assert client.get("/readyz").json() == {"status": "ready"}
    schema = client.get("/openapi.json").json()
    for path in ("/v1/models/{name}/predict", "/v2/models/{name}/infer", "/v2/health/ready", "/metrics", "/readyz"):
        assert path in schema["paths"], path
    assert {"PredictRequest", "InferenceRequest", "ErrorBody"} <= set(schema["components"]["schemas"])
    assert "swagger" in client.get("/docs").text.lower()


def test_concurrent_requests_are_merged_into_batches(server) -> None:
    before = httpx.get(f"{server.url}/metrics").text

    def predict(index: int) -> int:
        body = {"inputs": [{"text": f"Sentence number {index} is here.", "text_pair": PAIRS[index % 3][0]}]}
        return httpx.post(f"{server.url}/v1/models/tiny-xnli/predict", json=body, timeout=60).status_code

    with ThreadPoolExecutor(32) as pool:
        statuses = list(pool.map(predict, range(192)))
    assert statuses == [200] * 192
    after = httpx.get(f"{server.url}/metrics").text
    items = metric_total(after, "xstilts_batch_size_sum", model="tiny-xnli") - metric_total(
        before, "xstilts_batch_size_sum", model="tiny-xnli"
    )
    batches = metric_total(after, "xstilts_batch_size_count", model="tiny-xnli") - metric_total(
        before, "xstilts_batch_size_count", model="tiny-xnli"
    )
    assert items == 192 and batches < 192  # some batches held more than one request
    bucket_one = metric_samples(after, "xstilts_batch_size_bucket")[(("le", "1.0"), ("model", "tiny-xnli"))]
    assert bucket_one < metric_total(after, "xstilts_batch_size_count", model="tiny-xnli")


# -- errors: a JSON body with a message, a fitting status, and a server that keeps serving -------------------------

V2_GOOD = {"inputs": [{"name": "text_a", "shape": [1], "datatype": "BYTES", "data": ["fine"]}]}


def v2_input(**changes) -> dict:
    tensor = {"name": "text_a", "shape": [1], "datatype": "BYTES", "data": ["fine"], **changes}
    return {"inputs": [tensor]}


ERROR_CASES = [
    # (id, method, path, body (bytes or JSON), headers, status, error_type, message fragment)
    ("unknown model", "POST", "/v1/models/nope/predict", {"inputs": ["a"]}, {}, 404, "not_found", "no model 'nope'"),
    ("unknown model v2", "POST", "/v2/models/nope/infer", V2_GOOD, {}, 404, "not_found", "no model 'nope'"),
    ("unknown model metadata", "GET", "/v2/models/nope", None, {}, 404, "not_found", "no model"),
    ("unknown route", "GET", "/v3/anything", None, {}, 404, "not_found", "Not Found"),
    ("wrong method", "DELETE", "/v1/models", None, {}, 405, "method_not_allowed", "Method Not Allowed"),
    ("empty body", "POST", "/v1/models/tiny-xnli/predict", b"", {}, 400, "bad_request", "empty"),
    ("bad JSON", "POST", "/v1/models/tiny-xnli/predict", b'{"inputs": [', {}, 400, "bad_request", "not valid JSON"),
    ("bad UTF-8", "POST", "/v1/models/tiny-xnli/predict", b'{"inputs": ["\xff\xfe"]}', {}, 400, "bad_request", "UTF-8"),
    ("bad UTF-8 v2", "POST", "/v2/models/tiny-xnli/infer", b'{"inputs": [\xc3\x28]}', {}, 400, "bad_request", "UTF-8"),
    (
        "lone surrogate",
        "POST",
        "/v1/models/tiny-xnli/predict",
        b'{"inputs": ["\\ud800"]}',
        {},
        400,
        "bad_request",
        "JSON",
    ),
    ("not an object", "POST", "/v1/models/tiny-xnli/predict", [1, 2], {}, 422, "validation", "object"),
    ("no inputs", "POST", "/v1/models/tiny-xnli/predict", {"inputs": []}, {}, 422, "validation", "at least 1"),
    ("empty text", "POST", "/v1/models/tiny-xnli/predict", {"inputs": [""]}, {}, 422, "validation", "empty"),
    (
        "blank text",
        "POST",
        "/v1/models/tiny-xnli/predict",
        {"inputs": [" \n\t"]},
        {},
        422,
        "validation",
        "only whitespace",
    ),
    (
        "number text",
        "POST",
        "/v1/models/tiny-xnli/predict",
        {"inputs": [42]},
        {},
        422,
        "validation",
        "an item is a string",
    ),
    ("null text", "POST", "/v1/models/tiny-xnli/predict", {"inputs": [{"text": None}]}, {}, 422, "validation", "text"),
    (
        "unknown field",
        "POST",
        "/v1/models/tiny-xnli/predict",
        {"inputs": ["a"], "top_k": 3},
        {},
        422,
        "validation",
        "top_k",
    ),
    (
        "choices for a pair model",
        "POST",
        "/v1/models/tiny-xnli/predict",
        {"inputs": [{"premise": "p", "choices": ["a", "b"]}]},
        {},
        422,
        "validation",
        "pair_classification model",
    ),
    (
        "pair for a choice model",
        "POST",
        "/v1/models/tiny-xcopa/predict",
        {"inputs": ["a"]},
        {},
        422,
        "validation",
        "multiple-choice",
    ),
    (
        "too many items",
        "POST",
        "/v1/models/tiny-xnli/predict",
        {"inputs": ["a"] * 65},
        {},
        413,
        "too_large",
        "max_items",
    ),
    (
        "too many items v2",
        "POST",
        "/v2/models/tiny-xnli/infer",
        v2_input(shape=[65], data=["a"] * 65),
        {},
        413,
        "too_large",
        "max_items",
    ),
    (
        "body too large",
        "POST",
        "/v1/models/tiny-xnli/predict",
        b"x" * 1_100_000,
        {},
        413,
        "too_large",
        "max_body_bytes",
    ),
    (
        "v2 wrong datatype",
        "POST",
        "/v2/models/tiny-xnli/infer",
        v2_input(datatype="FP32", data=[1.0]),
        {},
        422,
        "validation",
        "BYTES",
    ),
    (
        "v2 shape mismatch",
        "POST",
        "/v2/models/tiny-xnli/infer",
        v2_input(shape=[2]),
        {},
        422,
        "validation",
        "shape [2]",
    ),
    ("v2 non-string", "POST", "/v2/models/tiny-xnli/infer", v2_input(data=[7]), {}, 422, "validation", "not a string"),
    ("v2 empty text", "POST", "/v2/models/tiny-xnli/infer", v2_input(data=[""]), {}, 422, "validation", "empty"),
    (
        "v2 unknown input",
        "POST",
        "/v2/models/tiny-xnli/infer",
        v2_input(name="image"),
        {},
        422,
        "validation",
        "no input image",
    ),
    ("v2 missing input", "POST", "/v2/models/tiny-xcopa/infer", V2_GOOD, {}, 422, "validation", "no input text_a"),
    ("v2 no inputs", "POST", "/v2/models/tiny-xnli/infer", {"inputs": []}, {}, 422, "validation", "at least 1"),
    (
        "v2 bad shape rank",
        "POST",
        "/v2/models/tiny-xnli/infer",
        v2_input(shape=[1, 1, 1]),
        {},
        422,
        "validation",
        "[batch]",
    ),
    ("v2 negative dim", "POST", "/v2/models/tiny-xnli/infer", v2_input(shape=[-1]), {}, 422, "validation", "shape"),
    (
        "v2 uneven batch",
        "POST",
        "/v2/models/tiny-xnli/infer",
        {
            "inputs": [
                {"name": "text_a", "shape": [1], "datatype": "BYTES", "data": ["a"]},
                {"name": "text_b", "shape": [2], "datatype": "BYTES", "data": ["b", "c"]},
            ]
        },
        {},
        422,
        "validation",
        "batch size",
    ),
    (
        "v2 unknown output",
        "POST",
        "/v2/models/tiny-xnli/infer",
        {**V2_GOOD, "outputs": [{"name": "embedding"}]},
        {},
        422,
        "validation",
        "no output embedding",
    ),
    ("v2 wrong version", "POST", "/v2/models/tiny-xnli/versions/fp32/infer", V2_GOOD, {}, 404, "not_found", "version"),
    (
        "v2 header past the body",
        "POST",
        "/v2/models/tiny-xnli/infer",
        b"{}",
        {"Inference-Header-Content-Length": "99"},
        400,
        "bad_request",
        "outside the body",
    ),
    (
        "v2 broken binary",
        "POST",
        "/v2/models/tiny-xnli/infer",
        json.dumps(v2_input(data=None, parameters={"binary_data_size": 6})).encode() + b"\x09\x00\x00\x00ab",
        {
            "Inference-Header-Content-Length": str(
                len(json.dumps(v2_input(data=None, parameters={"binary_data_size": 6})))
            )
        },
        400,
        "bad_request",
        "runs past the end",
    ),
    (
        "bad content encoding",
        "POST",
        "/v1/models/tiny-xnli/predict",
        b"abc",
        {"Content-Encoding": "br"},
        400,
        "bad_request",
        "br",
    ),
    (
        "broken gzip",
        "POST",
        "/v1/models/tiny-xnli/predict",
        b"abc",
        {"Content-Encoding": "gzip"},
        400,
        "bad_request",
        "gzip",
    ),
    (
        "gzip bomb",
        "POST",
        "/v1/models/tiny-xnli/predict",
        gzip.compress(b" " * 5_000_000),
        {"Content-Encoding": "gzip"},
        413,
        "too_large",
        "decompressed",
    ),
]


@pytest.mark.parametrize(
    ("method", "path", "body", "headers", "status", "error_type", "message"),
    [case[1:] for case in ERROR_CASES],
    ids=[case[0] for case in ERROR_CASES],
)
def test_errors_are_json_with_a_message(
    client: httpx.Client, method, path, body, headers, status, error_type, message
) -> None:
    content = body if isinstance(body, bytes) else (json.dumps(body).encode() if body is not None else None)
    response = client.request(method, path, content=content, headers={"Content-Type": "application/json", **headers})
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    error = response.json()
    assert set(error) == {"error", "error_type", "request_id"} and message in error["error"], error
    assert error["request_id"] == response.headers["x-request-id"], error
    assert error["error_type"] == error_type, error
    assert client.get("/healthz").status_code == 200


def test_a_chunked_body_over_the_limit_is_cut_off(client: httpx.Client) -> None:
    def chunks():
        for _ in range(40):
            yield b"x" * 50_000

    response = client.post("/v1/models/tiny-xnli/predict", content=chunks())
    assert response.status_code == 413 and "max_body_bytes" in response.json()["error"]


def test_a_gzipped_body_is_accepted(client: httpx.Client) -> None:
    body = gzip.compress(json.dumps({"inputs": ["Zipped text."]}).encode())
    response = client.post(
        "/v1/models/tiny-xnli/predict",
        content=body,
        headers={"Content-Encoding": "gzip", "Content-Type": "application/json"},
    )
    assert response.status_code == 200, response.text


def test_errors_are_counted_by_status(client: httpx.Client) -> None:
    client.post("/v1/models/tiny-xnli/predict", json={"inputs": []})
    client.post("/v1/models/nope/predict", json={"inputs": ["a"]})
    text = client.get("/metrics").text
    assert metric_total(text, "xstilts_requests_total", model="tiny-xnli", status="422") >= 1
    assert metric_total(text, "xstilts_requests_total", model="", status="404") >= 1  # unknown names: no new label
