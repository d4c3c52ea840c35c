"""Tagging examples as training items (one per window) and their labels as padded tensors (torch, training only)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from xstilts.tagging.alignment import IGNORE, WordTokenizer, window_labels
from xstilts.tasks import Example


def word_tokenizer(tokenizer: Any, max_length: int) -> WordTokenizer:
    """The word tokenizer behind a transformers fast tokenizer (its ``tokenizers`` backend)."""
    return WordTokenizer(tokenizer.backend_tokenizer, max_length)


def tagging_items(
    tokenizer: Any, task: str, examples: Sequence[Example], tags: Sequence[str], max_length: int
) -> list[dict[str, Any]]:
    """One training item per window of each example: its ids (as a one-sequence list) and per-token labels."""
    index = {tag: i for i, tag in enumerate(tags)}
    windows = word_tokenizer(tokenizer, max_length).windows([e.words for e in examples])
    items = []
    for example, sentence in zip(examples, windows, strict=True):
        tag_ids = [index[t] for t in example.tags]
        for window in sentence:
            items.append({"task": task, "input_ids": [window.ids], "label": window_labels(window, tag_ids)})
    return items


def padded_labels(items: Sequence[dict[str, Any]], width: int) -> Any:
    """The items' per-token labels as a ``[batch, width]`` tensor, padded with ``IGNORE``."""
    import torch

    labels = torch.full((len(items), width), IGNORE, dtype=torch.long)
    for row, item in enumerate(items):
        labels[row, : len(item["label"])] = torch.tensor(item["label"], dtype=torch.long)
    return labels
