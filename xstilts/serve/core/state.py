"""The server's state: its models (loading, ready, failed or unloaded), readiness and draining.

:func:`build_state` does everything that can be checked before the server listens; :meth:`ServerState.load`
then loads the models in the background (and, with ``model_control`` poll, goes on watching the repository).
Loads, reloads and unloads after start are :class:`~xstilts.serve.core.control.ModelControl`'s (``control``).
Metrics are hooks (:class:`StateObserver`), filled by the HTTP layer.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Protocol

from xstilts.contracts.bundle import list_bundles
from xstilts.contracts.providers import uses_gpu
from xstilts.serve.core.batcher import BatchLimits, NoObserver
from xstilts.serve.core.control import ModelControl
from xstilts.serve.core.engine import LoadedModel, load_model
from xstilts.serve.core.errors import not_found, unavailable
from xstilts.serve.core.model import ModelObserver, ModelStatus, ServedModel
from xstilts.serve.core.repository import PlannedModel, plan_models
from xstilts.serve.settings import Settings

log = logging.getLogger("xstilts.serve")

# seconds a client should wait before sending a request a draining server refused to another replica
DRAINING_RETRY_AFTER = 1


class StateObserver(Protocol):
    """The server's metric hooks (:class:`xstilts.serve.http.metrics.Metrics` in the server)."""

    def for_model(self, name: str) -> ModelObserver: ...
    def set_ready(self, ready: bool) -> None: ...
    def model_loaded(self, name: str, variant: str, provider: str, precision: str) -> None: ...
    def model_unloaded(self, name: str) -> None: ...


class NoStateObserver:
    """Hooks that do nothing, until :meth:`ServerState.observe` is given real ones."""

    def for_model(self, name: str) -> ModelObserver:
        return NoObserver()

    def set_ready(self, ready: bool) -> None: ...
    def model_loaded(self, name: str, variant: str, provider: str, precision: str) -> None: ...
    def model_unloaded(self, name: str) -> None: ...


