"""Extractive QA over real HTTP: /v1 predict and v2 infer (also with the stock ``tritonclient``) answer as the
bundle does alone, long contexts in several windows; bad inputs get the project's 4xx error body."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest

from tests.helpers import QA_DOC_STRIDE, TINY_MAX_LENGTH, unavailable
from tests.qa.answers import NAME, check_v1_answers, check_v2_answers, direct_answers, qa_examples
from tests.serve.conftest import ServerProcess, metric_total

MAX_ITEMS = 8
MAX_WINDOWS = 6


@pytest.fixture(scope="module")
def qa_server(qa_repository: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    log_file = tmp_path_factory.mktemp("qa-server") / "server.log"
    env = {
        "XSTILTS_MODELS": f"{NAME}=fp32",
        "XSTILTS_MAX_ITEMS": str(MAX_ITEMS * 2),
        "XSTILTS_MAX_WINDOWS": str(MAX_WINDOWS),
        "XSTILTS_MAX_QUEUE_DELAY_MS": "5",
    }
    process = ServerProcess(qa_repository, log_file, env).start()
    yield process
    assert process.stop() == 0, process.logs()


@pytest.fixture()
def http(qa_server: ServerProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=qa_server.url, timeout=60) as client:
        yield client


def test_v1_answers_as_the_bundle_alone(http: httpx.Client, qa_repository: Path, data_dir: Path) -> None:
    check_v1_answers(http, qa_repository, data_dir)


def test_v1_top_k_answers_best_first(http: httpx.Client, qa_repository: Path, data_dir: Path) -> None:
    check_v1_answers(http, qa_repository, data_dir, top_k=3)


def test_v2_answers_as_the_bundle_alone(http: httpx.Client, qa_repository: Path, data_dir: Path) -> None:
    check_v2_answers(http, qa_repository, data_dir)


def test_stock_tritonclient(qa_server: ServerProcess, qa_repository: Path, data_dir: Path) -> None:
    """tritonclient.http sends BYTES in its binary extension and asks for binary outputs: answers unchanged."""
    try:
        import tritonclient.http as triton
    except ImportError:
        unavailable("tritonclient is not installed (pip install 'xstilts[dev]')")
    examples = qa_examples(data_dir, ("de",), 3)
    client = triton.InferenceServerClient(qa_server.url.removeprefix("http://"))
    assert client.is_model_ready(NAME)
    metadata = client.get_model_metadata(NAME)
    assert [i["name"] for i in metadata["inputs"]] == ["question", "context"]
    inputs = []
    for name, texts in (("question", [e.text_b for e in examples]), ("context", [e.text_a for e in examples])):
        tensor = triton.InferInput(name, [len(texts)], "BYTES")
        tensor.set_data_from_numpy(np.array([t.encode() for t in texts], dtype=np.object_), binary_data=True)
        inputs.append(tensor)
    outputs = [triton.InferRequestedOutput(name, binary_data=True) for name in ("answer", "start", "end", "score")]
    result = client.infer(NAME, inputs, outputs=outputs)
    expected = [found[0] for found in direct_answers(qa_repository / NAME / "fp32", examples)]
    assert [a.decode() for a in result.as_numpy("answer")] == [a.text for a in expected]
    assert result.as_numpy("start").tolist() == [a.start for a in expected]
    assert result.as_numpy("end").tolist() == [a.end for a in expected]
    np.testing.assert_allclose(result.as_numpy("score"), [a.score for a in expected], atol=1e-4)


def test_model_descriptions(http: httpx.Client) -> None:
    info = http.get(f"/v1/models/{NAME}").json()
    assert info["kind"] == "span_qa" and info["labels"] == [] and "question" in info["input"]
    assert info["span_qa"] == {"doc_stride": QA_DOC_STRIDE, "max_answer_length": 30}
    metadata = http.get(f"/v2/models/{NAME}").json()
    assert [(t["name"], t["datatype"]) for t in metadata["outputs"]] == [
        ("answer", "BYTES"),
        ("start", "INT64"),
        ("end", "INT64"),
        ("score", "FP32"),
    ]
    assert "AnswerRequest" in http.get("/openapi.json").json()["components"]["schemas"]


def huge_context(data_dir: Path) -> str:
    """Real text far beyond MAX_WINDOWS windows of the tiny model's length."""
    return " ".join(e.text_a for e in qa_examples(data_dir, ("en",), 12))


def v2_body(questions: list, contexts: list) -> dict:
    return {
        "inputs": [
            {"name": "question", "shape": [len(questions)], "datatype": "BYTES", "data": questions},
            {"name": "context", "shape": [len(contexts)], "datatype": "BYTES", "data": contexts},
        ]
    }


BAD_V1 = [
    ({"inputs": [{"question": "Who?"}]}, 422, "validation", "context"),
    ({"inputs": [{"context": "Ann ran."}]}, 422, "validation", "question"),
    ({"inputs": [{"question": "", "context": "Ann ran."}]}, 422, "validation", "question"),
    ({"inputs": [{"question": "Who ran?", "context": "   "}]}, 422, "validation", "empty"),
    ({"inputs": ["Who ran?"]}, 422, "validation", "inputs.0"),
    ({"inputs": [{"question": "Who?", "context": "Ann.", "text": "x"}]}, 422, "validation", "text"),
    ({"inputs": [{"question": "Who?", "context": "Ann."}], "top_k": 0}, 422, "validation", "top_k"),
    ({"inputs": []}, 422, "validation", "inputs"),
    ({"inputs": [{"question": "Who?", "context": "Ann."}] * (MAX_ITEMS * 2 + 1)}, 413, "too_large", "max_items"),
]


