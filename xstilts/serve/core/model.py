"""One served model: its status, and once loaded, its encoder, engine and batcher; ``infer``, ``embed``,
``answer`` and ``tag`` share one path (tokenize, queue, batch).

:meth:`ServedModel.infer` takes a request's items as segment pairs (what each API's codec decodes) and gives
each item's logits and probabilities; :meth:`ServedModel.embed` takes texts and gives an embedding model's
vectors; :meth:`ServedModel.answer` takes (question, context) pairs and gives an extractive QA model's
answer spans (:mod:`xstilts.serve.core.spans`); :meth:`ServedModel.tag` takes texts or pre-split words and gives a
tagging model's words with their tags (:mod:`xstilts.serve.core.tagging`). All raise
:class:`~xstilts.serve.core.errors.ServeError` with a kind when the model is not ready, an input is too long, or
the queue is full.

A model is replaced, never changed: a reload builds a new :class:`ServedModel` beside the old one, and the old one
retires (:meth:`ServedModel.retire`) once the requests that hold it (:meth:`ServedModel.hold`) have finished.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Protocol, TypeVar

import numpy as np

from xstilts.contracts.embedding import EmbeddingSpec
from xstilts.contracts.kinds import TaskKind
from xstilts.contracts.names import Name
from xstilts.serve.core.batcher import Batcher, BatcherClosed, BatchLimits, BatchObserver, NoObserver, QueueFull
from xstilts.serve.core.encoder import EncodedItem
from xstilts.serve.core.engine import LoadedModel
from xstilts.serve.core.errors import invalid, overloaded, too_large, unavailable
from xstilts.serve.core.probabilities import softmax
from xstilts.serve.core.repository import PlannedModel
from xstilts.serve.core.spans import Pair, Spans
from xstilts.serve.core.tagging import Tagged, TagItem
from xstilts.serve.core.tracing import TOKENIZE, Timeline, tracer
from xstilts.tasks.encoding import Segments

# requests with more text than this are tokenized off the event loop (about a millisecond of work)
INLINE_CHARACTERS = 2000
# seconds a client should wait before asking a loading model again
LOADING_RETRY_AFTER = 5

T = TypeVar("T")


class ModelStatus(Name):
    """Where a served model is in its life."""

    LOADING = "loading"
    READY = "ready"
    FAILED = "failed"
    STOPPED = "stopped"
    UNLOADED = "unloaded"  # through the repository API: loadable again


class ModelObserver(BatchObserver, Protocol):
    """A model's metric hooks: its batcher's, and the time each request's tokenization takes."""

    def tokenized(self, seconds: float) -> None: ...


class WithoutDepth:
    """A retiring batcher's hooks: its batches still count, but the queue depth is its successor's to report."""

    def __init__(self, observer: BatchObserver) -> None:
        self.observer = observer

    def queue_depth(self, items: int) -> None: ...

    def queued(self, seconds: float) -> None:
        self.observer.queued(seconds)

    def batch(self, items: int, tokens: int, seconds: float) -> None:
        self.observer.batch(items, tokens, seconds)


@dataclass
class Outcome:
    """Per item: logits, probabilities and whether the input was truncated."""

    logits: list[np.ndarray]
    probabilities: list[np.ndarray]
    truncated: list[bool]


@dataclass
class Embeddings:
    """Per text: its vector and whether it was truncated; ``tokens``: the real tokens of every text (usage)."""

    vectors: list[np.ndarray]
    truncated: list[bool]
    tokens: int


