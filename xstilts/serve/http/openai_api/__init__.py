"""The OpenAI embeddings API (``POST /v1/embeddings``): bodies, codec and route."""
