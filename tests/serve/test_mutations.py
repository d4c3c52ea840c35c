"""Mutation tests: break one piece of a real server and assert that the suite's answer checks catch it.

Each mutation is a mistake a server could make without crashing: dropping ``text_pair`` (v1) or ``text_b`` (v2),
reversing a multiple-choice item's choices, or handing the rows of a batch back in the wrong order; for extractive
QA, swapping question and context, mapping a window's span to characters of its own slice instead of the context,
or mixing up windows; for tagging, reading a word's tag at the wrong sub-word, shifting the words' character
offsets, or keeping only the first window of a long sentence (silent truncation). The server is the real app under
uvicorn on 127.0.0.1 (in a thread, so that one function of it can be replaced), serving the fp32 bundles of the
sensitive tiny repositories; the checks are those of ``tests/serve/answers.py`` and ``tests/qa/answers.py``, which
the HTTP tests run against the unbroken server. The control cases show that the unbroken server passes every check.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import httpx
import numpy as np
import pytest

from tests.qa.answers import QA_CHECKS, check_v1_answers, check_v2_answers
from tests.serve.answers import (
    ANSWER_CHECKS,
    TAG_CHECKS,
    check_v1_choices,
    check_v1_pairs,
    check_v1_tag_texts,
    check_v1_tag_words,
    check_v2_pairs,
    check_v2_tags,
)
from tests.serve.conftest import thread_server
from xstilts.qa.windows import Window as QaWindow
from xstilts.serve.core import tagging
from xstilts.serve.core.engine import OnnxEngine
from xstilts.serve.core.spans import SpanReader
from xstilts.serve.http.v1 import codec as v1_codec
from xstilts.serve.http.v1 import routes as v1_routes
from xstilts.serve.http.v1 import spans as v1_spans
from xstilts.serve.http.v2 import serving as v2_serving
from xstilts.serve.http.v2.codec import Items
from xstilts.tagging.alignment import Window
from xstilts.tagging.words import Word

FP32 = ["tiny-xnli=fp32", "tiny-xcopa=fp32"]


def drop_v1_text_pair(monkeypatch: pytest.MonkeyPatch) -> None:
    original = v1_routes.item_segments
    monkeypatch.setattr(
        v1_routes, "item_segments", lambda model, body: [[(a, None) for a, _ in s] for s in original(model, body)]
    )


def drop_v2_text_b(monkeypatch: pytest.MonkeyPatch) -> None:
    original = v2_serving.decode_items

    def decode(*args, **kwargs) -> Items:
        items = original(*args, **kwargs)
        return Items([[(a, None) for a, _ in s] for s in items.segments], items.choices)

    monkeypatch.setattr(v2_serving, "decode_items", decode)


def reverse_choices(monkeypatch: pytest.MonkeyPatch) -> None:
    original = v1_codec.choice_segments
    monkeypatch.setattr(v1_codec, "choice_segments", lambda p, q, choices: original(p, q, list(choices)[::-1]))


def shuffle_batch_rows(monkeypatch: pytest.MonkeyPatch) -> None:
    original = OnnxEngine.infer

    def infer(self, sequences, items, choices=1) -> np.ndarray:
        return np.roll(original(self, sequences, items, choices), 1, axis=0)

    monkeypatch.setattr(OnnxEngine, "infer", infer)


MUTATIONS: dict[str, tuple[Callable[[pytest.MonkeyPatch], None], tuple[Callable, ...]]] = {
    "drops v1 text_pair": (drop_v1_text_pair, (check_v1_pairs,)),
    "drops v2 text_b": (drop_v2_text_b, (check_v2_pairs,)),
    "reverses choices": (reverse_choices, (check_v1_choices,)),
    "shuffles batch rows": (shuffle_batch_rows, ANSWER_CHECKS),
}


def read_tags_at_the_next_sub_word(monkeypatch: pytest.MonkeyPatch) -> None:
    original = tagging.word_logits

    def shifted(windows, logits, words, labels):
        moved = [
            Window(w.ids, w.first_word, [min(p + 1, len(w.ids) - 1) if p >= 0 else p for p in w.first_tokens])
            for w in windows
        ]
        return original(moved, logits, words, labels)

    monkeypatch.setattr(tagging, "word_logits", shifted)


def shift_offsets(monkeypatch: pytest.MonkeyPatch) -> None:
    original = tagging.split_words
    monkeypatch.setattr(
        tagging, "split_words", lambda text: [Word(w.text, w.start + 1, w.end + 1) for w in original(text)]
    )


def keep_the_first_window(monkeypatch: pytest.MonkeyPatch) -> None:
    original = tagging.Tagger.windows
    monkeypatch.setattr(tagging.Tagger, "windows", lambda self, items: [s[:1] for s in original(self, items)])


TAGGING = ["tiny-panx=fp32", "tiny-udpos=fp32"]
TAG_MUTATIONS: dict[str, tuple[Callable[[pytest.MonkeyPatch], None], tuple[Callable, ...]]] = {
    "reads tags at the next sub-word": (read_tags_at_the_next_sub_word, TAG_CHECKS),
    "shifts character offsets": (shift_offsets, (check_v1_tag_texts, check_v2_tags)),
    "keeps only the first window": (keep_the_first_window, (check_v1_tag_words,)),
    "shuffles batch rows": (shuffle_batch_rows, (check_v1_tag_words, check_v1_tag_texts)),
}


def run_checks(repository: Path, data_dir: Path, checks: tuple[Callable, ...], models: list[str] = FP32) -> list[str]:
    """Run ``checks`` against a fresh fp32 thread server; the names of those that failed."""
    failed = []
    with thread_server(repository, models=models, max_queue_delay_ms=5) as server:
        server.wait_ready()
        with httpx.Client(base_url=server.url, timeout=60) as client:
            for check in checks:
                try:
                    check(client, repository, data_dir)
                except AssertionError:
                    failed.append(check.__name__)
    return failed


def test_the_unbroken_server_passes_every_answer_check(repository: Path, data_dir: Path) -> None:
    assert run_checks(repository, data_dir, ANSWER_CHECKS) == []


@pytest.mark.parametrize("mutation", list(MUTATIONS))
def test_a_broken_server_fails_the_answer_checks(
    monkeypatch: pytest.MonkeyPatch, repository: Path, data_dir: Path, mutation: str
) -> None:
    mutate, checks = MUTATIONS[mutation]
    mutate(monkeypatch)
    failed = run_checks(repository, data_dir, checks)
    assert failed == [check.__name__ for check in checks], (
        f"a server that {mutation} passed {set(checks) - set(failed)}"
    )


QA_FP32 = ["tiny-xquad=fp32"]


def swap_v1_question_and_context(monkeypatch: pytest.MonkeyPatch) -> None:
    original = v1_spans.item_pairs
    monkeypatch.setattr(v1_spans, "item_pairs", lambda request: [(c, q) for q, c in original(request)])


def swap_v2_question_and_context(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(Items, "pairs", property(lambda self: [(s[0][1] or "", s[0][0]) for s in self.segments]))


def spans_within_their_window(monkeypatch: pytest.MonkeyPatch) -> None:
    """Character offsets counted from each window's own slice of the context, not from the context's start."""
    original = SpanReader.windows

    def windows(self, pairs) -> list[QaWindow]:
        out = []
        for window in original(self, pairs):
            base = next(span[0] for span in window.offsets if span is not None)
            offsets = [None if span is None else (span[0] - base, span[1] - base) for span in window.offsets]
            out.append(QaWindow(window.item, window.ids, offsets))
        return out

    monkeypatch.setattr(SpanReader, "windows", windows)


QA_MUTATIONS: dict[str, tuple[Callable[[pytest.MonkeyPatch], None], tuple[Callable, ...]]] = {
    "swaps v1 question and context": (swap_v1_question_and_context, (check_v1_answers,)),
    "swaps v2 question and context": (swap_v2_question_and_context, (check_v2_answers,)),
    "maps spans within their window": (spans_within_their_window, QA_CHECKS),
    "mixes up windows": (shuffle_batch_rows, QA_CHECKS),
}


def test_the_unbroken_server_passes_every_qa_check(qa_repository: Path, data_dir: Path) -> None:
    assert run_checks(qa_repository, data_dir, QA_CHECKS, QA_FP32) == []


@pytest.mark.parametrize("mutation", list(QA_MUTATIONS))
def test_a_broken_qa_server_fails_the_answer_checks(
    monkeypatch: pytest.MonkeyPatch, qa_repository: Path, data_dir: Path, mutation: str
) -> None:
    mutate, checks = QA_MUTATIONS[mutation]
    mutate(monkeypatch)
    failed = run_checks(qa_repository, data_dir, checks, QA_FP32)
    assert failed == [check.__name__ for check in checks], (
        f"a server that {mutation} passed {set(checks) - set(failed)}"
    )


def test_the_unbroken_server_passes_every_tagging_check(tagging_repository: Path, data_dir: Path) -> None:
    assert run_checks(tagging_repository, data_dir, TAG_CHECKS, TAGGING) == []


@pytest.mark.parametrize("mutation", list(TAG_MUTATIONS))
def test_a_broken_tagger_fails_the_answer_checks(
    monkeypatch: pytest.MonkeyPatch, tagging_repository: Path, data_dir: Path, mutation: str
) -> None:
    mutate, checks = TAG_MUTATIONS[mutation]
    mutate(monkeypatch)
    failed = run_checks(tagging_repository, data_dir, checks, TAGGING)
    assert failed == [check.__name__ for check in checks], (
        f"a tagging server that {mutation} passed {set(checks) - set(failed)}"
    )
