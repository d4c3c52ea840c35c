"""The shapes every stage shares: a task, its splits, and one example."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from xstilts.contracts.kinds import TaskKind
from xstilts.errors import XstiltsError


@dataclass(frozen=True)
class Example:
    """One labelled item in one language.

    ``uid`` names the underlying item, shared by all translations of it: two examples with the same
    ``uid`` in different languages are the same item, which is what the leak checks compare.
    For multiple choice, ``text_a`` is the premise or context, ``text_b`` the question and ``choices``
    the candidate answers; ``label`` is the index of the right one. For retrieval (``TaskKind.EMBEDDING``),
    ``text_a`` is the sentence in ``language``, ``text_b`` its English counterpart and ``label`` its index.
    For extractive QA (``TaskKind.SPAN_QA``), ``text_a`` is the context, ``text_b`` the question and ``answers``
    the gold answers as (text, character start in the context). For tagging (``TaskKind.TOKEN_CLASSIFICATION``),
    ``words`` are the sentence's words, ``tags`` their tags (names from the task's labels) and ``text_a`` the
    words joined by single spaces.
    """

    uid: str
    language: str
    text_a: str
    text_b: str | None
    label: int
    choices: tuple[str, ...] = ()
    answers: tuple[tuple[str, int], ...] = ()
    words: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()


Parser = Callable[[Sequence[Path], str], list[Example]]


@dataclass(frozen=True)
class Split:
    """A named split: which languages it has, where its files are, and how to read them.

    ``layouts`` lists path templates relative to the data folder, one alternative per on-disk layout
    (this project's staged files, XTREME's download layout); ``{lang}`` is filled in. A template may
    name several files separated by ``+`` (read together, in order).
    """

    languages: tuple[str, ...]
    layouts: tuple[str, ...]
    parser: Parser
    language_layouts: dict[str, tuple[str, ...]] = field(default_factory=dict)
    keep: Callable[[Example], bool] | None = None
    note: str = ""
    # True: ``languages`` are those the layout is known to hold (Tatoeba: XTREME's 36), of which a data folder
    # usually has a few; listings and ``all`` take the languages present, and any other code present loads too.
    present_only: bool = False
    # False: each language's items are its own (PAN-X, UD-POS), not translations of the same items; an evaluation
    # sample then draws its seeded items in each language separately.
    parallel: bool = True

    def templates_for(self, language: str) -> tuple[str, ...]:
        return self.language_layouts.get(language, self.layouts)


@dataclass(frozen=True)
class Task:
    """A task: its kind, label names, languages and splits, and the split used to train on it."""

    name: str
    kind: TaskKind
    labels: tuple[str, ...]
    splits: dict[str, Split]
    train_split: str
    eval_split: str
    description: str
    license: str

    @property
    def languages(self) -> tuple[str, ...]:
        seen: dict[str, None] = {}
        for split in self.splits.values():
            seen.update(dict.fromkeys(split.languages))
        return tuple(seen)

    @property
    def num_labels(self) -> int:
        return len(self.labels)

    def check_head(self, kind: str, labels: Sequence[str], head: str = "the checkpoint's head") -> None:
        """Fail unless a head of ``kind`` with ``labels`` fits this task (its kind and its number of labels)."""
        if kind != self.kind.value or len(labels) != self.num_labels:
            raise XstiltsError(
                f"{head} ({kind}, labels {list(labels)}) does not fit task {self.name} "
                f"({self.kind.value}, labels {list(self.labels)})"
            )
