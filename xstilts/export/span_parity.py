"""The parity gate of an extractive QA bundle: EM/F1 on real evaluation items and span agreement with PyTorch.

Both sides read the same windows, made by :class:`~xstilts.qa.windows.Windower` from the bundle's
``tokenizer.json`` with the bundle's doc stride (as a server makes them), after checking those windows' ids
equal the ones the checkpoint's own tokenizer gives (what training and evaluation read). Each side's start and
end logits go through the one post-processing (:func:`~xstilts.qa.postprocess.item_answers`); recorded per
language: F1 and exact match of both (the task's official normalisation), the share of items whose best span
(in characters) is PyTorch's, and the largest logit difference. The gate fails on a non-finite logit or an
average F1 drop beyond the budget (points).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from xstilts.contracts.bundle import MODEL_FILE
from xstilts.contracts.evaluation import EvaluationSample
from xstilts.contracts.interface import interface_of, token_feeds
from xstilts.contracts.kinds import TaskKind
from xstilts.contracts.span import SpanSpec
from xstilts.errors import XstiltsError
from xstilts.export.encode import complete_feeds
from xstilts.export.graph import graph_interface
from xstilts.export.parity import BATCH_SIZE
from xstilts.export.variants import Variant
from xstilts.qa.metrics import score_examples
from xstilts.qa.postprocess import Answer, item_answers
from xstilts.qa.windows import Window, Windower

Logits = tuple[list[np.ndarray], list[np.ndarray]]  # per window: start logits, end logits (unpadded)


def sample_windows(windower: Windower, sample: EvaluationSample) -> dict[str, list[Window]]:
    """Every window of every sampled item, per language (question: ``text_b``, context: ``text_a``)."""
    return {
        lang: windower.windows([e.text_b or "" for e in examples], [e.text_a for e in examples])
        for lang, examples in sample.examples.items()
    }


def check_windows(reference: dict[str, list[Window]], served: dict[str, list[Window]]) -> int:
    """Fail unless the bundle's windows hold the checkpoint tokenizer's ids; returns how many windows were checked."""
    total = 0
    for lang, windows in reference.items():
        got = served[lang]
        wrong = [i for i, (a, b) in enumerate(zip(windows, got, strict=False)) if a.ids != b.ids or a.item != b.item]
        if wrong or len(windows) != len(got):
            raise XstiltsError(
                f"tokenizer.json gives other windows than the checkpoint's tokenizer in {lang} ({len(got)} windows "
                f"against {len(windows)}, {len(wrong)} differ): a server would see other inputs than training did"
            )
        total += len(windows)
    return total


def window_batches(windows: Sequence[Window], pad_id: int) -> list[dict[str, np.ndarray]]:
    """The token inputs of the windows in padded batches of ``BATCH_SIZE``, as a server pads them."""
    batches = []
    for first in range(0, len(windows), BATCH_SIZE):
        chunk = windows[first : first + BATCH_SIZE]
        width = max(len(w.ids) for w in chunk)
        ids = np.full((len(chunk), width), pad_id, dtype=np.int64)
        mask = np.zeros((len(chunk), width), dtype=np.int64)
        for row, window in enumerate(chunk):
            ids[row, : len(window.ids)] = window.ids
            mask[row, : len(window.ids)] = 1
        batches.append(token_feeds(ids, mask))
    return batches


def _unpad(batches: Sequence[tuple[np.ndarray, np.ndarray]], windows: Sequence[Window]) -> Logits:
    """Each window's start and end logits without the batch's padding."""
    starts = [row for s, _ in batches for row in np.asarray(s, np.float32)]
    ends = [row for _, e in batches for row in np.asarray(e, np.float32)]
    lengths = [len(w.ids) for w in windows]
    return [s[:n] for s, n in zip(starts, lengths, strict=True)], [e[:n] for e, n in zip(ends, lengths, strict=True)]


def reference_span_logits(model: Any, feeds: dict[str, list[dict]], windows: dict[str, list[Window]]) -> dict:
    """The PyTorch checkpoint's start and end logits of every window, per language."""
    import torch

    out = {}
    with torch.no_grad():
        for lang, batches in feeds.items():
            rows = []
            for batch in batches:
                result = model(**{k: torch.from_numpy(v) for k, v in batch.items()})
                rows.append((result.start_logits.float().numpy(), result.end_logits.float().numpy()))
            out[lang] = _unpad(rows, windows[lang])
    return out


def onnx_span_logits(model_path: Path, provider: str, feeds: dict[str, list[dict]], windows: dict) -> dict:
    """A graph's start and end logits of every window, per language, run by ONNX Runtime with ``provider``."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(str(model_path), options, providers=[provider])
    names = [i.name for i in session.get_inputs()]
    outputs = list(interface_of(TaskKind.SPAN_QA).output_names)
    return {
        lang: _unpad([tuple(session.run(outputs, complete_feeds(b, names))) for b in batches], windows[lang])
        for lang, batches in feeds.items()
    }


def answers_of(sample: EvaluationSample, windows: dict, logits: dict, spec: SpanSpec) -> dict[str, list[Answer | None]]:
    """Each item's best answer (None when it has no candidate span), per language."""
    out = {}
    for lang, examples in sample.examples.items():
        starts, ends = logits[lang]
        found = item_answers(
            [e.text_a for e in examples], windows[lang], starts, ends, max_answer_length=spec.max_answer_length
        )
        out[lang] = [best[0] if best else None for best in found]
    return out


