"""Test helpers that build real (tiny) components: no mocks."""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from pathlib import Path

from xstilts.contracts.checkpoint import CheckpointInfo
from xstilts.contracts.kinds import TaskKind
from xstilts.tasks import ZERO_SHOT, Example, get_split, get_task
from xstilts.tasks.encoding import example_segments

TINY_MAX_LENGTH = 128
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "sentencepiece.bpe.model")


def make_tiny_checkpoint(
    folder: Path,
    task: str,
    base: str = "tiny-xlmr",
    seed: int = 0,
    languages: Sequence[str] | None = None,
    pooling: str = "cls",
) -> Path:
    """A target checkpoint for ``task``: ``base`` plus a seeded random head, with its ``CheckpointInfo``.

    Says nothing about accuracy; it has the shape, files and metadata of what ``xstilts train`` writes.
    ``languages`` defaults to every language of the task's zero-shot evaluation split.
    """
    import torch

    from xstilts.models import resolve_model
    from xstilts.training.model import load_encoder, task_model

    spec = get_task(task)
    source = Path(resolve_model(base))
    eval_split = ZERO_SHOT[task].eval_split if task in ZERO_SHOT else spec.eval_split
    labels = list(spec.labels)
    torch.manual_seed(seed)
    model = task_model(spec, load_encoder(str(source)), pooling)
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder)
    for name in TOKENIZER_FILES:
        if (source / name).is_file():
            shutil.copy2(source / name, folder / name)
    CheckpointInfo(
        task=task,
        kind=spec.kind.value,
        labels=labels,
        languages=list(languages or get_split(spec, eval_split).languages),
        max_length=TINY_MAX_LENGTH,
        lineage={"base": base, "head": f"random, seed {seed}", "purpose": "tests only"},
    ).save(folder)
    return folder


def memorize(folder: Path, examples: Sequence[Example], max_steps: int = 600, lr: float = 3e-3) -> float:
    """Train a pair-classification checkpoint in place until it classifies ``examples`` right; returns accuracy.

    The tiny random model is at chance on real data, so an accuracy gate has nothing to lose; memorizing the
    gate's own sample gives it a reference worth losing. Word embeddings stay frozen, which keeps steps fast.
    """
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    info = CheckpointInfo.load(folder)
    tokenizer = AutoTokenizer.from_pretrained(folder, fix_mistral_regex=False)
    pairs = [example_segments(TaskKind(info.kind), e)[0] for e in examples]
    batch = tokenizer(
        [a for a, _ in pairs],
        [b for _, b in pairs],
        truncation="longest_first",
        max_length=info.max_length,
        padding=True,
        return_tensors="pt",
    )
    labels = torch.tensor([e.label for e in examples])
    model = AutoModelForSequenceClassification.from_pretrained(
        folder, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0
    )
    model.get_input_embeddings().weight.requires_grad_(False)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=lr)
    torch.manual_seed(0)
    model.train()
    for _ in range(max_steps):
        output = model(**batch, labels=labels)
        if output.loss.item() < 0.02:
            break
        output.loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    model.eval()
    with torch.no_grad():
        accuracy = float((model(**batch).logits.argmax(-1) == labels).float().mean())
    model.save_pretrained(folder)
    return accuracy
