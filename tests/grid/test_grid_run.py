"""The tiny grid end to end through the CLI: train, export, serve and bench per cell, one row each; a killed
grid resumes; a second run does nothing; stage outputs are reused; the report shows the rows' numbers."""

from __future__ import annotations

import csv
import json
import shutil
import statistics
import time
from pathlib import Path

import pytest
import yaml

from tests.grid.conftest import CELL_IDS, TINY, GridRun, grid

LANGUAGES = ["en", "de", "fr"]
PER_LANGUAGE = 16


def test_every_cell_has_a_row_with_real_numbers(grid_run: GridRun):
    rows = grid_run.rows()
    assert [r["id"] for r in rows] == sorted(CELL_IDS)
    by_id = {r["id"]: r for r in rows}
    assert by_id[CELL_IDS[0]]["aliases"] == ["tiny-xlmr__mnli-0__pawsx__s0"]
    assert by_id[CELL_IDS[1]]["aliases"] == ["tiny-xlmr__mnli-30__pawsx__s0"]
    for row in rows:
        training = row["training"]
        assert (training["task"], training["split"], training["per_language"]) == ("pawsx", "zs-eval", PER_LANGUAGE)
        assert list(training["languages"]) == LANGUAGES
        assert all(0.0 <= v <= 1.0 for v in training["languages"].values())
        assert training["average_non_english"] == pytest.approx(
            statistics.fmean(training["languages"][x] for x in ("de", "fr"))
        )
        for variant in ("fp32", "int8"):
            api = row["api"][variant]
            assert list(api["languages"]) == LANGUAGES and api["items"] == PER_LANGUAGE * len(LANGUAGES)
            assert api["provider"] == "CPUExecutionProvider"
        # The API saw the evaluation's own items: the fp32 graph answers as the PyTorch checkpoint did.
        for lang, accuracy in training["languages"].items():
            assert row["api"]["fp32"]["languages"][lang] == pytest.approx(accuracy, abs=1 / PER_LANGUAGE + 1e-9)
        assert row["budget"]["target_steps"] == 4 and row["budget"]["batch_size"] == 4
        assert row["budget"]["max_length"] == 48 and row["budget"]["bench_per_language"] == str(PER_LANGUAGE)
        assert row["budget"]["pooling"] == "mean"  # the tiny grid's heads; the bundles carry the pooling in the graph
        assert all(row["wall_s"][stage] > 0 for stage in ("train", "export", "bench"))
        for phase in row["lineage"]["phases"]:
            assert all(len(f["sha256"]) == 64 for t in phase["tasks"] for f in t["files"])
        assert set(row["lineage"]["bundles"]) == {"fp32", "int8"}
        assert (grid_run.output / "repository" / row["bundle"] / "int8" / "bundle.json").is_file()
    labels = {r["arm"]: [p["label"] for p in r["lineage"]["phases"]] for r in rows}
    assert labels == {
        "baseline": ["pawsx"],
        "mnli": ["mnli", "pawsx"],
        "multilingual-then-mnli": ["xnli-multilingual", "mnli", "pawsx"],
    }
    assert by_id[CELL_IDS[1]]["lineage"]["phases"][0]["steps"] == 30


def test_serving_is_measured_for_the_load_arm_only(grid_run: GridRun):
    for row in grid_run.rows():
        if row["arm"] != "mnli":
            assert row["serving"] == {}
            continue
        for variant in ("fp32", "int8"):
            served = row["serving"][variant]
            assert served["closed_peak_seq_per_s"] > 0 and served["closed_peak_users"] in (1, 2)
            opened = served["open-0.5x"]
            assert opened["rate_rps"] > 0 and opened["p99_ms"] >= opened["p50_ms"] > 0


def test_results_csv_holds_the_rows(grid_run: GridRun):
    rows = {r["id"]: r for r in grid_run.rows()}
    with (grid_run.output / "results.csv").open() as handle:
        table = list(csv.DictReader(handle))
    assert [t["id"] for t in table] == sorted(rows)
    for line in table:
        row = rows[line["id"]]
        assert float(line["training.average_non_english"]) == pytest.approx(row["training"]["average_non_english"])
        assert float(line["api.int8.average"]) == pytest.approx(row["api"]["int8"]["average"])
        assert "lineage" not in " ".join(line)


