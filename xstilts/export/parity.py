"""The parity gate: does a variant answer like the PyTorch checkpoint on real evaluation data of its task?

Both sides get the same token ids, made by the ``tokenizers`` package from the bundle's ``tokenizer.json`` (as a
server makes them), after checking those ids equal the checkpoint's Hugging Face tokenizer's.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from xstilts.contracts.bundle import MODEL_FILE
from xstilts.contracts.evaluation import EvaluationSample
from xstilts.contracts.interface import interface_of
from xstilts.contracts.kinds import TaskKind
from xstilts.contracts.providers import CPU
from xstilts.errors import XstiltsError
from xstilts.export.encode import Encoder, complete_feeds
from xstilts.export.graph import graph_interface
from xstilts.export.variants import Variant
from xstilts.tasks.encoding import Segments, example_segments

BATCH_SIZE = 32

GATE_FIELDS = (
    "non_finite_outputs",
    "average_accuracy",
    "accuracy_drop_points",
    "max_accuracy_drop_points",
    "label_agreement",
)


def check_tokenizer(
    hf_tokenizer: Any, encoder: Encoder, kind: TaskKind, sample: EvaluationSample, max_length: int
) -> int:
    """Fail unless the serving tokenizer gives the checkpoint tokenizer's ids on every sampled sequence."""
    segments = [s for ex in sample.examples.values() for e in ex for s in example_segments(kind, e)]
    return check_segments(hf_tokenizer, encoder, segments, max_length)


def check_segments(hf_tokenizer: Any, encoder: Encoder, segments: list[Segments], max_length: int) -> int:
    """Fail unless the serving tokenizer gives ``hf_tokenizer``'s ids on every segment pair; returns how many."""
    served = encoder.token_ids(segments)
    firsts = [a for a, _ in segments]
    seconds = [b for _, b in segments]
    expected = hf_tokenizer(
        firsts,
        None if all(b is None for b in seconds) else seconds,
        truncation="longest_first",
        max_length=max_length,
    )["input_ids"]
    wrong = [i for i, (got, want) in enumerate(zip(served, expected, strict=True)) if list(got) != list(want)]
    if wrong:
        example = segments[wrong[0]]
        raise XstiltsError(
            f"tokenizer.json gives different token ids than the checkpoint's tokenizer on {len(wrong)} of "
            f"{len(segments)} sequences (first: {example!r}); a server would see other inputs than training did"
        )
    return len(segments)


def make_feeds(encoder: Encoder, sample: EvaluationSample, batch_size: int = BATCH_SIZE) -> dict[str, list[dict]]:
    """Padded batches per language, shared by the reference and every variant."""
    return {
        lang: [encoder.feeds(examples[i : i + batch_size]) for i in range(0, len(examples), batch_size)]
        for lang, examples in sample.examples.items()
    }


def reference_logits(model: Any, feeds: dict[str, list[dict]]) -> dict[str, np.ndarray]:
    """The PyTorch checkpoint's logits on the feeds (token type ids left to the model's default of zeros)."""
    import torch

    with torch.no_grad():
        return {
            lang: np.concatenate(
                [
                    model(**{k: torch.from_numpy(v) for k, v in batch.items()}).logits.float().numpy()
                    for batch in batches
                ]
            )
            for lang, batches in feeds.items()
        }


