"""Nearest-neighbour retrieval and margin-based bitext mining on sentence vectors, in numpy.

Exact search with numpy matrix products: Tatoeba's 1,000 x 1,000 and the proxies' few thousand are a single
product; BUCC's up to a few hundred thousand sentences per side go through in row blocks, so memory stays at
one block of scores (faiss would only pay off far beyond these sizes).
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

BLOCK = 2048
MARGIN_K = 4  # neighbours in the margin's denominator (Artetxe & Schwenk 2019)


def unit(vectors: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (cosine becomes a dot product)."""
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return (vectors / np.maximum(norms, 1e-12)).astype(np.float32)


def tatoeba_accuracy(source: np.ndarray, target: np.ndarray) -> float:
    """Top-1 accuracy of xx->en retrieval by cosine: row i of ``source`` should find row i of ``target``.

    numpy is enough: 1,000 x 1,000 cosines are one matrix product.
    """
    if len(source) != len(target) or not len(source):
        raise ValueError(f"retrieval needs aligned, non-empty sides, got {len(source)} and {len(target)} vectors")
    best = (unit(source) @ unit(target).T).argmax(axis=1)
    return float((best == np.arange(len(source))).mean())


def knn(queries: np.ndarray, keys: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` most similar keys of every query (unit vectors): (similarities, indices), best first."""
    k = min(k, len(keys))
    sims = np.empty((len(queries), k), dtype=np.float32)
    idx = np.empty((len(queries), k), dtype=np.int64)
    for start in range(0, len(queries), BLOCK):
        scores = queries[start : start + BLOCK] @ keys.T
        top = np.argpartition(-scores, k - 1, axis=1)[:, :k]
        top_scores = np.take_along_axis(scores, top, axis=1)
        order = np.argsort(-top_scores, axis=1)
        idx[start : start + BLOCK] = np.take_along_axis(top, order, axis=1)
        sims[start : start + BLOCK] = np.take_along_axis(top_scores, order, axis=1)
    return sims, idx


def mine(source: np.ndarray, target: np.ndarray, k: int = MARGIN_K) -> dict[tuple[int, int], float]:
    """Candidate pairs (source row, target row) with their ratio-margin score, from both directions.

    margin(x, y) = cos(x, y) / (mean cos of x to its k nearest targets / 2 + mean cos of y to its k nearest
    sources / 2). Each source's best target among its k neighbours, and each target's best source, is a
    candidate (the union; a pair found both ways once).
    """
    x, y = unit(source), unit(target)
    x_sims, x_idx = knn(x, y, k)
    y_sims, y_idx = knn(y, x, k)
    x_mean, y_mean = x_sims.mean(axis=1), y_sims.mean(axis=1)
    candidates: dict[tuple[int, int], float] = {}
    forward = x_sims / ((x_mean[:, None] + y_mean[x_idx]) / 2)
    for i, j in enumerate(forward.argmax(axis=1)):
        candidates[(i, int(x_idx[i, j]))] = float(forward[i, j])
    backward = y_sims / ((y_mean[:, None] + x_mean[y_idx]) / 2)
    for j, i in enumerate(backward.argmax(axis=1)):
        pair = (int(y_idx[j, i]), j)
        candidates[pair] = max(candidates.get(pair, float("-inf")), float(backward[j, i]))
    return candidates


@dataclass(frozen=True)
class MiningScore:
    """Precision, recall and F1 of mined pairs on held-out gold pairs, at a threshold chosen on the other half."""

    precision: float
    recall: float
    f1: float
    threshold: float
    gold: int  # held-out gold pairs
    mined: int  # held-out candidates at or above the threshold

    def to_json(self) -> dict[str, float | int]:
        return {
            "f1": self.f1,
            "precision": self.precision,
            "recall": self.recall,
            "threshold": self.threshold,
            "gold": self.gold,
            "mined": self.mined,
        }


def _f1(precision: float, recall: float) -> float:
    return 2 * precision * recall / (precision + recall) if precision + recall else 0.0


def _score_at(ranked: list[tuple[float, bool]], gold: int, threshold: float) -> tuple[float, float, float, int]:
    kept = [hit for score, hit in ranked if score >= threshold]
    hits = sum(kept)
    precision = hits / len(kept) if kept else 0.0
    recall = hits / gold if gold else 0.0
    return precision, recall, _f1(precision, recall), len(kept)


def _best_threshold(ranked: list[tuple[float, bool]], gold: int) -> float:
    """The F1-best cut of ``ranked`` (score, is gold) pairs, sorted best first: midway between the last kept score
    and the next one, so that a held-out pair scoring just below the last tuning pair is not cut by chance."""
    best, cut, hits = -1.0, 0, 0
    for n, (_, hit) in enumerate(ranked, 1):
        hits += hit
        f1 = _f1(hits / n, hits / gold if gold else 0.0)
        if f1 > best:
            best, cut = f1, n
    if not ranked:
        return float("inf")
    kept = ranked[cut - 1][0]
    return (kept + ranked[cut][0]) / 2 if cut < len(ranked) else kept


def mining_score(
    candidates: dict[tuple[int, int], float],
    gold: Sequence[tuple[int, int]],
    num_sources: int,
    seed: int = 0,
) -> MiningScore:
    """Score mined ``candidates`` against ``gold`` (source row, target row) pairs.

    The source sentences are split in two seeded halves (with their gold pairs and candidates): the F1-best
    threshold on half 0 is applied to half 1, whose precision, recall and F1 are reported. Splitting sources, not
    just gold pairs, keeps the non-parallel distractor sentences in both halves, so precision stays honest.
    """
    rows = list(range(num_sources))
    random.Random(seed).shuffle(rows)
    tuning = set(rows[: num_sources // 2])
    gold_set = set(gold)
    halves: list[list[tuple[float, bool]]] = [[], []]
    for pair, score in candidates.items():
        halves[pair[0] not in tuning].append((score, pair in gold_set))
    for half in halves:
        half.sort(key=lambda item: -item[0])
    gold_counts = [sum(pair[0] in tuning for pair in gold_set), sum(pair[0] not in tuning for pair in gold_set)]
    threshold = _best_threshold(halves[0], gold_counts[0])
    precision, recall, f1, mined = _score_at(halves[1], gold_counts[1], threshold)
    return MiningScore(precision, recall, f1, threshold, gold_counts[1], mined)
