"""Load at the edges, against ``xstilts serve`` subprocesses: a burst beyond the queue, and SIGTERM mid-load."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import httpx
import pytest

from tests.serve.conftest import ServerProcess, metric_total

LONG = "Lorem ipsum dolor sit amet, consectetur adipiscing elit. " * 20


async def post_all(url: str, bodies: list[dict], timeout: float = 120) -> list[httpx.Response]:
    limits = httpx.Limits(max_connections=len(bodies), max_keepalive_connections=len(bodies))
    async with httpx.AsyncClient(base_url=url, timeout=timeout, limits=limits) as client:
        return await asyncio.gather(*(client.post("/v1/models/tiny-xnli/predict", json=b) for b in bodies))


async def post_timed(url: str, bodies: list[dict]) -> list[tuple[httpx.Response, float]]:
    """Like :func:`post_all`, with the monotonic time each response arrived."""
    limits = httpx.Limits(max_connections=len(bodies), max_keepalive_connections=len(bodies))
    async with httpx.AsyncClient(base_url=url, timeout=120, limits=limits) as client:

        async def one(body: dict) -> tuple[httpx.Response, float]:
            response = await client.post("/v1/models/tiny-xnli/predict", json=body)
            return response, time.monotonic()

        return await asyncio.gather(*(one(b) for b in bodies))


def test_a_burst_beyond_the_queue_gets_429_with_retry_after(repository: Path, tmp_path: Path) -> None:
    env = {"XSTILTS_MAX_QUEUE_SIZE": "8", "XSTILTS_MAX_ITEMS": "8", "XSTILTS_MAX_BATCH_SIZE": "8"}
    server = ServerProcess(repository, tmp_path / "server.log", env).start()
    try:
        body = {"inputs": [{"text": f"{i} {LONG}", "text_pair": LONG} for i in range(8)]}
        responses = asyncio.run(post_all(server.url, [body] * 64))
        statuses = [r.status_code for r in responses]
        assert set(statuses) <= {200, 429}, statuses
        assert statuses.count(429) > 0 and statuses.count(200) > 0, statuses
        for response in responses:
            if response.status_code == 429:
                assert int(response.headers["retry-after"]) >= 1
                assert "retry later" in response.json()["error"]
        assert httpx.post(f"{server.url}/v1/models/tiny-xnli/predict", json=body, timeout=60).status_code == 200
        text = httpx.get(f"{server.url}/metrics").text
        assert metric_total(text, "xstilts_requests_total", model="tiny-xnli", status="429") == statuses.count(429)
        assert metric_total(text, "xstilts_queue_depth", model="tiny-xnli") == 0
    finally:
        assert server.stop() == 0, server.logs()


def test_sigterm_loses_no_request_in_flight(repository: Path, tmp_path: Path) -> None:
    env = {"XSTILTS_MAX_BATCH_SIZE": "1", "XSTILTS_MAX_QUEUE_SIZE": "4096"}
    server = ServerProcess(repository, tmp_path / "server.log", env).start()
    requests, items = 24, 64  # about 1,500 batches of one: seconds of work for the tiny model
    bodies = [
        {"inputs": [{"text": f"{r}-{i} {LONG}", "text_pair": LONG} for i in range(items)]} for r in range(requests)
    ]

    async def scenario() -> tuple[list[tuple[httpx.Response, float]], float]:
        sending = asyncio.ensure_future(post_timed(server.url, bodies))
        async with httpx.AsyncClient(base_url=server.url) as probe:
            deadline = time.monotonic() + 30
            while True:  # every request is in the server's hands before the signal
                in_flight = metric_total((await probe.get("/metrics")).text, "xstilts_requests_in_flight")
                if in_flight == requests:
                    break
                assert time.monotonic() < deadline, f"only {in_flight} requests in flight"
                await asyncio.sleep(0.005)
        signalled = time.monotonic()
        server.terminate()
        await asyncio.sleep(0.3)
        with pytest.raises(httpx.TransportError):  # no new connection is accepted
            async with httpx.AsyncClient(base_url=server.url) as late:
                await late.get("/healthz")
        return await sending, signalled

    timed, signalled = asyncio.run(scenario())
    responses = [r for r, _ in timed]
    assert [r.status_code for r in responses] == [200] * requests
    assert all(len(r.json()["predictions"]) == items for r in responses)
    finished_after = sorted(t - signalled for _, t in timed)
    assert finished_after[-1] > 0.1, finished_after  # the work was still running after the signal
    assert server.process.wait(30) == 0, server.logs()
    assert "draining" in server.logs()
