"""Accuracy through the API: the evaluation sample sent to a running server, scored per language.

This is the number the service actually delivers (its tokenizer, truncation, batching and precision included).
It is compared with what the bundle recorded at export (``bundle.json`` ``parity``) for the variant the server
says it serves. With the same sample (same split, seed and items per language, which are export's defaults),
the two should agree to within a couple of near-tie flips; on another sample, to within sampling error.
:func:`in_process_predictions` scores the same items with ONNX Runtime in this process, the way the server's
engine does (no HTTP), which is what the tests hold the API's answers to.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator, Sequence
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from xstilts.bench.payloads import predict_path, request_body
from xstilts.contracts.bundle import BUNDLE_FILE, BundleManifest, load_manifest
from xstilts.contracts.evaluation import EvaluationSample
from xstilts.contracts.kinds import TaskKind
from xstilts.contracts.results import Accuracy, LanguageAccuracy, LanguageParity, Parity, ParityAverage, RequestStats
from xstilts.errors import XstiltsError
from xstilts.tasks import Example, get_task

if TYPE_CHECKING:
    from xstilts.serve.core.engine import LoadedModel

DEFAULT_BATCH_ITEMS = 16
# z for the two-sample tolerance (99% two-sided), and the smallest tolerance in accuracy points
Z_99 = 2.576
MIN_TOLERANCE = 0.01
# with the very same items, allow this many flipped near-ties per language
SAME_SAMPLE_FLIPS = 2


def auth_headers(api_key: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {api_key}"} if api_key else {}


def served_model(url: str, model: str, api_key: str | None = None, timeout: float = 10.0) -> dict[str, Any]:
    """``GET /v1/models/{name}``: which variant, precision and provider the server runs for ``model``."""
    import httpx

    try:
        response = httpx.get(f"{url.rstrip('/')}/v1/models/{model}", headers=auth_headers(api_key), timeout=timeout)
    except httpx.HTTPError as exc:
        raise XstiltsError(f"cannot reach {url}: {exc}") from None
    if response.status_code != 200:
        raise XstiltsError(f"{url} has no model {model!r}: {response.status_code} {response.text[:200]}")
    return response.json()


def post_in_batches(
    client: Any,
    path: str,
    items: Sequence[Any],
    body: Callable[[Sequence[Any]], dict[str, Any]],
    stats: RequestStats,
    deadline: float | None = None,
) -> Iterator[tuple[Sequence[Any], dict[str, Any]]]:
    """Post ``items`` in order, ``stats.batch_items`` to a request, one request at a time: each chunk and its answer.

    A 413 halves the batch (kept in ``stats`` for the items that follow); ``deadline`` (a ``time.monotonic()``
    value) bounds the pass. ``stats`` counts requests and items.
    """
    import httpx

    position = 0
    while position < len(items):
        if deadline is not None and time.monotonic() > deadline:
            raise XstiltsError(f"the accuracy pass ran out of time after {stats.requests} requests")
        chunk = items[position : position + stats.batch_items]
        try:
            response = client.post(path, json=body(chunk))
        except httpx.HTTPError as exc:
            raise XstiltsError(f"{path}: {exc}") from None
        stats.requests += 1
        if response.status_code == 413 and stats.batch_items > 1:
            stats.batch_items = max(1, stats.batch_items // 2)
            continue
        if response.status_code != 200:
            raise XstiltsError(f"{path} answered {response.status_code}: {response.text[:300]}")
        stats.items += len(chunk)
        position += len(chunk)
        yield chunk, response.json()


def api_predictions(
    url: str,
    model: str,
    sample: EvaluationSample,
    batch_items: int = DEFAULT_BATCH_ITEMS,
    api_key: str | None = None,
    timeout: float = 120.0,
    deadline: float | None = None,
) -> tuple[dict[str, list[int]], dict[str, list[list[float]]], RequestStats]:
    """Each item's predicted index (label, or choice) and probabilities, per language, as the server answers.

    Items go ``batch_items`` to a request, one request at a time (a 413 halves the batch). ``deadline`` (a
    ``time.monotonic()`` value) bounds the pass. Returns predictions, probabilities and request statistics.
    """
    import httpx

    kind = sample.kind
    labels = list(get_task(sample.task).labels)
    path = f"{url.rstrip('/')}{predict_path(model)}"
    predictions: dict[str, list[int]] = {}
    probabilities: dict[str, list[list[float]]] = {}
    stats = RequestStats(requests=0, items=0, truncated=0, seconds=0.0, batch_items=batch_items)
    started = time.perf_counter()
    with httpx.Client(headers=auth_headers(api_key), timeout=timeout) as client:
        for lang, examples in sample.examples.items():
            got: list[int] = []
            probs: list[list[float]] = []
            for chunk, answer in post_in_batches(client, path, examples, partial(request_body, kind), stats, deadline):
                for example, prediction in zip(chunk, answer["predictions"], strict=True):
                    got.append(_index(kind, labels, answer.get("labels"), prediction, example))
                    probs.append([float(p) for p in prediction["probabilities"]])
                    stats.truncated += bool(prediction.get("truncated"))
            predictions[lang] = got
            probabilities[lang] = probs
    stats.seconds = round(time.perf_counter() - started, 3)
    return predictions, probabilities, stats


def _index(kind: TaskKind, labels: list[str], served: list[str] | None, prediction: dict, example: Example) -> int:
    """The predicted index in the task's label order (or the chosen choice), checked against the label name."""
    index = int(prediction["index"])
    if kind is TaskKind.MULTIPLE_CHOICE:
        return index
    name = prediction["label"]
    if name in labels:
        return labels.index(name)
    if served and len(served) == len(labels):
        return index
    raise XstiltsError(f"the server answered label {name!r}, which the task does not have ({', '.join(labels)})")


