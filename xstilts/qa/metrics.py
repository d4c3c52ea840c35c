"""Extractive QA metrics: the official SQuAD v1.1 exact match and F1, and MLQA's per-language variant.

Ported from the official evaluation scripts (SQuAD v1.1 ``evaluate-v1.1.py``; MLQA ``evaluate_mlqa.py``), which
XTREME uses as they are: SQuAD's for XQuAD and TyDiQA-GoldP, MLQA's for MLQA. Scores are fractions in [0, 1] (the
scripts print percentages); the best score over an item's gold answers counts, as in both scripts.
"""

from __future__ import annotations

import re
import string
import unicodedata
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

from xstilts.errors import XstiltsError
from xstilts.tasks.types import Example

_ASCII_PUNCTUATION = frozenset(string.punctuation)
# MLQA's articles per language (the regular expressions of evaluate_mlqa.py); hi and zh have none.
_MLQA_ARTICLES = {
    "en": r"\b(a|an|the)\b",
    "es": r"\b(un|una|unos|unas|el|la|los|las)\b",
    "vi": r"\b(của|là|cái|chiếc|những)\b",
    "de": r"\b(ein|eine|einen|einem|eines|einer|der|die|das|den|dem|des)\b",
    "ar": r"\sال^|ال",
    "hi": None,
    "zh": None,
}
_MIXED_SEGMENTATION = frozenset({"zh"})  # scripts without spaces: each CJK character is a token
_CJK = re.compile(r"[\u4e00-\u9fa5]")


def squad_normalize(text: str) -> str:
    """SQuAD v1.1: lower case, no ASCII punctuation, no English articles, single spaces."""
    text = "".join(ch for ch in text.lower() if ch not in _ASCII_PUNCTUATION)
    text = re.sub(r"\b(a|an|the)\b", " ", text)
    return " ".join(text.split())


def _is_punctuation(ch: str) -> bool:
    """MLQA's punctuation: every Unicode character of a P* category, and ASCII punctuation."""
    return ch in _ASCII_PUNCTUATION or unicodedata.category(ch).startswith("P")


def _mixed_segmentation(text: str) -> list[str]:
    """MLQA's tokens for Chinese: every CJK character (and punctuation) alone, whitespace splits the rest."""
    tokens: list[str] = []
    pending = ""
    for ch in text:
        if _CJK.search(ch) or _is_punctuation(ch):
            tokens.extend(pending.split())
            pending = ""
            tokens.append(ch)
        else:
            pending += ch
    tokens.extend(pending.split())
    return tokens


def mlqa_normalizer(language: str) -> Callable[[str], str]:
    """MLQA's normalisation for ``language``: lower case, no Unicode punctuation, the language's articles, tokens."""
    if language not in _MLQA_ARTICLES:
        raise XstiltsError(f"MLQA's evaluation has no rules for language {language!r}: it knows {list(_MLQA_ARTICLES)}")
    articles = _MLQA_ARTICLES[language]
    segment = _mixed_segmentation if language in _MIXED_SEGMENTATION else str.split

    def normalize(text: str) -> str:
        text = "".join(ch for ch in text.lower() if not _is_punctuation(ch))
        if articles:
            text = re.sub(articles, " ", text)
        return " ".join(t for t in segment(text) if t.strip())

    return normalize


def exact_match(prediction: str, gold: str, normalize: Callable[[str], str] = squad_normalize) -> float:
    return float(normalize(prediction) == normalize(gold))


def f1(prediction: str, gold: str, normalize: Callable[[str], str] = squad_normalize) -> float:
    """Token-overlap F1 between the normalised prediction and gold answer (whitespace tokens)."""
    predicted, expected = normalize(prediction).split(), normalize(gold).split()
    common = sum((Counter(predicted) & Counter(expected)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(predicted), common / len(expected)
    return 2 * precision * recall / (precision + recall)


@dataclass(frozen=True)
class Score:
    """Exact match and F1 (fractions) over ``examples`` items."""

    exact_match: float
    f1: float
    examples: int

    def as_dict(self) -> dict[str, float | int]:
        return {"f1": self.f1, "exact_match": self.exact_match, "examples": self.examples}


def score(
    predictions: Mapping[str, str],
    golds: Mapping[str, Sequence[str]],
    normalize: Callable[[str], str] = squad_normalize,
) -> Score:
    """Mean over the gold items of the best EM and F1 against any of their answers; an unanswered item scores 0."""
    if not golds:
        raise XstiltsError("no gold answers to score against")
    em_total = f1_total = 0.0
    for uid, answers in golds.items():
        prediction = predictions.get(uid, "")
        em_total += _best(exact_match, prediction, answers, normalize)
        f1_total += _best(f1, prediction, answers, normalize)
    return Score(em_total / len(golds), f1_total / len(golds), len(golds))


def _best(metric, prediction: str, answers: Iterable[str], normalize: Callable[[str], str]) -> float:
    return max((metric(prediction, answer, normalize) for answer in answers), default=0.0)


# Tasks scored by MLQA's script (per-language normalisation); every other QA task by SQuAD v1.1's, as XTREME does.
_MLQA_SCORED = frozenset({"mlqa"})


def normalizer_for(task: str, language: str) -> Callable[[str], str]:
    """The answer normalisation ``task``'s official evaluation applies in ``language``."""
    return mlqa_normalizer(language) if task in _MLQA_SCORED else squad_normalize


def score_examples(task: str, language: str, examples: Sequence[Example], predictions: Sequence[str]) -> Score:
    """EM and F1 of one prediction per example (same order) against the examples' gold answers."""
    golds = {str(i): [text for text, _ in e.answers] for i, e in enumerate(examples)}
    return score({str(i): p for i, p in enumerate(predictions)}, golds, normalizer_for(task, language))
