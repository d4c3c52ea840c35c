"""Facts read from the files themselves: the graph's inputs, outputs and opset, and every file's hash."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from xstilts.contracts.bundle import BUNDLE_FILE, TensorSpec
from xstilts.contracts.hashing import file_sha256


def graph_interface(model_path: Path) -> tuple[list[TensorSpec], list[TensorSpec], int]:
    """Inputs and outputs (name, dtype, shape with named dynamic axes) and the default-domain opset of a graph."""
    import onnx
    from onnx.helper import tensor_dtype_to_np_dtype

    model = onnx.load(str(model_path), load_external_data=False)

    def spec(value: Any) -> TensorSpec:
        tensor = value.type.tensor_type
        shape = [d.dim_param if d.dim_param else d.dim_value for d in tensor.shape.dim]
        return TensorSpec(value.name, str(tensor_dtype_to_np_dtype(tensor.elem_type)), shape)

    initializers = {t.name for t in model.graph.initializer}
    inputs = [spec(v) for v in model.graph.input if v.name not in initializers]
    outputs = [spec(v) for v in model.graph.output]
    opset = next(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))
    return inputs, outputs, opset


def file_digests(folder: Path) -> dict[str, dict[str, Any]]:
    """``{relative path: {"sha256", "bytes"}}`` for every file of a bundle folder but ``bundle.json``."""
    return {
        path.relative_to(folder).as_posix(): {"sha256": file_sha256(path), "bytes": path.stat().st_size}
        for path in sorted(folder.rglob("*"))
        if path.is_file() and path.name != BUNDLE_FILE
    }
