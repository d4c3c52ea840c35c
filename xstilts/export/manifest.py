"""Writing a variant's ``bundle.json``: the checkpoint's metadata plus facts read from the files written."""

from __future__ import annotations

from datetime import datetime, timezone
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from xstilts import __version__
from xstilts.atomic import write_json_atomic
from xstilts.contracts.bundle import BUNDLE_FILE, MODEL_FILE, BundleManifest, TensorRTProfile
from xstilts.contracts.checkpoint import CheckpointInfo
from xstilts.contracts.embedding import EmbeddingSpec
from xstilts.contracts.kinds import TaskKind
from xstilts.contracts.span import SpanSpec
from xstilts.export.graph import file_digests, graph_interface
from xstilts.export.variants import Variant

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


def execution_settings(variant: Variant, manifest: BundleManifest, profile: TensorRTProfile) -> dict:
    """The providers a server should ask for, best first, and TensorRT's provider options when it is one."""
    settings: dict[str, Any] = {"providers": list(variant.providers)}
    if variant.tensorrt:
        inputs = [i.name for i in manifest.inputs]
        settings["tensorrt"] = {**variant.tensorrt, **profile.provider_options(inputs, manifest.choices)}
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
    embedding: EmbeddingSpec | None = None,
    span: SpanSpec | None = None,
) -> BundleManifest:
    """Describe the finished files of ``folder`` in its ``bundle.json`` (written last, atomically)."""
    inputs, outputs, opset = graph_interface(folder / MODEL_FILE)
    manifest = BundleManifest(
        name=name,
        variant=variant.name,
        task=info.task,
        kind=TaskKind(info.kind),
        labels=list(info.labels),
        languages=list(info.languages),
        max_length=info.max_length,
        inputs=inputs,
        outputs=outputs,
        opset=opset,
        precision=variant.precision,
        optimization=variant.optimization,
        tensorrt_profile=profile if variant.tensorrt else None,
        embedding=embedding,
        span_qa=span,
        files=file_digests(folder),
        lineage=dict(info.lineage),
        parity=parity,
        build={"summary": variant.summary, **build, "tools": tool_versions()},
        created=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        xstilts_version=__version__,
    )
    manifest.execution = execution_settings(variant, manifest, profile)
    write_json_atomic(folder / BUNDLE_FILE, manifest.to_json())
    return manifest
