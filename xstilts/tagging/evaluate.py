"""Zero-shot evaluation of a tagging checkpoint: entity F1 (NER) or word accuracy (POS) per language (torch)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from xstilts.contracts.checkpoint import CheckpointInfo
from xstilts.contracts.evaluation import EvaluationSample, zero_shot_results
from xstilts.tagging.alignment import Window, WordTokenizer, word_logits
from xstilts.tagging.batches import word_tokenizer
from xstilts.tagging.metrics import metric_name, score
from xstilts.tasks import Example, get_task


@torch.no_grad()
def window_logits(model: Any, windows: Sequence[Window], pad_id: int, batch_size: int) -> list[np.ndarray]:
    """Each window's ``[tokens, labels]`` logits, windows batched (longest first) and padded per batch."""
    order = sorted(range(len(windows)), key=lambda i: -len(windows[i].ids))
    out: list[np.ndarray] = [np.empty(0)] * len(windows)
    for start in range(0, len(order), batch_size):
        chunk = order[start : start + batch_size]
        width = max(len(windows[i].ids) for i in chunk)
        ids = torch.full((len(chunk), width), pad_id, dtype=torch.long)
        mask = torch.zeros((len(chunk), width), dtype=torch.long)
        for row, i in enumerate(chunk):
            ids[row, : len(windows[i].ids)] = torch.tensor(windows[i].ids)
            mask[row, : len(windows[i].ids)] = 1
        logits = model(input_ids=ids.to(model.device), attention_mask=mask.to(model.device)).logits.float().cpu()
        for row, i in enumerate(chunk):
            out[i] = logits[row, : len(windows[i].ids)].numpy()
    return out


def predict_tags(
    model: Any, words: WordTokenizer, pad_id: int, examples: Sequence[Example], tags: Sequence[str], batch_size: int
) -> list[list[str]]:
    """The predicted tag of every word of every example."""
    sentences = words.windows([e.words for e in examples])
    flat = [w for sentence in sentences for w in sentence]
    logits = window_logits(model, flat, pad_id, batch_size)
    predicted, position = [], 0
    for example, sentence in zip(examples, sentences, strict=True):
        scores = word_logits(sentence, logits[position : position + len(sentence)], len(example.words), len(tags))
        position += len(sentence)
        predicted.append([tags[i] for i in scores.argmax(-1)])
    return predicted


def evaluate_tagging(
    model: Any, tokenizer: Any, info: CheckpointInfo, sample: EvaluationSample, batch_size: int
) -> dict:
    """The task's metric per language (``metric``: f1 or accuracy) and its averages, in the classification shape."""
    tags = get_task(sample.task).labels
    metric = metric_name(tags)
    words = word_tokenizer(tokenizer, info.max_length)
    started = time.time()
    per_language = {}
    for lang, examples in sample.examples.items():
        predicted = predict_tags(model, words, tokenizer.pad_token_id, examples, tags, batch_size)
        value = score(metric, [e.tags for e in examples], predicted)
        per_language[lang] = {metric: value, "examples": len(examples), "words": sum(len(e.words) for e in examples)}
    return zero_shot_results(sample, metric, per_language, info.max_length, time.time() - started, str(model.device))
