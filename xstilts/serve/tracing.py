"""OpenTelemetry tracing of requests (optional: the ``tracing`` extra; off unless ``--otlp-endpoint`` is set).

Each request is one trace below its client's W3C ``traceparent`` (HTTP header or gRPC metadata) when it sends one:
a server span (``POST /v2/models/NAME/infer``, ``inference.GRPCInferenceService/ModelInfer``) with the request's id,
and inside it ``decode``, ``tokenize``, ``queue``, ``inference`` (``batch_size``: the largest batch its items ran in,
``batches``) and ``encode`` (:mod:`xstilts.serve.core.tracing`). Spans go to the OTLP/gRPC endpoint in batches,
sampled by ``--trace-sample-ratio`` for traces that start at the server. The server keeps its own tracer provider
(the process-wide one is left alone).
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from typing import Any

from xstilts.errors import XstiltsError
from xstilts.serve.settings import Settings

SERVICE_NAME = "xstilts"


class OpenTelemetryTracer:
    """:class:`xstilts.serve.core.tracing.Tracer` on an OpenTelemetry tracer provider."""

    enabled = True

    def __init__(self, provider: Any) -> None:
        from opentelemetry.trace import SpanKind
        from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

        self.provider = provider
        self._tracer = provider.get_tracer("xstilts.serve")
        self._propagator = TraceContextTextMapPropagator()
        self._server_kind = SpanKind.SERVER

    def server_span(
        self, name: str, carrier: Mapping[str, str], **attributes: Any
    ) -> contextlib.AbstractContextManager[Any]:
        parent = self._propagator.extract(carrier)
        return self._tracer.start_as_current_span(name, context=parent, kind=self._server_kind, attributes=attributes)

    def span(self, name: str, **attributes: Any) -> contextlib.AbstractContextManager[Any]:
        return self._tracer.start_as_current_span(name, attributes=attributes)

    def record(self, name: str, start_ns: int, end_ns: int, **attributes: Any) -> None:
        self._tracer.start_span(name, start_time=start_ns, attributes=attributes).end(end_time=end_ns)

    def shutdown(self) -> None:
        """Send what is still buffered and stop."""
        self.provider.shutdown()


def build_tracer(ratio: float, exporter: Any, batched: bool = True) -> OpenTelemetryTracer:
    """A tracer sending its spans to ``exporter`` (in batches, or one by one when not ``batched``)."""
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
    from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased

    provider = TracerProvider(
        resource=Resource.create({"service.name": SERVICE_NAME}), sampler=ParentBased(TraceIdRatioBased(ratio))
    )
    provider.add_span_processor(BatchSpanProcessor(exporter) if batched else SimpleSpanProcessor(exporter))
    return OpenTelemetryTracer(provider)


def tracer_from_settings(settings: Settings) -> OpenTelemetryTracer | None:
    """The tracer ``--otlp-endpoint`` asks for, or None when tracing is off."""
    if settings.otlp_endpoint is None:
        return None
    try:
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
    except ImportError:
        raise XstiltsError(
            "otlp_endpoint is set but OpenTelemetry is not installed: pip install 'xstilts[tracing]'"
        ) from None
    return build_tracer(settings.trace_sample_ratio, OTLPSpanExporter(endpoint=settings.otlp_endpoint))
