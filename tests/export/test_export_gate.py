"""The parity gate rejects a deliberately broken variant, and a failed export leaves nothing behind.

The broken variants are the real float32 graph edited with onnx: logits negated, some items' logits negated
(a drop of an exact number of items), one item's logits made NaN; and a serving tokenizer.json edited to differ.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
from onnx import helper, numpy_helper

from tests.export.support import GATE_EXAMPLES
from xstilts.contracts.bundle import load_manifest
from xstilts.errors import XstiltsError
from xstilts.export import VARIANTS, export_checkpoint, pipeline
from xstilts.export.variants import CPU, BuildContext, Builder, Variant


def negate_logits(context: BuildContext, folder: Path) -> dict[str, Any]:
    """The float32 graph with its logits negated: every argmax becomes an argmin."""
    model = onnx.load(str(context.fp32_model))
    graph = model.graph
    for node in graph.node:
        node.output[:] = ["logits_raw" if name == "logits" else name for name in node.output]
    graph.node.append(helper.make_node("Neg", ["logits_raw"], ["logits"]))
    onnx.save(model, str(folder / "model.onnx"))
    return {"damage": "logits negated"}


def scale_first_items(items: int, factor: float) -> Builder:
    """A builder of the float32 graph with the logits of each batch's first ``items`` items times ``factor``."""

    def build(context: BuildContext, folder: Path) -> dict[str, Any]:
        model = onnx.load(str(context.fp32_model))
        graph = model.graph
        for node in graph.node:
            node.output[:] = ["logits_raw" if name == "logits" else name for name in node.output]
        constants = {
            "zero": np.array(0, np.int64),
            "one": np.array(1, np.int64),
            "items": np.array(items, np.int64),
            "axis": np.array([1], np.int64),
            "factor": np.array(factor, np.float32),
            "unit": np.array(1.0, np.float32),
        }
        graph.initializer.extend(numpy_helper.from_array(value, f"edit_{name}") for name, value in constants.items())
        graph.node.extend(
            [
                helper.make_node("Shape", ["logits_raw"], ["edit_shape"]),
                helper.make_node("Gather", ["edit_shape", "edit_zero"], ["edit_batch"], axis=0),
                helper.make_node("Range", ["edit_zero", "edit_batch", "edit_one"], ["edit_row"]),
                helper.make_node("Less", ["edit_row", "edit_items"], ["edit_chosen"]),
                helper.make_node("Unsqueeze", ["edit_chosen", "edit_axis"], ["edit_column"]),
                helper.make_node("Where", ["edit_column", "edit_factor", "edit_unit"], ["edit_scale"]),
                helper.make_node("Mul", ["logits_raw", "edit_scale"], ["logits"]),
            ]
        )
        onnx.save(model, str(folder / "model.onnx"))
        return {"damage": f"logits of the first {items} items times {factor}"}

    return build


def crash_after_writing(context: BuildContext, folder: Path) -> dict[str, Any]:
    (folder / "model.onnx").write_bytes(b"half a model")
    raise RuntimeError("disk full while writing the variant")


