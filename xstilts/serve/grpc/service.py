"""``inference.GRPCInferenceService``: the v2 RPCs on the server's state, as the HTTP routes answer them.

Every call gets a request id (metadata ``x-request-id``, or a new one, sent back in the initial metadata), a server
span below the client's ``traceparent`` when tracing is on, the API key check (``authorization: Bearer <key>``; the
health RPCs only with ``--auth-health``, like the HTTP probes) and the drain's count. ModelInfer goes through the
same checks and metrics as the HTTP routes (:func:`xstilts.serve.http.routing.observed`) and the same codec
(:mod:`.codec`). A failed call ends with the status its error kind maps to (:mod:`.errors`).

The repository extension's RPCs (RepositoryIndex, RepositoryModelLoad, RepositoryModelUnload) are not served yet:
they answer UNIMPLEMENTED with a message saying so (:class:`NotServed`).
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import grpc

from xstilts.serve.core import request_ids
from xstilts.serve.core.auth import authorize, bearer_token
from xstilts.serve.core.errors import ServeError, internal
from xstilts.serve.core.model import ServedModel
from xstilts.serve.core.state import ServerState
from xstilts.serve.core.tracing import ENCODE, Tracer, activated, tracer
from xstilts.serve.drain import Drain
from xstilts.serve.grpc import codec
from xstilts.serve.grpc.errors import ERROR_TYPE, code_of
from xstilts.serve.grpc.proto import grpc_predict_v2_pb2 as pb
from xstilts.serve.grpc.proto import grpc_predict_v2_pb2_grpc as pb_grpc
from xstilts.serve.http.metrics import GRPC_INFER, Metrics
from xstilts.serve.http.routing import observed
from xstilts.serve.http.v2.codec import check_version
from xstilts.serve.http.v2.serving import run_inference

log = logging.getLogger("xstilts.serve")

SERVICE = "inference.GRPCInferenceService"
R = TypeVar("R")
Handler = Callable[[Any, Any, grpc.aio.ServicerContext], Awaitable[R]]


def rpc(health: bool = False) -> Callable[[Handler], Handler]:
    """A servicer method with the request id, trace, key check, drain count and error mapping every call needs."""

    def wrap(method: Handler) -> Handler:
        name = f"{SERVICE}/{method.__name__}"

        @functools.wraps(method)
        async def call(self: InferenceService, request: Any, context: grpc.aio.ServicerContext) -> Any:
            given = context.invocation_metadata() or ()
            metadata = {key.lower(): value for key, value in given if isinstance(value, str)}
            request_id = request_ids.accept(metadata.get(request_ids.HEADER))
            request_ids.bind(request_id)
            await context.send_initial_metadata(((request_ids.HEADER, request_id),))
            span = self.tracer.server_span(name, metadata if self.tracer.enabled else {}, request_id=request_id)
            with self.drain.request(), activated(self.tracer), span:
                try:
                    if not health or self.state.settings.auth_health:
                        authorize(self.state.api_key, bearer_token(metadata.get("authorization")))
                    return await method(self, request, context)
                except ServeError as error:
                    await fail(context, error, request_id)
                except Exception:
                    log.exception("%s failed", name)
                    await fail(context, internal(), request_id)

        return call

    return wrap


async def fail(context: grpc.aio.ServicerContext, error: ServeError, request_id: str) -> None:
    """End the call with the status of ``error``'s kind, its message, and the kind, id and retry time as metadata."""
    trailing = [(ERROR_TYPE, error.kind.value), (request_ids.HEADER, request_id)]
    if error.retry_after is not None:
        trailing.append(("retry-after", str(error.retry_after)))
    await context.abort(code_of(error.kind), error.message, trailing_metadata=tuple(trailing))


class InferenceService(pb_grpc.GRPCInferenceServiceServicer):
    """The v2 RPCs (see the module docstring)."""

    def __init__(self, state: ServerState, metrics: Metrics, drain: Drain, tracer: Tracer) -> None:
        self.state = state
        self.metrics = metrics
        self.drain = drain
        self.tracer = tracer

    @rpc(health=True)
    async def ServerLive(self, request: pb.ServerLiveRequest, context: Any) -> pb.ServerLiveResponse:
        return pb.ServerLiveResponse(live=True)

    @rpc(health=True)
    async def ServerReady(self, request: pb.ServerReadyRequest, context: Any) -> pb.ServerReadyResponse:
        return pb.ServerReadyResponse(ready=self.state.ready)

    @rpc(health=True)
    async def ModelReady(self, request: pb.ModelReadyRequest, context: Any) -> pb.ModelReadyResponse:
        model = self.state.get(request.name)
        check_version(model, request.version or None)
        return pb.ModelReadyResponse(ready=model.ready and not self.state.draining)

    @rpc()
    async def ServerMetadata(self, request: Any, context: Any) -> pb.ServerMetadataResponse:
        return codec.server_metadata()

    @rpc()
    async def ModelMetadata(self, request: pb.ModelMetadataRequest, context: Any) -> pb.ModelMetadataResponse:
        model = self.state.get(request.name)
        check_version(model, request.version or None)
        return codec.model_metadata(model)

    @rpc()
    async def ModelInfer(self, request: pb.ModelInferRequest, context: Any) -> pb.ModelInferResponse:
        settings = self.state.settings

        async def handle(model: ServedModel) -> pb.ModelInferResponse:
            check_version(model, request.model_version or None)
            inference, binary = codec.inference_request(request)
            items, answer = await run_inference(model, inference, binary, settings)
            with tracer().span(ENCODE):
                return codec.infer_response(model, inference, answer, items)

        return await observed(self.state, self.metrics, request.model_name, GRPC_INFER, handle)


REPOSITORY_RPCS = ("RepositoryIndex", "RepositoryModelLoad", "RepositoryModelUnload")


class NotServed(grpc.GenericRpcHandler):
    """The repository extension's RPCs: UNIMPLEMENTED, with a message saying that this server does not serve them."""

    def service(self, handler_call_details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler | None:
        method = handler_call_details.method  # type: ignore[attr-defined]
        if method not in {f"/{SERVICE}/{name}" for name in REPOSITORY_RPCS}:
            return None

        async def refuse(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
            await context.abort(
                grpc.StatusCode.UNIMPLEMENTED,
                f"{method.rsplit('/', 1)[-1]}: the model repository extension is not served (models load at start)",
            )
            return b""

        return grpc.unary_unary_rpc_method_handler(refuse)
