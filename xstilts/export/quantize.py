"""Integer variants: dynamic int8 for CPUs (optimum's ORTQuantizer), static int8 in QDQ format (onnxruntime's
``quantize_static``, calibrated on feeds given), and the INT8 calibration table TensorRT reads."""

from __future__ import annotations

import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from xstilts.contracts.providers import CPU
from xstilts.errors import XstiltsError
from xstilts.export.onnx_export import place_model, uses_external_data

INT8_TARGETS = ("avx512_vnni", "avx512", "avx2", "arm64")
CALIBRATION_TABLE = "calibration.flatbuffers"
CALIBRATION_METHODS = ("minmax", "percentile", "entropy")
# Only the weight-carrying operators: a quantized attention-mask path ((1 - mask) * float32 min) turns padded
# keys into NaN scores, so that an item's answer would depend on its padding.
STATIC_OPERATORS = ("MatMul", "Gather")
_MAX_HELD_BATCHES = 4  # MinMax folds ranges every few batches instead of holding every activation in memory


def quantize_dynamic(onnx_dir: Path, target: Path, int8_target: str, per_channel: bool) -> dict[str, Any]:
    """Dynamic int8 quantization of ``onnx_dir/model.onnx`` into ``target``; returns the settings used.

    Weights are quantized once, activations per batch at run time, so no calibration data is needed.
    """
    from optimum.onnxruntime import ORTQuantizer
    from optimum.onnxruntime.configuration import AutoQuantizationConfig

    if int8_target not in INT8_TARGETS:
        raise XstiltsError(f"unknown int8 target {int8_target!r}: use one of {', '.join(INT8_TARGETS)}")
    config = getattr(AutoQuantizationConfig, int8_target)(is_static=False, per_channel=per_channel)
    quantizer = ORTQuantizer.from_pretrained(onnx_dir, file_name="model.onnx")
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".quantize.") as scratch:
        quantizer.quantize(config, save_dir=scratch, file_suffix="quantized")
        place_model(Path(scratch) / "model_quantized.onnx", target)
    return {
        "method": "dynamic",
        "tool": "optimum ORTQuantizer",
        "preset": int8_target,
        "per_channel": per_channel,
        "reduce_range": config.reduce_range,
        "weights": config.weights_dtype.name,
        "activations": config.activations_dtype.name,
        "operators": list(config.operators_to_quantize),
    }


def quantize_static_qdq(
    model_path: Path, target: Path, feeds: list[dict[str, np.ndarray]], method: str, per_channel: bool
) -> dict[str, Any]:
    """Static int8 of ``model_path`` into ``target/model.onnx``: activation ranges fixed once from ``feeds``,
    written as QuantizeLinear/DequantizeLinear pairs (QDQ); returns the settings used.

    Activations and weights are signed and symmetric (zero point 0): the form TensorRT's explicit-precision int8
    reads, and ONNX Runtime's recommended S8S8 QDQ on CPUs. A fixed scale per tensor makes each row's answer
    independent of the other rows of its batch, unlike dynamic int8.
    """
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    methods = {"minmax": CalibrationMethod.MinMax, "percentile": CalibrationMethod.Percentile}
    methods["entropy"] = CalibrationMethod.Entropy
    if method not in methods:
        raise XstiltsError(f"unknown calibration method {method!r}: use one of {', '.join(CALIBRATION_METHODS)}")
    if not feeds:
        raise XstiltsError("static int8 needs calibration data, and none was given")
    options = {"ActivationSymmetric": True, "WeightSymmetric": True, "CalibMaxIntermediateOutputs": _MAX_HELD_BATCHES}
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".quantize.") as scratch:
        output = Path(scratch) / "model.onnx"
        quantize_static(
            str(model_path),
            str(output),
            _Batches(feeds),
            quant_format=QuantFormat.QDQ,
            op_types_to_quantize=list(STATIC_OPERATORS),
            per_channel=per_channel,
            activation_type=QuantType.QInt8,
            weight_type=QuantType.QInt8,
            calibrate_method=methods[method],
            calibration_providers=[CPU],
            use_external_data_format=uses_external_data(model_path),
            extra_options=options,
        )
        place_model(output, target)
    return {
        "method": "static",
        "format": "QDQ",
        "tool": "onnxruntime quantize_static",
        "calibration_method": method,
        "per_channel": per_channel,
        "weights": "QInt8 symmetric",
        "activations": "QInt8 symmetric",
        "operators": list(STATIC_OPERATORS),
        "calibration_batches": len(feeds),
    }


class _Batches:
    """ONNX Runtime's calibration data reader protocol over a list of feeds."""

    def __init__(self, feeds: Iterable[dict[str, np.ndarray]]) -> None:
        self._feeds = iter(feeds)

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._feeds, None)


def write_tensorrt_calibration(model_path: Path, folder: Path, feeds: list[dict[str, np.ndarray]]) -> dict[str, Any]:
    """Collect activation ranges of the float32 graph on ``feeds`` (on the CPU) into TensorRT's INT8 table.

    This is ONNX Runtime's documented route for TensorRT INT8 without a QDQ graph: the engine is built on the
    GPU later, from the float32 graph and this table.
    """
    from onnxruntime.quantization.calibrate import CalibrationMethod, create_calibrator
    from onnxruntime.quantization.quant_utils import write_calibration_table

    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=folder.parent, prefix=".calibrate.") as scratch:
        calibrator = create_calibrator(
            model_path,
            op_types_to_calibrate=[],
            augmented_model_path=str(Path(scratch) / "augmented.onnx"),
            calibrate_method=CalibrationMethod.MinMax,
            use_external_data_format=True,
            providers=[CPU],
        )
        calibrator.collect_data(_Batches(feeds))
        ranges = calibrator.compute_data()
        write_calibration_table(ranges, dir=scratch)
        (Path(scratch) / CALIBRATION_TABLE).replace(folder / CALIBRATION_TABLE)
    return {"method": "MinMax", "tool": "onnxruntime create_calibrator", "tensors": len(ranges.data)}
