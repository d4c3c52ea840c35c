"""The parity gate rejects a deliberately broken variant, and a failed export leaves nothing behind."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import onnx
import pytest
from onnx import helper

from tests.export.support import GATE_EXAMPLES
from xstilts.contracts.bundle import load_manifest
from xstilts.errors import XstiltsError
from xstilts.export import VARIANTS, export_checkpoint
from xstilts.export.variants import CPU, BuildContext, Variant


def negate_logits(context: BuildContext, folder: Path) -> dict[str, Any]:
    """The float32 graph with its logits negated: every argmax becomes an argmin."""
    model = onnx.load(str(context.fp32_model))
    graph = model.graph
    for node in graph.node:
        node.output[:] = ["logits_raw" if name == "logits" else name for name in node.output]
    graph.node.append(helper.make_node("Neg", ["logits_raw"], ["logits"]))
    onnx.save(model, str(folder / "model.onnx"))
    return {"damage": "logits negated"}


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
