"""Prometheus metrics, each app with its own registry (served at ``/metrics``), filled through the core's hooks.

| name | type | labels | what |
| --- | --- | --- | --- |
| ``xstilts_requests_total`` | counter | model, endpoint, status | inference requests answered, by HTTP status |
| ``xstilts_request_duration_seconds`` | histogram | model, endpoint | inference request latency (server side) |
| ``xstilts_queue_duration_seconds`` | histogram | model | time an item waited in the queue before its batch ran |
| ``xstilts_tokenization_duration_seconds`` | histogram | model | time to tokenize one request |
| ``xstilts_inference_duration_seconds`` | histogram | model | time of one batch in ONNX Runtime (padding included) |
| ``xstilts_batch_size`` | histogram | model | items per batch (a multiple-choice item counts once) |
| ``xstilts_queue_depth`` | gauge | model | items waiting in the queue |
| ``xstilts_requests_in_flight`` | gauge | model | inference requests being answered (queued or running) |
| ``xstilts_tokens_total`` | counter | model | real (unpadded) tokens run through the model |
| ``xstilts_model_info`` | gauge (1) | model, variant, provider, precision | what is loaded, on which provider |
| ``xstilts_ready`` | gauge | | 1 when every model is loaded and the server is not draining |

``endpoint`` is ``v1_predict``, ``v1_embed``, ``openai_embeddings``, ``v2_infer`` or ``grpc_infer`` (whose
``status`` is the HTTP status of the same error kind, so that one query covers both transports); ``model`` is
empty for names that are not served (404s), so that unknown names cannot grow the label set.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

LATENCY_BUCKETS = (
    0.001,
    0.0025,
    0.005,
    0.0075,
    0.01,
    0.015,
    0.02,
    0.03,
    0.05,
    0.075,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
)
FAST_BUCKETS = (0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)
V1_PREDICT = "v1_predict"
V1_EMBED = "v1_embed"
OPENAI_EMBEDDINGS = "openai_embeddings"
V2_INFER = "v2_infer"
GRPC_INFER = "grpc_infer"  # ModelInfer over gRPC; its status label is the HTTP status of the same error kind


class Metrics:
    """The server's metrics in one registry; the server state's observer (``for_model``, ``set_ready``...)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "xstilts_requests", "Inference requests answered", ["model", "endpoint", "status"], registry=r
        )
        self.request_duration = Histogram(
            "xstilts_request_duration_seconds",
            "Inference request latency",
            ["model", "endpoint"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.queue_duration = Histogram(
            "xstilts_queue_duration_seconds",
            "Time items waited for a batch",
            ["model"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.tokenization_duration = Histogram(
            "xstilts_tokenization_duration_seconds",
            "Time to tokenize a request",
            ["model"],
            buckets=FAST_BUCKETS,
            registry=r,
        )
        self.inference_duration = Histogram(
            "xstilts_inference_duration_seconds",
            "Time of one batch in the engine",
            ["model"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.batch_size = Histogram(
            "xstilts_batch_size", "Items per batch", ["model"], buckets=BATCH_BUCKETS, registry=r
        )
        self.queue_depth = Gauge("xstilts_queue_depth", "Items waiting in the queue", ["model"], registry=r)
        self.in_flight = Gauge("xstilts_requests_in_flight", "Inference requests being answered", ["model"], registry=r)
        self.tokens = Counter("xstilts_tokens", "Real (unpadded) tokens run through the model", ["model"], registry=r)
        self.model_info = Gauge(
            "xstilts_model_info", "Loaded models (always 1)", ["model", "variant", "provider", "precision"], registry=r
        )
        self._info: dict[str, tuple[str, str, str, str]] = {}  # each model's model_info labels
        self.ready = Gauge("xstilts_ready", "1 when all models are loaded and the server is not draining", registry=r)

    def for_model(self, name: str) -> ModelObserver:
        return ModelObserver(self, name)

    def set_ready(self, ready: bool) -> None:
        self.ready.set(1 if ready else 0)

    def model_loaded(self, name: str, variant: str, provider: str, precision: str) -> None:
        self.model_unloaded(name)
        self._info[name] = (name, variant, provider, precision)
        self.model_info.labels(*self._info[name]).set(1)

    def model_unloaded(self, name: str) -> None:
        """``name`` serves nothing now (unloaded, or about to be replaced): its ``xstilts_model_info`` goes."""
        labels = self._info.pop(name, None)
        if labels is not None:
            self.model_info.remove(*labels)


class ModelObserver:
    """One model's metric children, bound once (the model's and its batcher's observer)."""

    def __init__(self, metrics: Metrics, model: str) -> None:
        self._depth = metrics.queue_depth.labels(model)
        self._queued = metrics.queue_duration.labels(model)
        self._inference = metrics.inference_duration.labels(model)
        self._batch = metrics.batch_size.labels(model)
        self._tokens = metrics.tokens.labels(model)
        self._tokenization = metrics.tokenization_duration.labels(model)

    def tokenized(self, seconds: float) -> None:
        self._tokenization.observe(seconds)

    def queue_depth(self, items: int) -> None:
        self._depth.set(items)

    def queued(self, seconds: float) -> None:
        self._queued.observe(seconds)

    def batch(self, items: int, tokens: int, seconds: float) -> None:
        self._batch.observe(items)
        self._tokens.inc(tokens)
        self._inference.observe(seconds)
