"""Static int8 (QDQ): answers independent of batch neighbours and padding, unlike dynamic int8; its calibration
sample (multilingual evaluation items outside the parity sample) recorded in ``bundle.json``."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest

from tests.export.test_int8_batching import logits_of
from xstilts.contracts.bundle import load_manifest
from xstilts.contracts.evaluation import load_evaluation_sample
from xstilts.contracts.providers import CPU, TENSORRT
from xstilts.errors import XstiltsError
from xstilts.export.calibration import CALIBRATION_BATCH, evaluation_calibration
from xstilts.tasks import Example, get_task, load_examples

PARITY_EXAMPLES = 4
CALIBRATION_EXAMPLES = 16
ITEM_COUNT = 4


@pytest.fixture(scope="module")
def static_bundles(
    tmp_path_factory: pytest.TempPathFactory, sensitive_checkpoints: dict[str, Path], data_dir: Path
) -> Path:
    """``tiny-xnli`` in dynamic and static int8, from the sensitive checkpoint (15 languages)."""
    from xstilts.export import export_checkpoint

    repository = tmp_path_factory.mktemp("static")
    export_checkpoint(
        sensitive_checkpoints["xnli"],
        repository,
        "tiny-xnli",
        ["int8", "int8-static"],
        data_dir=data_dir,
        parity_examples=PARITY_EXAMPLES,
        calibration_examples=CALIBRATION_EXAMPLES,
        max_accuracy_drop=100.0,  # the sensitive model is at chance: this is about batching, not accuracy
    )
    return repository / "tiny-xnli"


def test_static_int8_answers_do_not_depend_on_the_batch(static_bundles: Path, data_dir: Path) -> None:
    examples = load_examples(get_task("xnli"), "test", "de", data_dir)
    items = [(e.text_a, e.text_b) for e in examples[:ITEM_COUNT]]
    # neighbours longer than the items: in a batch the items are padded, and sit beside other activation ranges
    neighbours = [(e.text_a + " " + e.text_a, e.text_b) for e in examples[100 : 100 + 12]]
    moved = {}
    for variant in ("int8", "int8-static"):
        folder = static_bundles / variant
        alone = np.concatenate([logits_of(folder, [item]) for item in items])  # batch 1, no padding
        in_eight = logits_of(folder, items + neighbours[:4])[:ITEM_COUNT]  # batch 8, items first
        in_sixteen = logits_of(folder, neighbours[:6] + items + neighbours[6:])[6 : 6 + ITEM_COUNT]  # batch 16
        if variant == "int8-static":
            assert (alone.argmax(-1) == in_eight.argmax(-1)).all() and (alone.argmax(-1) == in_sixteen.argmax(-1)).all()
        moved[variant] = max(float(np.abs(alone - in_eight).max()), float(np.abs(alone - in_sixteen).max()))
    assert moved["int8-static"] < 1e-4, moved
    assert moved["int8"] > 100 * moved["int8-static"] and moved["int8"] > 1e-3, moved


def test_static_int8_records_its_calibration_and_tensorrt_settings(static_bundles: Path) -> None:
    manifest = load_manifest(static_bundles / "int8-static")
    quantization = manifest.build["quantization"]
    assert quantization["method"] == "static" and quantization["format"] == "QDQ"
    assert quantization["calibration_method"] == "minmax" and quantization["activations"] == "QInt8 symmetric"
    calibration = quantization["calibration_sample"]
    assert calibration["task"] == "xnli" and calibration["split"] == "test" and calibration["seed"] == 0
    assert calibration["languages"] == manifest.languages and len(manifest.languages) == 15
    assert calibration["examples"] == {lang: 2 for lang in manifest.languages} and calibration["total"] == 30
    assert calibration["overlap_with_parity_sample"] == 0
    assert manifest.parity["status"] == "passed" and manifest.parity["provider"] == CPU
    assert manifest.precision == "int8" and manifest.execution["providers"] == [CPU, TENSORRT]
    trt = manifest.execution["tensorrt"]
    assert trt["trt_int8_enable"] is True and "trt_int8_calibration_table_name" not in trt  # QDQ: no table
    assert not (static_bundles / "int8-static" / "trt_cache").exists()
    graph = onnx.load(str(static_bundles / "int8-static" / "model.onnx")).graph
    ops = [node.op_type for node in graph.node]
    assert "QuantizeLinear" in ops and "DynamicQuantizeLinear" not in ops
    producer = {out: node.op_type for node in graph.node for out in node.output}
    quantized = {producer.get(node.input[0], "") for node in graph.node if node.op_type == "QuantizeLinear"}
    # MatMul and Gather inputs are quantized; the attention-mask arithmetic (Cast, Sub, Mul, Add) stays in float
    assert {"MatMul", "Gather"} <= quantized and not {"Cast", "Sub", "Add"} & quantized, quantized


def test_calibration_sample_is_apart_from_the_parity_sample(data_dir: Path) -> None:
    parity = load_evaluation_sample("xnli", data_dir, ["en", "de", "sw"], 50, seed=0)
    seen: list[list[Example]] = []

    def feeds(examples: list[Example]) -> dict[str, np.ndarray]:
        seen.append(list(examples))
        return {"input_ids": np.zeros((len(examples), 1), dtype=np.int64)}

    calibration = evaluation_calibration(parity, data_dir, 30, 0, feeds)
    chosen = [e for batch in seen for e in batch]
    assert calibration.description["examples"] == {"en": 10, "de": 10, "sw": 10}
    assert {e.language for e in chosen} == {"en", "de", "sw"} and len(calibration.feeds) == len(seen) == 6
    assert all(len(batch) <= CALIBRATION_BATCH for batch in seen)
    assert not {e.uid for e in chosen} & {e.uid for ex in parity.examples.values() for e in ex}
    again: list[list[Example]] = []
    evaluation_calibration(parity, data_dir, 30, 0, lambda ex: again.append(list(ex)) or {})
    assert [e.uid for b in again for e in b] == [e.uid for e in chosen]
    with pytest.raises(XstiltsError, match="at least 1"):
        evaluation_calibration(parity, data_dir, 0, 0, feeds)
