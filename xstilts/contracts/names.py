"""The base of every named choice written to files, settings and messages (kinds, providers, statuses)."""

from __future__ import annotations

from enum import Enum


class Name(str, Enum):
    """A string-valued enum whose ``str()`` and f-string form is its value, on every Python version."""

    def __str__(self) -> str:
        return self.value
