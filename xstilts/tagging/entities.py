"""BIO tags to entity spans, read strictly (as seqeval's strict IOB2 mode, so that served entities are the ones
the metric counts): an entity starts at ``B-TYPE`` and continues over the ``I-TYPE`` words right after it; an
``I-`` tag that does not continue an entity of its type starts none."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from xstilts.tagging.words import Word

OUTSIDE = "O"


@dataclass(frozen=True)
class Entity:
    """One entity: its text, type, character offsets (``text[start:end]``) and score (the mean probability of
    its words' tags)."""

    text: str
    type: str
    start: int
    end: int
    score: float


def is_bio(tags: Sequence[str]) -> bool:
    """Whether a tag set is in BIO form (named entities) rather than plain tags (parts of speech)."""
    return OUTSIDE in tags and all(t == OUTSIDE or t[:2] in ("B-", "I-") for t in tags)


def tag_spans(tags: Sequence[str]) -> list[tuple[str, int, int]]:
    """(type, first word, last word + 1) of each entity in a sentence's tags."""
    spans: list[tuple[str, int, int]] = []
    index = 0
    while index < len(tags):
        tag = tags[index]
        if not tag.startswith("B-"):
            index += 1
            continue
        kind, end = tag[2:], index + 1
        while end < len(tags) and tags[end] == f"I-{kind}":
            end += 1
        spans.append((kind, index, end))
        index = end
    return spans


def entities(text: str, words: Sequence[Word], tags: Sequence[str], scores: Sequence[float]) -> list[Entity]:
    """The entities of ``text``, whose ``words`` carry ``tags`` with the probability ``scores`` of each tag."""
    out = []
    for kind, first, last in tag_spans(tags):
        start, end = words[first].start, words[last - 1].end
        score = sum(scores[first:last]) / (last - first)
        out.append(Entity(text[start:end], kind, start, end, float(score)))
    return out