def onnx_logits(model_path: Path, provider: str, feeds: dict[str, list[dict]]) -> dict[str, np.ndarray]:
    """A graph's logits on the feeds, run by ONNX Runtime with ``provider``."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(str(model_path), options, providers=[provider])
    names = [i.name for i in session.get_inputs()]
    return {
        lang: np.concatenate([session.run(None, complete_feeds(batch, names))[0] for batch in batches]).astype(
            np.float32
        )
        for lang, batches in feeds.items()
    }


def compare(
    reference: dict[str, np.ndarray],
    candidate: dict[str, np.ndarray],
    sample: EvaluationSample,
    max_accuracy_drop: float,
) -> dict[str, Any]:
    """Logit differences, label agreement and accuracy per language, and whether the accuracy drop is in budget."""
    languages: dict[str, dict[str, Any]] = {}
    non_finite = 0
    for lang, examples in sample.examples.items():
        gold = np.array([e.label for e in examples])
        ref, got = reference[lang], candidate[lang]
        non_finite += int((~np.isfinite(got)).any(axis=-1).sum())
        ref_labels, got_labels = ref.argmax(-1), got.argmax(-1)
        languages[lang] = {
            "examples": len(examples),
            "reference_accuracy": float((ref_labels == gold).mean()),
            "accuracy": float((got_labels == gold).mean()),
            "label_agreement": float((ref_labels == got_labels).mean()),
            "max_abs_logit_diff": _finite(np.abs(ref - got).max()),
        }
    reference_average = float(np.mean([v["reference_accuracy"] for v in languages.values()]))
    average = float(np.mean([v["accuracy"] for v in languages.values()]))
    drop = round((reference_average - average) * 100, 4)
    total = sum(v["examples"] for v in languages.values())
    diffs = [v["max_abs_logit_diff"] for v in languages.values()]
    passed = non_finite == 0 and drop <= max_accuracy_drop
    return {
        "max_abs_logit_diff": None if None in diffs else max(diffs),
        "label_agreement": sum(v["label_agreement"] * v["examples"] for v in languages.values()) / total,
        "non_finite_outputs": non_finite,
        "average_accuracy": {"reference": reference_average, "variant": average},
        "accuracy_drop_points": drop,
        "max_accuracy_drop_points": max_accuracy_drop,
        "passed": passed,
        "languages": languages,
    }


def _finite(value: float) -> float | None:
    return float(value) if np.isfinite(value) else None


def rejection_message(name: str, parity: dict[str, Any]) -> str:
    """One line saying why a variant failed the gate."""
    if parity["non_finite_outputs"]:
        return f"{name}: {parity['non_finite_outputs']} outputs are not finite numbers"
    averages = parity["average_accuracy"]
    return (
        f"{name}: average accuracy {averages['variant']:.2%} vs {averages['reference']:.2%} for the checkpoint, "
        f"a drop of {parity['accuracy_drop_points']:.2f} points (budget {parity['max_accuracy_drop_points']:.2f}; "
        f"label agreement {parity['label_agreement']:.1%})"
    )


@dataclass
class Gate:
    """The parity gate of one export: the checkpoint's logits on the sample, and the budget."""

    reference: dict[str, np.ndarray]
    feeds: dict[str, list[dict]]
    sample: EvaluationSample
    budget: float
    sequences_checked: int

    def check(self, variant: Variant, folder: Path) -> dict[str, Any]:
        """The gate's record for one variant; one only other hardware runs as deployed is marked skipped.

        A graph without its kind's interface fails at once: no server could feed it.
        """
        inputs, outputs, _ = graph_interface(folder / MODEL_FILE)
        interface_of(self.sample.kind).check_graph(inputs, outputs, f"variant {variant.name}'s graph")
        record: dict[str, Any] = {
            "data": self.sample.describe(),
            "tokenizer": {"sequences_checked": self.sequences_checked, "match": True},
        }
        if variant.parity_provider is None:
            record.update(status="skipped", reason=variant.parity_skip_reason, kept_despite_failure=False)
            if CPU in variant.providers:
                # The graph handed to the accelerator is still checked, on the CPU: a broken graph fails the gate.
                graph = self._compare(folder, CPU)
                record["graph_on_cpu"] = graph
                if not graph["passed"]:
                    record.update(status="failed", **{k: graph[k] for k in GATE_FIELDS})
            return record
        metrics = self._compare(folder, variant.parity_provider)
        status = "passed" if metrics["passed"] else "failed"
        return {
            **record,
            "status": status,
            "provider": variant.parity_provider,
            **metrics,
            "kept_despite_failure": False,
        }

    @staticmethod
    def rejection(name: str, parity: dict[str, Any]) -> str:
        return rejection_message(name, parity)

    def _compare(self, folder: Path, provider: str) -> dict[str, Any]:
        candidate = onnx_logits(folder / MODEL_FILE, provider, self.feeds)
        return compare(self.reference, candidate, self.sample, self.budget)
