"""Test helpers that build real (tiny) components: no mocks."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import NoReturn

import pytest

from xstilts.contracts.checkpoint import CheckpointInfo
from xstilts.contracts.kinds import TaskKind
from xstilts.tasks import ZERO_SHOT, Example, get_split, get_task
from xstilts.tasks.encoding import example_segments

# Under CI a missing tool, package or data folder is a broken install step, never a reason to skip.
IN_CI = os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")

TINY_MAX_LENGTH = 128
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "sentencepiece.bpe.model")


def unavailable(message: str) -> NoReturn:
    """Give up on a test whose prerequisite is missing: fail under ``CI=true``, skip elsewhere."""
    if IN_CI:
        pytest.fail(f"{message} (CI=true: a missing prerequisite fails)")
    pytest.skip(message)


def make_tiny_checkpoint(
    folder: Path,
    task: str,
    base: str = "tiny-xlmr",
    seed: int = 0,
    languages: Sequence[str] | None = None,
    pooling: str = "cls",
    max_length: int = TINY_MAX_LENGTH,
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
        max_length=max_length,
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


# Logit spread over real items that the sensitive tiny model's head is scaled to: probabilities then move by tens
# of points between items, so a server that mixes up, drops or reorders inputs gives visibly other answers.
SENSITIVE_LOGIT_STD = 2.0
CALIBRATION_ITEMS = 64


def make_sensitive_checkpoint(
    folder: Path,
    task: str,
    data_dir: Path,
    languages: Sequence[str] | None = None,
    max_length: int = TINY_MAX_LENGTH,
) -> Path:
    """A tiny checkpoint whose answers depend on its whole input: the fixture for end-to-end answer checks.

    The random tiny model's ``[CLS]`` state is constant (its answers do not depend on the input at all), and its
    random head keeps every probability within 1e-4 of the others. This one mean-pools the token states, which
    vary with every token and its position, and fits the scale of its head on real items of the task's training
    split (not its evaluation split) so that the logits spread with a standard deviation of
    ``SENSITIVE_LOGIT_STD``: dropping ``text_pair``, swapping the pair, reversing choices, truncating elsewhere
    or mixing up the items of a batch all change the answers by far more than any numeric tolerance. A tagging
    checkpoint's token head reads every token state (no pooling): its logits are scaled to spread as much over
    the real tokens of training windows, so that reading a word's tag at another sub-word changes it.
    """
    import torch

    from xstilts.models.heads import load_task_model
    from xstilts.tagging.batches import tagging_items
    from xstilts.tasks import load_examples, sample
    from xstilts.training.data import Collator, tokenize
    from xstilts.training.evaluate import load_tokenizer

    make_tiny_checkpoint(folder, task, languages=languages, pooling="mean", max_length=max_length)
    spec = get_task(task)
    kind = spec.kind
    train_split = ZERO_SHOT[task].train_split if task in ZERO_SHOT else spec.train_split
    train_task = get_task(ZERO_SHOT[task].train_task) if task in ZERO_SHOT else spec
    examples = sample(load_examples(train_task, train_split, "en", data_dir), CALIBRATION_ITEMS, seed=0)
    tokenizer = load_tokenizer(folder)
    if kind is TaskKind.TOKEN_CLASSIFICATION:
        items = tagging_items(tokenizer, "t", examples, spec.labels, max_length)
    else:
        items = [{"task": "t", "input_ids": ids, "label": 0} for ids in tokenize(tokenizer, kind, examples, max_length)]
    batch = Collator(tokenizer.pad_token_id, {"t": kind})(items)
    model = load_task_model(folder, kind).eval()
    with torch.no_grad():
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        if kind is TaskKind.TOKEN_CLASSIFICATION:
            logits = logits[batch["attention_mask"].bool()]  # [real tokens, tags]
        spread = logits.std(dim=0).mean() if logits.shape[-1] > 1 else logits.std()
        factor = SENSITIVE_LOGIT_STD / float(spread)
        head = model.classifier
        head.weight.mul_(factor)
        head.bias.mul_(factor)
    model.save_pretrained(folder)
    return folder


# The sensitive tiny QA checkpoint: windows of TINY_MAX_LENGTH tokens overlapping by QA_DOC_STRIDE, so that XQuAD's
# contexts take several windows each.
QA_DOC_STRIDE = 32
QA_LANGUAGES = ("en", "de", "zh")


def make_sensitive_qa_checkpoint(folder: Path, data_dir: Path, languages: Sequence[str] = QA_LANGUAGES) -> Path:
    """A tiny XQuAD checkpoint whose start and end logits spread with std ``SENSITIVE_LOGIT_STD`` over the tokens of
    real windows (TyDiQA-GoldP English train, not the evaluation items): its best span moves with every token of
    the question and the context, so a server that swaps them, maps a window's span to the wrong characters or
    mixes up windows answers visibly otherwise. Its lineage records the doc stride, as a trained run's does."""
    import torch

    from xstilts.models.heads import load_task_model
    from xstilts.qa.evaluate import pad_windows
    from xstilts.qa.windows import Windower
    from xstilts.tasks import load_examples, sample
    from xstilts.training.evaluate import load_tokenizer

    make_tiny_checkpoint(folder, "xquad", languages=languages)
    info = CheckpointInfo.load(folder)
    info.lineage["config"] = {"doc_stride": QA_DOC_STRIDE}
    info.save(folder)
    examples = sample(load_examples(get_task("tydiqa_en"), "train", "en", data_dir), 16, seed=0)
    tokenizer = load_tokenizer(folder)
    windows = Windower(tokenizer, TINY_MAX_LENGTH, QA_DOC_STRIDE).windows(
        [e.text_b or "" for e in examples], [e.text_a for e in examples]
    )
    ids, mask = pad_windows(windows, tokenizer.pad_token_id)
    model = load_task_model(folder, TaskKind.SPAN_QA)
    with torch.no_grad():
        out = model(input_ids=ids, attention_mask=mask)
        real = mask.bool()
        spread = (out.start_logits[real].std() + out.end_logits[real].std()) / 2
        factor = SENSITIVE_LOGIT_STD / float(spread)
        model.qa_outputs.weight.mul_(factor)
        model.qa_outputs.bias.mul_(factor)
    model.save_pretrained(folder)
    return folder


