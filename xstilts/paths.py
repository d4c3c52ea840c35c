"""Where data and caches live: settings with environment overrides, never hard-coded machine paths."""

from __future__ import annotations

import os
from pathlib import Path

from xstilts.errors import XstiltsError

DATA_DIR_ENV = "XSTILTS_DATA_DIR"
CACHE_DIR_ENV = "XSTILTS_CACHE_DIR"


def default_data_dir() -> Path | None:
    """The data folder: $XSTILTS_DATA_DIR, else ``../shared/data`` next to the working directory if it exists."""
    env = os.environ.get(DATA_DIR_ENV)
    if env:
        return Path(env)
    candidate = Path.cwd().parent / "shared" / "data"
    return candidate if candidate.is_dir() else None


def resolve_data_dir(data_dir: str | Path | None) -> Path:
    """Return an existing data folder or fail with a message naming the setting."""
    path = Path(data_dir) if data_dir else default_data_dir()
    if path is None:
        raise XstiltsError(
            f"no data folder: pass --data-dir or set {DATA_DIR_ENV} to a folder laid out like XTREME's downloads"
        )
    if not path.is_dir():
        raise XstiltsError(f"data folder {path} does not exist: pass --data-dir or set {DATA_DIR_ENV}")
    return path


def cache_dir() -> Path:
    """The user cache for converted models: $XSTILTS_CACHE_DIR, else $XDG_CACHE_HOME/xstilts or ~/.cache/xstilts."""
    env = os.environ.get(CACHE_DIR_ENV)
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "xstilts"
