"""Running the app under uvicorn: checks before listening, background loading, and draining on SIGTERM."""

from __future__ import annotations

import logging
import os
import signal
from types import FrameType

import uvicorn

from xstilts.serve.core.state import ServerState, build_state
from xstilts.serve.http.app import create_app
from xstilts.serve.settings import Settings

log = logging.getLogger("xstilts.serve")


class DrainingServer(uvicorn.Server):
    """uvicorn's server, with readiness turned false the moment SIGTERM (or SIGINT) arrives."""

    def __init__(self, config: uvicorn.Config, state: ServerState) -> None:
        super().__init__(config)
        self.state = state
        self.failure: str | None = None

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        self.state.begin_drain()
        super().handle_exit(sig, frame)

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
        # uvicorn waits with asyncio.wait_for, which takes fractions: 0.4 s drains for 0.4 s, not 0
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
