"""The tagging bench: entity F1 and word accuracy per language through the live API, equal to the bundle run in
process and to what bundle.json recorded; the whole command with the naive PyTorch pipeline and a load scenario."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import TAGGING_PARITY_SENTENCES
from xstilts.bench.accuracy import run_accuracy
from xstilts.bench.servers import ServerProcess, running, xstilts_server
from xstilts.bench.tagging import api_tags, in_process_tags
from xstilts.contracts.bundle import load_manifest
from xstilts.contracts.evaluation import load_evaluation_sample

REPO = Path(__file__).resolve().parents[2]
LANGUAGES = ["en", "de", "ar", "zh"]


@pytest.fixture(scope="module")
def tag_server(tagging_repository: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    process = xstilts_server(tagging_repository, "tiny-panx=fp32", tmp_path_factory.mktemp("tag") / "serve.log")
    with running(process, timeout_s=120) as started:
        yield started


def test_entity_f1_through_the_api_is_the_bundles(tag_server: ServerProcess, tagging_repository: Path, data_dir):
    """The export's own parity sample, through HTTP: the same tags as in process, the F1 bundle.json recorded."""
    sample = load_evaluation_sample("panx", data_dir, LANGUAGES, TAGGING_PARITY_SENTENCES, seed=0)
    folder = tagging_repository / "tiny-panx" / "fp32"
    served, stats = api_tags(tag_server.url, "tiny-panx", sample, batch_items=4)
    assert served == in_process_tags(folder, sample, batch_items=4)
    assert stats.items == sample.size and stats.requests == sample.size // 4
    result = run_accuracy(tag_server.url, "tiny-panx", sample, load_manifest(folder))
    assert result.metric == "entity F1"
    recorded = load_manifest(folder).parity["languages"]
    for lang, measured in result.languages.items():
        assert measured.accuracy == pytest.approx(recorded[lang]["accuracy"], abs=1e-9), lang
    assert result.parity.same_items and result.parity.agrees and result.parity.flagged == []


def test_compare_with_the_naive_pipeline_and_a_load_scenario(
    tagging_repository: Path, tagging_checkpoints: dict[str, Path], tmp_path: Path
) -> None:
    out = tmp_path / "bench"
    done = subprocess.run(
        [
            sys.executable, "-m", "xstilts.cli", "bench", "--repository", str(tagging_repository),
            "--compare", "tiny-udpos/fp32,tiny-udpos/naive", "--naive-checkpoint", str(tagging_checkpoints["udpos"]),
            "--per-language", "3", "--languages", "en,de,ja", "--scenarios", "accuracy,closed", "--users", "1",
            "--duration", "1s", "--max-requests", "40", "--output", str(out),
        ],
        capture_output=True, text=True, timeout=420, cwd=REPO,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr + done.stdout
    results = json.loads((out / "results.json").read_text())
    assert results["data"]["task"] == "udpos"
    for target in results["targets"]:
        assert not target.get("error") and not target.get("accuracy_error"), target["label"]
        accuracy = target["accuracy"]
        assert accuracy["metric"] == "word accuracy" and set(accuracy["languages"]) == {"en", "de", "ja"}
        assert accuracy["parity"]["available"] and accuracy["parity"]["agrees"], target["label"]
        (scenario,) = target["scenarios"]
        assert scenario["failures"] == 0 and scenario["requests"] > 0
    assert [t["server"] for t in results["targets"]] == ["xstilts", "naive"]
    assert "word accuracy" in (out / "report.md").read_text()
