"""Words of raw text and entity spans: exactly the right characters in Latin, Cyrillic, Arabic, Chinese and
Japanese text; the strict BIO reading matches seqeval's."""

from __future__ import annotations

import random

import pytest

from xstilts.tagging.entities import entities, tag_spans
from xstilts.tagging.words import join_words, split_words

# (text, its words by the documented rule, one tag per word, the entities as (text, type))
CASES = {
    "latin": (
        "Angela Merkel visited Paris, France.",
        ["Angela", "Merkel", "visited", "Paris", ",", "France", "."],
        ["B-PER", "I-PER", "O", "B-LOC", "O", "B-LOC", "O"],
        [("Angela Merkel", "PER"), ("Paris", "LOC"), ("France", "LOC")],
    ),
    "cyrillic": (
        "Владимир  Путин посетил «Газпром».",
        ["Владимир", "Путин", "посетил", "«", "Газпром", "»", "."],
        ["B-PER", "I-PER", "O", "O", "B-ORG", "O", "O"],
        [("Владимир  Путин", "PER"), ("Газпром", "ORG")],
    ),
    "arabic": (
        "زار محمد بن سلمان القاهرة، اليوم",
        ["زار", "محمد", "بن", "سلمان", "القاهرة", "،", "اليوم"],
        ["O", "B-PER", "I-PER", "I-PER", "B-LOC", "O", "O"],
        [("محمد بن سلمان", "PER"), ("القاهرة", "LOC")],
    ),
    "chinese": (
        "我住在北京市。",
        ["我", "住", "在", "北", "京", "市", "。"],
        ["O", "O", "O", "B-LOC", "I-LOC", "I-LOC", "O"],
        [("北京市", "LOC")],
    ),
    "japanese": (
        "東京タワーはトヨタの近く",
        ["東", "京", "タ", "ワ", "ー", "は", "ト", "ヨ", "タ", "の", "近", "く"],
        ["B-LOC", "I-LOC", "I-LOC", "I-LOC", "I-LOC", "O", "B-ORG", "I-ORG", "I-ORG", "O", "O", "O"],
        [("東京タワー", "LOC"), ("トヨタ", "ORG")],
    ),
}


@pytest.mark.parametrize("script", CASES)
def test_entities_map_back_to_exactly_their_characters(script):
    text, expected_words, tags, expected = CASES[script]
    words = split_words(text)
    assert [w.text for w in words] == expected_words
    assert all(text[w.start : w.end] == w.text for w in words)
    found = entities(text, words, tags, [0.5] * len(words))
    assert [(e.text, e.type) for e in found] == expected
    assert all(text[e.start : e.end] == e.text for e in found)


def test_marks_and_joiners_stay_inside_words():
    """Devanagari vowel signs (marks) and the Persian zero-width non-joiner do not split a word."""
    assert [w.text for w in split_words("हिन्दी भाषा")] == ["हिन्दी", "भाषा"]
    assert [w.text for w in split_words("می\u200cخواهم")] == ["می\u200cخواهم"]


def test_joined_words_offsets_point_into_the_joined_text():
    text, words = join_words(["New", "York", "City"])
    assert text == "New York City" and [(w.start, w.end) for w in words] == [(0, 3), (4, 8), (9, 13)]
    found = entities(text, words, ["B-LOC", "I-LOC", "I-LOC"], [0.9, 0.6, 0.6])
    assert [(e.text, e.start, e.end) for e in found] == [("New York City", 0, 13)]
    assert found[0].score == pytest.approx(0.7)


def test_strict_reading_matches_seqeval():
    from seqeval.scheme import IOB2, Entities

    rng = random.Random(0)
    tags = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]
    for _ in range(300):
        sentence = [rng.choice(tags) for _ in range(rng.randint(1, 12))]
        theirs = [(e.tag, e.start, e.end) for e in Entities([sentence], IOB2).entities[0]]
        assert tag_spans(sentence) == theirs, sentence
