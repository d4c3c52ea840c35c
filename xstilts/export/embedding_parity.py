"""The parity gate of an embedding bundle: cosine to the PyTorch vectors and the retrieval accuracy drop.

The sample is real parallel sentences: the ``xnli_premises`` retrieval task (XNLI test premises, each once, the
same items in every language) in each language and their English counterparts, drawn as every evaluation sample
is (:func:`~xstilts.contracts.evaluation.load_evaluation_sample`). Both the
reference (the uncut PyTorch encoder, pooled in torch) and every variant embed the same token ids, made from the
bundle's ``tokenizer.json`` with the bundle's prefix, as a server makes them. Recorded: the cosine between each
variant vector and its reference vector (mean and minimum), and top-1 xx->en retrieval accuracy per language;
the gate fails on a non-finite vector or an average accuracy drop beyond the budget (points).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from xstilts.contracts.bundle import MODEL_FILE
from xstilts.contracts.embedding import EmbeddingSpec
from xstilts.contracts.evaluation import evaluation_split, load_evaluation_sample
from xstilts.contracts.interface import interface_of, token_feeds
from xstilts.contracts.kinds import TaskKind
from xstilts.errors import XstiltsError
from xstilts.export.encode import Encoder
from xstilts.export.graph import graph_interface
from xstilts.export.parity import BATCH_SIZE, onnx_logits
from xstilts.export.variants import Variant
from xstilts.tasks import get_task

TASK, ENGLISH = "xnli_premises", "en"  # XNLI test premises, each once, retrieved against English
LANGUAGES = tuple(lang for lang in get_task(TASK).languages if lang != ENGLISH)


@dataclass
class RetrievalSample:
    """The same sampled sentences in each language (``sentences[lang]``) and in English (``english``)."""

    seed: int
    per_language: int
    english: list[str]
    sentences: dict[str, list[str]]

    def describe(self) -> dict[str, Any]:
        return {
            "task": TASK,
            "split": evaluation_split(TASK),
            "seed": self.seed,
            "per_language": self.per_language,
            "languages": list(self.sentences),
            "pairs": {lang: len(texts) for lang, texts in self.sentences.items()},
        }

    def sides(self) -> dict[str, list[str]]:
        """Every text to embed, by side: each language, and English (``en``)."""
        return {**self.sentences, ENGLISH: self.english}


def load_retrieval_sample(data_dir: Path, languages: list[str], per_language: int, seed: int) -> RetrievalSample:
    """``per_language`` seeded items of the retrieval task (the same in each of ``languages``) and their English."""
    if per_language < 2:
        raise XstiltsError(f"a retrieval sample needs at least 2 sentences per language, got {per_language}")
    if ENGLISH in languages:
        raise XstiltsError("the gate retrieves English from the other languages: leave en out of --languages")
    sample = load_evaluation_sample(TASK, data_dir, languages, per_language, seed)
    order = [e.uid for e in next(iter(sample.examples.values()))]
    english = {e.uid: e.text_b for examples in sample.examples.values() for e in examples}
    sentences = {}
    for lang, examples in sample.examples.items():
        by_uid = {e.uid: e.text_a for e in examples}
        sentences[lang] = [by_uid[uid] for uid in order]
    return RetrievalSample(seed, len(order), [english[uid] for uid in order], sentences)


def text_feeds(encoder: Encoder, spec: EmbeddingSpec, texts: list[str]) -> list[dict[str, np.ndarray]]:
    """Padded batches of the prefixed texts' token inputs, from the bundle's configured tokenizer."""
    batches = []
    for start in range(0, len(texts), BATCH_SIZE):
        encodings = encoder.tokenizer.encode_batch([spec.text(t) for t in texts[start : start + BATCH_SIZE]])
        ids = np.array([e.ids for e in encodings], dtype=np.int64)
        mask = np.array([e.attention_mask for e in encodings], dtype=np.int64)
        batches.append(token_feeds(ids, mask))
    return batches


def reference_vectors(module: Any, feeds: dict[str, list[dict]]) -> dict[str, np.ndarray]:
    """The PyTorch sentence module's vectors on the feeds."""
    import torch

    with torch.no_grad():
        return {
            side: np.concatenate(
                [module(**{k: torch.from_numpy(v) for k, v in batch.items()}).float().numpy() for batch in batches]
            )
            for side, batches in feeds.items()
        }


