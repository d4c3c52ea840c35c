"""The tagging metrics on hand-made cases whose values are known (seqeval's strict IOB2 mode, word accuracy)."""

from __future__ import annotations

import pytest

from xstilts.tagging.metrics import ACCURACY, F1, entity_f1, metric_name, score, word_accuracy
from xstilts.tasks.tagged import PANX_TAGS, UPOS_TAGS


def test_seqeval_readme_case():
    """seqeval's README example: one of two entities right in each of gold and predicted, F1 0.5."""
    gold = [["O", "O", "O", "B-MISC", "I-MISC", "I-MISC", "O"], ["B-PER", "I-PER", "O"]]
    predicted = [["O", "O", "B-MISC", "I-MISC", "I-MISC", "I-MISC", "O"], ["B-PER", "I-PER", "O"]]
    assert entity_f1(gold, predicted) == pytest.approx(0.5)


@pytest.mark.parametrize(
    ("gold", "predicted", "f1"),
    [
        ([["B-PER", "I-PER", "O"]], [["B-PER", "I-PER", "O"]], 1.0),
        # strict: an entity begun with I- is no entity (conlleval's lenient reading would score 1.0)
        ([["B-PER", "I-PER", "O"]], [["I-PER", "I-PER", "O"]], 0.0),
        # wrong type, wrong boundary: nothing right
        ([["B-PER", "I-PER", "O"]], [["B-ORG", "I-ORG", "O"]], 0.0),
        ([["B-PER", "I-PER", "O"]], [["B-PER", "O", "O"]], 0.0),
        # 2 gold, 3 predicted, 2 right: precision 2/3, recall 1, F1 0.8
        ([["B-LOC", "O", "B-PER"]], [["B-LOC", "B-ORG", "B-PER"]], 0.8),
        # across sentences, micro-averaged: 1 of 2 gold found, 1 of 1 predicted right: F1 2/3
        ([["B-LOC"], ["B-PER"]], [["B-LOC"], ["O"]], 2 / 3),
    ],
)
def test_entity_f1_known_values(gold, predicted, f1):
    assert entity_f1(gold, predicted) == pytest.approx(f1)


def test_word_accuracy_counts_words_not_sentences():
    gold = [["NOUN", "VERB", "PUNCT"], ["DET"]]
    predicted = [["NOUN", "NOUN", "PUNCT"], ["DET"]]
    assert word_accuracy(gold, predicted) == pytest.approx(0.75)
    assert score(ACCURACY, gold, predicted) == pytest.approx(0.75)


def test_metric_follows_the_tag_set():
    assert metric_name(PANX_TAGS) == F1 and metric_name(UPOS_TAGS) == ACCURACY