@pytest.fixture
def damaged(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setitem(VARIANTS, "damaged", Variant("damaged", "negated logits", "fp32", negate_logits, (CPU,)))
    return "damaged"


def export(checkpoint: Path, repository: Path, variants: list[str], data_dir: Path, **kwargs: Any) -> list[Path]:
    return export_checkpoint(
        checkpoint, repository, "gated", variants, data_dir=data_dir, parity_examples=GATE_EXAMPLES, **kwargs
    )


def test_damaged_variant_is_rejected_and_nothing_is_written(
    memorized_checkpoint: Path, data_dir: Path, tmp_path: Path, damaged: str
) -> None:
    with pytest.raises(XstiltsError) as error:
        export(memorized_checkpoint, tmp_path, ["fp32", damaged], data_dir)
    message = str(error.value)
    assert "damaged: average accuracy 0.00% vs 100.00%" in message and "budget 1.00" in message
    assert "fp32" not in message and "Nothing was written" in message
    assert list(tmp_path.iterdir()) == []


def test_keep_failed_keeps_the_variant_marked(
    memorized_checkpoint: Path, data_dir: Path, tmp_path: Path, damaged: str
) -> None:
    folders = export(memorized_checkpoint, tmp_path, ["fp32", damaged], data_dir, keep_failed=True)
    assert [f.name for f in folders] == ["fp32", "damaged"]
    parity = load_manifest(tmp_path / "gated" / "damaged").parity
    assert parity["status"] == "failed" and parity["kept_despite_failure"] is True and parity["passed"] is False
    assert parity["accuracy_drop_points"] == 100.0 and parity["label_agreement"] == 0.0
    assert load_manifest(tmp_path / "gated" / "fp32").parity["status"] == "passed"


def test_budget_decides(memorized_checkpoint: Path, data_dir: Path, tmp_path: Path, damaged: str) -> None:
    export(memorized_checkpoint, tmp_path, [damaged], data_dir, max_accuracy_drop=100.0)
    parity = load_manifest(tmp_path / "gated" / "damaged").parity
    assert parity["status"] == "passed" and parity["max_accuracy_drop_points"] == 100.0


def test_crash_midway_leaves_nothing(
    memorized_checkpoint: Path, data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(VARIANTS, "crash", Variant("crash", "fails", "fp32", crash_after_writing, (CPU,)))
    with pytest.raises(RuntimeError, match="disk full"):
        export(memorized_checkpoint, tmp_path, ["fp32", "crash"], data_dir)
    assert list(tmp_path.iterdir()) == []


def test_a_drop_of_exactly_the_budget_passes_and_one_item_more_fails(
    memorized_checkpoint: Path, data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for wrong in (2, 3):  # negated logits: those items' argmax becomes their argmin, a wrong label
        variant = Variant(f"wrong{wrong}", "items wrong", "fp32", scale_first_items(wrong, -1.0), (CPU,))
        monkeypatch.setitem(VARIANTS, variant.name, variant)
    budget = round(100 * 2 / GATE_EXAMPLES, 4)  # two of the sample's items, in accuracy points
    export(memorized_checkpoint, tmp_path, ["wrong2", "wrong3"], data_dir, max_accuracy_drop=budget, keep_failed=True)

    at_budget = load_manifest(tmp_path / "gated" / "wrong2").parity
    assert at_budget["accuracy_drop_points"] == budget and at_budget["status"] == "passed"
    assert at_budget["average_accuracy"]["variant"] == pytest.approx(1 - 2 / GATE_EXAMPLES)
    one_more = load_manifest(tmp_path / "gated" / "wrong3").parity
    assert one_more["accuracy_drop_points"] == round(100 * 3 / GATE_EXAMPLES, 4) and one_more["status"] == "failed"


def test_a_variant_with_non_finite_outputs_is_rejected_within_any_budget(
    memorized_checkpoint: Path, data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(VARIANTS, "nan", Variant("nan", "one NaN item", "fp32", scale_first_items(1, np.nan), (CPU,)))
    with pytest.raises(XstiltsError) as error:
        export(memorized_checkpoint, tmp_path, ["fp32", "nan"], data_dir, max_accuracy_drop=100.0)
    assert "nan: 1 outputs are not finite numbers" in str(error.value) and "Nothing was written" in str(error.value)
    assert list(tmp_path.iterdir()) == []


def test_a_serving_tokenizer_that_differs_from_the_checkpoints_is_rejected(
    memorized_checkpoint: Path, data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    configure = pipeline.configure_tokenizer

    def configure_then_edit(source: Path, target: Path, *args: Any) -> None:
        configure(source, target, *args)
        edited = json.loads(target.read_text())
        edited["truncation"]["max_length"] = 8  # the checkpoint's tokenizer keeps up to max_length tokens
        target.write_text(json.dumps(edited))

    monkeypatch.setattr(pipeline, "configure_tokenizer", configure_then_edit)
    with pytest.raises(XstiltsError, match="tokenizer.json gives different token ids than the checkpoint's"):
        export(memorized_checkpoint, tmp_path, ["fp32"], data_dir)
    assert list(tmp_path.iterdir()) == []
