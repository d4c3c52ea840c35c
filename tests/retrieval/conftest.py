"""Fixtures for the retrieval tests: the real tiny encoder (random weights, but its vectors depend on the text)."""

from __future__ import annotations

import importlib.util

import pytest

from tests.foundation.conftest import me5_folder  # noqa: F401  (the converted me5-small, for the slow check)
from tests.helpers import unavailable


@pytest.fixture(scope="session")
def tiny_encoder():
    missing = [name for name in ("torch", "transformers", "sentencepiece") if importlib.util.find_spec(name) is None]
    if missing:
        unavailable(f"needs {', '.join(missing)}: pip install -e '.[train]'")
    from xstilts.models import resolve_model
    from xstilts.retrieval.embedding import Encoder

    return Encoder(resolve_model("tiny-xlmr"))
