"""Zero-shot evaluation: accuracy per language of a checkpoint on a task's evaluation split."""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from xstilts.contracts.checkpoint import CheckpointInfo
from xstilts.contracts.evaluation import EvaluationSample, zero_shot_results
from xstilts.contracts.kinds import TaskKind
from xstilts.models.heads import load_task_model
from xstilts.tasks import Example, get_task
from xstilts.training.data import Collator, tokenize


def load_tokenizer(folder: str | Path) -> Any:
    from transformers import AutoTokenizer

    # fix_mistral_regex=False only silences a spurious transformers 4.57 warning about local folders.
    return AutoTokenizer.from_pretrained(folder, fix_mistral_regex=False)


def device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


@torch.no_grad()
def predict(
    model: Any,
    tokenizer: Any,
    kind: TaskKind,
    examples: Sequence[Example],
    max_length: int,
    batch_size: int,
    desc: str = "",
) -> torch.Tensor:
    """Logits for ``examples``, batched and padded per batch, on the model's device."""
    collate = Collator(tokenizer.pad_token_id, {"t": kind})
    ids = tokenize(tokenizer, kind, examples, max_length)
    outputs = []
    for start in tqdm(range(0, len(ids), batch_size), desc=desc, leave=False, disable=not desc):
        batch = collate([{"task": "t", "input_ids": x, "label": 0} for x in ids[start : start + batch_size]])
        logits = model(
            input_ids=batch["input_ids"].to(model.device), attention_mask=batch["attention_mask"].to(model.device)
        ).logits
        outputs.append(logits.float().cpu())
    return torch.cat(outputs) if outputs else torch.empty(0)


def evaluate(checkpoint: Path, sample: EvaluationSample, batch_size: int) -> dict[str, Any]:
    """Accuracy per language and their average, on the sample's items (the same ones in every language)."""
    info = CheckpointInfo.load(checkpoint)
    task = get_task(sample.task)
    task.check_head(info.kind, info.labels)
    tokenizer = load_tokenizer(checkpoint)
    model = load_task_model(checkpoint, task.kind).to(device())
    if task.kind is TaskKind.SPAN_QA:
        from xstilts.qa.evaluate import evaluate_qa

        return evaluate_qa(model, tokenizer, info, sample, batch_size)
    if task.kind is TaskKind.TOKEN_CLASSIFICATION:
        from xstilts.tagging.evaluate import evaluate_tagging

        return evaluate_tagging(model, tokenizer, info, sample, batch_size)
    started = time.time()
    per_language = {}
    for lang, examples in sample.examples.items():
        logits = predict(model, tokenizer, task.kind, examples, info.max_length, batch_size, desc=f"eval {lang}")
        gold = torch.tensor([e.label for e in examples])
        per_language[lang] = {"accuracy": float((logits.argmax(-1) == gold).float().mean()), "examples": len(examples)}
    return zero_shot_results(
        sample, "accuracy", per_language, info.max_length, time.time() - started, str(model.device)
    )
