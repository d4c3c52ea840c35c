"""The model bundle contract between export (writes) and serve/bench (read).

A model repository holds ``<repository>/<name>/<variant>/`` folders (compare Triton's
``<repository>/<model>/<version>/``), each with ``model.onnx`` (plus ``model.onnx_data`` when the weights
live outside the protobuf), the tokenizer files (``tokenizer.json`` at least) and ``bundle.json``.
Pure Python: the serving image reads bundles without torch.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from xstilts.contracts.embedding import EmbeddingSpec
from xstilts.contracts.kinds import TaskKind
from xstilts.contracts.span import SpanSpec
from xstilts.errors import XstiltsError

BUNDLE_FILE = "bundle.json"
MODEL_FILE = "model.onnx"
TOKENIZER_FILE = "tokenizer.json"
SCHEMA = "xstilts.contracts.bundle/1"


@dataclass(frozen=True)
class TensorRTProfile:
    """The optimization profile TensorRT builds its engine for: (min, opt, max) batch and sequence length."""

    batch: tuple[int, int, int]
    sequence: tuple[int, int, int]

    def __post_init__(self) -> None:
        for what, (low, opt, high) in (("batch", self.batch), ("sequence", self.sequence)):
            if not 1 <= low <= opt <= high:
                raise XstiltsError(
                    f"TensorRT {what} profile must satisfy 1 <= min <= opt <= max, got {low},{opt},{high}"
                )

    @property
    def max_batch(self) -> int:
        """The largest batch an engine built for this profile takes."""
        return self.batch[2]

    def provider_options(self, inputs: list[str], choices: int | None) -> dict[str, str]:
        """ONNX Runtime's TensorRT profile options: ``trt_profile_min_shapes: input_ids:1x16,...`` and so on."""
        options = {}
        for which, batch, sequence in zip(("min", "opt", "max"), self.batch, self.sequence, strict=True):
            dims = f"{batch}x{choices}x{sequence}" if choices else f"{batch}x{sequence}"
            options[f"trt_profile_{which}_shapes"] = ",".join(f"{name}:{dims}" for name in inputs)
        return options

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TensorRTProfile:
        return cls(tuple(data["batch"]), tuple(data["sequence"]))  # type: ignore[arg-type]


@dataclass
class TensorSpec:
    """An ONNX graph input or output: name, element type and shape with named dynamic axes."""

    name: str
    dtype: str
    shape: list[str | int]


@dataclass
class BundleManifest:
    """Everything a server needs to know about one exported variant, plus where it came from."""

    name: str
    variant: str
    task: str
    kind: TaskKind
    labels: list[str]
    languages: list[str]
    max_length: int
    inputs: list[TensorSpec]
    outputs: list[TensorSpec]
    opset: int
    precision: str  # fp32 | int8 | fp16
    optimization: str | None = None  # None | O1..O4
    execution: dict[str, Any] = field(default_factory=dict)  # provider settings, e.g. {"tensorrt": {...}}
    tensorrt_profile: TensorRTProfile | None = None  # set for variants meant for TensorRT
    embedding: EmbeddingSpec | None = None  # set for embedding bundles: layer, pooling, prefix, normalize, dimension
    span_qa: SpanSpec | None = None  # set for extractive QA bundles: doc stride, max answer length
    files: dict[str, dict[str, Any]] = field(default_factory=dict)  # name -> {"sha256", "bytes"}
    lineage: dict[str, Any] = field(default_factory=dict)
    parity: dict[str, Any] = field(default_factory=dict)
    build: dict[str, Any] = field(default_factory=dict)  # how this variant was made: tools, versions, settings
    created: str = ""
    xstilts_version: str = ""
    schema: str = SCHEMA

    @property
    def num_labels(self) -> int:
        return len(self.labels)

    @property
    def failed_parity(self) -> bool:
        """Whether export kept this variant although it failed the parity gate."""
        return self.parity.get("status") == "failed"

    @property
    def choices(self) -> int | None:
        """The number of choices of a multiple-choice graph's middle axis (None for other kinds)."""
        return len(self.labels) if self.kind is TaskKind.MULTIPLE_CHOICE else None

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["kind"] = self.kind.value
        if self.embedding is None:
            del data["embedding"]  # only embedding bundles have it: other bundles' files stay as they were
        if self.span_qa is None:
            del data["span_qa"]
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any], where: str = "bundle.json") -> BundleManifest:
        if data.get("schema") != SCHEMA:
            raise XstiltsError(f"{where}: schema {data.get('schema')!r} is not {SCHEMA!r}")
        try:
            data = dict(data)
            data["inputs"] = [TensorSpec(**t) for t in data["inputs"]]
            data["outputs"] = [TensorSpec(**t) for t in data["outputs"]]
            kind = data.get("kind")
            if kind not in {k.value for k in TaskKind}:
                raise XstiltsError(f"{where}: kind {kind!r} is not one of {', '.join(k.value for k in TaskKind)}")
            data["kind"] = TaskKind(kind)
            if data.get("tensorrt_profile") is not None:
                data["tensorrt_profile"] = TensorRTProfile.from_json(data["tensorrt_profile"])
            if data.get("embedding") is not None:
                data["embedding"] = EmbeddingSpec.from_json(data["embedding"], f"{where}: embedding")
            if data.get("span_qa") is not None:
                data["span_qa"] = SpanSpec.from_json(data["span_qa"], f"{where}: span_qa")
            manifest = cls(**data)
        except (KeyError, TypeError, ValueError) as exc:
            raise XstiltsError(f"{where}: not a valid bundle manifest ({exc})") from None
        if manifest.kind is TaskKind.EMBEDDING:
            if manifest.embedding is None or manifest.embedding.dimension is None:
                raise XstiltsError(f"{where}: an embedding bundle records its embedding setting with its dimension")
        elif manifest.kind is TaskKind.SPAN_QA:
            if manifest.span_qa is None:
                raise XstiltsError(f"{where}: an extractive QA bundle records its span_qa setting (doc stride...)")
        elif not manifest.labels:
            raise XstiltsError(f"{where}: no labels")
        return manifest


def load_manifest(folder: Path) -> BundleManifest:
    """Read and validate ``folder/bundle.json`` and check the files it names are there."""
    path = folder / BUNDLE_FILE
    if not path.is_file():
        raise XstiltsError(f"{folder} is not a model bundle: it has no {BUNDLE_FILE}")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise XstiltsError(f"{path} is not JSON: {exc}") from None
    manifest = BundleManifest.from_json(data, str(path))
    for required in (MODEL_FILE, TOKENIZER_FILE):
        if not (folder / required).is_file():
            raise XstiltsError(f"bundle {folder} is missing {required}")
    return manifest


def list_bundles(repository: Path) -> dict[str, dict[str, Path]]:
    """Every bundle folder of a repository: ``{name: {variant: folder}}``."""
    if not repository.is_dir():
        raise XstiltsError(f"model repository {repository} does not exist")
    found: dict[str, dict[str, Path]] = {}
    for manifest in sorted(repository.glob(f"*/*/{BUNDLE_FILE}")):
        folder = manifest.parent
        if folder.name.startswith(".") or folder.parent.name.startswith("."):
            continue  # an export still being written (see xstilts.atomic.staged_dir)
        found.setdefault(folder.parent.name, {})[folder.name] = folder
    return found
