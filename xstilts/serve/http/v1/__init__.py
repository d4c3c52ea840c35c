"""The JSON API (``/v1``): bodies, codec and routes."""
