"""Request ids: the client's X-Request-Id (or a new id) echoed in the response header, in JSON error bodies and in
the access log, against ``xstilts serve`` with its access log on."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.serve.conftest import ServerProcess

PREDICT = "/v1/models/tiny-xnli/predict"
BODY = {"inputs": [{"text": "A man plays a guitar.", "text_pair": "Someone makes music."}]}


@pytest.fixture(scope="module")
def logged_server(repository: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    log_file = tmp_path_factory.mktemp("request-ids") / "server.log"
    env = {"XSTILTS_MODELS": "tiny-xnli=fp32", "XSTILTS_ACCESS_LOG": "true"}
    server = ServerProcess(repository, log_file, env).start()
    yield server
    assert server.stop() == 0, server.logs()


def wait_for_log(server: ServerProcess, text: str, timeout: float = 30) -> str:
    deadline = time.monotonic() + timeout
    while text not in server.logs():
        assert time.monotonic() < deadline, f"{text!r} never logged:\n{server.logs()[-3000:]}"
        time.sleep(0.05)
    return next(line for line in server.logs().splitlines() if text in line)


def test_the_clients_id_is_echoed_and_logged(logged_server: ServerProcess) -> None:
    response = httpx.post(logged_server.url + PREDICT, json=BODY, headers={"X-Request-Id": "client-7f3a"})
    assert response.status_code == 200 and response.headers["x-request-id"] == "client-7f3a"
    line = wait_for_log(logged_server, "request_id=client-7f3a")
    assert f'"POST {PREDICT} HTTP/1.1" 200' in line


def test_a_request_without_an_id_gets_a_new_one_each_time(logged_server: ServerProcess) -> None:
    ids = [httpx.get(logged_server.url + "/healthz").headers["x-request-id"] for _ in range(3)]
    assert all(re.fullmatch(r"[0-9a-f]{32}", i) for i in ids) and len(set(ids)) == 3, ids
    wait_for_log(logged_server, f"request_id={ids[-1]}")


@pytest.mark.parametrize("bad", ["x" * 129, "two words", 'quote"d', ""])
def test_an_unusable_client_id_is_replaced(logged_server: ServerProcess, bad: str) -> None:
    response = httpx.get(logged_server.url + "/healthz", headers={"X-Request-Id": bad})
    assert re.fullmatch(r"[0-9a-f]{32}", response.headers["x-request-id"]), response.headers


@pytest.mark.parametrize(
    ("method", "path", "body", "status"),
    [
        ("POST", "/v1/models/no-such-model/predict", BODY, 404),
        ("POST", PREDICT, {"inputs": [{"text": ""}]}, 422),
        ("POST", "/v2/models/tiny-xnli/infer", {"inputs": []}, 422),
        ("GET", "/no/such/route", None, 404),
        ("GET", PREDICT, None, 405),
    ],
)
def test_error_bodies_name_the_request(logged_server: ServerProcess, method, path, body, status) -> None:
    response = httpx.request(method, logged_server.url + path, json=body, headers={"X-Request-Id": "err-42"})
    assert response.status_code == status, response.text
    assert response.headers["x-request-id"] == "err-42"
    assert response.json()["request_id"] == "err-42" and response.json()["error_type"], response.json()
    generated = httpx.request(method, logged_server.url + path, json=body)
    assert generated.json()["request_id"] == generated.headers["x-request-id"]
