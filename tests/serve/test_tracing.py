"""OpenTelemetry tracing with an in-memory span exporter: one request (HTTP v2 infer, gRPC ModelInfer) gives a server
span below the client's W3C traceparent and, inside it, decode, tokenize, queue, inference (with its batch size)
and encode; the sampling ratio applies to traces that start at the server."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import httpx
import pytest

from tests.serve.conftest import ThreadServer, thread_server

pytest.importorskip("opentelemetry.sdk")
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter  # noqa: E402

from xstilts.serve.tracing import build_tracer  # noqa: E402

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
CLIENT_SPAN = "00f067aa0ba902b7"
TRACEPARENT = f"00-{TRACE_ID}-{CLIENT_SPAN}-01"
INNER = ["decode", "tokenize", "queue", "inference", "encode"]
V2_BODY = {
    "inputs": [
        {"name": "text_a", "shape": [2], "datatype": "BYTES", "data": ["A man plays.", "Un homme joue."]},
        {"name": "text_b", "shape": [2], "datatype": "BYTES", "data": ["Music.", "Musique."]},
    ]
}


@pytest.fixture(scope="module")
def traced(repository: Path) -> Iterator[tuple[ThreadServer, InMemorySpanExporter]]:
    exporter = InMemorySpanExporter()
    server = thread_server(repository, build_tracer(1.0, exporter, batched=False), models=["tiny-xnli"], grpc_port=0)
    with server:
        server.wait_ready()
        yield server, exporter


def trace_of(exporter: InMemorySpanExporter, server_span: str, timeout: float = 30) -> list:
    """The finished spans of the trace whose server span is called ``server_span`` (waiting for it to end)."""
    deadline = time.monotonic() + timeout
    while not any(s.name == server_span for s in exporter.get_finished_spans()):
        assert time.monotonic() < deadline, [s.name for s in exporter.get_finished_spans()]
        time.sleep(0.01)
    return [s for s in exporter.get_finished_spans() if format(s.context.trace_id, "032x") == TRACE_ID]


def check_trace(spans: list, server_name: str, request_id: str) -> None:
    (root,) = [s for s in spans if s.name == server_name]
    assert format(root.parent.span_id, "016x") == CLIENT_SPAN and root.parent.is_remote
    assert root.attributes["request_id"] == request_id
    inner = {s.name: s for s in spans if s.parent is not None and s.parent.span_id == root.context.span_id}
    assert sorted(inner) == sorted(INNER), [s.name for s in spans]
    assert inner["inference"].attributes["batch_size"] >= 2 and inner["inference"].attributes["batches"] >= 1
    order = sorted(INNER, key=lambda name: inner[name].start_time)
    assert order == INNER, order
    for span in inner.values():
        assert root.start_time <= span.start_time <= span.end_time <= root.end_time, span.name


def test_an_http_request_is_traced_below_the_clients_span(traced) -> None:
    server, exporter = traced
    exporter.clear()
    response = httpx.post(
        server.url + "/v2/models/tiny-xnli/infer",
        json=V2_BODY,
        headers={"traceparent": TRACEPARENT, "X-Request-Id": "traced-1"},
        timeout=60,
    )
    assert response.status_code == 200, response.text
    check_trace(trace_of(exporter, "POST /v2/models/tiny-xnli/infer"), "POST /v2/models/tiny-xnli/infer", "traced-1")


def test_a_grpc_call_is_traced_below_the_clients_span(traced) -> None:
    from tests.serve.test_grpc import infer_request
    from xstilts.serve.grpc.proto import grpc_predict_v2_pb2_grpc as pb_grpc

    server, exporter = traced
    exporter.clear()
    with grpc.insecure_channel(f"127.0.0.1:{server.app.state.grpc.port}") as channel:
        stub = pb_grpc.GRPCInferenceServiceStub(channel)
        stub.ModelInfer(
            infer_request([("A man plays.", "Music."), ("Un homme joue.", "Musique.")]),
            metadata=(("traceparent", TRACEPARENT), ("x-request-id", "traced-2")),
        )
    name = "inference.GRPCInferenceService/ModelInfer"
    check_trace(trace_of(exporter, name), name, "traced-2")


def test_the_sampling_ratio_applies_to_traces_that_start_here(repository: Path) -> None:
    exporter = InMemorySpanExporter()
    with thread_server(repository, build_tracer(0.0, exporter, batched=False), models=["tiny-xnli"]) as server:
        server.wait_ready()
        url = server.url + "/v2/models/tiny-xnli/infer"
        assert httpx.post(url, json=V2_BODY, timeout=60).status_code == 200
        assert httpx.post(url, json=V2_BODY, headers={"traceparent": TRACEPARENT}, timeout=60).status_code == 200
        spans = trace_of(exporter, "POST /v2/models/tiny-xnli/infer")
        assert {format(s.context.trace_id, "032x") for s in exporter.get_finished_spans()} == {TRACE_ID}
        assert sorted(s.name for s in spans) == sorted([*INNER, "POST /v2/models/tiny-xnli/infer"])