def test_a_killed_grid_resumes_and_keeps_finished_cells(grid_run: GridRun):
    assert grid_run.rows_at_kill == [CELL_IDS[0]], grid_run.killed_while
    assert (grid_run.output / "cells" / CELL_IDS[0] / "row.json").read_bytes() == grid_run.first_row_at_kill
    assert f"[1/3] {CELL_IDS[0]}: done, skipped" in grid_run.resumed.stdout
    assert len(grid_run.rows()) == 3
    # the second cell picked up its training where the kill left it: its first phase was not started over
    phase = json.loads(next((grid_run.output / "phases").glob("01-mnli-*/phase.json")).read_text())
    assert phase["steps"] == 30
    if "checkpoint" in grid_run.killed_while:
        assert phase["resumed_from"] and "checkpoint-" in phase["resumed_from"]


def test_a_second_run_skips_every_finished_cell(grid_run: GridRun):
    rows = {p: p.read_bytes() for p in (grid_run.output / "cells").glob("*/row.json")}
    phases = {p: p.stat().st_mtime_ns for p in (grid_run.output / "phases").glob("*/phase.json")}
    started = time.monotonic()
    done = grid(str(TINY), "--output", str(grid_run.output), "--data-dir", str(grid_run.data_dir))
    elapsed = time.monotonic() - started
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("done, skipped") == 3 and ": train" not in done.stdout
    assert elapsed < 30, f"a run with nothing to do took {elapsed:.0f} s"
    assert {p: p.read_bytes() for p in rows} == rows
    assert {p: p.stat().st_mtime_ns for p in phases} == phases


def test_report_tables_show_the_rows(grid_run: GridRun, tmp_path: Path):
    done = grid(str(TINY), "--output", str(grid_run.output), "--report", str(tmp_path / "report"))
    assert done.returncode == 0, done.stderr
    report = (tmp_path / "report" / "report.md").read_text()
    rows = {r["arm"]: r for r in grid_run.rows()}

    def pct(value: float, signed: bool = False) -> str:
        return f"{100 * value:{'+' if signed else ''}.1f} (n=1)"

    non_en = {arm: r["training"]["average_non_english"] for arm, r in rows.items()}
    lines = report.splitlines()
    for arm, value in non_en.items():
        assert f"| {arm} | {pct(value)} |" in lines  # question 1: one row per arm, one column per model
    assert f"| 0 | {pct(non_en['baseline'])} |" in lines  # question 2: 0 steps is the baseline
    assert f"| 30 | {pct(non_en['mnli'])} |" in lines
    english = {arm: r["training"]["languages"]["en"] for arm, r in rows.items()}
    q3 = f"| tiny-xlmr | {pct(english['mnli'])} | {pct(non_en['mnli'])} | "
    q3 += f"{pct(english['multilingual-then-mnli'])} | {pct(non_en['multilingual-then-mnli'])} |"
    assert q3 in lines
    assert f"| pawsx | {pct(non_en['mnli'] - non_en['multilingual-then-mnli'], signed=True)} |" in lines  # q4
    assert f"| pawsx | {pct(non_en['mnli'] - non_en['baseline'], signed=True)} |" in lines  # q5
    for arm in ("mnli", "multilingual-then-mnli"):  # q5, every intermediate arm
        gain = pct(non_en[arm] - non_en["baseline"], signed=True)
        assert f"| pawsx | {arm} | baseline, same target steps | {gain} |" in lines
    served = rows["mnli"]["serving"]["int8"]
    assert f"| {served['closed_peak_seq_per_s']:.0f} (n=1) |" in report
    plots = ("q1_size_transfer", "q2_duration_accuracy", "q2_duration_serving", "q3_multilingual", "q5_gain_every_arm")
    for name in plots:
        assert (tmp_path / "report" / f"{name}.png").stat().st_size > 1000
    copied = [json.loads(line) for line in (tmp_path / "report" / "results.jsonl").read_text().splitlines()]
    assert sorted(r["id"] for r in copied) == sorted(r["id"] for r in grid_run.rows())