def top1_accuracy(source: np.ndarray, english: np.ndarray) -> float:
    """Share of source rows whose most cosine-similar English row is their own counterpart (same index)."""
    similarity = _unit(source) @ _unit(english).T
    return float((similarity.argmax(axis=1) == np.arange(len(source))).mean())


def _unit(vectors: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(vectors, axis=-1, keepdims=True)
    return vectors / np.maximum(norms, 1e-12)


def compare_vectors(
    reference: dict[str, np.ndarray], candidate: dict[str, np.ndarray], sample: RetrievalSample, budget: float
) -> dict[str, Any]:
    """Cosine to the reference (mean, minimum) and top-1 accuracy per language; passed when within ``budget``."""
    non_finite = sum(int((~np.isfinite(candidate[side])).any(axis=-1).sum()) for side in candidate)
    cosines = np.concatenate(
        [(_unit(np.nan_to_num(candidate[s])) * _unit(reference[s])).sum(axis=-1) for s in reference]
    )
    languages = {
        lang: {
            "pairs": len(texts),
            "reference_accuracy": top1_accuracy(reference[lang], reference[ENGLISH]),
            "accuracy": top1_accuracy(candidate[lang], candidate[ENGLISH]),
        }
        for lang, texts in sample.sentences.items()
    }
    reference_average = float(np.mean([v["reference_accuracy"] for v in languages.values()]))
    average = float(np.mean([v["accuracy"] for v in languages.values()]))
    drop = round((reference_average - average) * 100, 4)
    return {
        "cosine": {"mean": float(cosines.mean()), "min": float(cosines.min())},
        "non_finite_outputs": non_finite,
        "average_accuracy": {"reference": reference_average, "variant": average},
        "accuracy_drop_points": drop,
        "max_accuracy_drop_points": budget,
        "passed": non_finite == 0 and drop <= budget,
        "languages": languages,
    }


@dataclass
class EmbeddingGate:
    """The parity gate of one embedding export: the reference vectors on the sample, and the budget."""

    reference: dict[str, np.ndarray]
    feeds: dict[str, list[dict]]
    sample: RetrievalSample
    budget: float
    sequences_checked: int

    def check(self, variant: Variant, folder: Path) -> dict[str, Any]:
        """The gate's record for one variant (run on its parity provider)."""
        inputs, outputs, _ = graph_interface(folder / MODEL_FILE)
        interface_of(TaskKind.EMBEDDING).check_graph(inputs, outputs, f"variant {variant.name}'s graph")
        assert variant.parity_provider is not None, "embedding variants are checked here"
        candidate = onnx_logits(folder / MODEL_FILE, variant.parity_provider, self.feeds)
        metrics = compare_vectors(self.reference, candidate, self.sample, self.budget)
        return {
            "data": self.sample.describe(),
            "tokenizer": {"sequences_checked": self.sequences_checked, "match": True},
            "status": "passed" if metrics["passed"] else "failed",
            "provider": variant.parity_provider,
            **metrics,
            "kept_despite_failure": False,
        }

    @staticmethod
    def rejection(name: str, parity: dict[str, Any]) -> str:
        """One line saying why a variant failed the gate."""
        if parity["non_finite_outputs"]:
            return f"{name}: {parity['non_finite_outputs']} vectors are not finite"
        averages, cosine = parity["average_accuracy"], parity["cosine"]
        return (
            f"{name}: top-1 retrieval accuracy {averages['variant']:.2%} vs {averages['reference']:.2%} for PyTorch, "
            f"a drop of {parity['accuracy_drop_points']:.2f} points (budget {parity['max_accuracy_drop_points']:.2f}; "
            f"cosine to PyTorch mean {cosine['mean']:.4f}, min {cosine['min']:.4f})"
        )
