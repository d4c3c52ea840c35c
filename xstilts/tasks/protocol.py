"""The zero-shot protocol: which English data trains a target task, which split evaluates it, and the leak check.

XNLI and PAWS-X dev rows in every language are translations of the same English items (likewise XCOPA of
COPA's validation set). Examples carry the id of their underlying item, so a leak is an item id that is both
trained on (in any language, in any phase) and evaluated.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from xstilts.errors import XstiltsError
from xstilts.tasks.loading import get_task


@dataclass(frozen=True)
class ZeroShot:
    """English training data and the evaluation split of a cross-lingual target task."""

    target: str
    train_task: str
    train_split: str
    eval_split: str
    note: str


ZERO_SHOT: dict[str, ZeroShot] = {
    z.target: z
    for z in (
        ZeroShot("xnli", "mnli", "train", "test", "train on English MNLI; evaluate XNLI test in 15 languages"),
        ZeroShot(
            "pawsx",
            "pawsx",
            "zs-train",
            "zs-eval",
            "train on English PAWS-X dev items of hash half 0; evaluate half 1 in 7 languages",
        ),
        ZeroShot(
            "xcopa",
            "xcopa",
            "train",
            "val",
            "train on English COPA train; evaluate COPA val (en) and its XCOPA translations",
        ),
        ZeroShot(
            "xquad",
            "tydiqa_en",
            "train",
            "test",
            "train on English TyDiQA-GoldP train (SQuAD v1.1 is not available); evaluate XQuAD in 12 languages",
        ),
        ZeroShot("mlqa", "tydiqa_en", "train", "dev", "train on English TyDiQA-GoldP train; evaluate MLQA dev"),
        ZeroShot("tydiqa", "tydiqa_en", "train", "dev", "train on English TyDiQA-GoldP train; evaluate its dev"),
        ZeroShot("panx", "panx", "train", "dev", "train on English PAN-X train; evaluate PAN-X dev in 16 languages"),
        ZeroShot("udpos", "udpos", "train", "dev", "train on English UD-POS train; evaluate its dev in 15 languages"),
    )
}


def training_data(task: str) -> tuple[str, str]:
    """(task whose files train a model of ``task``, split): the zero-shot protocol's English data when it has one.

    The split is empty for a task without a training split.
    """
    if task in ZERO_SHOT:
        return ZERO_SHOT[task].train_task, ZERO_SHOT[task].train_split
    return task, get_task(task).train_split


def check_no_leak(trained_uids: Iterable[str], evaluated_uids: Iterable[str], where: str) -> None:
    """Fail if any evaluated item (in any language) was trained on (in any language)."""
    shared = set(trained_uids) & set(evaluated_uids)
    if shared:
        sample = ", ".join(sorted(shared)[:3])
        raise XstiltsError(
            f"{where}: {len(shared)} evaluated items are translations of trained items (e.g. {sample}); "
            "train on a different split or task"
        )


SOURCE_LANGUAGE = "en"


def non_english_average(accuracy: Mapping[str, float]) -> float | None:
    """The plain average over the target languages (all but the English source), or None when there are none."""
    others = [value for lang, value in accuracy.items() if lang != SOURCE_LANGUAGE]
    return sum(others) / len(others) if others else None
