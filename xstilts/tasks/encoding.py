"""How an example becomes model input segments: one rule shared by training, export, serving and bench."""

from __future__ import annotations

from xstilts.contracts.kinds import TaskKind
from xstilts.tasks.types import Example

Segments = tuple[str, str | None]


def choice_segments(premise: str, question: str | None, choices: tuple[str, ...] | list[str]) -> list[Segments]:
    """Multiple choice: one (premise, "question choice") pair per choice."""
    return [(premise, f"{question} {choice}" if question else choice) for choice in choices]


def example_segments(kind: TaskKind, example: Example) -> list[Segments]:
    """The segment pairs to tokenize for ``example``: one for classification, one per choice for multiple choice,
    one per side (the sentence, its English counterpart) for retrieval."""
    if kind is TaskKind.MULTIPLE_CHOICE:
        return choice_segments(example.text_a, example.text_b, example.choices)
    if kind is TaskKind.SINGLE:
        return [(example.text_a, None)]
    if kind is TaskKind.EMBEDDING:  # retrieval: each side is embedded alone (with the model's prefix, if any)
        return [(example.text_a, None), (example.text_b or "", None)]
    return [(example.text_a, example.text_b)]
