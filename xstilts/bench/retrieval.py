"""Retrieval accuracy through the API: both sides of every pair embedded over HTTP, top-1 xx->en in the client.

The sample is a retrieval task's evaluation sample (each item: ``text_a`` in its language, ``text_b`` its English
counterpart). Every distinct sentence goes once to ``POST /v1/models/{name}/embed`` (batched, one request at a
time, a 413 halves the batch, as the classification pass sends), and top-1 accuracy xx->en by cosine is computed
here with :func:`xstilts.retrieval.search.tatoeba_accuracy`, per language. It is compared with the top-1 accuracy
``bundle.json`` recorded at export by the one tolerance rule of :mod:`xstilts.bench.accuracy`.
:func:`in_process_embeddings` embeds the same texts with the bundle's ONNX session in this process (the server's
encoder and engine, no HTTP), which is what the tests hold the API's vectors to.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from xstilts.bench import accuracy as acc
from xstilts.bench.payloads import predict_path
from xstilts.contracts.bundle import BundleManifest
from xstilts.contracts.evaluation import EvaluationSample, evaluation_split
from xstilts.contracts.kinds import TaskKind
from xstilts.contracts.results import Accuracy, LanguageAccuracy, RequestStats
from xstilts.errors import XstiltsError
from xstilts.retrieval.search import tatoeba_accuracy
from xstilts.tasks import get_task, resolve_languages

METRIC = "top-1 retrieval accuracy"
ENGLISH = ("en", "eng")  # the side every other language is retrieved against (XNLI/XQuAD codes, ISO 639-3)


def sample_languages(
    task: str, data_dir: Path, languages: str | None, manifest: BundleManifest | None
) -> str | list[str] | None:
    """The languages to sample for ``task``: as asked; for a retrieval task, else the bundle's parity languages
    (when the parity sample is of ``task``), else every language present in ``data_dir`` but English."""
    spec = get_task(task)
    if languages is not None or spec.kind is not TaskKind.EMBEDDING:
        return languages
    recorded = ((manifest.parity or {}).get("data") or {}) if manifest else {}
    if recorded.get("task") == task and recorded.get("languages"):
        return list(recorded["languages"])
    present = resolve_languages(spec, evaluation_split(task), None, data_dir)
    return [lang for lang in present if lang not in ENGLISH]


def sample_texts(sample: EvaluationSample) -> list[str]:
    """Every distinct sentence of the sample, both sides (a shared English side is embedded once)."""
    return list(dict.fromkeys(t for examples in sample.examples.values() for e in examples for t in _sides(e)))


def _sides(example) -> tuple[str, str]:
    return example.text_a, example.text_b or ""


def _embed_body(texts: Sequence[str]) -> dict[str, list[str]]:
    return {"inputs": list(texts)}


def api_embeddings(
    url: str,
    model: str,
    texts: Sequence[str],
    batch_items: int = acc.DEFAULT_BATCH_ITEMS,
    api_key: str | None = None,
    timeout: float = 120.0,
    deadline: float | None = None,
) -> tuple[np.ndarray, RequestStats]:
    """The vectors [len(texts), dimension] the server answers for ``texts``, and how they were sent."""
    import httpx

    path = f"{url.rstrip('/')}{predict_path(model, TaskKind.EMBEDDING)}"
    stats = RequestStats(requests=0, items=0, truncated=0, seconds=0.0, batch_items=batch_items)
    rows: list[list[float]] = []
    started = time.perf_counter()
    with httpx.Client(headers=acc.auth_headers(api_key), timeout=timeout) as client:
        for chunk, answer in acc.post_in_batches(client, path, texts, _embed_body, stats, deadline):
            vectors = answer["embeddings"]
            if len(vectors) != len(chunk):
                raise XstiltsError(f"{path} answered {len(vectors)} vectors for {len(chunk)} texts")
            rows += vectors
            stats.truncated += sum(bool(t) for t in answer.get("truncated") or [])
    stats.seconds = round(time.perf_counter() - started, 3)
    return np.asarray(rows, dtype=np.float32), stats


def top1_per_language(
    sample: EvaluationSample, texts: Sequence[str], vectors: np.ndarray
) -> dict[str, LanguageAccuracy]:
    """Top-1 xx->en accuracy per language: each item's sentence should find its own English counterpart among
    the English sides of that language's items."""
    row = {text: i for i, text in enumerate(texts)}
    languages = {}
    for lang, examples in sample.examples.items():
        source = vectors[[row[e.text_a] for e in examples]]
        target = vectors[[row[_sides(e)[1]] for e in examples]]
        accuracy = tatoeba_accuracy(source, target)
        languages[lang] = LanguageAccuracy(len(examples), round(accuracy * len(examples)), accuracy)
    return languages


def in_process_embeddings(
    folder: Path, texts: Sequence[str], batch_items: int = acc.DEFAULT_BATCH_ITEMS, threads: int = 0
) -> np.ndarray:
    """The bundle's vectors for ``texts`` in this process: the server's encoder (prefix added) and engine, in
    batches of ``batch_items`` padded to their longest, as the accuracy pass sends them."""
    loaded = acc.load_in_process(folder, threads)
    spec = loaded.manifest.embedding
    if spec is None:
        raise XstiltsError(f"{folder} is not an embedding bundle")
    rows = []
    for start in range(0, len(texts), batch_items):
        encoded = loaded.encoder.encode([[(spec.text(t), None)] for t in texts[start : start + batch_items]])
        rows.append(loaded.engine.infer([item.sequences[0] for item in encoded], len(encoded)))
    return np.concatenate(rows).astype(np.float32)


def run_retrieval_accuracy(
    url: str,
    model: str,
    sample: EvaluationSample,
    manifest: BundleManifest | None,
    batch_items: int = acc.DEFAULT_BATCH_ITEMS,
    api_key: str | None = None,
    deadline: float | None = None,
) -> Accuracy:
    """The whole retrieval pass for one served model: vectors over HTTP, top-1 per language, the bundle comparison."""
    if sample.kind is not TaskKind.EMBEDDING:
        raise XstiltsError(f"{sample.task} is not a retrieval task")
    texts = sample_texts(sample)
    vectors, stats = api_embeddings(url, model, texts, batch_items, api_key, deadline=deadline)
    return acc.scored(sample, top1_per_language(sample, texts, vectors), stats, manifest, METRIC)
