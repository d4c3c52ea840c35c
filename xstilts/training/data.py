"""Phase data: examples per task, tokenized once, batched one task at a time by a seeded multi-task sampler."""

from __future__ import annotations

import math
import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from xstilts.contracts.kinds import TaskKind
from xstilts.qa.batches import span_items, span_targets
from xstilts.qa.windows import DOC_STRIDE
from xstilts.tagging.batches import padded_labels, tagging_items
from xstilts.tasks import Example, Task, get_task, load_examples, resolve_languages, sample, split_files
from xstilts.tasks.encoding import example_segments
from xstilts.training.config import PhaseConfig, TaskData, resolved_split


@dataclass
class TaskExamples:
    """The examples one task contributes to a phase, with the files they came from."""

    task: Task
    source: str
    split: str
    languages: tuple[str, ...]
    examples: list[Example]
    files: list[Path] = field(default_factory=list)


def gather(data: TaskData, data_dir: Path, seed: int, target: str | None) -> TaskExamples:
    """Load a phase task's examples (a seeded sample per language when ``max_examples`` is set)."""
    task = get_task(data.task)
    source, split = resolved_split(data, target)
    source_task = get_task(source)
    languages = resolve_languages(source_task, split, data.languages)
    examples: list[Example] = []
    files: list[Path] = []
    for language in languages:
        examples.extend(sample(load_examples(source_task, split, language, data_dir), data.max_examples, seed))
        files.extend(split_files(source_task, split, language, data_dir))
    return TaskExamples(task, source, split, languages, examples, files)


def phase_examples(phase: PhaseConfig, data_dir: Path, seed: int, target: str | None) -> list[TaskExamples]:
    return [gather(data, data_dir, seed, target) for data in phase.tasks]


def tokenize(tokenizer: Any, kind: TaskKind, examples: Sequence[Example], max_length: int) -> list[list[list[int]]]:
    """Token ids per example: one sequence for classification, one per choice for multiple choice."""
    segments = [example_segments(kind, e) for e in examples]
    flat_a = [a for segs in segments for a, _ in segs]
    flat_b = [b for segs in segments for _, b in segs]
    pairs = any(b is not None for b in flat_b)
    encoded = tokenizer(flat_a, flat_b if pairs else None, truncation=True, max_length=max_length)["input_ids"]
    out, position = [], 0
    for segs in segments:
        out.append(encoded[position : position + len(segs)])
        position += len(segs)
    return out


class PhaseDataset:
    """All tasks' tokenized examples of a phase, addressed by one global index."""

    def __init__(
        self, tokenizer: Any, parts: Sequence[TaskExamples], max_length: int, doc_stride: int = DOC_STRIDE
    ) -> None:
        self.items: list[dict[str, Any]] = []
        self.offsets: dict[str, range] = {}
        for part in parts:
            start = len(self.items)
            if part.task.kind is TaskKind.SPAN_QA:  # one item per window of a (question, context) pair
                self.items.extend(span_items(tokenizer, part.task.name, part.examples, max_length, doc_stride))
                self.offsets[part.task.name] = range(start, len(self.items))
                continue
            if part.task.kind is TaskKind.TOKEN_CLASSIFICATION:  # one item per window of a sentence
                self.items.extend(tagging_items(tokenizer, part.task.name, part.examples, part.task.labels, max_length))
                self.offsets[part.task.name] = range(start, len(self.items))
                continue
            for example, ids in zip(
                part.examples, tokenize(tokenizer, part.task.kind, part.examples, max_length), strict=True
            ):
                self.items.append({"task": part.task.name, "input_ids": ids, "label": example.label})
            self.offsets[part.task.name] = range(start, len(self.items))

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> dict[str, Any]:
        return self.items[index]


def task_weights(sizes: dict[str, int], sampling: str, temperature: float, cap: int | None) -> dict[str, float]:
    """Probability of drawing each task's next batch: proportional, temperature-scaled, or capped sizes."""
    if sampling == "temperature":
        raw = {t: n ** (1.0 / temperature) for t, n in sizes.items()}
    elif sampling == "capped":
        raw = {t: float(min(n, cap or n)) for t, n in sizes.items()}
    else:
        raw = {t: float(n) for t, n in sizes.items()}
    total = sum(raw.values())
    return {t: w / total for t, w in raw.items()}


class TaskBatchSampler:
    """A fixed, seeded sequence of single-task batches: the task by weight, examples by reshuffled permutation."""

    def __init__(
        self, offsets: dict[str, range], batch_size: int, batches: int, weights: dict[str, float], seed: int
    ) -> None:
        self.offsets, self.batch_size, self.batches = offsets, batch_size, batches
        self.weights, self.seed = weights, seed

    def __len__(self) -> int:
        return self.batches

    def __iter__(self) -> Iterator[list[int]]:
        rng = random.Random(self.seed)
        tasks = list(self.offsets)
        pools: dict[str, list[int]] = {t: [] for t in tasks}
        for _ in range(self.batches):
            task = rng.choices(tasks, weights=[self.weights[t] for t in tasks])[0]
            batch: list[int] = []
            while len(batch) < self.batch_size:
                if not pools[task]:
                    pools[task] = list(self.offsets[task])
                    rng.shuffle(pools[task])
                batch.append(pools[task].pop())
            yield batch


def batches_for(phase: PhaseConfig, sizes: dict[str, int]) -> int:
    """How many batches (micro-batches) the phase draws in all."""
    if phase.max_steps is not None:
        return phase.max_steps * phase.gradient_accumulation
    per_epoch = sum(math.ceil(n / phase.batch_size) for n in sizes.values())
    return max(phase.gradient_accumulation, math.ceil(phase.epochs * per_epoch))


class Collator:
    """Pads a single-task batch to its longest sequence; multiple choice becomes [batch, choices, length]."""

    def __init__(self, pad_id: int, kinds: dict[str, TaskKind]) -> None:
        self.pad_id, self.kinds = pad_id, kinds

    def __call__(self, items: list[dict[str, Any]]) -> dict[str, Any]:
        import torch

        task = items[0]["task"]
        if any(item["task"] != task for item in items):
            raise ValueError("a batch mixes tasks")
        sequences = [seq for item in items for seq in item["input_ids"]]
        width = max(len(s) for s in sequences)
        ids = torch.full((len(sequences), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(sequences), width), dtype=torch.long)
        for row, seq in enumerate(sequences):
            ids[row, : len(seq)] = torch.tensor(seq)
            mask[row, : len(seq)] = 1
        if self.kinds[task] is TaskKind.MULTIPLE_CHOICE:
            choices = len(items[0]["input_ids"])
            ids, mask = ids.view(len(items), choices, width), mask.view(len(items), choices, width)
        if self.kinds[task] is TaskKind.SPAN_QA:
            return {"task": task, "input_ids": ids, "attention_mask": mask, **span_targets(items)}
        if self.kinds[task] is TaskKind.TOKEN_CLASSIFICATION:
            labels = padded_labels(items, width)
        else:
            labels = torch.tensor([item["label"] for item in items], dtype=torch.long)
        return {"task": task, "input_ids": ids, "attention_mask": mask, "labels": labels}
