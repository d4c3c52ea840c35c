"""Tagging accuracy through the API: the sample's sentences sent as pre-split words, scored per language.

Each evaluation sentence goes to ``POST /v1/models/{name}/predict`` as ``{"words": [...]}`` (its gold words, so
that every predicted tag lines up with a gold tag; batched, one request at a time, a 413 halves the batch, as the
classification pass sends), and the tags that come back are scored here with the project's tagging metric
(:mod:`xstilts.tagging.metrics`: seqeval's strict entity F1 for PAN-X, word accuracy for UD-POS), per language.
That is compared with the metric ``bundle.json`` recorded at export by the one tolerance rule of
:mod:`xstilts.bench.accuracy`. :func:`in_process_tags` tags the same sentences with the bundle's ONNX session in
this process (the server's tokenizer, windows and engine, no HTTP), which is what the tests hold the API to.
"""

from __future__ import annotations

import time
from pathlib import Path

from xstilts.bench import accuracy as acc
from xstilts.bench.payloads import predict_path, request_body
from xstilts.contracts.bundle import BundleManifest
from xstilts.contracts.evaluation import EvaluationSample
from xstilts.contracts.kinds import TaskKind
from xstilts.contracts.results import Accuracy, LanguageAccuracy, RequestStats
from xstilts.errors import XstiltsError
from xstilts.tagging.metrics import F1, metric_name, score
from xstilts.tasks import Example, get_task

METRICS = {F1: "entity F1", "accuracy": "word accuracy"}  # what "accuracy" means in the results, per metric


def api_tags(
    url: str,
    model: str,
    sample: EvaluationSample,
    batch_items: int = acc.DEFAULT_BATCH_ITEMS,
    api_key: str | None = None,
    timeout: float = 120.0,
    deadline: float | None = None,
) -> tuple[dict[str, list[list[str]]], RequestStats]:
    """Each sentence's predicted tags, per language, as the server answers its gold words; and how they were sent."""
    import httpx

    path = f"{url.rstrip('/')}{predict_path(model, TaskKind.TOKEN_CLASSIFICATION)}"
    stats = RequestStats(requests=0, items=0, truncated=0, seconds=0.0, batch_items=batch_items)
    tags: dict[str, list[list[str]]] = {}
    started = time.perf_counter()

    def body(chunk):
        return request_body(TaskKind.TOKEN_CLASSIFICATION, list(chunk))

    with httpx.Client(headers=acc.auth_headers(api_key), timeout=timeout) as client:
        for lang, examples in sample.examples.items():
            got: list[list[str]] = []
            for chunk, answer in acc.post_in_batches(client, path, examples, body, stats, deadline):
                for example, prediction in zip(chunk, answer["predictions"], strict=True):
                    got.append(_sentence_tags(example, prediction))
            tags[lang] = got
    stats.seconds = round(time.perf_counter() - started, 3)
    return tags, stats


def _sentence_tags(example: Example, prediction: dict) -> list[str]:
    words = prediction.get("words") or []
    if [w["text"] for w in words] != list(example.words):
        raise XstiltsError(f"the server answered {len(words)} words for a sentence of {len(example.words)} words")
    return [w["tag"] for w in words]


def score_per_language(sample: EvaluationSample, tags: dict[str, list[list[str]]]) -> dict[str, LanguageAccuracy]:
    """The task's metric per language (``correct``: the metric times the sentences, rounded, as for retrieval)."""
    metric = metric_name(get_task(sample.task).labels)
    languages = {}
    for lang, examples in sample.examples.items():
        value = score(metric, [list(e.tags) for e in examples], tags[lang])
        languages[lang] = LanguageAccuracy(len(examples), round(value * len(examples)), value)
    return languages


def in_process_tags(
    folder: Path, sample: EvaluationSample, batch_items: int = acc.DEFAULT_BATCH_ITEMS, threads: int = 0
) -> dict[str, list[list[str]]]:
    """The bundle's tags for the sample in this process: the server's windows and engine, ``batch_items``
    sentences' windows to a batch (padded to their longest), as the accuracy pass sends them."""
    from xstilts.serve.core.tagging import TagItem

    loaded = acc.load_in_process(folder, threads)
    tagger = loaded.tagger
    assert tagger is not None, "tagging bundles load their Tagger"
    tags: dict[str, list[list[str]]] = {}
    for lang, examples in sample.examples.items():
        got: list[list[str]] = []
        for start in range(0, len(examples), batch_items):
            items = [TagItem.from_words(e.words) for e in examples[start : start + batch_items]]
            windows = tagger.windows(items)
            rows = tagger.encoded(windows)
            logits = loaded.engine.infer([row.sequences[0] for row in rows], len(rows))
            got += [item.tags for item in tagger.read(items, windows, list(logits))]
        tags[lang] = got
    return tags


def run_tagging_accuracy(
    url: str,
    model: str,
    sample: EvaluationSample,
    manifest: BundleManifest | None,
    batch_items: int = acc.DEFAULT_BATCH_ITEMS,
    api_key: str | None = None,
    deadline: float | None = None,
) -> Accuracy:
    """The whole tagging pass for one served model: tags over HTTP, the metric per language, the bundle comparison."""
    if sample.kind is not TaskKind.TOKEN_CLASSIFICATION:
        raise XstiltsError(f"{sample.task} is not a tagging task")
    tags, stats = api_tags(url, model, sample, batch_items, api_key, deadline=deadline)
    metric = METRICS[metric_name(get_task(sample.task).labels)]
    return acc.scored(sample, score_per_language(sample, tags), stats, manifest, metric)
