"""Training items and batch targets of extractive QA: one item per window, the gold span's token positions."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from xstilts.qa.windows import DOC_STRIDE, Windower, training_windows
from xstilts.tasks.types import Example


def span_items(
    tokenizer: Any, task: str, examples: Sequence[Example], max_length: int, doc_stride: int = DOC_STRIDE
) -> list[dict[str, Any]]:
    """Phase dataset items of a QA task: every window of every example (a window without the answer points at 0)."""
    windower = Windower(tokenizer, max_length, doc_stride)
    return [
        {"task": task, "input_ids": [window.ids], "label": 0, "start_position": start, "end_position": end}
        for window, (start, end) in training_windows(windower, examples)
    ]


def span_targets(items: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The batch's ``start_positions`` and ``end_positions`` tensors."""
    import torch

    return {
        "start_positions": torch.tensor([item["start_position"] for item in items], dtype=torch.long),
        "end_positions": torch.tensor([item["end_position"] for item in items], dtype=torch.long),
    }