def _span(answer: Answer | None) -> tuple[int, int] | None:
    return (answer.start, answer.end) if answer else None


def _max_diff(reference: Logits, candidate: Logits) -> float | None:
    diffs = [
        float(np.abs(r - c).max()) for side in (0, 1) for r, c in zip(reference[side], candidate[side], strict=True)
    ]
    worst = max(diffs, default=0.0)
    return worst if np.isfinite(worst) else None


def compare_spans(
    sample: EvaluationSample,
    reference: dict[str, list[Answer | None]],
    candidate: dict[str, list[Answer | None]],
    reference_logits: dict,
    candidate_logits: dict,
    budget: float,
) -> dict[str, Any]:
    """F1 and exact match per language of both sides, span agreement and logit differences; passed within budget."""
    languages: dict[str, dict[str, Any]] = {}
    non_finite = 0
    for lang, examples in sample.examples.items():
        got, want = candidate[lang], reference[lang]
        non_finite += sum(int((~np.isfinite(np.concatenate(side))).any()) for side in candidate_logits[lang])
        mine = score_examples(sample.task, lang, examples, [a.text if a else "" for a in got])
        theirs = score_examples(sample.task, lang, examples, [a.text if a else "" for a in want])
        spans = sum(int(_span(a) == _span(b)) for a, b in zip(got, want, strict=True))
        languages[lang] = {
            "examples": len(examples),
            "reference_f1": theirs.f1,
            "f1": mine.f1,
            "reference_exact_match": theirs.exact_match,
            "exact_match": mine.exact_match,
            # the bench compares "accuracy" with what it measures through the API: F1 for extractive QA
            "reference_accuracy": theirs.f1,
            "accuracy": mine.f1,
            "span_agreement": spans / len(examples),
            "max_abs_logit_diff": _max_diff(reference_logits[lang], candidate_logits[lang]),
        }
    reference_average = float(np.mean([v["reference_f1"] for v in languages.values()]))
    average = float(np.mean([v["f1"] for v in languages.values()]))
    drop = round((reference_average - average) * 100, 4)
    total = sum(v["examples"] for v in languages.values())
    diffs = [v["max_abs_logit_diff"] for v in languages.values()]
    return {
        "metric": "f1",
        "max_abs_logit_diff": None if None in diffs else max(diffs),
        "span_agreement": sum(v["span_agreement"] * v["examples"] for v in languages.values()) / total,
        "non_finite_outputs": non_finite,
        "average_accuracy": {"reference": reference_average, "variant": average},
        "average_exact_match": {
            "reference": float(np.mean([v["reference_exact_match"] for v in languages.values()])),
            "variant": float(np.mean([v["exact_match"] for v in languages.values()])),
        },
        "accuracy_drop_points": drop,
        "max_accuracy_drop_points": budget,
        "passed": non_finite == 0 and drop <= budget,
        "languages": languages,
    }


@dataclass
class SpanGate:
    """The parity gate of one extractive QA export: the checkpoint's answers on the sample's windows, the budget."""

    sample: EvaluationSample
    spec: SpanSpec
    windows: dict[str, list[Window]]
    feeds: dict[str, list[dict]]
    reference_logits: dict
    budget: float
    windows_checked: int

    def __post_init__(self) -> None:
        self.reference = answers_of(self.sample, self.windows, self.reference_logits, self.spec)

    def check(self, variant: Variant, folder: Path) -> dict[str, Any]:
        """The gate's record for one variant (run on its parity provider)."""
        inputs, outputs, _ = graph_interface(folder / MODEL_FILE)
        interface_of(TaskKind.SPAN_QA).check_graph(inputs, outputs, f"variant {variant.name}'s graph")
        assert variant.parity_provider is not None, "span QA variants are checked here"
        logits = onnx_span_logits(folder / MODEL_FILE, variant.parity_provider, self.feeds, self.windows)
        candidate = answers_of(self.sample, self.windows, logits, self.spec)
        metrics = compare_spans(self.sample, self.reference, candidate, self.reference_logits, logits, self.budget)
        return {
            "data": self.sample.describe(),
            "tokenizer": {"windows_checked": self.windows_checked, "match": True},
            "status": "passed" if metrics["passed"] else "failed",
            "provider": variant.parity_provider,
            **metrics,
            "kept_despite_failure": False,
        }

    @staticmethod
    def rejection(name: str, parity: dict[str, Any]) -> str:
        """One line saying why a variant failed the gate."""
        if parity["non_finite_outputs"]:
            return f"{name}: {parity['non_finite_outputs']} windows have logits that are not finite numbers"
        averages = parity["average_accuracy"]
        return (
            f"{name}: average F1 {averages['variant']:.2%} vs {averages['reference']:.2%} for the checkpoint, "
            f"a drop of {parity['accuracy_drop_points']:.2f} points (budget {parity['max_accuracy_drop_points']:.2f}; "
            f"span agreement {parity['span_agreement']:.1%})"
        )
