"""From start/end logits of an item's windows to its best answer spans in the original context (numpy only).

As the SQuAD reference post-processing: in each window the ``n_best`` highest start and end logits among its
context tokens make the candidate spans (end not before start, at most ``max_answer_length`` tokens); a span's
logit is its start logit plus its end logit, comparable across windows; spans reaching the same characters from
overlapping windows count once (their best). An answer's score is the softmax of its logit over the item's
candidates.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from xstilts.qa.windows import Window, span_characters

N_BEST = 20
MAX_ANSWER_LENGTH = 30  # tokens


@dataclass(frozen=True)
class Answer:
    """An answer span: its text, character start and end (exclusive) in the context, and its score in [0, 1]."""

    text: str
    start: int
    end: int
    score: float


def _window_candidates(
    window: Window, start_logits: np.ndarray, end_logits: np.ndarray, n_best: int, max_answer_length: int
) -> list[tuple[float, int, int]]:
    """(logit, start token, end token) of a window's candidate spans."""
    context = np.array([span is not None for span in window.offsets])
    width = len(window.offsets)
    starts, ends = np.asarray(start_logits[:width], float), np.asarray(end_logits[:width], float)
    positions = np.flatnonzero(context)
    best_starts = positions[np.argsort(-starts[positions], kind="stable")[:n_best]]
    best_ends = positions[np.argsort(-ends[positions], kind="stable")[:n_best]]
    s, e = np.meshgrid(best_starts, best_ends, indexing="ij")
    valid = (e >= s) & (e - s + 1 <= max_answer_length)
    logits = starts[s] + ends[e]
    return [(float(logits[i, j]), int(s[i, j]), int(e[i, j])) for i, j in zip(*np.nonzero(valid), strict=True)]


def best_answers(
    context: str,
    windows: Sequence[Window],
    start_logits: Sequence[np.ndarray],
    end_logits: Sequence[np.ndarray],
    top_k: int = 1,
    n_best: int = N_BEST,
    max_answer_length: int = MAX_ANSWER_LENGTH,
) -> list[Answer]:
    """The ``top_k`` best distinct answers of one item (fewer if it has fewer candidates), best first.

    ``start_logits[i]`` and ``end_logits[i]`` are window ``i``'s logits (padding past its length is ignored).
    """
    by_span: dict[tuple[int, int], float] = {}
    for window, starts, ends in zip(windows, start_logits, end_logits, strict=True):
        for logit, s, e in _window_candidates(window, starts, ends, n_best, max_answer_length):
            span = span_characters(context, window, s, e)
            if span[1] > span[0] and logit > by_span.get(span, -np.inf):
                by_span[span] = logit
    if not by_span:
        return []
    spans = sorted(by_span, key=by_span.__getitem__, reverse=True)
    logits = np.array([by_span[s] for s in spans])
    scores = np.exp(logits - logits[0])
    scores /= scores.sum()
    return [Answer(context[a:b], a, b, float(p)) for (a, b), p in zip(spans[:top_k], scores[:top_k], strict=False)]


def group_windows(windows: Sequence[Window], items: int) -> list[list[int]]:
    """The window indices of each item, in order."""
    grouped: list[list[int]] = [[] for _ in range(items)]
    for index, window in enumerate(windows):
        grouped[window.item].append(index)
    return grouped


def item_answers(
    contexts: Sequence[str],
    windows: Sequence[Window],
    start_logits: Sequence[np.ndarray],
    end_logits: Sequence[np.ndarray],
    top_k: int = 1,
    max_answer_length: int = MAX_ANSWER_LENGTH,
) -> list[list[Answer]]:
    """The best answers of every item, given the windows of all items and each window's logits (in window order)."""
    out = []
    for item, indices in enumerate(group_windows(windows, len(contexts))):
        out.append(
            best_answers(
                contexts[item],
                [windows[i] for i in indices],
                [start_logits[i] for i in indices],
                [end_logits[i] for i in indices],
                top_k=top_k,
                max_answer_length=max_answer_length,
            )
        )
    return out
