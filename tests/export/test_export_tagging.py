"""Tagging bundles: token logits with dynamic batch and sequence axes, gated on entity F1 (PAN-X) or word accuracy
(UD-POS) and tag agreement, on the windows a server reads."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from tests.helpers import TAGGING_MAX_LENGTH, TAGGING_PARITY_SENTENCES
from xstilts.contracts.bundle import load_manifest
from xstilts.contracts.checkpoint import CheckpointInfo
from xstilts.contracts.evaluation import load_evaluation_sample
from xstilts.contracts.kinds import TaskKind
from xstilts.tasks import get_task


@pytest.mark.parametrize(("name", "task", "metric"), [("tiny-panx", "panx", "f1"), ("tiny-udpos", "udpos", "accuracy")])
def test_bundle_json_records_the_tagging_gate(tagging_repository: Path, name: str, task: str, metric: str) -> None:
    manifest = load_manifest(tagging_repository / name / "fp32")
    assert (manifest.kind, manifest.task, manifest.max_length) == (TaskKind.TOKEN_CLASSIFICATION, task, 24)
    assert manifest.labels == list(get_task(task).labels)
    (output,) = manifest.outputs
    assert (output.name, output.shape) == ("logits", ["batch_size", "sequence_length", len(manifest.labels)])
    parity = manifest.parity
    assert parity["status"] == "passed" and parity["metric"] == metric
    assert set(parity["languages"]) == set(get_task(task).splits["dev"].languages)
    assert all(v["examples"] == TAGGING_PARITY_SENTENCES for v in parity["languages"].values())
    assert parity["label_agreement"] == 1.0 and parity["max_abs_logit_diff"] < 1e-4
    assert parity["average_accuracy"]["variant"] == parity["average_accuracy"]["reference"]
    # windows of 24 tokens: some sampled sentences take several, and each window's ids were checked
    assert parity["tokenizer"]["sequences_checked"] > sum(v["examples"] for v in parity["languages"].values())


def test_int8_records_its_own_agreement(tagging_repository: Path) -> None:
    parity = load_manifest(tagging_repository / "tiny-panx" / "int8").parity
    assert parity["status"] == "passed" and parity["provider"] == "CPUExecutionProvider"
    assert 0.5 < parity["label_agreement"] <= 1.0 and parity["max_abs_logit_diff"] > 0


def test_the_gate_scores_as_zero_shot_evaluation_does(
    tagging_repository: Path, tagging_checkpoints: dict[str, Path], data_dir: Path
) -> None:
    """The checkpoint's metric in bundle.json is what training's PyTorch evaluation gives on the same sentences."""
    from xstilts.models.heads import load_task_model
    from xstilts.tagging.evaluate import evaluate_tagging
    from xstilts.training.evaluate import load_tokenizer

    checkpoint = tagging_checkpoints["panx"]
    info = CheckpointInfo.load(checkpoint)
    sample = load_evaluation_sample("panx", data_dir, info.languages, TAGGING_PARITY_SENTENCES, seed=0)
    model = load_task_model(checkpoint, TaskKind.TOKEN_CLASSIFICATION)
    evaluated = evaluate_tagging(model, load_tokenizer(checkpoint), info, sample, batch_size=16)
    recorded = load_manifest(tagging_repository / "tiny-panx" / "fp32").parity["languages"]
    for lang, result in evaluated["languages"].items():
        assert recorded[lang]["reference_accuracy"] == pytest.approx(result["f1"], abs=1e-9), lang


def test_the_graph_takes_any_batch_and_length(tagging_repository: Path) -> None:
    session = ort.InferenceSession(
        str(tagging_repository / "tiny-udpos" / "fp32" / "model.onnx"), providers=["CPUExecutionProvider"]
    )
    for batch, length in ((1, 3), (5, TAGGING_MAX_LENGTH)):
        ids = np.full((batch, length), 5, dtype=np.int64)
        feeds = {"input_ids": ids, "attention_mask": np.ones_like(ids), "token_type_ids": np.zeros_like(ids)}
        (logits,) = session.run(["logits"], {i.name: feeds[i.name] for i in session.get_inputs()})
        assert logits.shape == (batch, length, len(get_task("udpos").labels))


def test_a_gate_with_no_budget_refuses_in_one_line_and_writes_nothing(
    capsys: pytest.CaptureFixture, tmp_path: Path, tagging_checkpoints: dict[str, Path], data_dir: Path
) -> None:
    """A budget below zero no variant can meet: ``xstilts export`` fails naming the metric, leaves no folder."""
    from xstilts.cli import main

    code = main(
        [
            "export", str(tagging_checkpoints["panx"]), "--repository", str(tmp_path), "--name", "panx",
            "--variants", "fp32", "--data-dir", str(data_dir), "--parity-examples", "2", "--max-accuracy-drop", "-1",
        ]
    )  # fmt: skip
    out, err = capsys.readouterr()
    last = err.strip().splitlines()[-1]  # after export's progress lines
    assert code == 2 and out == "" and last.startswith("xstilts: error: parity gate rejected fp32: average f1 ")
    assert re.search(r"\(budget -1\.00; label agreement 100\.0%\)", last), err
    assert list(tmp_path.iterdir()) == []
