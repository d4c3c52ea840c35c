"""``export_checkpoint``: a target checkpoint into a model bundle, every variant gated on parity, all or nothing."""

from __future__ import annotations

import json
import logging
import re
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from xstilts.atomic import staged_dir
from xstilts.contracts.bundle import TOKENIZER_FILE, TensorRTProfile, TensorSpec
from xstilts.contracts.checkpoint import CheckpointInfo
from xstilts.contracts.embedding import EmbeddingSpec
from xstilts.contracts.evaluation import EvaluationSample, load_evaluation_sample
from xstilts.contracts.hashing import file_sha256
from xstilts.contracts.kinds import TaskKind
from xstilts.contracts.span import SpanSpec
from xstilts.errors import XstiltsError
from xstilts.export.calibration import CalibrationSet, evaluation_calibration
from xstilts.export.embedding_parity import EmbeddingGate
from xstilts.export.encode import Encoder, complete_feeds, configure_tokenizer
from xstilts.export.graph import graph_interface
from xstilts.export.hardware import cpu_int8_target
from xstilts.export.manifest import write_manifest
from xstilts.export.parity import Gate, check_tokenizer, make_feeds, reference_logits
from xstilts.export.quantize import CALIBRATION_METHODS
from xstilts.export.span_parity import SpanGate
from xstilts.export.tagging_parity import TaggingReference, tagging_reference
from xstilts.export.variants import TRT_BATCH, BuildContext, Variant, resolve_variants
from xstilts.paths import resolve_data_dir
from xstilts.tasks import get_task, load_examples, sample, training_data

log = logging.getLogger("xstilts.export")

NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
EXTRA_TOKENIZER_FILES = ("tokenizer_config.json", "special_tokens_map.json")
WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")


def export_checkpoint(
    checkpoint: Path,
    repository: Path,
    name: str,
    variants: Sequence[str] | str,
    *,
    data_dir: Path | None = None,
    parity_examples: int = 200,
    max_accuracy_drop: float = 1.0,
    keep_failed: bool = False,
    seed: int = 0,
    opset: int | None = None,
    int8_target: str | None = None,
    per_channel: bool = True,
    calibration_examples: int = 128,
    calibration_method: str = "minmax",
    trt_batch: tuple[int, int, int] | None = None,
    trt_sequence: tuple[int, int, int] | None = None,
) -> list[Path]:
    """Write ``repository/name/<variant>/`` for each variant and return those folders.

    Every variant is checked against the PyTorch checkpoint on ``parity_examples`` items per language of the
    task's evaluation split; one whose average accuracy drops more than ``max_accuracy_drop`` points is
    rejected, and then nothing is written, unless ``keep_failed`` keeps it, marked. The name folder appears
    only when complete. ``calibration_examples`` items calibrate trt-int8 (English training inputs) and
    int8-static (evaluation items in every gated language outside the parity sample, by ``calibration_method``).
    The TensorRT profile defaults to batch 1,8,32 and length 1,128,max_length.
    """
    checkpoint, repository = Path(checkpoint), Path(repository)
    info = _load_info(checkpoint)
    if TaskKind(info.kind) is TaskKind.SPAN_QA:
        from xstilts.export.span import export_span_qa

        options = {"data_dir": data_dir, "parity_examples": parity_examples, "max_accuracy_drop": max_accuracy_drop}
        options |= {"keep_failed": keep_failed, "seed": seed, "opset": opset, "int8_target": int8_target}
        return export_span_qa(checkpoint, info, repository, name, variants, per_channel=per_channel, **options)
    target = new_bundle_folder(repository, name)
    chosen = resolve_variants(variants)
    if calibration_method not in CALIBRATION_METHODS:
        raise XstiltsError(f"unknown calibration method {calibration_method!r}: use {', '.join(CALIBRATION_METHODS)}")
    if calibration_examples < 1:
        raise XstiltsError(f"--calibration-examples must be at least 1, got {calibration_examples}")
    profile = TensorRTProfile(
        batch=trt_batch or TRT_BATCH, sequence=trt_sequence or (1, min(128, info.max_length), info.max_length)
    )
    data_dir = resolve_data_dir(data_dir)
    sample_ = load_evaluation_sample(info.task, data_dir, info.languages, parity_examples, seed)

    with staged_dir(target) as stage:
        work = stage / ".work"
        gate: Gate
        static_calibration = None
        if TaskKind(info.kind) is TaskKind.TOKEN_CLASSIFICATION:
            tagging = _tagging_reference(checkpoint, info, work, sample_, opset, max_accuracy_drop)
            gate, tokenizer = tagging.gate, tagging.tokenizer
            calibration = partial(tagging.calibration_feeds, info.task, data_dir, calibration_examples, seed)
        else:
            reference = _reference(checkpoint, info, work, sample_, opset)
            gate = Gate(reference.logits, reference.feeds, sample_, max_accuracy_drop, reference.sequences_checked)
            tokenizer = reference.tokenizer
            calibration = partial(_calibration_feeds, info, data_dir, reference, calibration_examples, seed)
            static_calibration = partial(_static_calibration, reference, sample_, data_dir, calibration_examples, seed)
        context = BuildContext(
            onnx_dir=work / "onnx",
            int8_target=int8_target or cpu_int8_target(),
            per_channel=per_channel,
            calibration_feeds=calibration,
            evaluation_calibration=static_calibration,
            calibration_method=calibration_method,
        )
        writer = VariantWriter(checkpoint, info, name, profile, context, gate, tokenizer, keep_failed)
        write_variants(writer, chosen, stage)
        shutil.rmtree(work)
        if target.exists():
            raise XstiltsError(f"{target} appeared while exporting (another export of the same name?): kept it")
    return [target / v.name for v in chosen]


