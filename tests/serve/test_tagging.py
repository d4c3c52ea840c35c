"""The tagging routes over real HTTP: /v1/models/{name}/predict (texts and pre-split words) and v2 infer (with
``tritonclient``), each answer the bundle's own; bad inputs; auth; metrics; the model's description."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest

from tests.serve.answers import (
    SCRIPT_TEXTS,
    TAG_CHECKS,
    direct_tags,
    placed,
)
from tests.serve.conftest import ServerProcess, loading_server, metric_total, thread_server

MAX_ITEMS = 16
MAX_BODY_BYTES = 20_000
MODELS = "tiny-panx=fp32,tiny-udpos=fp32"


@pytest.fixture(scope="module")
def tag_server(tagging_repository: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    log_file = tmp_path_factory.mktemp("tag-server") / "server.log"
    env = {
        "XSTILTS_MODELS": MODELS,
        "XSTILTS_MAX_ITEMS": str(MAX_ITEMS),
        "XSTILTS_MAX_BODY_BYTES": str(MAX_BODY_BYTES),
        "XSTILTS_MAX_QUEUE_DELAY_MS": "5",
    }
    process = ServerProcess(tagging_repository, log_file, env).start()
    yield process
    assert process.stop() == 0, process.logs()


@pytest.fixture()
def http(tag_server: ServerProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=tag_server.url, timeout=60) as client:
        yield client


@pytest.mark.parametrize("check", TAG_CHECKS, ids=lambda check: check.__name__)
def test_tagging_answers_are_the_bundles_own(http: httpx.Client, tagging_repository: Path, data_dir, check) -> None:
    check(http, tagging_repository, data_dir)


def test_pos_answers_words_with_tags_and_no_entities(http: httpx.Client, tagging_repository: Path) -> None:
    text = "Die Katze schläft, sagt Anna."
    response = http.post("/v1/models/tiny-udpos/predict", json={"inputs": [text]})
    assert response.status_code == 200, response.text
    (prediction,) = response.json()["predictions"]
    words = ["Die", "Katze", "schläft", ",", "sagt", "Anna", "."]
    assert [(w["text"], w["start"], w["end"]) for w in prediction["words"]] == placed(text, words)
    assert prediction["entities"] is None and prediction["windows"] == 1
    (expected,) = direct_tags(tagging_repository / "tiny-udpos" / "fp32", [words])
    assert [w["tag"] for w in prediction["words"]] == [tag for tag, _ in expected]


def test_a_text_and_its_words_get_the_same_tags(http: httpx.Client) -> None:
    """Raw text split by the server's rule and the same words sent pre-split are the same model input."""
    text, words = SCRIPT_TEXTS[0]
    response = http.post("/v1/models/tiny-panx/predict", json={"inputs": [text, {"words": words}]})
    assert response.status_code == 200, response.text
    raw, split = response.json()["predictions"]
    assert [w["tag"] for w in raw["words"]] == [w["tag"] for w in split["words"]]
    assert split["text"] == " ".join(words)


def test_the_model_describes_its_tags_and_inputs(http: httpx.Client) -> None:
    info = http.get("/v1/models/tiny-panx").json()
    assert info["kind"] == "token_classification" and info["labels"][0] == "O" and "words" in info["input"]
    metadata = http.get("/v2/models/tiny-panx").json()
    assert [(t["name"], t["datatype"]) for t in metadata["inputs"]] == [("text", "BYTES")]
    assert [t["name"] for t in metadata["outputs"]] == ["words", "tags", "scores", "starts", "ends"]


def test_tritonclient_gets_the_tags(tag_server: ServerProcess, tagging_repository: Path) -> None:
    tritonclient = pytest.importorskip("tritonclient.http")
    triton = tritonclient.InferenceServerClient(tag_server.url.removeprefix("http://"))
    texts = [text for text, _ in SCRIPT_TEXTS]
    expected = direct_tags(tagging_repository / "tiny-panx" / "fp32", [words for _, words in SCRIPT_TEXTS])
    for binary in (True, False):
        text = tritonclient.InferInput("text", [len(texts)], "BYTES")
        text.set_data_from_numpy(np.array(texts, dtype=object), binary_data=binary)
        outputs = [tritonclient.InferRequestedOutput(name, binary_data=binary) for name in ("tags", "starts", "ends")]
        result = triton.infer("tiny-panx", [text], outputs=outputs)
        tags, starts, ends = (result.as_numpy(name) for name in ("tags", "starts", "ends"))
        assert tags.shape == starts.shape == (len(texts), max(len(words) for _, words in SCRIPT_TEXTS))
        for row, ((sentence, words), want) in enumerate(zip(SCRIPT_TEXTS, expected, strict=True)):
            count = len(words)
            served = [t.decode() if isinstance(t, bytes) else t for t in tags[row][:count]]
            assert served == [tag for tag, _ in want], f"binary={binary}: {sentence}"
            spans = [
                (sentence[s:e], int(s), int(e)) for s, e in zip(starts[row][:count], ends[row][:count], strict=True)
            ]
            assert spans == placed(sentence, words)
            assert list(starts[row][count:]) == [-1] * (tags.shape[1] - count)


LONG_TEXT = "Lorem ipsum dolor sit amet " * 800


