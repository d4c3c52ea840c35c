"""The serving core: everything between a request's items and their logits, with no HTTP in it.

``repository`` plans the models (list the bundles once, plan the providers once, choose variants); ``providers``
plans and verifies ONNX Runtime's execution providers; ``encoder`` tokenizes by the training rule; ``engine``
runs a bundle's session on padded batches and loads a planned model; ``batcher`` forms the batches;
``model`` is one served model (status, ``infer``); ``state`` the server's models, readiness and draining;
``integrity`` checks a bundle's files against its ``bundle.json``; ``control`` loads, reloads and unloads models
while serving (``watch``: what polling compares); ``errors`` the one transport-free error type, with a kind.
FastAPI and Starlette are never imported here.
"""
