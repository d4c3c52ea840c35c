"""Extractive QA in the bench: EM/F1 per language through the live API (XQuAD against bundle.json, MLQA on an
XQuAD model), the answers the in-process session gives, and the whole compare with the naive pipeline server."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.qa.answers import NAME
from xstilts.bench.accuracy import run_accuracy
from xstilts.bench.config import bench_task
from xstilts.bench.qa import api_answers, in_process_answers
from xstilts.bench.servers import ServerProcess, running, xstilts_server
from xstilts.contracts.bundle import load_manifest
from xstilts.contracts.evaluation import load_evaluation_sample
from xstilts.errors import XstiltsError

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def server(qa_repository: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    process = xstilts_server(qa_repository, f"{NAME}=fp32", tmp_path_factory.mktemp("qa-bench") / "serve.log")
    with running(process, timeout_s=120) as started:
        yield started


def test_xquad_f1_through_the_api_is_the_bundles(server: ServerProcess, qa_repository: Path, data_dir: Path) -> None:
    folder = qa_repository / NAME / "fp32"
    manifest = load_manifest(folder)
    recorded = manifest.parity["data"]
    sample = load_evaluation_sample("xquad", data_dir, recorded["languages"], recorded["per_language"], 0)
    answers, stats = api_answers(server.url, NAME, sample, batch_items=4)
    local = in_process_answers(folder, sample, batch_items=4)
    assert answers == {lang: [found[0].text if found else "" for found in got] for lang, got in local.items()}
    assert stats.items == sample.size and stats.requests == sum(-(-len(e) // 4) for e in sample.examples.values())
    result = run_accuracy(server.url, NAME, sample, manifest, batch_items=4)
    assert result.metric and result.metric.startswith("F1")
    assert result.parity.available and result.parity.same_items and result.parity.agrees, result.parity
    for lang, measured in result.languages.items():
        bundle = manifest.parity["languages"][lang]
        assert measured.accuracy == pytest.approx(bundle["f1"])
        assert measured.correct == round(bundle["exact_match"] * measured.examples)


def test_mlqa_on_an_xquad_model(server: ServerProcess, qa_repository: Path, data_dir: Path) -> None:
    manifest = load_manifest(qa_repository / NAME / "fp32")
    assert bench_task([manifest], "mlqa") == "mlqa"
    with pytest.raises(XstiltsError, match="span_qa models are benched on an extractive QA task, not xnli"):
        bench_task([manifest], "xnli")
    sample = load_evaluation_sample("mlqa", data_dir, ["en", "de"], 3, 0)
    result = run_accuracy(server.url, NAME, sample, manifest, batch_items=2)
    assert set(result.languages) == {"en", "de"}
    assert all(v.examples == 3 and 0 <= v.correct / 3 <= v.accuracy <= 1 for v in result.languages.values())
    assert not result.parity.available and "recorded xquad, not mlqa" in (result.parity.reason or "")


def test_compare_with_the_naive_pipeline(qa_repository: Path, qa_checkpoint: Path, tmp_path: Path) -> None:
    """xstilts bench --compare fp32 and naive: accuracy from both, load with tokens per request beside latency."""
    output = tmp_path / "bench"
    argv = [
        "--repository", str(qa_repository), "--compare", f"{NAME}/fp32,{NAME}/naive",
        "--naive-checkpoint", str(qa_checkpoint), "--per-language", "2", "--languages", "en,de",
        "--scenarios", "accuracy,closed", "--users", "1", "--duration", "2s", "--max-requests", "20",
        "--output", str(output),
    ]  # fmt: skip
    done = subprocess.run(
        [sys.executable, "-m", "xstilts.cli", "bench", *argv], capture_output=True, text=True, timeout=600, cwd=REPO
    )
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads((output / "results.json").read_text())
    served, naive = results["targets"]
    for target in (served, naive):
        assert not target.get("error") and not target.get("accuracy_error"), target
        assert set(target["accuracy"]["languages"]) == {"en", "de"}
        assert target["accuracy"]["metric"].startswith("F1")
        (scenario,) = target["scenarios"]
        assert scenario["failures"] == 0 and scenario["requests"] > 0
    assert naive["served"]["kind"] == "span_qa" and "pipeline" in naive["served"]["provider"]
    assert served["accuracy"]["parity"]["agrees"]
    view = served["scenarios"][0]["server"]
    assert view["tokens"] / view["request_count"] > 40  # real XQuAD contexts: windows of many tokens
    assert "tokens / request" in (output / "report.md").read_text()
