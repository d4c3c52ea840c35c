"""The evaluation split of a task and the seeded sample drawn from it: one definition for export's parity gate,
the bench's accuracy pass and its payloads, so that "the API agrees with export" compares the very same items.

A sample takes the same items (by underlying item id) in every language (``sample_items``); with the same task,
split, ``per_language`` and seed, export and bench draw identical samples.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from xstilts.contracts.kinds import TaskKind
from xstilts.errors import XstiltsError
from xstilts.tasks import (
    ZERO_SHOT,
    Example,
    get_split,
    get_task,
    load_examples,
    non_english_average,
    resolve_languages,
    sample_items,
)


def evaluation_split(task: str) -> str:
    """The split that evaluates a model of ``task``: its zero-shot evaluation split when it has one."""
    return ZERO_SHOT[task].eval_split if task in ZERO_SHOT else get_task(task).eval_split


@dataclass
class EvaluationSample:
    """The same seeded items in each language of a task's evaluation split."""

    task: str
    split: str
    seed: int
    per_language: int | None  # None: every item
    examples: dict[str, list[Example]]

    @property
    def kind(self) -> TaskKind:
        return get_task(self.task).kind

    @property
    def languages(self) -> list[str]:
        return list(self.examples)

    @property
    def size(self) -> int:
        return sum(len(v) for v in self.examples.values())

    def describe(self) -> dict[str, Any]:
        """What the sample is, as recorded in ``bundle.json`` (parity) and bench results."""
        return {
            "task": self.task,
            "split": self.split,
            "seed": self.seed,
            "per_language": self.per_language,
            "languages": self.languages,
            "examples": {lang: len(ex) for lang, ex in self.examples.items()},
            "total": self.size,
        }

    def same_items_as(self, recorded: dict[str, Any]) -> bool:
        """Whether ``recorded`` (a :meth:`describe` read back) names this very sample."""
        counts = recorded.get("examples") or {}
        return (
            recorded.get("task") == self.task
            and recorded.get("split") == self.split
            and recorded.get("seed") == self.seed
            and all(counts.get(lang) == len(ex) for lang, ex in self.examples.items())
        )


def load_evaluation_sample(
    task: str,
    data_dir: Path,
    languages: str | Sequence[str] | None = None,
    per_language: int | None = 200,
    seed: int = 0,
    split: str | None = None,
) -> EvaluationSample:
    """Up to ``per_language`` items (None: all), the same ones in each language, from ``task``'s evaluation split."""
    if per_language is not None and per_language < 1:
        raise XstiltsError(f"a sample needs at least 1 item per language (or all), got {per_language}")
    spec = get_task(task)
    split = split or evaluation_split(task)
    langs = resolve_languages(spec, split, languages)
    loaded = {lang: load_examples(spec, split, lang, data_dir) for lang in langs}
    examples = sample_items(loaded, per_language, seed, get_split(spec, split).parallel)
    empty = [lang for lang, ex in examples.items() if not ex]
    if empty:
        raise XstiltsError(f"{task} {split} has no shared items in {', '.join(empty)}")
    return EvaluationSample(task, split, seed, per_language, examples)


def zero_shot_results(
    sample: EvaluationSample,
    metric: str,
    per_language: dict[str, dict[str, Any]],
    max_length: int,
    wall_time_s: float,
    device: str,
    **extra: Any,
) -> dict[str, Any]:
    """A checkpoint's zero-shot figures on ``sample`` (``results.json``): ``metric`` per language (each entry of
    ``per_language`` holds it), its average and non-English average, and the ``extra`` facts of the kind."""
    values = {lang: float(v[metric]) for lang, v in per_language.items()}
    return {
        "task": sample.task,
        "split": sample.split,
        "metric": metric,
        "max_length": max_length,
        **extra,
        "sample_per_language": sample.per_language,
        "seed": sample.seed,
        "languages": per_language,
        "average": sum(values.values()) / len(values),
        "average_non_english": non_english_average(values),
        "wall_time_s": round(wall_time_s, 1),
        "device": device,
    }
