"""Tokenizers shared between loaded models whose ``tokenizer.json`` has the same bytes.

Parsing a large ``tokenizer.json`` (XLM-R's 17 MB, 250,000 pieces) holds the GIL from start to end, so while a
model loads beside serving ones the event loop stands still for that long: about a second on an idle 2-core VM,
twenty seconds on a busy one. A reload that switches variants of one model (fp32 to int8, a re-export) reads the
same tokenizer, so it takes the one already loaded and the event loop never waits. An entry lives while a loaded
model holds it.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable, Hashable
from pathlib import Path
from typing import Any, TypeVar

from xstilts.contracts.hashing import file_sha256

T = TypeVar("T")

_loaded: weakref.WeakValueDictionary[tuple[Hashable, ...], Any] = weakref.WeakValueDictionary()
_lock = threading.Lock()


def shared(tokenizer_file: Path, settings: tuple[Hashable, ...], build: Callable[[], T]) -> T:
    """``build()`` for ``tokenizer_file`` and ``settings`` (what ``build`` configures), or the one a loaded model
    already built from a file with the same bytes (hashed, which does not hold the GIL)."""
    key = (file_sha256(tokenizer_file), *settings)
    with _lock:
        found = _loaded.get(key)
        if found is None:
            found = build()
            _loaded[key] = found
        return found