@pytest.mark.parametrize(
    ("route", "body", "status", "kind", "message"),
    [
        ("/v1/models/tiny-panx/predict", {"inputs": []}, 422, "validation", "inputs"),
        ("/v1/models/tiny-panx/predict", {"inputs": ["ok", 7]}, 422, "validation", "inputs.1"),
        ("/v1/models/tiny-panx/predict", {"inputs": ["ok", "  "]}, 422, "validation", "empty"),
        ("/v1/models/tiny-panx/predict", {"inputs": [{"words": []}]}, 422, "validation", "words"),
        ("/v1/models/tiny-panx/predict", {"inputs": [{"words": ["a", ""]}]}, 422, "validation", "empty"),
        ("/v1/models/tiny-panx/predict", {"inputs": [{"words": ["a", 3]}]}, 422, "validation", "words.1"),
        ("/v1/models/tiny-panx/predict", {"inputs": [{"text": "a", "text_pair": "b"}]}, 422, "validation", "tagging"),
        ("/v1/models/tiny-panx/predict", {"inputs": ["x"] * (MAX_ITEMS + 1)}, 413, "too_large", "max_items"),
        ("/v1/models/tiny-panx/predict", {"inputs": [LONG_TEXT]}, 413, "too_large", "max_body_bytes"),
        ("/v1/models/tiny-panx/embed", {"inputs": ["x"]}, 422, "validation", "predict"),
        ("/v1/models/no-such-model/predict", {"inputs": ["x"]}, 404, "not_found", "no-such-model"),
        (
            "/v2/models/tiny-panx/infer",
            {"inputs": [{"name": "text_a", "shape": [1], "datatype": "BYTES", "data": ["x"]}]},
            422,
            "validation",
            "its inputs are text",
        ),
        (
            "/v2/models/tiny-panx/infer",
            {"inputs": [{"name": "text", "shape": [1], "datatype": "BYTES", "data": [""]}]},
            422,
            "validation",
            "empty",
        ),
        (
            "/v2/models/tiny-panx/infer",
            {"inputs": [{"name": "text", "shape": [1], "datatype": "BYTES", "data": [5]}]},
            422,
            "validation",
            "not a string",
        ),
        (
            "/v2/models/tiny-panx/infer",
            {
                "inputs": [
                    {"name": "text", "shape": [MAX_ITEMS + 1], "datatype": "BYTES", "data": ["x"] * (MAX_ITEMS + 1)}
                ]
            },
            413,
            "too_large",
            "max_items",
        ),
    ],
)
def test_bad_inputs_get_json_errors(http: httpx.Client, route: str, body: dict, status: int, kind: str, message: str):
    response = http.post(route, json=body)
    assert response.status_code == status, response.text
    error = response.json()
    assert error["error_type"] == kind and message in error["error"], error


def test_tagging_requests_are_counted(http: httpx.Client) -> None:
    before = http.get("/metrics").text
    assert http.post("/v1/models/tiny-panx/predict", json={"inputs": ["Paris"]}).status_code == 200
    assert http.post("/v1/models/tiny-panx/predict", json={"inputs": []}).status_code == 422
    after = http.get("/metrics").text
    for status in ("200", "422"):
        labels = {"model": "tiny-panx", "endpoint": "v1_predict", "status": status}
        assert metric_total(after, "xstilts_requests_total", **labels) == (
            metric_total(before, "xstilts_requests_total", **labels) + 1
        )
    assert metric_total(after, "xstilts_tokens_total", model="tiny-panx") > metric_total(
        before, "xstilts_tokens_total", model="tiny-panx"
    )


def test_tagging_routes_need_the_key(tagging_repository: Path) -> None:
    with thread_server(tagging_repository, models=["tiny-panx=int8"], api_key="s3cret") as server:
        server.wait_ready()
        url = f"{server.url}/v1/models/tiny-panx/predict"
        response = httpx.post(url, json={"inputs": ["Paris"]})
        assert response.status_code == 401 and response.json()["error_type"] == "unauthorized"
        answer = httpx.post(url, json={"inputs": ["Paris"]}, headers={"Authorization": "Bearer s3cret"}).json()
        assert answer["variant"] == "int8" and answer["predictions"][0]["words"][0]["text"] == "Paris"


def test_a_request_longer_than_the_queue_is_too_large(tagging_repository: Path) -> None:
    """Windows beyond what the queue can ever hold are refused at once (413), not sent to retry (429) forever."""
    with thread_server(tagging_repository, models=["tiny-panx=fp32"], max_queue_size=4, max_items=4) as server:
        server.wait_ready()
        url = f"{server.url}/v1/models/tiny-panx/predict"
        response = httpx.post(url, json={"inputs": ["Lorem ipsum dolor sit amet " * 20]})
        assert response.status_code == 413 and response.json()["error_type"] == "too_large", response.text
        assert "max_queue_size" in response.json()["error"]
        assert httpx.post(url, json={"inputs": ["Lorem ipsum dolor sit amet " * 3]}).status_code == 200


def test_a_tagger_still_loading_answers_503(tagging_repository: Path) -> None:
    v2 = {"inputs": [{"name": "text", "shape": [1], "datatype": "BYTES", "data": ["Paris"]}]}
    with loading_server(tagging_repository, models=["tiny-panx=fp32"]) as (server, _):
        for route, body in (("v1/models/tiny-panx/predict", {"inputs": ["Paris"]}), ("v2/models/tiny-panx/infer", v2)):
            response = httpx.post(f"{server.url}/{route}", json=body)
            assert response.status_code == 503 and response.json()["error_type"] == "unavailable", response.text
