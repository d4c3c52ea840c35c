"""The task kinds: how a task's inputs are shaped, which decides its head, its graph and its API codecs."""

from __future__ import annotations

from enum import Enum


class TaskKind(str, Enum):
    """How a task's inputs are shaped, which decides the model head (values are the names files record)."""

    PAIR = "pair_classification"
    SINGLE = "single_classification"
    MULTIPLE_CHOICE = "multiple_choice"

    def __str__(self) -> str:  # the value in messages and f-strings, on every Python version
        return self.value
