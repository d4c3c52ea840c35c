"""Top-1 retrieval and margin mining on constructed vectors whose right answers are known."""

from __future__ import annotations

import numpy as np
import pytest

from xstilts.retrieval import search
from xstilts.retrieval.search import knn, mine, mining_score, tatoeba_accuracy, unit


def noisy_copy(vectors: np.ndarray, rng: np.random.Generator, noise: float) -> np.ndarray:
    return vectors + noise * rng.standard_normal(vectors.shape).astype(np.float32)


def test_tatoeba_accuracy_counts_the_rows_that_find_their_counterpart():
    rng = np.random.default_rng(0)
    source = rng.standard_normal((1000, 64)).astype(np.float32)
    target = noisy_copy(source, rng, 0.05)
    assert tatoeba_accuracy(source, target) == 1.0
    # swap 30 targets in pairs: exactly those 30 rows retrieve the wrong sentence
    swapped = target.copy()
    swapped[0:30:2], swapped[1:30:2] = target[1:30:2], target[0:30:2]
    assert tatoeba_accuracy(source, swapped) == pytest.approx(0.97)
    # cosine, not dot product: a longer wrong vector does not win
    scaled = target.copy()
    scaled[5] *= 100.0
    assert tatoeba_accuracy(source, scaled) == 1.0
    assert tatoeba_accuracy(source, rng.standard_normal((1000, 64)).astype(np.float32)) < 0.02


def test_tatoeba_accuracy_needs_aligned_sides():
    with pytest.raises(ValueError, match="aligned, non-empty"):
        tatoeba_accuracy(np.zeros((3, 4)), np.zeros((2, 4)))


def test_knn_in_blocks_matches_a_full_sort(monkeypatch):
    rng = np.random.default_rng(1)
    queries, keys = unit(rng.standard_normal((50, 16))), unit(rng.standard_normal((70, 16)))
    monkeypatch.setattr(search, "BLOCK", 7)  # several blocks, the last one partial
    sims, idx = knn(queries, keys, 4)
    full = queries @ keys.T
    expected = np.argsort(-full, axis=1)[:, :4]
    assert (idx == expected).all()
    assert np.allclose(sims, np.take_along_axis(full, expected, axis=1))


def mining_case(seed: int = 0, pairs: int = 200, source_only: int = 300, target_only: int = 400, noise: float = 0.3):
    """Random sentences; the first ``pairs`` targets are noisy copies of sources (shuffled), the rest distractors."""
    rng = np.random.default_rng(seed)
    source = rng.standard_normal((pairs + source_only, 64)).astype(np.float32)
    target = np.concatenate([noisy_copy(source[:pairs], rng, noise), rng.standard_normal((target_only, 64))])
    order = rng.permutation(len(target))
    target = target[order].astype(np.float32)
    where = {int(old): new for new, old in enumerate(order)}
    return source, target, [(i, where[i]) for i in range(pairs)]


def test_margin_mining_finds_the_parallel_pairs_and_rejects_distractors():
    source, target, gold = mining_case()
    candidates = mine(source, target)
    assert set(gold) <= set(candidates)  # every true pair is some sentence's best candidate
    score = mining_score(candidates, gold, len(source), seed=0)
    assert score.f1 == 1.0 and score.precision == 1.0 and score.recall == 1.0
    assert 70 <= score.gold <= 130  # the held-out half of the 200 gold pairs
    assert score.mined == score.gold
    # distractors' best candidates score below every true pair
    true_scores = [candidates[p] for p in gold]
    false_scores = [s for p, s in candidates.items() if p not in set(gold)]
    assert min(true_scores) > score.threshold > max(false_scores)


def test_mining_score_reports_the_held_out_half_at_the_tuned_threshold():
    num_sources, seed = 8, 3
    gold = [(i, i) for i in range(num_sources)]
    candidates = {(i, i): 2.0 for i in range(num_sources)}
    candidates.update({(i, (i + 1) % num_sources): 1.5 for i in range(num_sources)})  # each a wrong one, below
    score = mining_score(candidates, gold, num_sources, seed)
    assert score.threshold == 1.75  # midway between the last right and the first wrong score of the tuning half
    assert (score.f1, score.gold, score.mined) == (1.0, 4, 4)
    # a noisier case: with half the gold pairs missing from the candidates, recall is what is left of half 1
    sparse = {pair: s for pair, s in candidates.items() if pair[0] % 2 == 0}
    sparse_score = mining_score(sparse, gold, num_sources, seed)
    assert sparse_score.precision == 1.0
    assert sparse_score.recall == pytest.approx(sparse_score.mined / sparse_score.gold)
    assert sparse_score.recall < 1.0


def test_margin_beats_plain_cosine_on_a_hub():
    """A hub target close to many sources is what the ratio margin discounts (Artetxe & Schwenk 2019)."""
    source, target, gold = mining_case(seed=2, noise=0.9)
    hub = unit(source[: len(gold)].mean(axis=0, keepdims=True)) * 30
    target = np.concatenate([target, hub.astype(np.float32)])
    candidates = mine(source, target)
    hub_row = len(target) - 1
    assert sum(j == hub_row for _, j in candidates) <= 1  # the hub is nobody's best match by margin
    assert mining_score(candidates, gold, len(source)).f1 > 0.9