def test_report_marks_cells_without_results_as_not_run(grid_run: GridRun, tmp_path: Path):
    config = yaml.safe_load(TINY.read_text())
    config["models"] = ["tiny-xlmr", "me5-small@3L"]  # a size that never ran: its cells must not be invented
    path = tmp_path / "wider.yaml"
    path.write_text(yaml.safe_dump(config))
    done = grid(str(path), "--output", str(grid_run.output), "--report", str(tmp_path / "report"))
    assert done.returncode == 0, done.stderr
    report = (tmp_path / "report" / "report.md").read_text()
    baseline = next(r for r in grid_run.rows() if r["arm"] == "baseline")["training"]["average_non_english"]
    assert f"| baseline | {100 * baseline:.1f} (n=1) | not run |" in report.splitlines()
    assert "3 of 6 cells have results" in report


def test_stage_outputs_are_reused_and_a_missing_bench_is_rerun(grid_run: GridRun):
    cell = grid_run.output / "cells" / CELL_IDS[1]
    bundle = grid_run.output / "repository" / CELL_IDS[1] / "int8" / "bundle.json"
    before = json.loads((cell / "row.json").read_text())
    exported_at = bundle.stat().st_mtime_ns
    (cell / "row.json").unlink()
    (cell / "bench" / "results.json").unlink()
    done = grid(str(TINY), "--output", str(grid_run.output), "--cell", "1", "--data-dir", str(grid_run.data_dir))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "train already done" in done.stdout and "export already done" in done.stdout
    assert "bench already done" not in done.stdout
    assert bundle.stat().st_mtime_ns == exported_at
    after = json.loads((cell / "row.json").read_text())
    assert after["training"] == before["training"] and after["api"]["fp32"] == before["api"]["fp32"]
    assert after["serving"]["int8"]["closed_peak_seq_per_s"] > 0
    assert [r["id"] for r in grid_run.rows()] == sorted(CELL_IDS)


def test_a_cell_started_under_other_settings_is_refused(grid_run: GridRun, tmp_path: Path):
    config = yaml.safe_load(TINY.read_text())
    config["targets"]["pawsx"]["target"]["max_steps"] = 5
    path = tmp_path / "changed.yaml"
    path.write_text(yaml.safe_dump(config))
    done = grid(str(path), "--output", str(grid_run.output), "--cell", "0", "--data-dir", str(grid_run.data_dir))
    assert done.returncode == 2 and "other settings" in done.stderr and "Traceback" not in done.stderr


def test_a_variant_failing_the_parity_gate_is_recorded_and_not_measured(grid_run: GridRun):
    """The cell keeps its row: the failed variant is named in the lineage, the others are served and measured."""
    cell = grid_run.output / "cells" / CELL_IDS[2]
    manifest_path = grid_run.output / "repository" / CELL_IDS[2] / "int8" / "bundle.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["parity"] |= {"status": "failed", "accuracy_drop_points": 4.2}  # as export --keep-failed marks it
    manifest_path.write_text(json.dumps(manifest))
    (cell / "row.json").unlink()
    shutil.rmtree(cell / "bench")
    done = grid(str(TINY), "--output", str(grid_run.output), "--cell", "2", "--data-dir", str(grid_run.data_dir))
    assert done.returncode == 0, done.stdout + done.stderr
    row = json.loads((cell / "row.json").read_text())
    assert list(row["api"]) == ["fp32"] and row["api"]["fp32"]["items"] == PER_LANGUAGE * len(LANGUAGES)
    bundles = row["lineage"]["bundles"]
    assert (bundles["int8"]["parity"], bundles["int8"]["parity_accuracy_drop_points"]) == ("failed", 4.2)
    assert (bundles["int8"]["benched"], bundles["fp32"]["benched"]) == (False, True)
    assert bundles["fp32"]["parity"] == "passed"
