"""The server's state: its models (loading, ready or failed), readiness, draining, and one inference path."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
from starlette.responses import Response

from xstilts.contracts.providers import uses_gpu
from xstilts.serve.batcher import Batcher, BatcherClosed, QueueFull, batcher_for
from xstilts.serve.bodies import error_response
from xstilts.serve.engine import MULTIPLE_CHOICE, EncodedItem, LoadedModel, PlannedModel, load_model, softmax
from xstilts.serve.errors import ServeError, not_found, overloaded, unavailable, unprocessable
from xstilts.serve.metrics import Metrics
from xstilts.serve.settings import Settings
from xstilts.tasks.encoding import Segments

log = logging.getLogger("xstilts.serve")

# requests with more text than this are tokenized off the event loop (about a millisecond of work)
INLINE_CHARACTERS = 2000


@dataclass
class Outcome:
    """Per item: logits, probabilities and whether the input was truncated."""

    logits: list[np.ndarray]
    probabilities: list[np.ndarray]
    truncated: list[bool]


class ServedModel:
    """One model as the server sees it: its plan, and once loaded, its encoder, engine and batcher."""

    def __init__(
        self,
        planned: PlannedModel,
        variants: Sequence[str],
        metrics: Metrics,
        tokenizer_pool: ThreadPoolExecutor | None = None,
    ) -> None:
        self.planned = planned
        self.tokenizer_pool = tokenizer_pool
        self.name = planned.name
        self.variant = planned.variant
        self.variants = sorted(variants)
        self.manifest = planned.manifest
        self.status = "loading"
        self.error: str | None = None
        self.loaded: LoadedModel | None = None
        self.batcher: Batcher | None = None
        self.observer = metrics.for_model(planned.name)

    @property
    def ready(self) -> bool:
        return self.status == "ready"

    @property
    def multiple_choice(self) -> bool:
        return self.manifest.kind == MULTIPLE_CHOICE

    @property
    def provider(self) -> str | None:
        return self.loaded.provider if self.loaded else None

    def check_ready(self) -> None:
        if self.status == "loading":
            raise unavailable(f"model {self.name} is still loading", retry_after=5)
        if self.status != "ready":
            raise unavailable(f"model {self.name} is not available ({self.status}: {self.error or 'stopped'})")

    def _encode(self, items: Sequence[Sequence[Segments]]) -> list[EncodedItem]:
        assert self.loaded is not None
        started = time.perf_counter()
        encoded = self.loaded.encoder.encode(items)
        self.observer.tokenization.observe(time.perf_counter() - started)
        return encoded

    async def infer(self, items: Sequence[Sequence[Segments]], truncate: bool = True) -> Outcome:
        """Tokenize, queue, wait for the batch, and softmax.

        Short requests are tokenized on the event loop (a text pair takes a fraction of a millisecond); long
        ones in a tokenizer thread, so that they do not hold up every other request.
        """
        self.check_ready()
        assert self.loaded is not None and self.batcher is not None
        characters = sum(len(a) + len(b or "") for segments in items for a, b in segments)
        if characters > INLINE_CHARACTERS and self.tokenizer_pool is not None:
            encoded = await asyncio.get_running_loop().run_in_executor(self.tokenizer_pool, self._encode, items)
        else:
            encoded = self._encode(items)
        truncated = [e.truncated for e in encoded]
        if not truncate and any(truncated):
            first = truncated.index(True)
            raise unprocessable(
                f"inputs.{first} is longer than the model's max_length of {self.manifest.max_length} tokens "
                "(send truncate: true to cut it)"
            )
        try:
            logits = await self.batcher.submit(encoded)
        except QueueFull as exc:
            raise overloaded(str(exc), exc.retry_after) from None
        except BatcherClosed as exc:
            raise unavailable(str(exc)) from None
        # multiple-choice items may differ in their number of choices; classification takes one softmax
        probabilities = [softmax(row) for row in logits] if self.multiple_choice else list(softmax(np.stack(logits)))
        return Outcome(logits, probabilities, truncated)


class ServerState:
    """Models, readiness and draining; ``on_fatal`` is called when a model cannot load (the CLI exits then)."""

    def __init__(
        self,
        settings: Settings,
        planned: Sequence[PlannedModel],
        variants: dict[str, Sequence[str]] | None = None,
        metrics: Metrics | None = None,
        api_key: str | None = None,
        on_fatal: Callable[[str], None] | None = None,
        loader: Callable[[PlannedModel, Settings], LoadedModel] = load_model,
    ) -> None:
        self.settings = settings
        self.metrics = metrics or Metrics()
        variants = variants or {}
        self.tokenizer_pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="tokenize")
        self.models = {
            p.name: ServedModel(p, variants.get(p.name, [p.variant]), self.metrics, self.tokenizer_pool)
            for p in planned
        }
        self.api_key = api_key
        self.draining = False
        self.fatal: str | None = None
        self.on_fatal = on_fatal
        self.loader = loader
        self.started = time.time()
        self.metrics.ready.set(0)

    @property
    def ready(self) -> bool:
        return not self.draining and self.fatal is None and all(m.ready for m in self.models.values())

    def _update_ready(self) -> None:
        self.metrics.ready.set(1 if self.ready else 0)

    def get(self, name: str) -> ServedModel:
        model = self.models.get(name)
        if model is None:
            raise not_found(f"no model {name!r}; this server has: {', '.join(self.models) or 'none'}")
        return model

    async def load(self) -> None:
        """Load every model in turn, off the event loop; the first failure is fatal."""
        for model in self.models.values():
            try:
                loaded = await asyncio.to_thread(self.loader, model.planned, self.settings)
            except asyncio.CancelledError:
                model.status = "stopped"
                raise
            except Exception as exc:
                message = f"cannot serve {model.name}/{model.variant}: {exc}"
                log.error("%s", message)
                model.status, model.error, self.fatal = "failed", str(exc), message
                self._update_ready()
                if self.on_fatal is not None:
                    self.on_fatal(message)
                return
            model.loaded = loaded
            gpu = uses_gpu(loaded.provider)
            model.batcher = batcher_for(
                loaded.engine, model.name, self.settings, model.observer, model.multiple_choice, gpu
            )
            limit = getattr(loaded.engine, "max_batch", None)
            if limit and limit < model.batcher.max_batch_size:
                log.warning("%s: batches capped at %d items by the TensorRT profile", model.name, limit)
                model.batcher.max_batch_size = limit
            model.batcher.start()
            model.status = "ready"
            self.metrics.model_info.labels(model.name, model.variant, loaded.provider, model.manifest.precision).set(1)
            self._update_ready()
        if self.models:
            log.info("ready: %s", ", ".join(f"{m.name}/{m.variant}" for m in self.models.values()))

    def begin_drain(self) -> None:
        """Readiness false at once, new inference refused (503); what is in flight goes on."""
        if not self.draining:
            self.draining = True
            self._update_ready()
            log.info("draining: readiness is false, new inference requests get 503")

    async def close(self) -> None:
        self.begin_drain()
        for model in self.models.values():
            if model.batcher is not None:
                await model.batcher.close()
            if model.status in ("ready", "loading"):
                model.status = "stopped"
        self.tokenizer_pool.shutdown(wait=False)

    async def answer(self, name: str, endpoint: str, handler: Callable[[ServedModel], Awaitable[Response]]) -> Response:
        """Run an inference handler with the checks, error mapping and metrics every inference endpoint shares."""
        started = time.perf_counter()
        label = name if name in self.models else ""
        in_flight = self.metrics.in_flight.labels(label)
        in_flight.inc()
        try:
            if self.draining:
                raise unavailable("the server is shutting down: send the request to another replica", retry_after=1)
            response = await handler(self.get(name))
            status = response.status_code
        except ServeError as exc:
            response, status = error_response(exc), exc.status
        except Exception:
            log.exception("%s %s failed", endpoint, name)
            response, status = error_response(ServeError(500, "internal server error (logged)")), 500
        finally:
            in_flight.dec()
        self.metrics.requests.labels(label, endpoint, str(status)).inc()
        self.metrics.request_duration.labels(label, endpoint).observe(time.perf_counter() - started)
        return response
