"""int8 answers depend on a batch's neighbours, fp32 answers do not: the documented behaviour, on real bundles.

Dynamic int8 quantization scales each activation tensor by the range of the whole batch, so the same item run
beside other items gets (slightly) other logits; the float32 graph computes each row on its own (padding masked).
Shown on the sensitive tiny model (whose logits move with their inputs, so a batch-dependence is visible).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort
from tokenizers import Tokenizer

from xstilts.tasks import get_task, load_examples

ITEM_COUNT = 4


def logits_of(folder: Path, pairs: list[tuple[str, str]]) -> np.ndarray:
    """The bundle's logits for ``pairs`` run as one padded batch, the way a server runs it."""
    tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
    encodings = tokenizer.encode_batch(pairs)
    ids = np.array([e.ids for e in encodings], dtype=np.int64)
    feeds = {"input_ids": ids, "attention_mask": np.array([e.attention_mask for e in encodings], dtype=np.int64)}
    session = ort.InferenceSession(str(folder / "model.onnx"), providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()]
    if "token_type_ids" in names:
        feeds["token_type_ids"] = np.zeros_like(ids)
    return session.run(None, {name: feeds[name] for name in names})[0]


def test_int8_logits_move_with_batch_neighbours_and_fp32_logits_do_not(tiny_repository: Path, data_dir: Path):
    examples = load_examples(get_task("xnli"), "test", "de", data_dir)
    items = [(e.text_a, e.text_b) for e in examples[:ITEM_COUNT]]
    # other neighbours: other texts, longer (more padding for the items) and of another activation range
    neighbours = [(e.text_a + " " + e.text_a, e.text_b) for e in examples[100 : 100 + 3 * ITEM_COUNT]]
    moved = {}
    for variant in ("fp32", "int8"):
        folder = tiny_repository / "tiny-xnli" / variant
        alone = logits_of(folder, items)
        beside = logits_of(folder, items + neighbours)[:ITEM_COUNT]
        moved[variant] = float(np.abs(alone - beside).max())
    assert moved["fp32"] < 1e-5, moved
    assert moved["int8"] > 100 * max(moved["fp32"], 1e-7), moved
