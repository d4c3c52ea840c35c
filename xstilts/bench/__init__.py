"""Bench: accuracy per language through a server's API, and latency and throughput under locust load.

Never imports torch, transformers or optimum (the naive reference server, which does, runs as its own process:
``python -m xstilts.bench.naive_server``); locust runs in its own process too (``locustfile.py``).
"""
