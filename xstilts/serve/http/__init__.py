"""The HTTP layer over the serving core: the FastAPI app and its lifespan (``app``), uvicorn with draining
(``server``), the one kind-to-status table and error body (``errors``), body limits and parsing (``bodies``),
Prometheus metrics (``metrics``), what inference routes share (``routing``), and one package per API
(``v1``: the JSON API, ``v2``: the Open Inference Protocol), each with ``protocol`` (pydantic bodies),
``codec`` (request to core items, core outcome to response) and ``routes`` (thin routes)."""
