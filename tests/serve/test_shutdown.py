"""Load at the edges, against ``xstilts serve`` subprocesses: a burst beyond the queue, and SIGTERM mid-load."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import httpx

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


async def refuses_connections(url: str, timeout: float = 30) -> None:
    """Wait until the server accepts no new connection (after SIGTERM)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            async with httpx.AsyncClient(base_url=url) as late:
                await late.get("/healthz")
        except httpx.TransportError:
            return
        assert time.monotonic() < deadline, "the server still accepts connections"
        await asyncio.sleep(0.02)


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
                assert response.json()["error_type"] == "overloaded"
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
        # while the work goes on the server still listens: a late request is answered 503, its connection closed
        async with httpx.AsyncClient(base_url=server.url) as late:
            while (await late.get("/readyz")).status_code != 503:  # the signal has arrived
                assert time.monotonic() < deadline, "the server never started draining"
                await asyncio.sleep(0.005)
            refused = await late.post("/v1/models/tiny-xnli/predict", json={"inputs": ["late"]})
        assert refused.headers["connection"] == "close" and refused.json()["error_type"] == "unavailable"
        assert not sending.done(), "the work was over before the late request: nothing was in flight"
        await refuses_connections(server.url)  # the listening socket closes once the work is done
        return await sending, signalled

    timed, signalled = asyncio.run(scenario())
    responses = [r for r, _ in timed]
    assert [r.status_code for r in responses] == [200] * requests
    assert all(len(r.json()["predictions"]) == items for r in responses)
    finished_after = sorted(t - signalled for _, t in timed)
    assert finished_after[-1] > 0.1, finished_after  # the work was still running after the signal
    assert server.process.wait(30) == 0, server.logs()
    assert "draining" in server.logs()


def test_a_request_longer_than_the_drain_time_is_cut_at_the_limit(repository: Path, tmp_path: Path) -> None:
    drain = 0.5  # under a second: rounding it to whole seconds would have left no drain at all
    env = {
        "XSTILTS_MAX_BATCH_SIZE": "1",
        "XSTILTS_MAX_QUEUE_SIZE": "4096",
        "XSTILTS_INTRA_OP_THREADS": "1",
        "XSTILTS_DRAIN_SECONDS": str(drain),
    }
    server = ServerProcess(repository, tmp_path / "server.log", env).start()
    requests, items = 32, 64  # about 2,000 batches of one: several seconds of work, far beyond the drain
    bodies = [
        {"inputs": [{"text": f"{r}-{i} {LONG}", "text_pair": LONG} for i in range(items)]} for r in range(requests)
    ]

    async def scenario() -> tuple[list[tuple[int | None, float]], float]:
        limits = httpx.Limits(max_connections=requests, max_keepalive_connections=requests)
        async with httpx.AsyncClient(base_url=server.url, timeout=120, limits=limits) as client:

            async def one(body: dict) -> tuple[int | None, float]:
                try:
                    response = await client.post("/v1/models/tiny-xnli/predict", json=body)
                except httpx.TransportError:
                    return None, time.monotonic()  # cut: the connection closed without an answer
                return response.status_code, time.monotonic()

            sending = [asyncio.ensure_future(one(b)) for b in bodies]
            async with httpx.AsyncClient(base_url=server.url) as probe:  # its own connection
                deadline = time.monotonic() + 60
                while metric_total((await probe.get("/metrics")).text, "xstilts_requests_in_flight") < requests:
                    assert time.monotonic() < deadline, "the requests never were all in flight"
                    await asyncio.sleep(0.01)
            signalled = time.monotonic()
            server.terminate()
            return await asyncio.gather(*sending), signalled

    outcomes, signalled = asyncio.run(scenario())
    assert server.process.wait(60) == 0, server.logs()
    # a request cut at the limit gets uvicorn's own 500 (its task is cancelled before it answered), or at worst
    # a connection closed without an answer
    assert {status for status, _ in outcomes} <= {200, 500, None}, outcomes
    cut = sorted(at - signalled for status, at in outcomes if status != 200)
    assert cut, "every request finished: the work did not outlast the drain"
    assert cut[0] >= drain, cut  # no request was cut before the drain time was up
    assert cut[-1] < drain + 30, cut  # and they were cut then, not when their work would have finished
    assert "timeout graceful shutdown exceeded" in server.logs()
