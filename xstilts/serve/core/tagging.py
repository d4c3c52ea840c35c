"""Tagging in the serving core: an item's words into windows, and the windows' token logits back into tags.

An item is a raw text, split into words with character offsets by the one rule of :mod:`xstilts.tagging.words`,
or pre-split words (joined by single spaces, the offsets pointing into that text). The words go through the
bundle's tokenizer as pre-split words (:class:`~xstilts.tagging.alignment.WordTokenizer`): a sentence longer than
one window of the bundle's ``max_length`` is split between words into several windows, each its own row of a
batch, so nothing is truncated. A word's tag is the arg-max of the logits at its first sub-word, its score that
tag's probability; for BIO tag sets (named entities) the words' tags also become entities, read strictly as the
metric reads them (:mod:`xstilts.tagging.entities`), with the character offsets of their first and last words.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from xstilts.serve.core.encoder import EncodedItem
from xstilts.serve.core.probabilities import softmax
from xstilts.tagging.alignment import Window, WordTokenizer, word_logits
from xstilts.tagging.entities import Entity, entities, is_bio
from xstilts.tagging.words import Word, join_words, split_words


@dataclass(frozen=True)
class TagItem:
    """One item to tag: its text and its words, each with its character offsets in the text."""

    text: str
    words: list[Word]

    @classmethod
    def from_text(cls, text: str) -> TagItem:
        """A raw text, split into words by the word-splitting rule."""
        return cls(text, split_words(text))

    @classmethod
    def from_words(cls, words: Sequence[str]) -> TagItem:
        """Pre-split words, joined by single spaces."""
        text, placed = join_words(words)
        return cls(text, placed)


@dataclass(frozen=True)
class TaggedWord:
    """A word, where it is in its item's text, its tag and the tag's probability."""

    text: str
    start: int
    end: int
    tag: str
    score: float


@dataclass
class Tagged:
    """One item's answer: its text, its tagged words, its entities (BIO tag sets only) and how many windows it took."""

    text: str
    words: list[TaggedWord]
    entities: list[Entity] | None
    windows: int

    @property
    def tags(self) -> list[str]:
        return [w.tag for w in self.words]


class Tagger:
    """A tagging bundle's word windows and the reading of its token logits (one per served tagging model)."""

    def __init__(self, tokenizer: Any, max_length: int, labels: Sequence[str]) -> None:
        self.words = WordTokenizer(tokenizer, max_length)
        self.labels = list(labels)
        self.bio = is_bio(self.labels)

    def windows(self, items: Sequence[TagItem]) -> list[list[Window]]:
        """Each item's windows, in order."""
        return self.words.windows([[w.text for w in item.words] for item in items])

    @staticmethod
    def encoded(windows: Sequence[Sequence[Window]]) -> list[EncodedItem]:
        """Every window of every item as one batch row, items in order."""
        return [EncodedItem([window.ids], truncated=False) for sentence in windows for window in sentence]

    def read(
        self, items: Sequence[TagItem], windows: Sequence[Sequence[Window]], logits: Sequence[np.ndarray]
    ) -> list[Tagged]:
        """Each item's tags from its windows' logits (``logits``: one ``[tokens, labels]`` array per window)."""
        out, position = [], 0
        for item, sentence in zip(items, windows, strict=True):
            rows = word_logits(sentence, logits[position : position + len(sentence)], len(item.words), len(self.labels))
            position += len(sentence)
            probabilities = softmax(rows.astype(np.float64)) if len(rows) else rows
            best = probabilities.argmax(-1) if len(rows) else np.zeros(0, dtype=np.int64)
            tags = [self.labels[i] for i in best]
            scores = [float(probabilities[row, i]) for row, i in enumerate(best)]
            words = [TaggedWord(w.text, w.start, w.end, t, s) for w, t, s in zip(item.words, tags, scores, strict=True)]
            found = entities(item.text, item.words, tags, scores) if self.bio else None
            out.append(Tagged(item.text, words, found, len(sentence)))
        return out
