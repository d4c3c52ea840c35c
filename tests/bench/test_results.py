"""The bench results contract: a committed results.json reads through the type and writes back the same JSON;
bad files are one clear error."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from xstilts.bench.report import write_report
from xstilts.contracts.results import RESULTS_SCHEMA, BenchResults, ScenarioResult, read_results
from xstilts.errors import XstiltsError

REPO = Path(__file__).resolve().parents[2]
COMMITTED = REPO / "docs" / "research" / "cpu-core-duration"


def test_a_committed_results_file_reads_and_writes_back_the_same():
    results = read_results(COMMITTED / "results.json")
    assert results.schema == RESULTS_SCHEMA and results.mode == "compare" and len(results.targets) == 3
    scenario = results.targets[0].scenarios[0]
    assert isinstance(scenario, ScenarioResult) and scenario.latency_ms.p50 <= scenario.latency_ms.p99
    assert scenario.server is not None and scenario.server.mean_batch_size >= 1
    assert results.to_json() == json.loads((COMMITTED / "results.json").read_text())
    assert list(results.to_json())[0] == "schema"


def test_the_committed_report_comes_out_the_same(tmp_path):
    write_report(read_results(COMMITTED / "results.json"), tmp_path)
    for name in ("report.md", "scenarios.csv", "accuracy.csv"):
        assert (tmp_path / name).read_text() == (COMMITTED / name).read_text(), name
    assert (tmp_path / "latency_throughput.png").stat().st_size > 1000


def test_bad_results_are_one_clear_error(tmp_path):
    data = json.loads((COMMITTED / "results.json").read_text())
    with pytest.raises(XstiltsError, match="schema"):
        BenchResults.from_json({**data, "schema": "other/1"})
    renamed = json.loads(json.dumps(data))
    renamed["targets"][0]["scenarios"][0]["p50"] = renamed["targets"][0]["scenarios"][0].pop("latency_ms")
    with pytest.raises(XstiltsError, match=r"targets\[0\]\.scenarios\[0\].*(unknown key|lacks)"):
        BenchResults.from_json(renamed)
    (tmp_path / "broken.json").write_text("{")
    with pytest.raises(XstiltsError, match="not JSON"):
        read_results(tmp_path / "broken.json")
