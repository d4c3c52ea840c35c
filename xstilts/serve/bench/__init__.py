"""Measuring the server against its own ONNX session: wrk with a Lua script posting real XNLI texts.

``python -m xstilts.serve.bench.measure --repository DIR --model NAME`` runs the whole comparison (see there);
``post.lua`` is the wrk script, ``payloads`` writes its request bodies and ``bare`` times the session alone.
"""
