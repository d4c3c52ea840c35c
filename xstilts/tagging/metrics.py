"""Tagging metrics: entity-level F1 for BIO tag sets (seqeval, strict IOB2), word accuracy for plain tags."""

from __future__ import annotations

from collections.abc import Sequence

from xstilts.tagging.entities import is_bio

F1 = "f1"
ACCURACY = "accuracy"


def metric_name(tags: Sequence[str]) -> str:
    """The metric a tag set is scored by: entity F1 for BIO tags (NER), accuracy otherwise (POS)."""
    return F1 if is_bio(tags) else ACCURACY


def entity_f1(gold: Sequence[Sequence[str]], predicted: Sequence[Sequence[str]]) -> float:
    """Micro-averaged entity F1 over sentences (an entity counts when its type and exact words match)."""
    from seqeval.metrics import f1_score
    from seqeval.scheme import IOB2

    return float(f1_score([list(s) for s in gold], [list(s) for s in predicted], mode="strict", scheme=IOB2))


def word_accuracy(gold: Sequence[Sequence[str]], predicted: Sequence[Sequence[str]]) -> float:
    """The share of words whose tag is right."""
    pairs = [(g, p) for gs, ps in zip(gold, predicted, strict=True) for g, p in zip(gs, ps, strict=True)]
    return sum(g == p for g, p in pairs) / len(pairs) if pairs else 0.0


def score(metric: str, gold: Sequence[Sequence[str]], predicted: Sequence[Sequence[str]]) -> float:
    """``metric`` (F1 or ACCURACY) of predicted tags against gold tags, sentence by sentence."""
    return entity_f1(gold, predicted) if metric == F1 else word_accuracy(gold, predicted)
