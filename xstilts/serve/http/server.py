"""Running the app under uvicorn: checks before listening, background loading, and a drain on SIGTERM that loses
no request that was sent.

The drain (:meth:`DrainingServer.shutdown`), within ``drain_seconds`` of the signal:

1. Readiness turns false and new inference gets 503 at once; every answer carries ``Connection: close``, so clients
   take each answer as their connection's last. The listening socket stays open: a request sent now is answered.
2. Once the requests that arrived before the signal are answered (HTTP and gRPC alike), the kernel is told to drop
   new connection attempts, the connections it already accepted are taken and answered, and the socket closes
   (:mod:`xstilts.serve.http.listener`): closing it with connections queued would reset them, requests and all.
3. The open connections close as their last answer leaves; idle keep-alive connections close when their keep-alive
   time runs out, as they would without a drain (a client never has a request reset by the drain's own close).
4. uvicorn's shutdown: whatever is still running when the drain time is up is cancelled; then the app's lifespan
   ends (the gRPC server stops, the models' batchers close).
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
from types import FrameType

import uvicorn

from xstilts.serve.core.state import ServerState, build_state
from xstilts.serve.drain import Drain
from xstilts.serve.http.access_log import log_config
from xstilts.serve.http.app import create_app
from xstilts.serve.http.listener import has_waiting_connections, refuse_new_connections
from xstilts.serve.settings import Settings

log = logging.getLogger("xstilts.serve")
POLL_SECONDS = 0.01


class DrainingServer(uvicorn.Server):
    """uvicorn's server, draining as the module docstring says from the moment SIGTERM (or SIGINT) arrives."""

    def __init__(self, config: uvicorn.Config, state: ServerState) -> None:
        super().__init__(config)
        self.state = state
        self.drain: Drain = config.app.state.drain
        self.failure: str | None = None

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        self.drain.begin()
        self.state.begin_drain()
        super().handle_exit(sig, frame)

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        self.drain.begin()
        self.state.begin_drain()
        if not self.force_exit:
            if not await self.drain.work_done(POLL_SECONDS):
                log.warning("drain: %d requests still running after %.1f s", self.drain.in_flight, self.drain.seconds)
            await self._stop_listening()
            await self._wait_for_connections()
        # uvicorn waits for what still runs with the time the drain has left, then cancels it
        self.config.timeout_graceful_shutdown = max(self.drain.remaining(), POLL_SECONDS)  # type: ignore[assignment]
        await super().shutdown(sockets)

    async def _stop_listening(self) -> None:
        """Drop new connection attempts, take the connections already accepted by the kernel, then close."""
        listening = [sock for server in self.servers for sock in server.sockets]
        if all(refuse_new_connections(sock) for sock in listening):
            while any(has_waiting_connections(sock) for sock in listening) and self.drain.remaining() > 0:
                await asyncio.sleep(POLL_SECONDS)
            await asyncio.sleep(POLL_SECONDS)  # the last ones taken get their protocol before the socket goes
        for server in self.servers:
            server.close()
        log.info("drain: no longer accepting connections")

    async def _wait_for_connections(self) -> None:
        """Until every connection has closed (each after its last answer; idle ones at their keep-alive timeout)."""
        while self.server_state.connections and self.drain.remaining() > 0 and not self.force_exit:
            await asyncio.sleep(POLL_SECONDS)

    def fail(self, message: str) -> None:
        """A model cannot be served: stop (the CLI then exits with 1)."""
        self.failure = message
        self.should_exit = True


def configure_logging(level: str) -> None:
    logging.basicConfig(format="%(levelname)s:     %(name)s: %(message)s", level=level.upper())
    logging.getLogger("xstilts").setLevel(level.upper())


def serve(settings: Settings) -> int:
    """Serve until SIGTERM/SIGINT; 0 after a graceful stop, 1 when a model could not be loaded."""
    configure_logging(settings.log_level)
    # one tokenization thread per request is plenty: ONNX Runtime's threads need the cores
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    state = build_state(settings)
    app = create_app(state)
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
        access_log=settings.access_log,
        log_config=log_config(),
        # the drain's own clock decides (DrainingServer.shutdown); uvicorn waits with what is left of it
        timeout_graceful_shutdown=settings.drain_seconds,  # type: ignore[arg-type]
        lifespan="on",
        server_header=False,
    )
    server = DrainingServer(config, state)
    state.on_fatal = server.fail
    # uvicorn re-raises the signal it stopped for once it is done; a graceful SIGTERM stop then exits with 0
    previous = signal.signal(signal.SIGTERM, lambda *_: None)
    try:
        server.run()
    finally:
        signal.signal(signal.SIGTERM, previous)
    if server.failure:
        log.error("stopped: %s", server.failure)
        return 1
    if not server.started:
        return 1
    log.info("stopped")
    return 0