def accuracy_per_language(
    sample: EvaluationSample, predictions: dict[str, Sequence[int]]
) -> dict[str, LanguageAccuracy]:
    """Accuracy per language (the report averages them plainly: each language counts once, as in the paper)."""
    languages = {}
    for lang, examples in sample.examples.items():
        got = predictions[lang]
        if len(got) != len(examples):
            raise XstiltsError(f"{lang}: {len(got)} predictions for {len(examples)} items")
        correct = sum(int(p == e.label) for p, e in zip(got, examples, strict=True))
        languages[lang] = LanguageAccuracy(len(examples), correct, correct / len(examples))
    return languages


def plain_average(languages: dict[str, LanguageAccuracy]) -> float:
    return sum(v.accuracy for v in languages.values()) / len(languages)


def tolerance(p1: float, n1: int, p2: float, n2: int, same_items: bool, fragile: float = 0.0) -> float:
    """How far two accuracies may differ before it means something.

    On the very same items a variant can only differ by near-ties that flip: summation order changes fp32's last
    bits (``SAME_SAMPLE_FLIPS`` items), and int8's dynamic quantization takes its activation ranges from the
    whole batch, so an item's label depends on what it was batched with. ``fragile`` is the share of items
    whose label the variant changed against the checkpoint at export (1 - label agreement): if each of them may
    flip either way, the difference has a standard error of sqrt(fragile / n), and the 99% band of that is
    allowed. On different samples, the 99% band of a difference of two proportions. Never below
    ``MIN_TOLERANCE``.
    """
    if same_items:
        n = max(1, min(n1, n2))
        return max(SAME_SAMPLE_FLIPS / n, Z_99 * math.sqrt(max(fragile, 0.0) / n), MIN_TOLERANCE)
    p = (p1 * n1 + p2 * n2) / max(1, n1 + n2)
    spread = math.sqrt(max(p * (1 - p), 1e-12) * (1 / max(1, n1) + 1 / max(1, n2)))
    return max(Z_99 * spread, MIN_TOLERANCE)


def compare_with_parity(
    sample: EvaluationSample, measured: dict[str, LanguageAccuracy], manifest: BundleManifest
) -> Parity:
    """The API's accuracy against the accuracy ``bundle.json`` recorded for the variant at export, per language."""
    parity = manifest.parity or {}
    recorded = parity.get("languages") or {}
    if not recorded:
        return Parity(False, reason=f"{manifest.name}/{manifest.variant} recorded no accuracy at export")
    data = parity.get("data") or {}
    if data.get("task") and data["task"] != sample.task:  # benched on another task (retrieval, QA: XQuAD vs MLQA)
        return Parity(False, reason=f"{manifest.name}/{manifest.variant} recorded {data['task']}, not {sample.task}")
    # an embedding gate counts its items as pairs (a sentence and its English counterpart)
    same = sample.same_items_as({"examples": data.get("pairs"), **data})
    # an extractive QA gate records how many best spans agreed with PyTorch, as a classifier's labels
    fragile = 1.0 - float(parity.get("label_agreement", parity.get("span_agreement", 1.0)))
    languages = {}
    for lang, got in measured.items():
        if lang not in recorded:
            continue
        bundle = recorded[lang]
        count = int(bundle.get("examples", bundle.get("pairs", 0)))
        tol = tolerance(got.accuracy, got.examples, bundle["accuracy"], count, same, fragile)
        difference = got.accuracy - bundle["accuracy"]
        languages[lang] = LanguageParity(
            got.accuracy, bundle["accuracy"], count, difference, tol, abs(difference) > tol
        )
    if not languages:
        return Parity(False, reason=f"{manifest.name}/{manifest.variant} recorded none of {', '.join(measured)}")
    flagged = [lang for lang, v in languages.items() if v.flag]
    common = list(languages)
    average_api = sum(languages[lang].api for lang in common) / len(common)
    average_bundle = sum(languages[lang].bundle for lang in common) / len(common)
    return Parity(
        available=True,
        variant=manifest.variant,
        same_items=same,
        rule=(
            f"same items: |difference| > max({SAME_SAMPLE_FLIPS} items, {Z_99} x sqrt({fragile:.3f} / n), "
            f"{MIN_TOLERANCE:.0%}), {fragile:.3f} = the share of labels export saw this variant change"
            if same
            else f"different samples: |difference| > max({Z_99} x its standard error, {MIN_TOLERANCE:.0%})"
        ),
        bundle_data=parity.get("data"),
        export_gate=parity.get("status"),
        languages=languages,
        average=ParityAverage(average_api, average_bundle),
        flagged=flagged,
        agrees=not flagged,
    )


