"""Models past protobuf's 2 GB limit keep weights in ``model.onnx_data``: the same path, forced on a tiny model."""

from __future__ import annotations

from pathlib import Path

import onnx
import pytest

from tests.export.support import GATE_EXAMPLES
from xstilts.contracts.bundle import load_manifest
from xstilts.export import export_checkpoint


def test_external_data_bundle(
    memorized_checkpoint: Path, data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # optimum's switch for what it does by itself past 2 GB (as for XLM-R Large).
    monkeypatch.setenv("FORCE_ONNX_EXTERNAL_DATA", "1")
    export_checkpoint(
        memorized_checkpoint,
        tmp_path,
        "big",
        ["fp32", "int8", "fp16", "O2"],
        data_dir=data_dir,
        parity_examples=GATE_EXAMPLES,
    )
    fp32 = tmp_path / "big" / "fp32"
    manifest = load_manifest(fp32)
    assert {"model.onnx", "model.onnx_data"} <= set(manifest.files)
    graph = onnx.load(str(fp32 / "model.onnx"), load_external_data=False).graph
    locations = {entry.value for t in graph.initializer for entry in t.external_data if entry.key == "location"}
    assert locations == {"model.onnx_data"}
    assert manifest.files["model.onnx_data"]["bytes"] > 10 * manifest.files["model.onnx"]["bytes"]
    assert manifest.parity["status"] == "passed" and manifest.parity["label_agreement"] == 1.0
    for variant in ("int8", "fp16", "O2"):
        derived = load_manifest(tmp_path / "big" / variant)
        assert derived.parity["status"] == "passed"
        assert set(derived.files) <= {"model.onnx", "model.onnx_data", *manifest.files}
