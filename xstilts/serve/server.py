"""Running the app under uvicorn: checks before listening, background loading, and draining on SIGTERM."""

from __future__ import annotations

import logging
import os
import signal
from types import FrameType

import uvicorn

from xstilts.contracts.bundle import list_bundles
from xstilts.serve.app import create_app
from xstilts.serve.engine import plan_models, provider_plan
from xstilts.serve.settings import Settings
from xstilts.serve.state import ServerState

log = logging.getLogger("xstilts.serve")


def build_state(settings: Settings) -> ServerState:
    """Everything that can be checked before listening: the key, the providers, the models and their variants.

    Raises :class:`~xstilts.errors.XstiltsError` (the CLI exits with 2) on a missing key file, a GPU required in a
    build without one, a missing model or variant, or a broken manifest.
    """
    api_key = settings.resolved_api_key()
    plan = provider_plan(settings)
    planned = plan_models(settings, plan.preferred)
    bundles = list_bundles(settings.repository)
    variants = {p.name: list(bundles[p.name]) for p in planned}
    return ServerState(settings, planned, variants, api_key=api_key)


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
        timeout_graceful_shutdown=int(round(settings.drain_seconds)),
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
