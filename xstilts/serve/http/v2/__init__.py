"""The Open Inference Protocol (KServe v2, ``/v2``): bodies, codec and routes."""
