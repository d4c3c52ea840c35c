"""Request bodies of real XNLI test pairs (all fifteen languages, mixed), one JSON body per line, for wrk."""

from __future__ import annotations

import json
import random
from pathlib import Path

from xstilts.tasks import get_task, load_examples


def xnli_pairs(data_dir: Path, count: int, seed: int = 0, split: str = "test") -> list[tuple[str, str]]:
    """``count`` (premise, hypothesis) pairs drawn from every language of XNLI's ``split``, shuffled."""
    task = get_task("xnli")
    pairs = []
    for language in task.splits[split].languages:
        pairs.extend((e.text_a, e.text_b or "") for e in load_examples(task, split, language, data_dir))
    random.Random(seed).shuffle(pairs)
    return pairs[:count]


def write_bodies(pairs: list[tuple[str, str]], out: Path, items_per_request: int = 1) -> Path:
    """One ``/v1`` predict body per line, ``items_per_request`` pairs each."""
    lines = []
    for start in range(0, len(pairs) - items_per_request + 1, items_per_request):
        chunk = pairs[start : start + items_per_request]
        inputs = [{"text": a, "text_pair": b} for a, b in chunk]
        lines.append(json.dumps({"inputs": inputs}, ensure_ascii=False))
    out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return out
