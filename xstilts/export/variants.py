"""The deployable variants, declared: how each is built from the float32 graph, where it runs, how it is checked.

Adding a variant is adding a ``Variant`` to ``VARIANTS``; the export pipeline needs no change.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from xstilts.contracts.providers import CPU, CUDA, TENSORRT
from xstilts.errors import XstiltsError

if TYPE_CHECKING:
    from xstilts.export.calibration import CalibrationSet

TRT_BATCH = (1, 8, 32)


@dataclass
class BuildContext:
    """What a variant's builder may use: the float32 export and the export's settings."""

    onnx_dir: Path  # optimum's export: model.onnx (+ model.onnx_data) and config.json
    int8_target: str
    per_channel: bool
    calibration_feeds: Callable[[], list[dict[str, np.ndarray]]]
    # static int8's sample: multilingual evaluation texts outside the parity sample (None: this kind has none)
    evaluation_calibration: Callable[[], CalibrationSet] | None = None
    calibration_method: str = "minmax"

    @property
    def fp32_model(self) -> Path:
        return self.onnx_dir / "model.onnx"


Builder = Callable[[BuildContext, Path], dict[str, Any]]


@dataclass(frozen=True)
class Variant:
    """One deployable form of a checkpoint.

    ``build(context, folder)`` writes ``folder/model.onnx`` (and any extra files) and returns how it did so.
    ``providers`` are the ONNX Runtime execution providers the variant is meant for, best first; a server
    uses those it has. ``parity_provider`` is where the parity gate runs it here, None when only other
    hardware can run it as deployed (then parity is recorded as skipped, with ``parity_skip_reason``).
    """

    name: str
    summary: str
    precision: str
    build: Builder
    providers: tuple[str, ...]
    optimization: str | None = None
    needs_gpu_to_build: bool = False
    parity_provider: str | None = CPU
    parity_skip_reason: str = ""
    tensorrt: dict[str, Any] = field(default_factory=dict)  # TensorRT provider flags, profile added at export


def _fp32(context: BuildContext, folder: Path) -> dict[str, Any]:
    from xstilts.export.onnx_export import place_model

    place_model(context.fp32_model, folder)
    return {"tool": "optimum onnx_export_from_model"}


def _int8(context: BuildContext, folder: Path) -> dict[str, Any]:
    from xstilts.export.quantize import quantize_dynamic

    return {"quantization": quantize_dynamic(context.onnx_dir, folder, context.int8_target, context.per_channel)}


def _int8_static(context: BuildContext, folder: Path) -> dict[str, Any]:
    from xstilts.export.quantize import quantize_static_qdq

    if context.evaluation_calibration is None:
        raise XstiltsError("int8-static is built for classification and multiple-choice bundles only")
    calibration = context.evaluation_calibration()
    settings = quantize_static_qdq(
        context.fp32_model, folder, calibration.feeds, context.calibration_method, context.per_channel
    )
    return {"quantization": {**settings, "calibration_sample": calibration.description}}


def _fp16(context: BuildContext, folder: Path) -> dict[str, Any]:
    from xstilts.export.optimize import convert_fp16

    return {"float16": convert_fp16(context.fp32_model, folder)}


def _optimized(level: str, for_gpu: bool) -> Builder:
    def build(context: BuildContext, folder: Path) -> dict[str, Any]:
        from xstilts.export.optimize import optimize_graph

        return {"optimization": optimize_graph(context.onnx_dir, folder, level, for_gpu)}

    return build


def _trt_int8(context: BuildContext, folder: Path) -> dict[str, Any]:
    from xstilts.export.quantize import write_tensorrt_calibration

    model = _fp32(context, folder)
    table = write_tensorrt_calibration(context.fp32_model, folder / TRT_CACHE, context.calibration_feeds())
    return {**model, "calibration": table}


TRT_CACHE = "trt_cache"
_TRT_SKIP = "TensorRT builds the engine (and its fp16/int8 kernels) on an NVIDIA GPU at load time; none is here"
_TRT_COMMON = {"trt_engine_cache_enable": True, "trt_engine_cache_path": TRT_CACHE, "trt_timing_cache_enable": True}

VARIANTS: dict[str, Variant] = {
    v.name: v
    for v in (
        Variant("fp32", "float32 graph exported by optimum", "fp32", _fp32, (CUDA, CPU)),
        Variant(
            "int8",
            "dynamic int8 quantization for CPUs (optimum ORTQuantizer)",
            "int8",
            _int8,
            (CPU,),
        ),
        Variant(
            "int8-static",
            "static int8 in QDQ format, activation ranges calibrated once on multilingual evaluation texts: "
            "answers independent of batch neighbours; runs on CPUs and as explicit int8 on TensorRT",
            "int8",
            _int8_static,
            (CPU, TENSORRT),
            tensorrt={"trt_fp16_enable": True, "trt_int8_enable": True, **_TRT_COMMON},
        ),
        Variant(
            "fp16",
            "float16 weights and arithmetic with float32 inputs/outputs, for GPUs (runs on CPUs too, slowly)",
            "fp16",
            _fp16,
            (CUDA, CPU),
        ),
        *(
            Variant(
                level,
                f"optimum {level} graph optimization for ONNX Runtime on CPUs",
                "fp32",
                _optimized(level, for_gpu=False),
                (CPU,),
                optimization=level,
            )
            for level in ("O1", "O2", "O3")
        ),
        Variant(
            "O4",
            "optimum O4: O3 fusions plus float16, for CUDA GPUs (built on a GPU)",
            "fp16",
            _optimized("O4", for_gpu=True),
            (CUDA,),
            optimization="O4",
            needs_gpu_to_build=True,
            parity_provider=CUDA,
        ),
        Variant(
            "trt-fp16",
            "float32 graph with TensorRT settings: fp16 engine, engine cache, optimization profile",
            "fp16",
            _fp32,
            (TENSORRT, CUDA, CPU),
            parity_provider=None,
            parity_skip_reason=_TRT_SKIP,
            tensorrt={"trt_fp16_enable": True, "trt_int8_enable": False, **_TRT_COMMON},
        ),
        Variant(
            "trt-int8",
            "float32 graph with TensorRT settings: int8 engine (calibration table made here) with fp16 fallback",
            "int8",
            _trt_int8,
            (TENSORRT, CUDA, CPU),
            parity_provider=None,
            parity_skip_reason=_TRT_SKIP,
            tensorrt={
                "trt_fp16_enable": True,
                "trt_int8_enable": True,
                "trt_int8_calibration_table_name": "calibration.flatbuffers",
                "trt_int8_use_native_calibration_table": False,
                **_TRT_COMMON,
            },
        ),
    )
}


def resolve_variants(names: Sequence[str] | str) -> list[Variant]:
    """The variants named (comma-separated or a list), checked to exist, be distinct and be buildable here."""
    wanted = [n.strip() for n in (names.split(",") if isinstance(names, str) else names) if n.strip()]
    if not wanted:
        raise XstiltsError(f"no variants given: choose from {', '.join(VARIANTS)}")
    unknown = [n for n in wanted if n not in VARIANTS]
    if unknown:
        raise XstiltsError(f"unknown variant {', '.join(unknown)}: choose from {', '.join(VARIANTS)}")
    repeated = sorted({n for n in wanted if wanted.count(n) > 1})
    if repeated:
        raise XstiltsError(f"variant {', '.join(repeated)} given more than once")
    chosen = [VARIANTS[n] for n in wanted]
    if any(v.needs_gpu_to_build for v in chosen):
        from xstilts.export.hardware import missing_gpu

        reason = missing_gpu()
        if reason:
            gpu_only = ", ".join(v.name for v in chosen if v.needs_gpu_to_build)
            raise XstiltsError(
                f"variant {gpu_only} needs a CUDA GPU to build, and {reason}; on this machine use fp16, O1-O3 "
                "or trt-fp16/trt-int8 (TensorRT settings for a GPU server)"
            )
    return chosen
