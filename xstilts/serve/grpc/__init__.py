"""The Open Inference Protocol's gRPC form (KServe v2 ``inference.GRPCInferenceService``) beside the HTTP API:
the same models, batcher, limits, auth, metrics, request ids, traces and drain, on its own port (``--grpc-port``).
Needs the ``grpc`` extra (grpcio and protobuf); the generated messages are in :mod:`.proto`."""
