"""The gRPC server: ``grpc.aio`` on the event loop uvicorn runs, started and stopped by the app's lifespan."""

from __future__ import annotations

import logging

import grpc

from xstilts.serve.core.state import ServerState
from xstilts.serve.core.tracing import Tracer
from xstilts.serve.drain import Drain
from xstilts.serve.grpc.proto import grpc_predict_v2_pb2_grpc as pb_grpc
from xstilts.serve.grpc.service import InferenceService, NotServed
from xstilts.serve.http.metrics import Metrics

log = logging.getLogger("xstilts.serve")


class GrpcServer:
    """A started gRPC server and the port it listens on."""

    def __init__(self, server: grpc.aio.Server, port: int) -> None:
        self.server = server
        self.port = port

    async def stop(self, drain: Drain) -> None:
        """Refuse new calls; those running may finish within what is left of the drain."""
        await self.server.stop(grace=drain.remaining())
        log.info("gRPC: stopped")


def address(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


async def start_grpc(state: ServerState, metrics: Metrics, drain: Drain, tracer: Tracer) -> GrpcServer:
    """Serve ``inference.GRPCInferenceService`` on ``--host``:``--grpc-port``; a message larger than
    ``--max-body-bytes`` is refused by gRPC itself (RESOURCE_EXHAUSTED)."""
    settings = state.settings
    assert settings.grpc_port is not None
    server = grpc.aio.server(options=[("grpc.max_receive_message_length", settings.max_body_bytes)])
    pb_grpc.add_GRPCInferenceServiceServicer_to_server(InferenceService(state, metrics, drain, tracer), server)
    server.add_generic_rpc_handlers((NotServed(),))
    try:
        port = server.add_insecure_port(address(settings.host, settings.grpc_port))
    except RuntimeError as exc:
        raise RuntimeError(f"cannot listen for gRPC on {address(settings.host, settings.grpc_port)}: {exc}") from None
    await server.start()
    log.info("gRPC: inference.GRPCInferenceService on %s", address(settings.host, port))
    return GrpcServer(server, port)