class ServerState:
    """Models, readiness and draining; ``on_fatal`` is called when a model cannot load at start with
    ``model_control`` none (the CLI exits then; with explicit or poll the model is failed and the server stays)."""

    def __init__(
        self,
        settings: Settings,
        planned: Sequence[PlannedModel],
        api_key: str | None = None,
        on_fatal: Callable[[str], None] | None = None,
        loader: Callable[[PlannedModel, Settings], LoadedModel] = load_model,
    ) -> None:
        self.settings = settings
        self.tokenizer_pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="tokenize")
        self.models = {p.name: ServedModel(p, self.tokenizer_pool) for p in planned}
        self.api_key = api_key
        self.draining = False
        self.fatal: str | None = None
        self.on_fatal = on_fatal
        self.loader = loader
        self.started = time.time()
        self.observer: StateObserver = NoStateObserver()
        self.control = ModelControl(self)

    def observe(self, observer: StateObserver) -> None:
        """Report to ``observer`` from now on (before loading starts)."""
        self.observer = observer
        for model in self.models.values():
            model.observer = observer.for_model(model.name)
        self._update_ready()

    @property
    def ready(self) -> bool:
        """Not draining, and every model ready (models unloaded through the repository API do not count)."""
        serving = [m for m in self.models.values() if m.status is not ModelStatus.UNLOADED]
        return not self.draining and self.fatal is None and all(m.ready for m in serving)

    def _update_ready(self) -> None:
        self.observer.set_ready(self.ready)

    def get(self, name: str) -> ServedModel:
        model = self.models.get(name)
        if model is None:
            raise not_found(f"no model {name!r}; this server has: {', '.join(self.models) or 'none'}")
        return model

    def hold(self, name: str) -> contextlib.AbstractContextManager[ServedModel]:
        """The model called ``name``, held for the block: a reload switches new requests to the new model at
        once, while this one finishes on the model it got (see :meth:`ServedModel.hold`)."""
        return self.get(name).hold()

    def check_accepting(self) -> None:
        """Refuse new inference while draining."""
        if self.draining:
            raise unavailable(
                "the server is shutting down: send the request to another replica", retry_after=DRAINING_RETRY_AFTER
            )

    def not_ready_reason(self) -> str:
        """Why the server is not ready: draining, a model that failed, or the models still loading."""
        if self.draining:
            return "draining"
        if self.fatal:
            return self.fatal
        failed = [f"{m.name}: {m.error}" for m in self.models.values() if m.status is ModelStatus.FAILED]
        if failed:
            return f"failed {'; '.join(failed)}"
        loading = [m.name for m in self.models.values() if m.status is ModelStatus.LOADING]
        return f"loading {', '.join(loading)}"

    async def start_model(self, model: ServedModel) -> None:
        """Load ``model``'s bundle off the event loop (verified, warmed up) and start its batcher; raises what the
        loader raised, the model's status untouched."""
        self.control.began(model.planned)
        loaded = await asyncio.to_thread(self.loader, model.planned, self.settings)
        limits = BatchLimits.from_settings(self.settings, uses_gpu(loaded.provider), loaded.max_batch)
        if limits.max_batch_size < self.settings.max_batch_size:
            log.warning("%s: batches capped at %d items by the TensorRT profile", model.name, limits.max_batch_size)
        model.start(loaded, limits)

    def announce(self, model: ServedModel) -> None:
        """Metrics and readiness after ``model`` took its name's place (loaded, failed or unloaded)."""
        self.observer.model_unloaded(model.name)
        if model.ready and model.provider is not None:
            self.observer.model_loaded(model.name, model.variant, model.provider, model.manifest.precision)
        self._update_ready()

    async def load(self) -> None:
        """Load every model in turn, off the event loop. With ``model_control`` none the first failure is fatal;
        otherwise a model that cannot load is failed (its reason in /v1/models and the repository index) and the
        others load. With poll, the repository is then watched until the server stops."""
        for model in list(self.models.values()):
            async with self.control.lock:  # a load through the API meanwhile waits, or has replaced this model
                if self.models.get(model.name) is not model or model.status is not ModelStatus.LOADING:
                    continue
                try:
                    await self.start_model(model)
                except asyncio.CancelledError:
                    model.status = ModelStatus.STOPPED
                    raise
                except Exception as exc:
                    message = f"cannot serve {model.name}/{model.variant}: {exc}"
                    log.error("%s", message)
                    model.fail(str(exc))
                    self.control.failed(model.name, model.variant, str(exc))
                    if self.settings.model_control == "none":
                        self.fatal = message
                        self._update_ready()
                        if self.on_fatal is not None:
                            self.on_fatal(message)
                        return
                self.announce(model)
        ready = [f"{m.name}/{m.variant}" for m in self.models.values() if m.ready]
        if ready:
            log.info("ready: %s", ", ".join(ready))
        if self.settings.model_control == "poll":
            await self.control.poll()

    def begin_drain(self) -> None:
        """Readiness false at once, new inference refused; what is in flight goes on."""
        if not self.draining:
            self.draining = True
            self._update_ready()
            log.info("draining: readiness is false, new inference requests get 503")

    async def close(self) -> None:
        self.begin_drain()
        for model in self.models.values():
            await model.stop()
        self.tokenizer_pool.shutdown(wait=False)


def build_state(settings: Settings) -> ServerState:
    """Everything that can be checked before listening: the key, the providers, the models and their variants.

    Raises :class:`~xstilts.errors.XstiltsError` (the CLI exits with 2) on a missing key file, a GPU required in a
    build without one, a missing model or variant, or a broken manifest. With ``model_control`` explicit or poll
    an empty repository is no error: models can be loaded once their bundles arrive.
    """
    api_key = settings.resolved_api_key()
    if settings.model_control != "none" and not settings.models and not list_bundles(settings.repository):
        return ServerState(settings, [], api_key=api_key)
    return ServerState(settings, plan_models(settings), api_key=api_key)
