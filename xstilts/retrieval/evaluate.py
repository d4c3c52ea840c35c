"""Retrieval evaluation of an encoder: Tatoeba-style top-1 accuracy xx->en, BUCC mining F1, and the layer sweep."""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from xstilts.contracts.checkpoint import Pooling
from xstilts.contracts.embedding import EmbeddingSpec
from xstilts.retrieval.embedding import Encoder, embed_layers
from xstilts.retrieval.search import mine, mining_score, tatoeba_accuracy
from xstilts.tasks import Example, get_task, load_examples, non_english_average, resolve_languages, sample, split_files
from xstilts.tasks.mining import MiningSet, read_mining_set

MINING_TASKS = ("bucc2018",)


def load_pairs(
    task: str, split: str, languages: Sequence[str], data_dir: Path, limit: int | None, seed: int
) -> dict[str, list[Example]]:
    """A seeded sample of at most ``limit`` pairs per language (the same positions, so the same items where the
    languages are parallel)."""
    spec = get_task(task)
    return {lang: sample(load_examples(spec, split, lang, data_dir), limit, seed) for lang in languages}


def _vectors(
    encoder: Encoder, texts: Sequence[str], layers: Sequence[int], pooling: Pooling, prefix: str, batch_size: int
) -> tuple[dict[str, int], dict[int, np.ndarray]]:
    """Each distinct text embedded once (a shared English side is not embedded again per language)."""
    unique = list(dict.fromkeys(texts))
    return {t: i for i, t in enumerate(unique)}, embed_layers(
        encoder, unique, layers, pooling, prefix, True, batch_size
    )


def accuracy_by_layer(
    encoder: Encoder,
    pairs: dict[str, list[Example]],
    layers: Sequence[int],
    pooling: Pooling,
    prefix: str,
    batch_size: int = 64,
) -> dict[int, dict[str, float]]:
    """Top-1 xx->en accuracy per layer and language, every layer from one forward pass over every distinct text."""
    texts = [t for examples in pairs.values() for e in examples for t in (e.text_a, e.text_b or "")]
    index, vectors = _vectors(encoder, texts, layers, pooling, prefix, batch_size)
    results: dict[int, dict[str, float]] = {}
    for layer in layers:
        results[layer] = {}
        for lang, examples in pairs.items():
            source = vectors[layer][[index[e.text_a] for e in examples]]
            target = vectors[layer][[index[e.text_b or ""] for e in examples]]
            results[layer][lang] = tatoeba_accuracy(source, target)
    return results


def mining_f1(encoder: Encoder, mining: MiningSet, spec: EmbeddingSpec, batch_size: int, seed: int) -> dict[str, Any]:
    """BUCC-style mining of one language pair: F1/precision/recall on half the gold pairs (see ``mining_score``)."""
    source_ids, target_ids = list(mining.source), list(mining.target)
    texts = [mining.source[i] for i in source_ids] + [mining.target[i] for i in target_ids]
    index, vectors = _vectors(encoder, texts, [spec.layer], spec.pooling, spec.prefix, batch_size)
    layer = vectors[spec.layer]
    source = layer[[index[mining.source[i]] for i in source_ids]]
    target = layer[[index[mining.target[i]] for i in target_ids]]
    rows = {i: n for n, i in enumerate(source_ids)}
    cols = {i: n for n, i in enumerate(target_ids)}
    gold = [(rows[s], cols[t]) for s, t in mining.gold]
    score = mining_score(mine(source, target), gold, len(source_ids), seed)
    return {**score.to_json(), "sentences": {"source": len(source_ids), "target": len(target_ids)}}


def evaluate_retrieval(
    encoder: Encoder,
    task: str,
    spec: EmbeddingSpec,
    data_dir: Path,
    languages: str | Sequence[str] | None = "all",
    split: str | None = None,
    limit: int | None = None,
    seed: int = 0,
    batch_size: int = 64,
) -> dict[str, Any]:
    """Per-language retrieval figures of ``encoder`` on ``task`` and their averages (accuracy, or F1 for BUCC)."""
    task_spec = get_task(task)
    split = split or task_spec.eval_split
    langs = resolve_languages(task_spec, split, languages, data_dir)
    if not langs:  # a present_only split with no files here: the usual "not found" error, for its first language
        split_files(task_spec, split, task_spec.splits[split].languages[0], data_dir)
    started = time.time()
    if task in MINING_TASKS:
        per_language = {
            lang: mining_f1(encoder, read_mining_set(split_files(task_spec, split, lang, data_dir), lang), spec,
                            batch_size, seed)
            for lang in langs
        }  # fmt: skip
        metric = "f1"
    else:
        pairs = load_pairs(task, split, langs, data_dir, limit, seed)
        accuracy = accuracy_by_layer(encoder, pairs, [spec.layer], spec.pooling, spec.prefix, batch_size)[spec.layer]
        per_language = {lang: {"accuracy": accuracy[lang], "examples": len(pairs[lang])} for lang in langs}
        metric = "accuracy"
    values = {lang: v[metric] for lang, v in per_language.items()}
    return {
        "task": task,
        "split": split,
        "metric": metric,
        "model": encoder.folder,
        "embedding": {**spec.to_json(), "dimension": encoder.dimension},
        "sample_per_language": limit,
        "seed": seed,
        "languages": per_language,
        "average": sum(values.values()) / len(values),
        "average_non_english": non_english_average(values),
        "wall_time_s": round(time.time() - started, 1),
        "device": str(encoder.model.device),
    }