def bundle_manifest(repository: Path, model: str, variant: str) -> BundleManifest | None:
    """The manifest of ``repository/model/variant``, or None when it is not there."""
    folder = Path(repository) / model / variant
    if not (folder / BUNDLE_FILE).is_file():
        return None
    return load_manifest(folder)


def load_in_process(folder: Path, threads: int = 0) -> LoadedModel:
    """The bundle in ``folder`` loaded as the server loads it (its encoder and engine), in this process."""
    from xstilts.serve.core.engine import load_model
    from xstilts.serve.core.repository import PlannedModel
    from xstilts.serve.settings import Settings

    folder = Path(folder)
    manifest = load_manifest(folder)
    settings = Settings(repository=folder.parent.parent, intra_op_threads=threads, warmup=False)
    return load_model(PlannedModel(manifest.name, manifest.variant, folder, manifest), settings)


def in_process_predictions(
    folder: Path, sample: EvaluationSample, batch_items: int = DEFAULT_BATCH_ITEMS, threads: int = 0
) -> tuple[dict[str, list[int]], dict[str, list[list[float]]]]:
    """The bundle's predictions on the sample, in this process: the server's encoder and engine, no HTTP.

    Batches are formed as the accuracy pass sends them (``batch_items`` items of one language), padded to
    their longest sequence as the server pads them.
    """
    import numpy as np

    from xstilts.serve.core.probabilities import softmax
    from xstilts.tasks.encoding import example_segments

    loaded = load_in_process(folder, threads)
    kind = TaskKind(loaded.manifest.kind)

    predictions: dict[str, list[int]] = {}
    probabilities: dict[str, list[list[float]]] = {}
    for lang, examples in sample.examples.items():
        got: list[int] = []
        probs: list[list[float]] = []
        for start in range(0, len(examples), batch_items):
            chunk = examples[start : start + batch_items]
            encoded = loaded.encoder.encode([example_segments(kind, e) for e in chunk])
            choices = len(encoded[0].sequences)
            sequences = [s for item in encoded for s in item.sequences]
            logits = loaded.engine.infer(sequences, len(chunk), choices)
            for row in softmax(np.asarray(logits, dtype=np.float64)):
                got.append(int(row.argmax()))
                probs.append([float(p) for p in row])
        predictions[lang] = got
        probabilities[lang] = probs
    return predictions, probabilities


def run_accuracy(
    url: str,
    model: str,
    sample: EvaluationSample,
    manifest: BundleManifest | None,
    batch_items: int = DEFAULT_BATCH_ITEMS,
    api_key: str | None = None,
    deadline: float | None = None,
) -> Accuracy:
    """The whole accuracy pass for one served model: predictions, accuracy per language, the bundle comparison
    (for a retrieval task: top-1 retrieval accuracy, :mod:`xstilts.bench.retrieval`; for extractive QA: F1,
    :mod:`xstilts.bench.qa`; for a tagging task: entity F1 or word accuracy, :mod:`xstilts.bench.tagging`)."""
    if sample.kind is TaskKind.EMBEDDING:
        from xstilts.bench.retrieval import run_retrieval_accuracy

        return run_retrieval_accuracy(url, model, sample, manifest, batch_items, api_key, deadline)
    if sample.kind is TaskKind.SPAN_QA:
        from xstilts.bench.qa import run_qa_accuracy

        return run_qa_accuracy(url, model, sample, manifest, batch_items, api_key, deadline)
    if sample.kind is TaskKind.TOKEN_CLASSIFICATION:
        from xstilts.bench.tagging import run_tagging_accuracy

        return run_tagging_accuracy(url, model, sample, manifest, batch_items, api_key, deadline)
    predictions, _, stats = api_predictions(url, model, sample, batch_items, api_key, deadline=deadline)
    return scored(sample, accuracy_per_language(sample, predictions), stats, manifest)


def scored(
    sample: EvaluationSample,
    measured: dict[str, LanguageAccuracy],
    stats: RequestStats,
    manifest: BundleManifest | None,
    metric: str | None = None,
) -> Accuracy:
    """A pass's figures per language, their plain average and their comparison with ``bundle.json``, as one
    :class:`Accuracy`; ``metric`` names what the figures are when not a label's accuracy."""
    if manifest is None:
        parity = Parity(False, reason="no bundle.json to compare with (pass --repository)")
    else:
        parity = compare_with_parity(sample, measured, manifest)
    return Accuracy(measured, plain_average(measured), stats, parity, metric=metric)
