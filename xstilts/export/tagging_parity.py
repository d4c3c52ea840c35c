"""The parity gate of a tagging bundle: entity F1 (NER) or word accuracy (POS), and tag agreement, against PyTorch.

Both sides read the same windows of the sample's words (:class:`~xstilts.tagging.alignment.WordTokenizer` on the
bundle's ``tokenizer.json``, as a server makes them), after checking that their ids are the checkpoint tokenizer's
for the same words; a word's tag is the arg-max of the logits at its first sub-word. Recorded per language: the
metric of the checkpoint (``reference_accuracy``) and of the variant (``accuracy``), the share of words whose tag
both give alike (``label_agreement``) and the largest logit difference at the words' first sub-words. The gate
fails on a non-finite logit or an average metric drop beyond the budget (points), as the classification gate.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from tokenizers import Tokenizer

from xstilts.contracts.bundle import MODEL_FILE, TOKENIZER_FILE
from xstilts.contracts.checkpoint import CheckpointInfo
from xstilts.contracts.evaluation import EvaluationSample
from xstilts.contracts.interface import token_feeds
from xstilts.errors import XstiltsError
from xstilts.export.encode import complete_feeds, configure_tokenizer
from xstilts.export.graph import graph_interface
from xstilts.export.parity import BATCH_SIZE, Gate, rejection_message
from xstilts.tagging.alignment import Window, WordTokenizer, word_logits
from xstilts.tagging.metrics import metric_name, score
from xstilts.tasks import Example, get_task, load_examples, sample, training_data

Sentences = dict[str, list[list[Window]]]  # per language, each sentence's windows


def sentence_windows(words: WordTokenizer, sample_: EvaluationSample) -> Sentences:
    """The windows of every sampled sentence, per language."""
    return {lang: words.windows([e.words for e in examples]) for lang, examples in sample_.examples.items()}


def window_feeds(windows: Sequence[Window], pad_id: int, batch_size: int = BATCH_SIZE) -> list[dict[str, np.ndarray]]:
    """Consecutive windows in padded batches of the token inputs."""
    batches = []
    for start in range(0, len(windows), batch_size):
        chunk = windows[start : start + batch_size]
        width = max(len(w.ids) for w in chunk)
        ids = np.full((len(chunk), width), pad_id, dtype=np.int64)
        mask = np.zeros((len(chunk), width), dtype=np.int64)
        for row, window in enumerate(chunk):
            ids[row, : len(window.ids)] = window.ids
            mask[row, : len(window.ids)] = 1
        batches.append(token_feeds(ids, mask))
    return batches


def per_word(sentences: list[list[Window]], batches: Sequence[np.ndarray], labels: int) -> np.ndarray:
    """``[words, labels]``: every sentence's word logits, in order, from the windows' batched logits."""
    flat = [row for batch in batches for row in batch]
    rows, position = [], 0
    for windows in sentences:
        count = sum(len(w.first_tokens) for w in windows)
        rows.append(word_logits(windows, flat[position : position + len(windows)], count, labels))
        position += len(windows)
    return np.concatenate(rows) if rows else np.zeros((0, labels), dtype=np.float32)


def torch_word_logits(model: Any, sentences: Sentences, feeds: dict[str, list[dict]], labels: int) -> dict[str, Any]:
    """The PyTorch checkpoint's word logits per language (token type ids left to the model's zeros)."""
    import torch

    with torch.no_grad():
        return {
            lang: per_word(
                sentences[lang],
                [model(**{k: torch.from_numpy(v) for k, v in b.items()}).logits.float().numpy() for b in batches],
                labels,
            )
            for lang, batches in feeds.items()
        }


def onnx_word_logits(
    model_path: Path, provider: str, sentences: Sentences, feeds: dict[str, list[dict]], labels: int
) -> dict[str, np.ndarray]:
    """A graph's word logits per language, run by ONNX Runtime with ``provider``."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(str(model_path), options, providers=[provider])
    names = [i.name for i in session.get_inputs()]
    return {
        lang: per_word(sentences[lang], [session.run(None, complete_feeds(b, names))[0] for b in batches], labels)
        for lang, batches in feeds.items()
    }


def split_tags(examples: Sequence[Example], indices: np.ndarray, tags: Sequence[str]) -> list[list[str]]:
    """Each sentence's tags from the flat per-word tag indices."""
    out, position = [], 0
    for example in examples:
        out.append([tags[i] for i in indices[position : position + len(example.words)]])
        position += len(example.words)
    return out


