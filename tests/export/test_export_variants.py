"""Every variant this machine can build, of a checkpoint with accuracy to lose, through the default gate."""

from __future__ import annotations

import math
from pathlib import Path

import onnx
import pytest
from onnxruntime.quantization.CalTableFlatBuffers import TrtTable

from tests.export.support import CPU_VARIANTS, GATE_EXAMPLES
from xstilts.contracts.bundle import load_manifest
from xstilts.export import measure_bundles


def operators(folder: Path) -> set[str]:
    return {node.op_type for node in onnx.load(str(folder / "model.onnx")).graph.node}


@pytest.mark.parametrize("variant", CPU_VARIANTS)
def test_variant_passes_the_default_gate(variants_repository: Path, variant: str) -> None:
    parity = load_manifest(variants_repository / "memorized" / variant).parity
    if variant.startswith("trt-"):
        assert parity["status"] == "skipped" and "GPU" in parity["reason"]
        parity = parity["graph_on_cpu"]
    else:
        assert parity["status"] == "passed" and parity["kept_despite_failure"] is False
    assert parity["passed"] and parity["max_accuracy_drop_points"] == 1.0
    assert parity["average_accuracy"]["reference"] == 1.0
    assert parity["accuracy_drop_points"] <= 1.0
    assert parity["languages"]["en"]["examples"] == GATE_EXAMPLES


def test_optimization_levels_fuse_what_they_promise(variants_repository: Path) -> None:
    root = variants_repository / "memorized"
    assert "Attention" not in operators(root / "O1")
    assert {"Attention", "SkipLayerNormalization", "BiasGelu"} <= operators(root / "O2")
    assert {"Attention", "FastGelu"} <= operators(root / "O3")
    assert load_manifest(root / "O3").optimization == "O3"


def test_fp16_has_half_weights_and_float_interface(variants_repository: Path) -> None:
    folder = variants_repository / "memorized" / "fp16"
    graph = onnx.load(str(folder / "model.onnx")).graph
    types = {t.data_type for t in graph.initializer if t.dims and len(t.dims) == 2}
    assert types == {onnx.TensorProto.FLOAT16}
    manifest = load_manifest(folder)
    assert [t.dtype for t in manifest.inputs] == ["int64"] * 3 and manifest.outputs[0].dtype == "float32"
    assert manifest.execution["providers"][0] == "CUDAExecutionProvider"


def test_tensorrt_settings_in_ort_format(variants_repository: Path) -> None:
    for variant, int8 in (("trt-fp16", False), ("trt-int8", True)):
        manifest = load_manifest(variants_repository / "memorized" / variant)
        assert manifest.tensorrt_profile is not None and manifest.tensorrt_profile.max_batch == 32
        assert manifest.tensorrt_profile.batch == (1, 8, 32) and manifest.tensorrt_profile.sequence == (1, 128, 128)
        execution = manifest.execution
        assert execution["providers"] == ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"]
        trt = execution["tensorrt"]
        assert trt["trt_fp16_enable"] is True and trt["trt_int8_enable"] is int8
        assert trt["trt_engine_cache_enable"] is True and trt["trt_engine_cache_path"] == "trt_cache"
        assert trt["trt_profile_min_shapes"] == "input_ids:1x1,attention_mask:1x1,token_type_ids:1x1"
        assert trt["trt_profile_opt_shapes"] == "input_ids:8x128,attention_mask:8x128,token_type_ids:8x128"
        assert trt["trt_profile_max_shapes"] == "input_ids:32x128,attention_mask:32x128,token_type_ids:32x128"
    assert load_manifest(variants_repository / "memorized" / "fp32").tensorrt_profile is None


def test_tensorrt_int8_calibration_table_names_graph_tensors(variants_repository: Path) -> None:
    folder = variants_repository / "memorized" / "trt-int8"
    execution = load_manifest(folder).execution["tensorrt"]
    path = folder / execution["trt_engine_cache_path"] / execution["trt_int8_calibration_table_name"]
    table = TrtTable.TrtTable.GetRootAsTrtTable(path.read_bytes(), 0)
    entries = {table.Dict(i).Key().decode(): float(table.Dict(i).Value()) for i in range(table.DictLength())}
    tensors = {out for node in onnx.load(str(folder / "model.onnx")).graph.node for out in node.output}
    assert "logits" in entries and set(entries) <= tensors | {"input_ids", "attention_mask", "token_type_ids"}
    assert all(math.isfinite(value) for value in entries.values())
    assert not (variants_repository / "memorized" / "trt-fp16" / "trt_cache").exists()


def test_measure_reports_size_load_and_throughput(variants_repository: Path) -> None:
    root = variants_repository / "memorized"
    rows = measure_bundles([root / "fp32", root / "int8", root / "trt-fp16"], (1, 2), (16,), seconds=0.05)
    fp32, int8, trt = rows
    assert fp32["file_mb"] > int8["file_mb"] > 0
    for row in (fp32, int8):
        assert row["load_s"] > 0 and set(row["sequences_per_s"]) == {"b1_len16", "b2_len16"}
        assert all(speed > 0 for speed in row["sequences_per_s"].values())
    assert "TensorrtExecutionProvider" in trt["skipped"] and "sequences_per_s" not in trt
