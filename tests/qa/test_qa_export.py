"""span_qa bundles: optimum's question-answering graph with dynamic axes, the span setting in bundle.json, and the
parity gate (F1/EM on real XQuAD items, span agreement with PyTorch), fp32 and int8."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from tests.helpers import QA_DOC_STRIDE, QA_LANGUAGES, TINY_MAX_LENGTH
from xstilts.contracts.bundle import list_bundles, load_manifest
from xstilts.contracts.evaluation import load_evaluation_sample
from xstilts.contracts.kinds import TaskKind
from xstilts.export.encode import complete_feeds
from xstilts.export.span_parity import SpanGate, compare_spans
from xstilts.qa.postprocess import MAX_ANSWER_LENGTH, Answer


def test_bundle_records_windows_and_passes_the_gate(qa_repository: Path) -> None:
    bundles = list_bundles(qa_repository)["tiny-xquad"]
    assert set(bundles) == {"fp32", "int8"}
    for variant, folder in bundles.items():
        manifest = load_manifest(folder)
        assert manifest.kind is TaskKind.SPAN_QA and manifest.max_length == TINY_MAX_LENGTH
        assert manifest.span_qa is not None
        assert manifest.span_qa.to_json() == {"doc_stride": QA_DOC_STRIDE, "max_answer_length": MAX_ANSWER_LENGTH}
        assert [(o.name, o.shape) for o in manifest.outputs] == [
            ("start_logits", ["batch_size", "sequence_length"]),
            ("end_logits", ["batch_size", "sequence_length"]),
        ]
        parity = manifest.parity
        assert parity["status"] == "passed" and parity["metric"] == "f1", parity
        assert set(parity["languages"]) == set(QA_LANGUAGES)
        assert parity["tokenizer"]["windows_checked"] > parity["data"]["total"]  # contexts take several windows
        if variant == "fp32":
            assert parity["span_agreement"] == 1.0 and parity["max_abs_logit_diff"] < 1e-4
            assert parity["average_accuracy"]["variant"] == parity["average_accuracy"]["reference"]
        for figures in parity["languages"].values():
            assert 0 <= figures["exact_match"] <= figures["f1"] <= 1 and figures["accuracy"] == figures["f1"]


def test_graph_axes_are_dynamic(qa_repository: Path) -> None:
    """One session answers batches of other sizes and lengths than the export traced, one row per window."""
    session = ort.InferenceSession(
        str(qa_repository / "tiny-xquad/fp32/model.onnx"), providers=["CPUExecutionProvider"]
    )
    names = [i.name for i in session.get_inputs()]
    for batch, length in ((1, 7), (5, 128)):
        ids = np.full((batch, length), 5, dtype=np.int64)
        feeds = complete_feeds({"input_ids": ids, "attention_mask": ids * 0 + 1}, names)
        starts, ends = session.run(["start_logits", "end_logits"], feeds)
        assert starts.shape == ends.shape == (batch, length)


def test_gate_reference_is_the_training_evaluation(qa_checkpoint: Path, qa_repository: Path, data_dir: Path) -> None:
    """The F1 the gate records for PyTorch is what training's zero-shot evaluation gives on the same items."""
    from xstilts.training.evaluate import evaluate

    parity = load_manifest(qa_repository / "tiny-xquad/fp32").parity
    sample = load_evaluation_sample("xquad", data_dir, list(QA_LANGUAGES), parity["data"]["per_language"], 0)
    evaluated = evaluate(qa_checkpoint, sample, batch_size=8)
    for lang, figures in parity["languages"].items():
        assert figures["reference_f1"] == pytest.approx(evaluated["languages"][lang]["f1"])
        assert figures["reference_exact_match"] == pytest.approx(evaluated["languages"][lang]["exact_match"])


def test_gate_fails_on_an_f1_drop(data_dir: Path) -> None:
    """Gold answers as the reference and a one-word-off candidate: F1 drops, spans disagree, the gate fails."""
    sample = load_evaluation_sample("xquad", data_dir, ["en", "de"], 6, 0)
    gold = {lang: [Answer(*_gold(e), 1.0) for e in examples] for lang, examples in sample.examples.items()}
    off = {lang: [Answer(a.text[:1], a.start, a.start + 1, 1.0) for a in answers] for lang, answers in gold.items()}
    logits = {lang: ([np.zeros(3)], [np.zeros(3)]) for lang in sample.examples}
    same = compare_spans(sample, gold, gold, logits, logits, budget=1.0)
    assert same["passed"] and same["span_agreement"] == 1.0 and same["average_accuracy"]["reference"] == 1.0
    worse = compare_spans(sample, gold, off, logits, logits, budget=1.0)
    assert not worse["passed"] and worse["span_agreement"] == 0.0 and worse["accuracy_drop_points"] > 1.0
    assert SpanGate.rejection("int8", worse).startswith("int8: average F1 ")  # the one line export fails with


def _gold(example) -> tuple[str, int, int]:
    text, start = example.answers[0]
    return text, start, start + len(text)


def test_cli_refuses_untested_variants_in_one_line(qa_checkpoint: Path, tmp_path: Path, capsys) -> None:
    from xstilts.cli import main

    argv = ["export", str(qa_checkpoint), "--repository", str(tmp_path), "--name", "q", "--variants", "fp16"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.endswith("extractive QA bundles come as fp32, int8, not fp16\n"), err
    assert not any(tmp_path.iterdir())
