"""Bench: accuracy per language through a server's API, latency and throughput under locust load
(``xstilts bench``), and the server against its bare ONNX session under wrk (``python -m xstilts.bench.measure``).

Never imports torch, transformers or optimum (the naive reference server, which does, runs as its own process:
``python -m xstilts.bench.naive_server``); locust and wrk run in their own processes too (``locustfile.py``,
``post.lua``).
"""
