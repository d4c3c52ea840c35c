"""Extractive QA: the official metrics on hand-made cases, windows round-trips on real XQuAD, SQuAD file errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from xstilts.errors import XstiltsError
from xstilts.qa.metrics import exact_match, f1, mlqa_normalizer, squad_normalize
from xstilts.qa.windows import Windower, answer_positions, span_characters
from xstilts.tasks.squad import squad


def test_squad_metric_hand_made_cases():
    assert squad_normalize("The  Cat, sat!") == "cat sat"
    assert exact_match("the Eiffel Tower.", "Eiffel tower") == 1.0
    # prediction "eiffel tower paris" vs gold "eiffel tower": precision 2/3, recall 1 -> F1 0.8
    assert f1("Eiffel Tower, Paris", "The Eiffel Tower") == pytest.approx(0.8)
    assert f1("nothing", "Eiffel Tower") == 0.0


def test_mlqa_metric_per_language():
    zh = mlqa_normalizer("zh")
    assert zh("北京，中国") == "北 京 中 国"  # characters are tokens, Unicode punctuation goes
    # 2 of 3 predicted characters match the 2-character gold answer: P 2/3, R 1 -> F1 0.8
    assert f1("北京市", "北京", zh) == pytest.approx(0.8)
    assert exact_match("la casa", "casa", mlqa_normalizer("es")) == 1.0  # Spanish articles
    assert exact_match("la casa", "casa") == 0.0  # SQuAD knows English articles only
    with pytest.raises(XstiltsError, match="no rules for language"):
        mlqa_normalizer("xx")


@pytest.mark.parametrize("language", ["en", "ar", "zh", "th"])
def test_answers_round_trip_through_windows(data_dir: Path, language: str):
    from tokenizers import Tokenizer

    from xstilts.models import resolve_model

    tokenizer = Tokenizer.from_file(str(Path(resolve_model("me5-small")) / "tokenizer.json"))
    examples = squad("xquad")([data_dir / f"xquad/xquad.{language}.json"], language)[:150]
    windower = Windower(tokenizer, 256, 128)
    windows = windower.windows([e.text_b for e in examples], [e.text_a for e in examples])
    found = set()
    for window in windows:
        example = examples[window.item]
        text, start = example.answers[0]
        s, e = answer_positions(window, start, text)
        if s == 0:
            continue
        found.add(window.item)
        a, b = span_characters(example.text_a, window, s, e)
        assert a <= start and b >= start + len(text)  # the tokens cover the answer
        bounds = {span[0] for span in window.offsets if span} | {span[1] for span in window.offsets if span}
        if start in bounds and start + len(text) in bounds:
            assert example.text_a[a:b] == text  # token-aligned answers come back exactly
    assert found == set(range(len(examples)))  # every answer lies whole in some window


def test_broken_squad_file_names_file_and_problem(tmp_path: Path):
    path = tmp_path / "tydiqa.goldp.sw.dev.json"
    item = {"id": "q1", "question": "Nani?", "answers": [{"text": "Juma", "answer_start": 3}]}
    path.write_text(json.dumps({"data": [{"paragraphs": [{"context": "Ni Juma.", "qas": [item]}]}]}))
    [example] = squad("tydiqa")([path], "sw")
    assert example.answers == (("Juma", 3),) and example.uid == "tydiqa/q1"
    item["answers"][0]["answer_start"] = 0
    path.write_text(json.dumps({"data": [{"paragraphs": [{"context": "Ni Juma.", "qas": [item]}]}]}))
    with pytest.raises(XstiltsError, match=r"tydiqa.goldp.sw.dev.json: article 0 paragraph 0 question 0: answer"):
        squad("tydiqa")([path], "sw")


def test_questions_longer_than_a_window_are_cut_not_refused():
    """A question beyond max_length tokens is cut to its first MAX_QUESTION_TOKENS tokens (a server gets such)."""
    from tokenizers import Tokenizer

    from xstilts.models import resolve_model
    from xstilts.qa.windows import MAX_QUESTION_TOKENS

    tokenizer = Tokenizer.from_file(str(Path(resolve_model("tiny-xlmr")) / "tokenizer.json"))
    question, context = "Who won the race in the year 1990? " * 40, "Ann won in 1990."
    [window] = Windower(tokenizer, 128, 32).windows([question], [context])
    tokenizer.no_truncation()
    expected = tokenizer.encode(question, add_special_tokens=False).ids[:MAX_QUESTION_TOKENS]
    assert window.ids[1 : 1 + MAX_QUESTION_TOKENS] == expected and len(window.ids) <= 128
    spans = [span for span in window.offsets if span is not None]
    assert spans and spans[-1][1] == len(context)
