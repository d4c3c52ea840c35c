"""The embedding routes over real HTTP: /v1/models/{name}/embed, OpenAI's /v1/embeddings (with the official
``openai`` client) and v2 infer (with ``tritonclient``), each answer the bundle's own; bad inputs; auth; metrics."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest

from tests.helpers import unavailable
from tests.serve.answers import EMBED_CHECKS, assert_answers, check_v1_embed, direct_embeddings, embed_texts
from tests.serve.conftest import ServerProcess, metric_total, thread_server
from xstilts.contracts.embedding import EmbeddingSpec

MAX_ITEMS = 16
MODELS = "tiny-embed=fp32,tiny-xnli=fp32"
LONG = "Lorem ipsum dolor sit amet, consectetur adipiscing elit. " * 60


@pytest.fixture(scope="module")
def embed_server(embedding_repository: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    log_file = tmp_path_factory.mktemp("embed-server") / "server.log"
    env = {"XSTILTS_MODELS": MODELS, "XSTILTS_MAX_ITEMS": str(MAX_ITEMS), "XSTILTS_MAX_QUEUE_DELAY_MS": "5"}
    process = ServerProcess(embedding_repository, log_file, env).start()
    yield process
    assert process.stop() == 0, process.logs()


@pytest.fixture()
def http(embed_server: ServerProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=embed_server.url, timeout=60) as client:
        yield client


def openai_client(url: str, key: str = "unused"):
    try:
        import openai
    except ImportError:
        unavailable("the openai package is not installed (pip install 'xstilts[dev]')")
    return openai.OpenAI(base_url=f"{url}/v1", api_key=key, max_retries=0)


def expected(repository: Path, texts: list[str]) -> list[np.ndarray]:
    return direct_embeddings(repository / "tiny-embed" / "fp32", texts)


def token_count(repository: Path, texts: list[str]) -> int:
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(repository / "tiny-embed" / "fp32" / "tokenizer.json"))
    tokenizer.no_padding()
    return sum(len(tokenizer.encode("query: " + text).ids) for text in texts)


def test_embed_answers_each_text_as_the_bundle_alone(http: httpx.Client, embedding_repository: Path, data_dir):
    check_v1_embed(http, embedding_repository, data_dir)


def test_embed_reports_dimension_truncation_and_unit_length(http: httpx.Client) -> None:
    response = http.post("/v1/models/tiny-embed/embed", json={"inputs": ["short", LONG], "normalize": True})
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["model"], body["variant"], body["dimension"], body["truncated"]) == (
        "tiny-embed",
        "fp32",
        32,
        [False, True],
    )
    np.testing.assert_allclose(np.linalg.norm(body["embeddings"], axis=1), 1.0, atol=1e-5)
    info = http.get("/v1/models/tiny-embed").json()
    assert info["kind"] == "embedding" and info["labels"] == []
    assert info["embedding"] == {"layer": 1, "pooling": "mean", "prefix": "query: ", "normalize": True, "dimension": 32}


def test_openai_client_gets_the_bundles_vectors(embed_server: ServerProcess, embedding_repository: Path, data_dir):
    """The official client, as is: its default base64 encoding, explicit floats, a single string."""
    client = openai_client(embed_server.url)
    texts = embed_texts(data_dir)
    want = expected(embedding_repository, texts)
    default = client.embeddings.create(model="tiny-embed", input=texts)  # the client asks for base64 and decodes it
    floats = client.embeddings.create(model="tiny-embed", input=texts, encoding_format="float")
    for answer in (default, floats):
        assert answer.model == "tiny-embed" and [d.index for d in answer.data] == list(range(len(texts)))
        assert_answers([d.embedding for d in answer.data], want, "openai embeddings")
        assert answer.usage.prompt_tokens == answer.usage.total_tokens == token_count(embedding_repository, texts)
    single = client.embeddings.create(model="tiny-embed", input=texts[0], encoding_format="float")
    assert_answers([single.data[0].embedding], want[:1], "openai single string")


def test_openai_errors_reach_the_client(embed_server: ServerProcess) -> None:
    import openai

    client = openai_client(embed_server.url)
    with pytest.raises(openai.NotFoundError):
        client.embeddings.create(model="no-such-model", input="x")
    with pytest.raises(openai.UnprocessableEntityError, match="predict"):
        client.embeddings.create(model="tiny-xnli", input="x")
    with pytest.raises(openai.UnprocessableEntityError, match="32 dimensions"):
        client.embeddings.create(model="tiny-embed", input="x", dimensions=8)
    with pytest.raises(openai.UnprocessableEntityError):
        client.embeddings.create(model="tiny-embed", input=[[1, 2, 3]])  # token arrays: the server tokenizes


def test_tritonclient_infers_vectors(embed_server: ServerProcess, embedding_repository: Path, data_dir) -> None:
    tritonclient = pytest.importorskip("tritonclient.http")
    triton = tritonclient.InferenceServerClient(embed_server.url.removeprefix("http://"))
    metadata = triton.get_model_metadata("tiny-embed")
    assert [(t["name"], t["datatype"]) for t in metadata["inputs"]] == [("text", "BYTES")]
    assert metadata["outputs"][0] == {"name": "embedding", "datatype": "FP32", "shape": [-1, 32]}
    texts = embed_texts(data_dir)
    want = expected(embedding_repository, texts)
    for binary in (True, False):
        text = tritonclient.InferInput("text", [len(texts)], "BYTES")
        text.set_data_from_numpy(np.array(texts, dtype=object), binary_data=binary)
        output = tritonclient.InferRequestedOutput("embedding", binary_data=binary)
        result = triton.infer("tiny-embed", [text], outputs=[output])
        vectors = result.as_numpy("embedding")
        assert vectors.shape == (len(texts), 32) and vectors.dtype == np.float32
        assert_answers(list(vectors), want, f"v2 embedding (binary={binary})")


@pytest.mark.parametrize(
    ("route", "body", "status", "kind", "message"),
    [
        ("/v1/models/tiny-embed/embed", {"inputs": []}, 422, "validation", "inputs"),
        ("/v1/models/tiny-embed/embed", {"inputs": ["ok", 7]}, 422, "validation", "inputs.1"),
        ("/v1/models/tiny-embed/embed", {"inputs": ["ok", "  "]}, 422, "validation", "empty"),
        ("/v1/models/tiny-embed/embed", {"inputs": ["x"] * (MAX_ITEMS + 1)}, 413, "too_large", "max_items"),
        ("/v1/models/tiny-embed/embed", {"inputs": [LONG], "truncate": False}, 422, "validation", "max_length"),
        ("/v1/models/tiny-embed/embed", {"inputs": ["x"], "normalize": False}, 422, "validation", "unit vectors"),
        ("/v1/models/tiny-xnli/embed", {"inputs": ["x"]}, 422, "validation", "predict"),
        ("/v1/models/tiny-embed/predict", {"inputs": ["x"]}, 422, "validation", "embedding model"),
        ("/v1/embeddings", {"model": "tiny-embed", "input": []}, 422, "validation", "input"),
        ("/v1/embeddings", {"model": "tiny-embed", "input": ""}, 422, "validation", "input"),
        ("/v1/embeddings", {"model": "tiny-embed", "input": ["x"] * (MAX_ITEMS + 1)}, 413, "too_large", "max_items"),
        ("/v1/embeddings", {"model": "tiny-embed", "input": "x", "encoding_format": "int8"}, 422, "validation", ""),
        (
            "/v2/models/tiny-embed/infer",
            {"inputs": [{"name": "text_a", "shape": [1], "datatype": "BYTES", "data": ["x"]}]},
            422,
            "validation",
            "its inputs are text",
        ),
        (
            "/v2/models/tiny-embed/infer",
            {"inputs": [{"name": "text", "shape": [1], "datatype": "BYTES", "data": [""]}]},
            422,
            "validation",
            "empty",
        ),
    ],
)
def test_bad_inputs_get_json_errors(http: httpx.Client, route: str, body: dict, status: int, kind: str, message: str):
    response = http.post(route, json=body)
    assert response.status_code == status, response.text
    error = response.json()
    assert error["error_type"] == kind and message in error["error"], error


def test_embedding_requests_are_counted_per_endpoint(http: httpx.Client) -> None:
    before = http.get("/metrics").text
    assert http.post("/v1/models/tiny-embed/embed", json={"inputs": ["a"]}).status_code == 200
    assert http.post("/v1/embeddings", json={"model": "tiny-embed", "input": "a"}).status_code == 200
    after = http.get("/metrics").text
    for endpoint in ("v1_embed", "openai_embeddings"):
        labels = {"model": "tiny-embed", "endpoint": endpoint, "status": "200"}
        assert metric_total(after, "xstilts_requests_total", **labels) == (
            metric_total(before, "xstilts_requests_total", **labels) + 1
        )


def test_embedding_routes_need_the_key(embedding_repository: Path) -> None:
    import openai

    with thread_server(embedding_repository, models=["tiny-embed=fp32"], api_key="s3cret") as server:
        server.wait_ready()
        with pytest.raises(openai.AuthenticationError):
            openai_client(server.url, "wrong").embeddings.create(model="tiny-embed", input="x")
        answer = openai_client(server.url, "s3cret").embeddings.create(model="tiny-embed", input="x")
        assert len(answer.data[0].embedding) == 32
        response = httpx.post(f"{server.url}/v1/models/tiny-embed/embed", json={"inputs": ["x"]})
        assert response.status_code == 401 and response.json()["error_type"] == "unauthorized"


def test_a_server_that_drops_the_prefix_fails_the_answer_check(
    monkeypatch: pytest.MonkeyPatch, embedding_repository: Path, data_dir: Path
) -> None:
    """The mutation check: the same server, its prefix dropped, no longer answers as the bundle does."""
    monkeypatch.setattr(EmbeddingSpec, "text", lambda self, text: text)
    with thread_server(embedding_repository, models=["tiny-embed=fp32"], max_queue_delay_ms=5) as server:
        server.wait_ready()
        with httpx.Client(base_url=server.url, timeout=60) as client:
            for check in EMBED_CHECKS:
                with pytest.raises(AssertionError):
                    check(client, embedding_repository, data_dir)
