"""The bundles of the shared tiny repository: layout, bundle.json schema, graph facts, tokenizer, parity record."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from tokenizers import Tokenizer

from xstilts.contracts.bundle import BUNDLE_FILE, list_bundles, load_manifest
from xstilts.contracts.checkpoint import CheckpointInfo
from xstilts.contracts.hashing import file_sha256
from xstilts.contracts.kinds import TaskKind
from xstilts.export.encode import Encoder, complete_feeds
from xstilts.tasks import get_task, load_examples

BUNDLE_KEYS = {
    "name", "variant", "task", "kind", "labels", "languages", "max_length", "inputs", "outputs", "opset",
    "precision", "optimization", "execution", "tensorrt_profile", "files", "lineage", "parity", "build", "created",
    "xstilts_version", "schema",
}  # fmt: skip
PARITY_KEYS = {
    "status", "provider", "data", "tokenizer", "max_abs_logit_diff", "label_agreement", "non_finite_outputs",
    "average_accuracy", "accuracy_drop_points", "max_accuracy_drop_points", "passed", "kept_despite_failure",
    "languages",
}  # fmt: skip
BUNDLES = [("tiny-xnli", "fp32", "xnli"), ("tiny-xnli", "int8", "xnli"), ("tiny-xcopa", "fp32", "xcopa")]


def test_repository_holds_every_bundle_and_nothing_else(tiny_repository: Path) -> None:
    assert {name: set(v) for name, v in list_bundles(tiny_repository).items()} == {
        "tiny-xnli": {"fp32", "int8"},
        "tiny-xcopa": {"fp32"},
    }
    assert sorted(p.name for p in tiny_repository.iterdir()) == ["tiny-xcopa", "tiny-xnli"]


@pytest.mark.parametrize(("name", "variant", "task"), BUNDLES)
def test_manifest_schema_and_checkpoint_metadata(
    tiny_repository: Path, sensitive_checkpoints: dict[str, Path], name: str, variant: str, task: str
) -> None:
    folder = tiny_repository / name / variant
    raw = json.loads((folder / BUNDLE_FILE).read_text())
    assert set(raw) == BUNDLE_KEYS
    assert set(raw["parity"]) == PARITY_KEYS
    manifest = load_manifest(folder)
    info = CheckpointInfo.load(sensitive_checkpoints[task])
    assert (manifest.name, manifest.variant, manifest.task, manifest.kind) == (name, variant, task, info.kind)
    assert manifest.labels == info.labels and manifest.languages == info.languages
    assert manifest.max_length == info.max_length and manifest.lineage == info.lineage
    assert manifest.precision == variant
    assert manifest.build["checkpoint"]["weights_sha256"] == file_sha256(
        sensitive_checkpoints[task] / "model.safetensors"
    )
    assert manifest.build["tools"]["onnxruntime"] == ort.__version__


@pytest.mark.parametrize(("name", "variant", "task"), BUNDLES)
def test_file_hashes_cover_every_file(tiny_repository: Path, name: str, variant: str, task: str) -> None:
    folder = tiny_repository / name / variant
    manifest = load_manifest(folder)
    on_disk = {p.name for p in folder.iterdir()} - {BUNDLE_FILE}
    assert set(manifest.files) == on_disk >= {"model.onnx", "tokenizer.json"}
    for file, facts in manifest.files.items():
        assert facts == {"sha256": file_sha256(folder / file), "bytes": (folder / file).stat().st_size}


@pytest.mark.parametrize(
    ("name", "axes", "logits"),
    [
        ("tiny-xnli", ["batch_size", "sequence_length"], ["batch_size", 3]),
        ("tiny-xcopa", ["batch_size", "num_choices", "sequence_length"], ["batch_size", "num_choices"]),
    ],
)
def test_inputs_and_outputs_are_the_graphs(tiny_repository: Path, name: str, axes: list, logits: list) -> None:
    folder = tiny_repository / name / "fp32"
    manifest = load_manifest(folder)
    assert [(t.name, t.dtype, t.shape) for t in manifest.inputs] == [
        (n, "int64", axes) for n in ("input_ids", "attention_mask", "token_type_ids")
    ]
    assert [(t.name, t.dtype, t.shape) for t in manifest.outputs] == [("logits", "float32", logits)]
    graph = onnx.load(str(folder / "model.onnx"))
    assert manifest.opset == next(o.version for o in graph.opset_import if o.domain == "")


def test_bundle_tokenizer_carries_truncation_and_padding(tiny_repository: Path) -> None:
    tokenizer = Tokenizer.from_file(str(tiny_repository / "tiny-xnli" / "fp32" / "tokenizer.json"))
    assert tokenizer.truncation["max_length"] == 128
    assert tokenizer.truncation["strategy"] == "longest_first"
    assert tokenizer.padding["pad_id"] == 1
    long, short = tokenizer.encode_batch([("word " * 300, "other " * 300), ("a", "b")])
    assert len(long.ids) == len(short.ids) == 128
    assert sum(short.attention_mask) < 10


def test_parity_record_of_exact_variants(tiny_repository: Path) -> None:
    for name, languages in (("tiny-xnli", 15), ("tiny-xcopa", 12)):
        parity = load_manifest(tiny_repository / name / "fp32").parity
        assert parity["status"] == "passed" and parity["provider"] == "CPUExecutionProvider"
        assert parity["tokenizer"]["match"] and parity["tokenizer"]["sequences_checked"] > 0
        assert parity["label_agreement"] == 1.0 and parity["max_abs_logit_diff"] < 1e-4
        assert len(parity["languages"]) == languages
        assert set(parity["data"]["examples"].values()) == {8}


def test_int8_bundle_is_quantized(tiny_repository: Path) -> None:
    folder = tiny_repository / "tiny-xnli" / "int8"
    operators = {node.op_type for node in onnx.load(str(folder / "model.onnx")).graph.node}
    assert "DynamicQuantizeLinear" in operators
    quantization = load_manifest(folder).build["quantization"]
    assert quantization["method"] == "dynamic" and quantization["per_channel"] is True
    fp32 = (tiny_repository / "tiny-xnli" / "fp32" / "model.onnx").stat().st_size
    assert (folder / "model.onnx").stat().st_size < fp32 / 2


def test_multiple_choice_bundle_answers_like_the_checkpoint(
    tiny_repository: Path, sensitive_checkpoints: dict[str, Path], data_dir: Path
) -> None:
    import torch

    from xstilts.models.heads import load_task_model

    folder = tiny_repository / "tiny-xcopa" / "fp32"
    examples = load_examples(get_task("xcopa"), "val", "it", data_dir)[:5]
    feeds = Encoder(folder / "tokenizer.json", TaskKind.MULTIPLE_CHOICE).feeds(examples)
    assert feeds["input_ids"].shape[:2] == (5, 2)
    session = ort.InferenceSession(str(folder / "model.onnx"), providers=["CPUExecutionProvider"])
    (logits,) = session.run(None, complete_feeds(feeds, [i.name for i in session.get_inputs()]))
    model = load_task_model(sensitive_checkpoints["xcopa"], TaskKind.MULTIPLE_CHOICE)
    with torch.no_grad():
        expected = model(**{k: torch.from_numpy(v) for k, v in feeds.items()}).logits.numpy()
    assert logits.shape == (5, 2)
    np.testing.assert_allclose(logits, expected, atol=1e-5)
