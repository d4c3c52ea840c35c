"""``xstilts serve``: ONNX bundles over HTTP, torch-free.

``settings`` (every flag and ``XSTILTS_*`` variable), ``commands`` (the CLI), ``core`` (planning, encoding,
engine, batching, models and their errors, no HTTP) and ``http`` (FastAPI app, the two APIs, metrics).
"""
