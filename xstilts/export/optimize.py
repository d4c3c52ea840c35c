"""Float variants: optimum's O1-O4 graph optimizations (ORTOptimizer) and float16 weights."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from xstilts.export.onnx_export import place_model, uses_external_data


def optimize_graph(onnx_dir: Path, target: Path, level: str, for_gpu: bool) -> dict[str, Any]:
    """Apply optimum's optimization ``level`` (O1..O4) to ``onnx_dir/model.onnx``, writing into ``target``."""
    from optimum.onnxruntime import ORTOptimizer
    from optimum.onnxruntime.configuration import AutoOptimizationConfig

    config = AutoOptimizationConfig.with_optimization_level(level, for_gpu=for_gpu)
    optimizer = ORTOptimizer.from_pretrained(onnx_dir, file_names=["model.onnx"])
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".optimize.") as scratch:
        optimizer.optimize(config, save_dir=scratch, file_suffix="optimized")
        place_model(Path(scratch) / "model_optimized.onnx", target)
    return {
        "tool": "optimum ORTOptimizer",
        "level": level,
        "for_gpu": config.optimize_for_gpu,
        "onnxruntime_level": config.optimization_level,
        "fp16": config.fp16,
        "gelu_approximation": config.enable_gelu_approximation,
        "fused_operators": ORTOptimizer.get_fused_operators(target / "model.onnx"),
    }


def convert_fp16(source: Path, target: Path) -> dict[str, Any]:
    """Float16 weights and arithmetic, float32 inputs and outputs (ONNX Runtime's converter; runs on a CPU).

    The converter leaves the operators it lists as unsafe in float16 in float32 (its default block list).
    """
    import onnx
    from onnxruntime.transformers.float16 import DEFAULT_OP_BLOCK_LIST
    from onnxruntime.transformers.onnx_model import OnnxModel

    model = OnnxModel(onnx.load(str(source), load_external_data=True))
    model.convert_float_to_float16(use_symbolic_shape_infer=True, keep_io_types=True)
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".fp16.") as scratch:
        converted = Path(scratch) / "model.onnx"
        model.save_model_to_file(str(converted), use_external_data_format=uses_external_data(source))
        place_model(converted, target)
    return {
        "tool": "onnxruntime.transformers float16 converter",
        "keep_io_types": True,
        "float32_operators": sorted(DEFAULT_OP_BLOCK_LIST),
    }
