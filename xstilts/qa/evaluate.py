"""Zero-shot extractive QA evaluation of a checkpoint (PyTorch): F1 and exact match per language."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from xstilts.contracts.checkpoint import CheckpointInfo
from xstilts.contracts.evaluation import EvaluationSample, zero_shot_results
from xstilts.qa.metrics import score_examples
from xstilts.qa.postprocess import MAX_ANSWER_LENGTH, Answer, item_answers
from xstilts.qa.windows import DOC_STRIDE, Window, Windower
from xstilts.tasks import Example


def doc_stride_of(info: CheckpointInfo) -> int:
    """The doc stride a checkpoint was trained with (its run config in the lineage), else the default."""
    return int((info.lineage.get("config") or {}).get("doc_stride") or DOC_STRIDE)


def pad_windows(windows: Sequence[Window], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Token ids and attention mask of a batch of windows, padded to the longest."""
    width = max(len(w.ids) for w in windows)
    ids = torch.full((len(windows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(windows), width), dtype=torch.long)
    for row, window in enumerate(windows):
        ids[row, : len(window.ids)] = torch.tensor(window.ids)
        mask[row, : len(window.ids)] = 1
    return ids, mask


@torch.no_grad()
def window_logits(
    model: Any, windows: Sequence[Window], pad_id: int, batch_size: int, desc: str = ""
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Start and end logits of every window (unpadded), batched on the model's device."""
    starts: list[np.ndarray] = []
    ends: list[np.ndarray] = []
    for first in tqdm(range(0, len(windows), batch_size), desc=desc, leave=False, disable=not desc):
        batch = windows[first : first + batch_size]
        ids, mask = pad_windows(batch, pad_id)
        out = model(input_ids=ids.to(model.device), attention_mask=mask.to(model.device))
        for row, window in enumerate(batch):
            starts.append(out.start_logits[row, : len(window.ids)].float().cpu().numpy())
            ends.append(out.end_logits[row, : len(window.ids)].float().cpu().numpy())
    return starts, ends


def predict_answers(
    model: Any,
    windower: Windower,
    pad_id: int,
    examples: Sequence[Example],
    batch_size: int,
    top_k: int = 1,
    desc: str = "",
) -> list[list[Answer]]:
    """The best answers of every example, best first (an example may have none)."""
    windows = windower.windows([e.text_b or "" for e in examples], [e.text_a for e in examples])
    starts, ends = window_logits(model, windows, pad_id, batch_size, desc)
    contexts = [e.text_a for e in examples]
    return item_answers(contexts, windows, starts, ends, top_k=top_k, max_answer_length=MAX_ANSWER_LENGTH)


def evaluate_qa(model: Any, tokenizer: Any, info: CheckpointInfo, sample: EvaluationSample, batch_size: int) -> dict:
    """F1 and exact match per language (each task's official normalisation) and the F1 averages."""
    windower = Windower(tokenizer, info.max_length, doc_stride_of(info))
    started = time.time()
    per_language = {}
    for lang, examples in sample.examples.items():
        answers = predict_answers(model, windower, tokenizer.pad_token_id, examples, batch_size, desc=f"eval {lang}")
        predictions = [found[0].text if found else "" for found in answers]
        per_language[lang] = score_examples(sample.task, lang, examples, predictions).as_dict()
    return zero_shot_results(
        sample,
        "f1",
        per_language,
        info.max_length,
        time.time() - started,
        str(model.device),
        doc_stride=windower.doc_stride,
        max_answer_length=MAX_ANSWER_LENGTH,
        average_exact_match=sum(v["exact_match"] for v in per_language.values()) / len(per_language),
    )
