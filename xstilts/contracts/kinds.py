"""The task kinds: how a task's inputs are shaped, which decides its head, its graph and its API codecs."""

from __future__ import annotations

from xstilts.contracts.names import Name


class TaskKind(Name):
    """How a task's inputs are shaped, which decides the model head (values are the names files record)."""

    PAIR = "pair_classification"
    SINGLE = "single_classification"
    MULTIPLE_CHOICE = "multiple_choice"
    EMBEDDING = "embedding"  # sentence retrieval: no head, the encoder's pooled vector of a layer