ERROR_KEYS = {"error", "error_type", "request_id"}


@pytest.mark.parametrize(("body", "status", "kind", "words"), BAD_V1)
def test_bad_v1_requests(http: httpx.Client, body: dict, status: int, kind: str, words: str) -> None:
    response = http.post(f"/v1/models/{NAME}/predict", json=body)
    assert (response.status_code, set(response.json())) == (status, ERROR_KEYS), response.text
    assert response.json()["error_type"] == kind and words in response.json()["error"]


def test_huge_context_is_refused_before_inference(http: httpx.Client, data_dir: Path) -> None:
    context = huge_context(data_dir)
    before = metric_total(http.get("/metrics").text, "xstilts_tokens_total", model=NAME)
    items = [{"question": "Who?", "context": "Ann."}, {"question": "Who?", "context": context}]
    for path, body in (
        (f"/v1/models/{NAME}/predict", {"inputs": items}),
        (f"/v2/models/{NAME}/infer", v2_body(["Who?"], [context])),
    ):
        response = http.post(path, json=body)
        assert (response.status_code, response.json()["error_type"]) == (413, "too_large"), response.text
        assert "max_windows" in response.json()["error"] and f"of {TINY_MAX_LENGTH} tokens" in response.json()["error"]
    assert metric_total(http.get("/metrics").text, "xstilts_tokens_total", model=NAME) == before


BAD_V2 = [
    (v2_body(["Who?"], ["Ann ran."])["inputs"][:1], 422, "missing: context"),
    (v2_body(["Who?"], [""])["inputs"], 422, "context: element 0"),
    (v2_body(["Who?", "Why?"], ["Ann ran."])["inputs"], 422, "batch size"),
    ([{"name": "text_a", "shape": [1], "datatype": "BYTES", "data": ["x"]}], 422, "no input text_a"),
]


@pytest.mark.parametrize(("inputs", "status", "words"), BAD_V2)
def test_bad_v2_requests(http: httpx.Client, inputs: list, status: int, words: str) -> None:
    response = http.post(f"/v2/models/{NAME}/infer", json={"inputs": inputs})
    assert (response.status_code, set(response.json())) == (status, ERROR_KEYS), response.text
    assert words in response.json()["error"]


def test_windows_count_in_the_metrics(http: httpx.Client, data_dir: Path) -> None:
    """Every window is one batch item: a request's windows all run, counted in the batch-size histogram."""
    text = http.get("/metrics").text
    items = metric_total(text, "xstilts_batch_size_sum", model=NAME)
    examples = qa_examples(data_dir, ("en",), 2)
    body = {"inputs": [{"question": e.text_b, "context": e.text_a} for e in examples]}
    windows = sum(p["windows"] for p in http.post(f"/v1/models/{NAME}/predict", json=body).json()["predictions"])
    assert windows > len(examples)
    assert metric_total(http.get("/metrics").text, "xstilts_batch_size_sum", model=NAME) == items + windows


def test_engine_stacks_start_and_end_logits_with_and_without_io_binding(qa_repository: Path, data_dir: Path) -> None:
    """The engine gives a QA graph's two outputs as [windows, 2, width]; IO binding (the GPU path, forced on here on
    the CPU) binds both and gives the same numbers."""
    import onnxruntime as ort

    from xstilts.contracts.bundle import load_manifest
    from xstilts.serve.core.engine import OnnxEngine
    from xstilts.serve.core.spans import SpanReader

    folder = qa_repository / NAME / "fp32"
    manifest = load_manifest(folder)
    session = ort.InferenceSession(str(folder / "model.onnx"), providers=["CPUExecutionProvider"])
    pairs = [(e.text_b or "", e.text_a) for e in qa_examples(data_dir, ("zh",), 2)]
    sequences = [w.ids for w in SpanReader(folder / "tokenizer.json", manifest).windows(pairs)]
    plain, bound = (OnnxEngine(session, manifest, 1, "CPUExecutionProvider", binding) for binding in (False, True))
    rows = plain.infer(sequences, len(sequences))
    assert rows.shape == (len(sequences), 2, max(len(s) for s in sequences))
    np.testing.assert_allclose(bound.infer(sequences, len(sequences)), rows, atol=1e-6)


def test_a_qa_model_refuses_the_embedding_routes(http: httpx.Client) -> None:
    for path, body in (
        (f"/v1/models/{NAME}/embed", {"inputs": ["x"]}),
        ("/v1/embeddings", {"model": NAME, "input": "x"}),
    ):
        response = http.post(path, json=body)
        assert (response.status_code, response.json()["error_type"]) == (422, "validation"), response.text
        assert "span_qa model: it answers on predict" in response.json()["error"]


def test_a_question_longer_than_a_window_is_answered(http: httpx.Client) -> None:
    body = {"inputs": [{"question": "Who won the race in the year 1990? " * 60, "context": "Ann won in 1990."}]}
    response = http.post(f"/v1/models/{NAME}/predict", json=body)
    assert response.status_code == 200, response.text
    assert response.json()["predictions"][0]["windows"] == 1