def export_tiny_qa(
    repository: Path, checkpoint: Path, data_dir: Path, name: str = "tiny-xquad", variants: Sequence[str] = ("fp32",)
) -> list[Path]:
    """Export the sensitive tiny QA checkpoint into ``repository`` (plumbing budget: a random model is near 0 F1)."""
    from xstilts.export import export_checkpoint

    return export_checkpoint(
        checkpoint, repository, name, list(variants), data_dir=data_dir, parity_examples=6, max_accuracy_drop=100.0
    )


def kill_once(command: Sequence[str], done: Callable[[], bool], timeout: float = 300.0) -> int:
    """Run ``command`` in its own session until ``done()`` holds (or it ends), SIGKILL its group; return its code.

    ``done`` should watch for a state written to the end (a complete checkpoint, a finished variant), so that
    what the kill interrupts is known.
    """
    import contextlib
    import signal
    import subprocess
    import time

    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and process.poll() is None and not done():
        time.sleep(0.05)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    return process.wait()


# The tiny embedding bundle: the random tiny model's mean-pooled first layer (its token states vary with every token,
# unlike its [CLS] state), with a prefix, so that a server that drops the prefix or mixes up rows answers otherwise.
EMBEDDING_LANGUAGES = ("de", "fr")
EMBEDDING_PARITY_PAIRS = 20


def export_tiny_embedding(
    repository: Path, data_dir: Path, name: str = "tiny-embed", variants: Sequence[str] = ("fp32", "int8"), **options
) -> list[Path]:
    """Export the tiny model's embedding bundles (layer 1, mean pooling, prefix ``query: ``) into ``repository``."""
    from xstilts.contracts.embedding import EmbeddingSpec
    from xstilts.export import export_embedding

    spec = EmbeddingSpec(layer=1, pooling="mean", prefix="query: ", normalize=True)
    return export_embedding(
        "tiny-xlmr",
        repository,
        name,
        spec,
        variants,
        data_dir=data_dir,
        languages=EMBEDDING_LANGUAGES,
        parity_examples=EMBEDDING_PARITY_PAIRS,
        max_length=TINY_MAX_LENGTH,
        **options,
    )


# The tiny tagging bundles: sensitive token heads with windows of a few tokens, so that real sentences span several
# windows and a server that truncates, or reads a tag at the wrong sub-word or window, answers otherwise.
TAGGING_MAX_LENGTH = 24
TAGGING_PARITY_SENTENCES = 8


def export_tiny_tagger(
    repository: Path, checkpoint: Path, name: str, data_dir: Path, variants: Sequence[str], **options
) -> list[Path]:
    """Export a sensitive tagging checkpoint into ``repository`` (parity on a few sentences per language)."""
    from xstilts.export import export_checkpoint

    options.setdefault("parity_examples", TAGGING_PARITY_SENTENCES)
    return export_checkpoint(checkpoint, repository, name, list(variants), data_dir=data_dir, **options)