def compare_tags(
    reference: dict[str, np.ndarray], candidate: dict[str, np.ndarray], sample_: EvaluationSample, budget: float
) -> dict[str, Any]:
    """The task's metric per language for both sides, tag agreement and the largest logit difference; passed
    when every logit is finite and the average metric drops by at most ``budget`` points."""
    tags = list(get_task(sample_.task).labels)
    metric = metric_name(tags)
    languages: dict[str, dict[str, Any]] = {}
    non_finite = 0
    for lang, examples in sample_.examples.items():
        ref, got = reference[lang], candidate[lang]
        non_finite += int((~np.isfinite(got)).any(axis=-1).sum())
        gold = [list(e.tags) for e in examples]
        ref_tags, got_tags = ref.argmax(-1), got.argmax(-1)
        difference = float(np.abs(ref - got).max()) if len(ref) else 0.0
        languages[lang] = {
            "examples": len(examples),
            "words": len(ref),
            "reference_accuracy": score(metric, gold, split_tags(examples, ref_tags, tags)),
            "accuracy": score(metric, gold, split_tags(examples, got_tags, tags)),
            "label_agreement": float((ref_tags == got_tags).mean()) if len(ref) else 1.0,
            "max_abs_logit_diff": difference if np.isfinite(difference) else None,
        }
    reference_average = float(np.mean([v["reference_accuracy"] for v in languages.values()]))
    average = float(np.mean([v["accuracy"] for v in languages.values()]))
    drop = round((reference_average - average) * 100, 4)
    words = sum(v["words"] for v in languages.values())
    diffs = [v["max_abs_logit_diff"] for v in languages.values()]
    return {
        "metric": metric,
        "max_abs_logit_diff": None if None in diffs else max(diffs),
        "label_agreement": sum(v["label_agreement"] * v["words"] for v in languages.values()) / max(words, 1),
        "non_finite_outputs": non_finite,
        "average_accuracy": {"reference": reference_average, "variant": average},
        "accuracy_drop_points": drop,
        "max_accuracy_drop_points": budget,
        "passed": non_finite == 0 and drop <= budget,
        "languages": languages,
    }


@dataclass
class TaggingGate(Gate):
    """The parity gate of one tagging export: the checkpoint's word logits on the sample's windows, the budget.

    ``reference`` holds ``[words, tags]`` per language; ``feeds`` the padded window batches per language.
    """

    sentences: Sentences

    def _compare(self, folder: Path, provider: str) -> dict[str, Any]:
        labels = len(get_task(self.sample.task).labels)
        candidate = onnx_word_logits(folder / MODEL_FILE, provider, self.sentences, self.feeds, labels)
        return compare_tags(self.reference, candidate, self.sample, self.budget)

    @staticmethod
    def rejection(name: str, parity: dict[str, Any]) -> str:
        if parity["non_finite_outputs"]:
            return f"{name}: {parity['non_finite_outputs']} word logits are not finite numbers"
        return rejection_message(name, parity).replace("average accuracy", f"average {parity['metric']}", 1)


@dataclass
class TaggingReference:
    """A tagging export's gate, its serving ``tokenizer.json`` and what calibration reads."""

    gate: TaggingGate
    tokenizer: Path
    words: WordTokenizer
    pad_id: int
    graph_inputs: list[str]

    def calibration_feeds(self, task: str, data_dir: Path, count: int, seed: int) -> list[dict[str, np.ndarray]]:
        """Padded windows of the task's English training sentences (never evaluation items), for INT8 calibration."""
        source, split = training_data(task)
        examples = sample(load_examples(get_task(source), split, "en", data_dir), count, seed)
        windows = [w for sentence in self.words.windows([e.words for e in examples]) for w in sentence]
        return [complete_feeds(b, self.graph_inputs) for b in window_feeds(windows, self.pad_id, 8)]


def tagging_reference(
    model: Any,
    checkpoint: Path,
    info: CheckpointInfo,
    graph: Path,
    work: Path,
    sample_: EvaluationSample,
    budget: float,
) -> TaggingReference:
    """Write the serving tokenizer into ``work``, check it, and compute the checkpoint's word logits on the sample."""
    from transformers import AutoTokenizer

    hf_tokenizer = AutoTokenizer.from_pretrained(checkpoint, fix_mistral_regex=False)
    if hf_tokenizer.pad_token_id is None:
        raise XstiltsError(f"{checkpoint}: the tokenizer has no padding token")
    target = work / TOKENIZER_FILE
    configure_tokenizer(
        checkpoint / TOKENIZER_FILE, target, info.max_length, hf_tokenizer.pad_token_id, hf_tokenizer.pad_token
    )
    words = WordTokenizer(Tokenizer.from_file(str(target)), info.max_length)
    sentences = sentence_windows(words, sample_)
    checked = check_windows(hf_tokenizer, sample_, sentences, info.max_length)
    feeds = {
        lang: window_feeds([w for s in sentences[lang] for w in s], hf_tokenizer.pad_token_id) for lang in sentences
    }
    labels = len(info.labels)
    reference = torch_word_logits(model, sentences, feeds, labels)
    gate = TaggingGate(reference, feeds, sample_, budget, checked, sentences)
    inputs = [spec.name for spec in graph_interface(graph)[0]]
    return TaggingReference(gate, target, words, hf_tokenizer.pad_token_id, inputs)


def check_windows(hf_tokenizer: Any, sample_: EvaluationSample, sentences: Sentences, max_length: int) -> int:
    """Fail unless every window's ids are the checkpoint tokenizer's for the window's words; returns how many."""
    words, served = [], []
    for lang, examples in sample_.examples.items():
        for example, windows in zip(examples, sentences[lang], strict=True):
            for window in windows:
                words.append(list(example.words[window.words.start : window.words.stop]))
                served.append(window.ids)
    expected = hf_tokenizer(words, is_split_into_words=True, truncation=True, max_length=max_length)["input_ids"]
    wrong = [i for i, (got, want) in enumerate(zip(served, expected, strict=True)) if list(got) != list(want)]
    if wrong:
        raise XstiltsError(
            f"tokenizer.json gives different token ids than the checkpoint's tokenizer on {len(wrong)} of "
            f"{len(served)} windows (first: {words[wrong[0]]!r}); a server would see other inputs than training did"
        )
    return len(served)
