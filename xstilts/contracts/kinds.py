"""The task kinds: how a task's inputs are shaped, which decides its head, its graph and its API codecs."""

from __future__ import annotations

from xstilts.contracts.names import Name


class TaskKind(Name):
    """How a task's inputs are shaped, which decides the model head (values are the names files record)."""

    PAIR = "pair_classification"
    SINGLE = "single_classification"
    MULTIPLE_CHOICE = "multiple_choice"
    EMBEDDING = "embedding"  # sentence retrieval: no head, the encoder's pooled vector of a layer
    SPAN_QA = "span_qa"  # extractive question answering: start and end logits per token of a window
    TOKEN_CLASSIFICATION = "token_classification"  # tagging (NER, POS): one tag per word, read at its first token
