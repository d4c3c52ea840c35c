"""Writing a variant's ``bundle.json``: the checkpoint's metadata plus facts read from the files written."""

from __future__ import annotations

from datetime import datetime, timezone
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from xstilts import __version__
from xstilts.atomic import write_json_atomic
from xstilts.bundle import BUNDLE_FILE, MODEL_FILE, BundleManifest
from xstilts.checkpoint import CheckpointInfo
from xstilts.export.graph import file_digests, graph_interface
from xstilts.export.variants import TensorRTProfile, Variant

TOOLS = ("torch", "transformers", "optimum", "optimum-onnx", "onnx", "onnxruntime")


def tool_versions() -> dict[str, str]:
    """Versions of the libraries that shaped the exported files."""
    found = {}
    for name in TOOLS:
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            continue
    return found


def profile_shapes(inputs: list[str], batch: int, sequence: int, choices: int | None) -> str:
    """ONNX Runtime's TensorRT profile format: ``input_ids:1x16,attention_mask:1x16``."""
    dims = f"{batch}x{choices}x{sequence}" if choices else f"{batch}x{sequence}"
    return ",".join(f"{name}:{dims}" for name in inputs)


def execution_settings(variant: Variant, inputs: list[str], profile: TensorRTProfile, choices: int | None) -> dict:
    """The providers a server should ask for, best first, and TensorRT's provider options when it is one."""
    settings: dict[str, Any] = {"providers": list(variant.providers)}
    if variant.tensorrt:
        shapes = {
            f"trt_profile_{which}_shapes": profile_shapes(inputs, batch, sequence, choices)
            for which, batch, sequence in zip(("min", "opt", "max"), profile.batch, profile.sequence, strict=True)
        }
        settings["tensorrt"] = {**variant.tensorrt, **shapes}
        settings["paths_relative_to"] = "bundle folder"
    return settings


def write_manifest(
    folder: Path,
    name: str,
    variant: Variant,
    info: CheckpointInfo,
    profile: TensorRTProfile,
    build: dict[str, Any],
    parity: dict[str, Any],
) -> BundleManifest:
    """Describe the finished files of ``folder`` in its ``bundle.json`` (written last, atomically)."""
    inputs, outputs, opset = graph_interface(folder / MODEL_FILE)
    choices = len(info.labels) if info.kind == "multiple_choice" else None
    manifest = BundleManifest(
        name=name,
        variant=variant.name,
        task=info.task,
        kind=info.kind,
        labels=list(info.labels),
        languages=list(info.languages),
        max_length=info.max_length,
        inputs=inputs,
        outputs=outputs,
        opset=opset,
        precision=variant.precision,
        optimization=variant.optimization,
        execution=execution_settings(variant, [i.name for i in inputs], profile, choices),
        files=file_digests(folder),
        lineage=dict(info.lineage),
        parity=parity,
        build={"summary": variant.summary, **build, "tools": tool_versions()},
        created=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        xstilts_version=__version__,
    )
    write_json_atomic(folder / BUNDLE_FILE, manifest.to_json())
    return manifest
