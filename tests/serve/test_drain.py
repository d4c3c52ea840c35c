"""A drain that loses nothing: 16 keep-alive clients under load, SIGTERM, and every request that was sent gets an
answer (200, or 503 once the server drains); none is reset, cut or left to time out.

Each client keeps sending on its own keep-alive connection after a 503, as a load generator does, until its
connection is refused: a refused connection sent nothing, so it loses nothing.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from tests.serve.conftest import ServerProcess

CLIENTS = 16
ROUNDS = 3
BODY = {"inputs": [{"text": "A man plays a guitar on stage.", "text_pair": "Someone makes music."}]}
PREDICT = "/v1/models/tiny-xnli/predict"


@dataclass
class Tally:
    """What happened to every request the clients sent: answers by status, and requests lost, by error."""

    answers: Counter = field(default_factory=Counter)
    lost: Counter = field(default_factory=Counter)
    refused: int = 0
    closing: int = 0  # answers during the drain that told the client to close its connection

    @property
    def sent(self) -> int:
        return sum(self.answers.values()) + sum(self.lost.values())


async def client_loop(url: str, tally: Tally, stop: asyncio.Event) -> None:
    """Send on one keep-alive connection until the server refuses a connection (or the test stops)."""
    limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
    async with httpx.AsyncClient(base_url=url, timeout=30, limits=limits) as client:
        while not stop.is_set():
            try:
                response = await client.post(PREDICT, json=BODY)
            except httpx.ConnectError:
                tally.refused += 1  # nothing was sent: the listening socket is closed
                return
            except httpx.TimeoutException as exc:
                tally.lost[f"timeout: {type(exc).__name__}"] += 1
                return
            except httpx.TransportError as exc:  # sent, then reset or closed without an answer
                tally.lost[f"{type(exc).__name__}: {exc}"] += 1
                continue
            tally.answers[response.status_code] += 1
            if response.status_code == 503 and response.headers.get("connection", "").lower() == "close":
                tally.closing += 1


async def load_then_sigterm(server: ServerProcess, tally: Tally) -> None:
    stop = asyncio.Event()
    clients = [asyncio.ensure_future(client_loop(server.url, tally, stop)) for _ in range(CLIENTS)]
    deadline = time.monotonic() + 60
    while tally.answers[200] < 20 * CLIENTS:  # every client is busy on its keep-alive connection
        assert time.monotonic() < deadline, f"no load: {tally}"
        assert not any(c.done() for c in clients), [c.exception() for c in clients if c.done()]
        await asyncio.sleep(0.01)
    server.terminate()
    try:
        await asyncio.wait_for(asyncio.gather(*clients), 60)
    finally:
        stop.set()


@pytest.mark.parametrize("round_", range(ROUNDS))
def test_sigterm_under_keep_alive_load_answers_every_request_sent(
    repository: Path, tmp_path: Path, round_: int
) -> None:
    env = {"XSTILTS_MODELS": "tiny-xnli=fp32", "XSTILTS_DRAIN_SECONDS": "10", "XSTILTS_INTRA_OP_THREADS": "1"}
    server = ServerProcess(repository, tmp_path / "server.log", env).start()
    tally = Tally()
    asyncio.run(load_then_sigterm(server, tally))
    assert server.process.wait(60) == 0, server.logs()
    print(f"round {round_}: {tally.sent} sent, answers {dict(tally.answers)}, lost {dict(tally.lost)}")
    assert not tally.lost, f"{sum(tally.lost.values())} of {tally.sent} requests sent were lost: {dict(tally.lost)}"
    assert set(tally.answers) <= {200, 503}, tally.answers
    assert tally.closing == tally.answers[503], "every answer of the drain tells the client to close its connection"
    assert tally.refused == CLIENTS, "every client ends on a refused connection, once the server stopped listening"
