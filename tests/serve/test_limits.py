"""Auth, readiness and draining, on servers running in a thread of the test process (real HTTP on 127.0.0.1)."""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.serve.conftest import ROOT, clean_env, loading_server, thread_server

PREDICT = "/v1/models/tiny-xnli/predict"
INFER = "/v2/models/tiny-xnli/infer"
BODY = {"inputs": [{"text": "A man plays a guitar.", "text_pair": "Someone makes music."}]}
V2_BODY = {"inputs": [{"name": "text_a", "shape": [1], "datatype": "BYTES", "data": ["Hello."]}]}


@pytest.fixture(scope="module")
def keyed(repository: Path):
    with thread_server(repository, models=["tiny-xnli"], api_key="s3cret") as server:
        server.wait_ready()
        yield server


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", PREDICT, BODY),
        ("POST", INFER, V2_BODY),
        ("GET", "/v1/models", None),
        ("GET", "/v2/models/tiny-xnli", None),
    ],
)
def test_inference_needs_the_key(keyed, method: str, path: str, body) -> None:
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "s3cret"}):
        response = httpx.request(method, keyed.url + path, json=body, headers=headers)
        assert response.status_code == 401, response.text
        assert response.headers["www-authenticate"] == "Bearer" and "API key" in response.json()["error"]
        assert response.json()["error_type"] == "unauthorized"
    good = httpx.request(method, keyed.url + path, json=body, headers={"Authorization": "Bearer s3cret"})
    assert good.status_code == 200, good.text


def test_probes_and_metrics_stay_open(keyed) -> None:
    for path in (
        "/healthz",
        "/readyz",
        "/metrics",
        "/v2/health/live",
        "/v2/health/ready",
        "/v2/models/tiny-xnli/ready",
        "/openapi.json",
    ):
        assert httpx.get(keyed.url + path).status_code == 200, path
    schema = httpx.get(keyed.url + "/openapi.json").json()
    assert "HTTPBearer" in schema["components"]["securitySchemes"]


def test_probes_can_need_the_key_too(repository: Path, tmp_path: Path) -> None:
    key_file = tmp_path / "key"
    key_file.write_text("from-a-file\n")
    with thread_server(repository, models=["tiny-xnli"], api_key_file=key_file, auth_health=True) as server:
        server.wait_ready()
        for path in ("/healthz", "/readyz", "/metrics", "/v2/health/ready", "/openapi.json"):
            assert httpx.get(server.url + path).status_code == 401, path
            assert httpx.get(server.url + path, headers={"Authorization": "Bearer from-a-file"}).status_code == 200


def test_no_key_means_no_auth(repository: Path) -> None:
    with thread_server(repository, models=["tiny-xnli"]) as server:
        server.wait_ready()
        assert httpx.post(server.url + PREDICT, json=BODY).status_code == 200
        assert httpx.post(server.url + PREDICT, json=BODY, headers={"Authorization": "Bearer x"}).status_code == 200
        assert "securitySchemes" not in httpx.get(server.url + "/openapi.json").json().get("components", {})


def test_a_loading_model_is_not_ready(repository: Path) -> None:
    with loading_server(repository, models=["tiny-xnli"]) as (server, gate):
        assert httpx.get(server.url + "/healthz").status_code == 200  # alive while loading
        ready = httpx.get(server.url + "/readyz")
        assert ready.status_code == 503 and "loading tiny-xnli" in ready.json()["error"]
        assert ready.json()["error_type"] == "unavailable"
        assert httpx.get(server.url + "/v2/health/ready").status_code == 503
        assert httpx.get(server.url + "/v2/models/tiny-xnli/ready").json() == {"name": "tiny-xnli", "ready": False}
        for path, body in ((PREDICT, BODY), (INFER, V2_BODY)):
            response = httpx.post(server.url + path, json=body)
            assert response.status_code == 503 and "still loading" in response.json()["error"]
            assert response.json()["error_type"] == "unavailable"
            assert response.headers["retry-after"] == "5"
        assert httpx.get(server.url + "/v1/models").json()["models"][0]["state"] == "loading"
        gate.set()
        server.wait_ready()
        assert httpx.post(server.url + PREDICT, json=BODY).status_code == 200


def test_draining_refuses_new_work_but_stays_alive(repository: Path) -> None:
    with thread_server(repository, models=["tiny-xnli"]) as server:
        server.wait_ready()
        assert httpx.get(server.url + "/metrics").text.count("xstilts_ready 1.0") == 1
        server.state.begin_drain()
        assert httpx.get(server.url + "/healthz").status_code == 200
        ready = httpx.get(server.url + "/readyz", headers={"X-Request-Id": "probe-1"})
        assert ready.json() == {"error": "not ready: draining", "error_type": "unavailable", "request_id": "probe-1"}
        assert httpx.get(server.url + "/v2/health/ready").status_code == 503
        assert httpx.get(server.url + "/v2/models/tiny-xnli/ready").status_code == 503
        for path, body in ((PREDICT, BODY), (INFER, V2_BODY)):
            response = httpx.post(server.url + path, json=body)
            assert response.status_code == 503 and "shutting down" in response.json()["error"]
            assert response.json()["error_type"] == "unavailable" and response.headers["retry-after"] == "1"
        assert "xstilts_ready 0.0" in httpx.get(server.url + "/metrics").text


def test_sigterm_turns_readiness_false_at_once(repository: Path) -> None:
    with thread_server(repository, models=["tiny-xnli"]) as server:
        server.wait_ready()
        assert server.state.ready
        server.server.handle_exit(signal.SIGTERM, None)  # what uvicorn's signal handler calls
        assert not server.state.ready and server.state.draining
        assert server.app.state.metrics.registry.get_sample_value("xstilts_ready") == 0
        server.thread.join(30)
        assert not server.thread.is_alive()


def test_a_model_that_cannot_load_stops_the_server(repository: Path, tmp_path: Path) -> None:
    broken = tmp_path / "repository"
    shutil.copytree(repository / "tiny-xnli" / "fp32", broken / "tiny-xnli" / "fp32")
    (broken / "tiny-xnli" / "fp32" / "model.onnx").write_bytes(b"not an onnx graph")
    done = subprocess.run(
        [sys.executable, "-m", "xstilts.cli", "serve", "--port", "0"],
        env=clean_env({"XSTILTS_REPOSITORY": str(broken), "XSTILTS_VERIFY_BUNDLES": "false"}),  # onnxruntime's turn
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1, done.stderr
    assert "cannot serve tiny-xnli/fp32" in done.stderr and "onnxruntime cannot load the model" in done.stderr