class ServedModel:
    """One model as the server sees it: its plan, and once loaded, its encoder, engine and batcher."""

    def __init__(self, planned: PlannedModel, tokenizer_pool: ThreadPoolExecutor | None = None) -> None:
        self.planned = planned
        self.tokenizer_pool = tokenizer_pool
        self.name = planned.name
        self.variant = planned.variant
        self.variants = sorted(planned.variants or [planned.variant])
        self.manifest = planned.manifest
        self.status = ModelStatus.LOADING
        self.error: str | None = None
        self.loaded: LoadedModel | None = None
        self.batcher: Batcher | None = None
        self.observer: ModelObserver = NoObserver()
        self.users = 0  # requests holding this model (see hold)
        self._idle = asyncio.Event()
        self._idle.set()

    @property
    def ready(self) -> bool:
        return self.status is ModelStatus.READY

    @property
    def multiple_choice(self) -> bool:
        return self.manifest.kind is TaskKind.MULTIPLE_CHOICE

    @property
    def tagging(self) -> bool:
        """Whether the model tags words (one tag per word) rather than classifying or embedding texts."""
        return self.manifest.kind is TaskKind.TOKEN_CLASSIFICATION

    @property
    def embedding(self) -> EmbeddingSpec | None:
        """How the model turns a text into a vector (embedding models only)."""
        return self.manifest.embedding if self.manifest.kind is TaskKind.EMBEDDING else None

    @property
    def provider(self) -> str | None:
        return self.loaded.provider if self.loaded else None

    def start(self, loaded: LoadedModel, limits: BatchLimits) -> None:
        """Serve ``loaded`` with a batcher within ``limits`` (on the event loop)."""
        self.loaded = loaded
        self.batcher = Batcher(loaded.engine, self.name, limits, self.observer, self.multiple_choice)
        self.batcher.start()
        self.status = ModelStatus.READY

    def fail(self, error: str) -> None:
        self.status, self.error = ModelStatus.FAILED, error

    async def stop(self) -> None:
        if self.batcher is not None:
            await self.batcher.close()
        if self.status in (ModelStatus.READY, ModelStatus.LOADING):
            self.status = ModelStatus.STOPPED

    @contextlib.contextmanager
    def hold(self) -> Iterator[ServedModel]:
        """Keep this model serving while the block runs: a reload or unload retires it only after every holder
        has let go, so a request that has the model finishes on it."""
        self.users += 1
        self._idle.clear()
        try:
            yield self
        finally:
            self.users -= 1
            if self.users == 0:
                self._idle.set()

    async def retire(self, timeout: float, replaced: bool) -> None:
        """Stop serving once no request holds the model (waiting at most ``timeout`` seconds, after which what is
        still queued gets 503): its queue is empty by then, its batcher stops and its session can go. A model
        ``replaced`` by a new one leaves the queue depth metric to it; an unloaded one reports its queue to 0."""
        if self.batcher is not None and replaced:
            self.batcher.observer = WithoutDepth(self.batcher.observer)
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._idle.wait(), timeout)
        if self.batcher is not None:
            await self.batcher.close()
        self.status = ModelStatus.UNLOADED

    def check_ready(self) -> None:
        if self.status is ModelStatus.LOADING:
            raise unavailable(f"model {self.name} is still loading", retry_after=LOADING_RETRY_AFTER)
        if self.status is ModelStatus.UNLOADED:
            raise unavailable(f"model {self.name} is unloaded: load it again through the repository API")
        if self.status is not ModelStatus.READY:
            raise unavailable(f"model {self.name} is not available ({self.status}: {self.error or 'stopped'})")

    def _timed(self, tokenize: Callable[[], T]) -> T:
        started = time.perf_counter()
        result = tokenize()
        self.observer.tokenized(time.perf_counter() - started)
        return result

    async def _tokenize(self, tokenize: Callable[[], T], characters: int) -> T:
        """Short requests are tokenized on the event loop (a text pair takes a fraction of a millisecond); long
        ones in a tokenizer thread, so that they do not hold up every other request."""
        with tracer().span(TOKENIZE, characters=characters):
            if characters > INLINE_CHARACTERS and self.tokenizer_pool is not None:
                return await asyncio.get_running_loop().run_in_executor(self.tokenizer_pool, self._timed, tokenize)
            return self._timed(tokenize)

    async def _submit(self, encoded: list[EncodedItem]) -> list[np.ndarray]:
        """Queue the encoded items and wait for their batches: each item's output rows (traced as the request's
        ``queue`` and ``inference`` spans)."""
        assert self.batcher is not None
        timeline = Timeline()
        try:
            rows = await self.batcher.submit(encoded, timeline)
            timeline.report(tracer())
            return rows
        except QueueFull as exc:
            raise overloaded(str(exc), exc.retry_after) from None
        except BatcherClosed as exc:
            raise unavailable(str(exc)) from None

    async def _run(
        self, items: Sequence[Sequence[Segments]], truncate: bool
    ) -> tuple[list[np.ndarray], list[EncodedItem]]:
        """Tokenize, queue and wait for the batch: each item's output rows, and its encoding."""
        with self.hold():
            self.check_ready()
            assert self.loaded is not None
            encoder = self.loaded.encoder
            characters = sum(len(a) + len(b or "") for segments in items for a, b in segments)
            encoded = await self._tokenize(lambda: encoder.encode(items), characters)
            if not truncate and any(e.truncated for e in encoded):
                first = next(index for index, e in enumerate(encoded) if e.truncated)
                raise invalid(
                    f"inputs.{first} is longer than the model's max_length of {self.manifest.max_length} tokens "
                    "(send truncate: true to cut it)"
                )
            return await self._submit(encoded), encoded

    async def infer(self, items: Sequence[Sequence[Segments]], truncate: bool = True) -> Outcome:
        """Each item's logits and probabilities (a classification or multiple-choice model)."""
        if self.embedding is not None:
            raise invalid(f"model {self.name} is an embedding model: it gives sentence vectors (embed), not labels")
        if self.tagging:
            raise invalid(f"model {self.name} is a tagging model: it tags the words of texts, one tag per word")
        logits, encoded = await self._run(items, truncate)
        # multiple-choice items may differ in their number of choices; classification takes one softmax
        probabilities = [softmax(row) for row in logits] if self.multiple_choice else list(softmax(np.stack(logits)))
        return Outcome(logits, probabilities, [e.truncated for e in encoded])

    async def embed(self, texts: Sequence[str], normalize: bool | None = None, truncate: bool = True) -> Embeddings:
        """Each text's sentence vector (an embedding model), the bundle's prefix applied here.

        ``normalize`` None gives what the bundle's graph gives; true scales to unit length; false is refused
        when the graph itself normalises (its raw vectors are gone).
        """
        spec = self.embedding
        if spec is None:
            raise invalid(f"model {self.name} is a {self.manifest.kind} model: it answers on predict, not with vectors")
        if normalize is False and spec.normalize:
            raise invalid(
                f"model {self.name}'s graph gives unit vectors (normalize: true in its bundle.json): "
                "send normalize: true or leave it out"
            )
        vectors, encoded = await self._run([[(spec.text(text), None)] for text in texts], truncate)
        if normalize and not spec.normalize:
            vectors = [v / max(float(np.linalg.norm(v)), 1e-12) for v in vectors]
        return Embeddings(vectors, [e.truncated for e in encoded], sum(e.tokens for e in encoded))

    async def answer(self, pairs: Sequence[Pair], top_k: int = 1, max_windows: int | None = None) -> Spans:
        """Each (question, context) pair's ``top_k`` best answer spans (an extractive QA model): long contexts are
        split into the bundle's windows, batched with everything else, and the best span is chosen across them.

        A context taking more than ``max_windows`` windows is refused (too_large) before anything is queued.
        """
        if self.manifest.kind is not TaskKind.SPAN_QA:
            raise invalid(f"model {self.name} is a {self.manifest.kind} model: it does not answer questions")
        with self.hold():
            self.check_ready()
            assert self.loaded is not None and self.loaded.spans is not None, "span QA models load their SpanReader"
            reader = self.loaded.spans
            windows = await self._tokenize(lambda: reader.windows(pairs), sum(len(q) + len(c) for q, c in pairs))
            counts = reader.check_windows(windows, len(pairs), max_windows or len(windows))
            rows = await self._submit(reader.encoded(windows))
        answers = reader.answers(pairs, windows, rows, top_k)
        return Spans(answers, counts, sum(len(w.ids) for w in windows))

    async def tag(self, items: Sequence[TagItem]) -> list[Tagged]:
        """Each item's words with their tags (a tagging model), sentences longer than a window split into windows."""
        if not self.tagging:
            raise invalid(f"model {self.name} is a {self.manifest.kind} model: it does not tag words")
        with self.hold():
            self.check_ready()
            assert self.loaded is not None and self.loaded.tagger is not None, "tagging models load their Tagger"
            tagger = self.loaded.tagger
            windows = await self._tokenize(lambda: tagger.windows(items), sum(len(item.text) for item in items))
            rows = tagger.encoded(windows)
            assert self.batcher is not None
            if len(rows) > self.batcher.max_queue_size:  # such a request could never be queued: retrying cannot help
                raise too_large(
                    f"the inputs take {len(rows)} windows of {self.manifest.max_length} tokens, more than the "
                    f"model's queue holds ({self.batcher.max_queue_size}, max_queue_size): send fewer or shorter texts"
                )
            return tagger.read(items, windows, await self._submit(rows))
