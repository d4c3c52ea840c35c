"""Extractive QA accuracy through the API: questions and contexts sent to ``/v1/models/{name}/predict``, scored
with the task's official EM and F1 per language (SQuAD v1.1 for XQuAD, MLQA's per-language normalisation for MLQA).

Every item's best answer comes from the live server (its windows, batching and precision included); F1 is the
accuracy figure (``Accuracy.languages[lang].accuracy``) and the exact matches its ``correct`` count. It is
compared with the F1 ``bundle.json`` recorded at export for the same task by the one tolerance rule of
:mod:`xstilts.bench.accuracy` (an answer that differs counts as a flip, as a label does); benched on another QA
task than its gate's (MLQA for an XQuAD bundle), there is nothing recorded to compare with and the report says so.
:func:`in_process_answers` answers the same items with the bundle's ONNX session in this process (the server's
windows, engine and post-processing, no HTTP), which is what the tests hold the API's answers to.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path

from xstilts.bench import accuracy as acc
from xstilts.bench.payloads import predict_path, request_body
from xstilts.contracts.bundle import BundleManifest
from xstilts.contracts.evaluation import EvaluationSample
from xstilts.contracts.kinds import TaskKind
from xstilts.contracts.results import Accuracy, LanguageAccuracy, RequestStats
from xstilts.errors import XstiltsError
from xstilts.qa.metrics import score_examples
from xstilts.tasks import Example

METRIC = "F1 (the task's official EM/F1 script; correct: exact matches)"


def _body(examples: Sequence[Example]) -> dict:
    return request_body(TaskKind.SPAN_QA, list(examples))


def api_answers(
    url: str,
    model: str,
    sample: EvaluationSample,
    batch_items: int = acc.DEFAULT_BATCH_ITEMS,
    api_key: str | None = None,
    timeout: float = 120.0,
    deadline: float | None = None,
) -> tuple[dict[str, list[str]], RequestStats]:
    """Each item's best answer text per language, as the server answers (no answer: the empty string)."""
    import httpx

    path = f"{url.rstrip('/')}{predict_path(model, TaskKind.SPAN_QA)}"
    stats = RequestStats(requests=0, items=0, truncated=0, seconds=0.0, batch_items=batch_items)
    answers: dict[str, list[str]] = {}
    started = time.perf_counter()
    with httpx.Client(headers=acc.auth_headers(api_key), timeout=timeout) as client:
        for lang, examples in sample.examples.items():
            got: list[str] = []
            for chunk, answer in acc.post_in_batches(client, path, examples, _body, stats, deadline):
                predictions = answer.get("predictions") or []
                if len(predictions) != len(chunk):
                    raise XstiltsError(f"{path} answered {len(predictions)} predictions for {len(chunk)} questions")
                got += [(p["answers"][0]["text"] if p.get("answers") else "") for p in predictions]
            answers[lang] = got
    stats.seconds = round(time.perf_counter() - started, 3)
    return answers, stats


def scores_per_language(sample: EvaluationSample, answers: dict[str, Sequence[str]]) -> dict[str, LanguageAccuracy]:
    """F1 per language as the accuracy, exact matches as the correct count."""
    languages = {}
    for lang, examples in sample.examples.items():
        got = answers[lang]
        if len(got) != len(examples):
            raise XstiltsError(f"{lang}: {len(got)} answers for {len(examples)} questions")
        score = score_examples(sample.task, lang, examples, list(got))
        languages[lang] = LanguageAccuracy(len(examples), round(score.exact_match * len(examples)), score.f1)
    return languages


def in_process_answers(
    folder: Path, sample: EvaluationSample, batch_items: int = acc.DEFAULT_BATCH_ITEMS, top_k: int = 1
) -> dict[str, list]:
    """The bundle's answers on the sample in this process: the server's windows, engine and post-processing, the
    windows of ``batch_items`` questions at a time in one batch, padded to their longest."""
    loaded = acc.load_in_process(folder)
    reader = loaded.spans
    if reader is None:
        raise XstiltsError(f"{folder} is not an extractive QA bundle")
    out: dict[str, list] = {}
    for lang, examples in sample.examples.items():
        found: list = []
        for start in range(0, len(examples), batch_items):
            pairs = [(e.text_b or "", e.text_a) for e in examples[start : start + batch_items]]
            windows = reader.windows(pairs)
            rows = list(loaded.engine.infer([w.ids for w in windows], len(windows)))
            found += reader.answers(pairs, windows, rows, top_k)
        out[lang] = found
    return out


def run_qa_accuracy(
    url: str,
    model: str,
    sample: EvaluationSample,
    manifest: BundleManifest | None,
    batch_items: int = acc.DEFAULT_BATCH_ITEMS,
    api_key: str | None = None,
    deadline: float | None = None,
) -> Accuracy:
    """The whole QA pass for one served model: answers over HTTP, EM/F1 per language, the bundle comparison."""
    if sample.kind is not TaskKind.SPAN_QA:
        raise XstiltsError(f"{sample.task} is not an extractive QA task")
    answers, stats = api_answers(url, model, sample, batch_items, api_key, deadline=deadline)
    return acc.scored(sample, scores_per_language(sample, answers), stats, manifest, METRIC)
