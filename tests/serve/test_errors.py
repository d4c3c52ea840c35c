"""One request per error kind against a real server: each answers its status and ``error_type`` in a JSON body.

The engine is the bundle's real one; for the two kinds no well-behaved request can cause (a full queue and a
bug) the test holds it busy inside a batch, or breaks one batch, through the server's own loader hook.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from tests.serve.conftest import ThreadServer, loading_server, metric_total, thread_server
from xstilts.serve.core.engine import load_model
from xstilts.serve.core.errors import ErrorKind

KEY = "error-key"
AUTH = {"Authorization": f"Bearer {KEY}"}
PREDICT = "/v1/models/tiny-xnli/predict"
ONE = {"inputs": [{"text": "A man plays a guitar.", "text_pair": "Someone makes music."}]}
STATUS = {
    ErrorKind.BAD_REQUEST: 400,
    ErrorKind.UNAUTHORIZED: 401,
    ErrorKind.NOT_FOUND: 404,
    ErrorKind.METHOD_NOT_ALLOWED: 405,
    ErrorKind.CONFLICT: 409,
    ErrorKind.TOO_LARGE: 413,
    ErrorKind.VALIDATION: 422,
    ErrorKind.OVERLOADED: 429,
    ErrorKind.INTERNAL: 500,
    ErrorKind.UNAVAILABLE: 503,
}


class Faults:
    """What the test does to the real engine: hold it inside a batch until released, or fail a batch."""

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.release = threading.Event()
        self.release.set()
        self.broken = False

    def loader(self, planned, settings):
        loaded = load_model(planned, settings)  # warmed up with the real engine
        real = loaded.engine.infer

        def infer(sequences, items, choices=1):
            self.entered.set()
            self.release.wait(60)
            if self.broken:
                raise RuntimeError("a broken batch (injected by the test)")
            return real(sequences, items, choices)

        loaded.engine.infer = infer
        return loaded


@pytest.fixture(scope="module")
def faulty(repository: Path) -> Iterator[tuple[ThreadServer, Faults]]:
    faults = Faults()
    server = thread_server(
        repository, models=["tiny-xnli"], api_key=KEY, max_queue_size=1, max_items=1, max_batch_size=1
    )
    server.state.loader = faults.loader
    with server:
        server.wait_ready()
        yield server, faults
    faults.release.set()


def post(
    server: ThreadServer, body: object = ONE, path: str = PREDICT, headers: dict = AUTH, content: bytes | None = None
) -> httpx.Response:
    if content is not None:
        headers = {**headers, "Content-Type": "application/json"}
        return httpx.post(server.url + path, content=content, headers=headers, timeout=60)
    return httpx.post(server.url + path, json=body, headers=headers, timeout=60)


def overloaded(server: ThreadServer, faults: Faults) -> httpx.Response:
    """One request held in the engine, one waiting in the queue of one: the next finds the queue full."""
    faults.entered.clear()
    faults.release.clear()
    with ThreadPoolExecutor(2) as pool:
        running = pool.submit(post, server)
        assert faults.entered.wait(60)
        waiting = pool.submit(post, server)
        deadline = time.monotonic() + 60
        while metric_total(httpx.get(server.url + "/metrics").text, "xstilts_queue_depth", model="tiny-xnli") < 1:
            assert time.monotonic() < deadline, "the second request never reached the queue"
            time.sleep(0.01)
        refused = post(server)
        faults.release.set()
        assert running.result().status_code == waiting.result().status_code == 200
    return refused


def internal(server: ThreadServer, faults: Faults) -> httpx.Response:
    faults.broken = True
    try:
        return post(server)
    finally:
        faults.broken = False


def unavailable(repository: Path) -> httpx.Response:
    """A model still loading."""
    with loading_server(repository, models=["tiny-xnli"]) as (server, _):
        return post(server, headers={})


Case = Callable[[ThreadServer, Faults, Path], httpx.Response]
CASES: dict[ErrorKind, Case] = {
    ErrorKind.BAD_REQUEST: lambda s, f, r: post(s, content=b'{"inputs": ['),
    ErrorKind.UNAUTHORIZED: lambda s, f, r: post(s, headers={"Authorization": "Bearer wrong"}),
    ErrorKind.NOT_FOUND: lambda s, f, r: post(s, path="/v1/models/nope/predict"),
    ErrorKind.METHOD_NOT_ALLOWED: lambda s, f, r: httpx.delete(s.url + "/v1/models", headers=AUTH),
    ErrorKind.CONFLICT: lambda s, f, r: post(s, None, "/v2/repository/models/tiny-xnli/unload"),  # control none
    ErrorKind.TOO_LARGE: lambda s, f, r: post(s, {"inputs": ["one", "two"]}),
    ErrorKind.VALIDATION: lambda s, f, r: post(s, {"inputs": [""]}),
    ErrorKind.OVERLOADED: lambda s, f, r: overloaded(s, f),
    ErrorKind.INTERNAL: lambda s, f, r: internal(s, f),
    ErrorKind.UNAVAILABLE: lambda s, f, r: unavailable(r),
}


def test_every_kind_has_a_case() -> None:
    assert set(CASES) == set(ErrorKind) == set(STATUS)


@pytest.mark.parametrize("kind", list(ErrorKind), ids=str)
def test_each_error_kind_answers_its_status_and_type(faulty, repository: Path, kind: ErrorKind) -> None:
    server, faults = faulty
    response = CASES[kind](server, faults, repository)
    assert response.status_code == STATUS[kind], response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"error", "error_type", "request_id"} and body["error"], body
    assert body["request_id"] == response.headers["x-request-id"]
    assert body["error_type"] == kind.value
    if kind is ErrorKind.UNAUTHORIZED:
        assert response.headers["www-authenticate"] == "Bearer"
    if kind in (ErrorKind.OVERLOADED, ErrorKind.UNAVAILABLE):
        assert int(response.headers["retry-after"]) >= 1
    assert post(server).status_code == 200  # and the server goes on serving


def test_the_readme_documents_every_error_kind() -> None:
    from xstilts.serve.http.errors import errors_table

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    assert errors_table() in readme, "README's error table is not errors_table(): paste its output"