def new_bundle_folder(repository: Path, name: str) -> Path:
    """``repository/name``, checked to be a valid bundle name that does not exist yet."""
    if not NAME_PATTERN.match(name):
        raise XstiltsError(f"bundle name {name!r} must be letters, digits, '.', '_' or '-', not starting with a symbol")
    target = repository / name
    if target.exists():
        raise XstiltsError(f"{target} already exists: choose another --name or remove it first")
    return target


@dataclass
class Reference:
    """What every variant is compared with: the checkpoint's logits on the sample's feeds, from its tokenizer."""

    encoder: Encoder
    tokenizer: Path  # the bundle's configured tokenizer.json
    feeds: dict[str, list[dict]]
    logits: dict[str, np.ndarray]
    sequences_checked: int  # how many sequences the serving tokenizer was checked on
    graph_inputs: list[TensorSpec]  # the float32 graph's


def _reference(
    checkpoint: Path, info: CheckpointInfo, work: Path, sample_: EvaluationSample, opset: int | None
) -> Reference:
    """Export the float32 graph into ``work/onnx``, write the serving tokenizer, and compute the reference logits."""
    from xstilts.export.onnx_export import export_fp32

    kind = TaskKind(info.kind)
    model = _load_model(checkpoint, kind)
    log.info("exporting the float32 graph")
    graph = export_fp32(model, kind, work / "onnx", opset)
    tokenizer = work / TOKENIZER_FILE
    sequences = _serving_tokenizer(checkpoint, info, kind, tokenizer, sample_)
    encoder = Encoder(tokenizer, kind)
    feeds = make_feeds(encoder, sample_)
    log.info("reference: the PyTorch checkpoint on %d items in %d languages", sample_.size, len(sample_.examples))
    inputs = graph_interface(graph)[0]
    return Reference(encoder, tokenizer, feeds, reference_logits(model, feeds), sequences, inputs)


def _tagging_reference(
    checkpoint: Path, info: CheckpointInfo, work: Path, sample_: EvaluationSample, opset: int | None, budget: float
) -> TaggingReference:
    """Export a tagging checkpoint's float32 graph into ``work/onnx`` and build its gate (word windows, not items)."""
    from xstilts.export.onnx_export import export_fp32

    model = _load_model(checkpoint, TaskKind.TOKEN_CLASSIFICATION)
    log.info("exporting the float32 graph")
    graph = export_fp32(model, TaskKind.TOKEN_CLASSIFICATION, work / "onnx", opset)
    log.info("reference: the PyTorch checkpoint on %d sentences in %d languages", sample_.size, len(sample_.examples))
    return tagging_reference(model, checkpoint, info, graph, work, sample_, budget)


@dataclass
class VariantWriter:
    """Builds, gates and describes one variant folder after another."""

    checkpoint: Path
    info: CheckpointInfo
    name: str
    profile: TensorRTProfile
    context: BuildContext
    gate: Gate | EmbeddingGate | SpanGate
    tokenizer: Path
    keep_failed: bool
    embedding: EmbeddingSpec | None = None
    span: SpanSpec | None = None

    def write(self, variant: Variant, folder: Path) -> str | None:
        """Write ``folder``; a variant failing the gate is removed (and its rejection returned) unless kept."""
        folder.mkdir()
        log.info("building %s", variant.name)
        build = variant.build(self.context, folder)
        _copy_tokenizer(self.checkpoint, self.tokenizer, folder)
        parity = self.gate.check(variant, folder)
        log.info("parity of %s: %s", variant.name, parity["status"])
        if parity["status"] == "failed":
            if not self.keep_failed:
                return self.gate.rejection(variant.name, parity)
            parity["kept_despite_failure"] = True
        origin = _checkpoint_facts(self.checkpoint)
        build = {**build, "checkpoint": origin}
        write_manifest(folder, self.name, variant, self.info, self.profile, build, parity, self.embedding, self.span)
        return None


def write_variants(writer: VariantWriter, variants: Sequence[Variant], stage: Path) -> None:
    """Write each variant into ``stage``; if the gate rejected any, raise (and the staged folder is discarded)."""
    rejected = [message for variant in variants if (message := writer.write(variant, stage / variant.name))]
    if rejected:
        raise XstiltsError(
            f"parity gate rejected {'; '.join(rejected)}. Nothing was written: drop the variant, raise "
            "--max-accuracy-drop, or pass --keep-failed to keep it marked as failed"
        )


def _load_info(checkpoint: Path) -> CheckpointInfo:
    if not checkpoint.is_dir():
        raise XstiltsError(f"checkpoint {checkpoint} is not a folder")
    info = CheckpointInfo.load(checkpoint)
    get_task(info.task).check_head(info.kind, info.labels, head=f"{checkpoint}: its head")
    config = json.loads((checkpoint / "config.json").read_text())
    names = [config.get("id2label", {}).get(str(i)) for i in range(len(info.labels))]
    if info.kind != TaskKind.MULTIPLE_CHOICE.value and names != info.labels:
        raise XstiltsError(f"{checkpoint}: config.json's id2label {names} differs from the checkpoint's labels")
    if not (checkpoint / TOKENIZER_FILE).is_file():
        raise XstiltsError(f"{checkpoint} has no {TOKENIZER_FILE}: bundles tokenize with it, save a fast tokenizer")
    return info


def _load_model(checkpoint: Path, kind: TaskKind) -> Any:
    from xstilts.models.heads import load_task_model

    try:
        return load_task_model(checkpoint, kind)
    except (OSError, ValueError) as exc:
        raise XstiltsError(f"{checkpoint}: cannot load the model ({str(exc).splitlines()[0]})") from None


def _serving_tokenizer(
    checkpoint: Path, info: CheckpointInfo, kind: TaskKind, target: Path, sample_: EvaluationSample
) -> int:
    """Write the bundle's ``tokenizer.json`` (truncation and padding built in) and check it against the checkpoint's."""
    from transformers import AutoTokenizer

    hf_tokenizer = AutoTokenizer.from_pretrained(checkpoint, fix_mistral_regex=False)
    if hf_tokenizer.pad_token_id is None:
        raise XstiltsError(f"{checkpoint}: the tokenizer has no padding token")
    configure_tokenizer(
        checkpoint / TOKENIZER_FILE, target, info.max_length, hf_tokenizer.pad_token_id, hf_tokenizer.pad_token
    )
    return check_tokenizer(hf_tokenizer, Encoder(target, kind), kind, sample_, info.max_length)


def _copy_tokenizer(checkpoint: Path, tokenizer: Path, folder: Path) -> None:
    shutil.copyfile(tokenizer, folder / TOKENIZER_FILE)
    for name in EXTRA_TOKENIZER_FILES:
        if (checkpoint / name).is_file():
            shutil.copyfile(checkpoint / name, folder / name)


def _calibration_feeds(
    info: CheckpointInfo, data_dir: Path, reference: Reference, count: int, seed: int
) -> list[dict[str, np.ndarray]]:
    """Batches of the task's English training inputs (never the evaluation items) for INT8 calibration."""
    source, split = training_data(info.task)
    task = get_task(source)
    examples = sample(load_examples(task, split, "en", data_dir), count, seed)
    if task.kind.value != info.kind:
        raise XstiltsError(f"calibration data {task.name}/{split} does not have the checkpoint's kind {info.kind}")
    names = [spec.name for spec in reference.graph_inputs]
    return [complete_feeds(reference.encoder.feeds(examples[i : i + 8]), names) for i in range(0, len(examples), 8)]


def _static_calibration(
    reference: Reference, sample_: EvaluationSample, data_dir: Path, count: int, seed: int
) -> CalibrationSet:
    """int8-static's calibration batches: evaluation items of the gated languages, none in the parity sample."""
    names = [spec.name for spec in reference.graph_inputs]
    return evaluation_calibration(
        sample_, data_dir, count, seed, lambda examples: complete_feeds(reference.encoder.feeds(examples), names)
    )


def _checkpoint_facts(checkpoint: Path) -> dict[str, Any]:
    """Which checkpoint the files came from: its folder name and its weights' hash."""
    weights = next((checkpoint / w for w in WEIGHT_FILES if (checkpoint / w).is_file()), None)
    return {"folder": checkpoint.name, "weights_sha256": file_sha256(weights) if weights else None}
