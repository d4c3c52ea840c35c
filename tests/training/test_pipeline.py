"""The training chain on the tiny model: phases, heads, multi-task, results and manifest, reuse and resume."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from tests.helpers import kill_once
from tests.training.conftest import tiny_phase, tiny_run
from xstilts.contracts.checkpoint import CheckpointInfo
from xstilts.paths import resolve_data_dir
from xstilts.training.config import load_config
from xstilts.training.pipeline import run


def train(path: Path, output: Path, store: Path | None = None) -> dict:
    return run(load_config(path), output, resolve_data_dir(None), store)


def phase_records(output: Path) -> list[dict]:
    return json.loads((output / "manifest.json").read_text())["phases"]


def test_two_phase_chain_writes_results_manifest_and_checkpoint(write_config, tmp_path):
    config = tiny_run(
        tiny_phase({"task": "pawsx", "max_examples": 40}), tiny_phase({"task": "mnli", "max_examples": 40})
    )
    results = train(write_config(config), tmp_path / "run")

    assert set(results["languages"]) == {"en", "de"}
    for entry in results["languages"].values():
        assert 0.0 <= entry["accuracy"] <= 1.0 and entry["examples"] == 8
    assert results["average"] == pytest.approx(sum(v["accuracy"] for v in results["languages"].values()) / 2)
    assert results["task"] == "pawsx" and results["split"] == "zs-eval"

    phases = phase_records(tmp_path / "run")
    assert [p["label"] for p in phases] == ["mnli", "pawsx"]
    assert [p["steps"] for p in phases] == [3, 3]
    assert phases[0]["tasks"][0]["files"][0]["path"] == "mnli/glue_pretrain_subset/train.json"
    assert len(phases[0]["tasks"][0]["files"][0]["sha256"]) == 64
    assert phases[1]["tasks"][0]["data"] == "pawsx/zs-train"

    checkpoint = tmp_path / "run" / "checkpoint"
    info = CheckpointInfo.load(checkpoint)
    assert info.task == "pawsx" and info.labels == ["different", "paraphrase"] and info.max_length == 48
    assert info.lineage["phases"][0]["label"] == "mnli"
    assert json.loads((checkpoint / "config.json").read_text())["architectures"] == ["BertForSequenceClassification"]
    assert json.loads((checkpoint / "results.json").read_text())["average"] == results["average"]
    log = [json.loads(line) for line in (tmp_path / "run" / "train_log.jsonl").read_text().splitlines()]
    assert [(r["phase"], r["step"]) for r in log] == [
        ("mnli", 1),
        ("mnli", 2),
        ("mnli", 3),
        ("pawsx", 1),
        ("pawsx", 2),
        ("pawsx", 3),
    ]
    assert all(r["loss"] > 0 for r in log)


def test_three_phase_chain_multilingual_then_english(write_config, tmp_path):
    multilingual = tiny_phase(
        {"task": "xnli", "split": "dev", "languages": ["de", "fr"], "max_examples": 10}, name="xnli-ml"
    )
    config = tiny_run(
        tiny_phase({"task": "pawsx", "max_examples": 20}),
        multilingual,
        tiny_phase({"task": "mnli", "max_examples": 20}),
    )
    train(write_config(config), tmp_path / "run")
    phases = phase_records(tmp_path / "run")
    assert [p["label"] for p in phases] == ["xnli-ml", "mnli", "pawsx"]
    assert phases[0]["tasks"][0]["languages"] == ["de", "fr"] and phases[0]["tasks"][0]["examples"] == 20
    # Each phase starts from the previous phase's checkpoint.
    records = [json.loads((tmp_path / "run" / "phases" / p["folder"] / "phase.json").read_text()) for p in phases]
    assert records[1]["start"].endswith(f"{phases[0]['folder']}/checkpoint")
    assert records[2]["start"].endswith(f"{phases[1]['folder']}/checkpoint")


def test_multi_task_phase_has_one_head_per_task_and_samples_by_temperature(write_config, tmp_path):
    config = tiny_run(
        tiny_phase({"task": "pawsx", "max_examples": 20}),
        tiny_phase(
            {"task": "mnli", "max_examples": 90},
            {"task": "siqa", "max_examples": 10},
            steps=6,
            sampling="temperature",
            temperature=2.0,
        ),
    )
    train(write_config(config), tmp_path / "run")
    phase = phase_records(tmp_path / "run")[0]
    folder = tmp_path / "run" / "phases" / phase["folder"]
    assert sorted(p.name for p in (folder / "heads").iterdir()) == ["mnli.safetensors", "siqa.safetensors"]
    assert phase["sampling"] == "temperature"
    assert phase["task_weights"]["mnli"] == pytest.approx(0.75)  # sqrt(90) / (sqrt(90) + sqrt(10))
    losses = [json.loads(x) for x in (folder / "log.jsonl").read_text().splitlines()]
    assert len(losses) == 6


def test_multiple_choice_target_has_a_multiple_choice_head(write_config, tmp_path):
    config = tiny_run(
        tiny_phase({"task": "xcopa", "max_examples": 16}),
        tiny_phase({"task": "siqa", "max_examples": 16}),
        evaluation={"max_per_language": 10, "languages": ["en", "it", "zh"]},
    )
    results = train(write_config(config), tmp_path / "run")
    assert set(results["languages"]) == {"en", "it", "zh"} and results["split"] == "val"
    checkpoint = tmp_path / "run" / "checkpoint"
    assert json.loads((checkpoint / "config.json").read_text())["architectures"] == ["BertForMultipleChoice"]
    assert CheckpointInfo.load(checkpoint).kind == "multiple_choice"


def test_finished_phases_are_not_trained_again_and_shared_across_runs(write_config, tmp_path):
    intermediate = tiny_phase({"task": "mnli", "max_examples": 20})
    store = tmp_path / "store"
    first = write_config(tiny_run(tiny_phase({"task": "pawsx", "max_examples": 20}), intermediate), "a.yaml")
    train(first, tmp_path / "a", store)
    mtime = next(store.glob("01-mnli-*/phase.json")).stat().st_mtime_ns
    train(first, tmp_path / "a", store)
    assert all(p["reused"] for p in phase_records(tmp_path / "a"))

    # Another run with the same intermediate phase but a different target reuses the intermediate phase.
    second = write_config(tiny_run(tiny_phase({"task": "pawsx", "max_examples": 20}, steps=2), intermediate), "b.yaml")
    train(second, tmp_path / "b", store)
    assert [p["reused"] for p in phase_records(tmp_path / "b")] == [True, False]
    assert next(store.glob("01-mnli-*/phase.json")).stat().st_mtime_ns == mtime
    assert len(list(store.glob("02-pawsx-*"))) == 2


def log_lines(run: Path) -> list[dict]:
    return [json.loads(x) for x in next((run / "phases").glob("*/log.jsonl")).read_text().splitlines()]


def weights(run: Path) -> dict:
    from safetensors.torch import load_file

    return load_file(next((run / "phases").glob("*/checkpoint/model.safetensors")))


def test_a_killed_run_resumes_where_its_last_checkpoint_left_off(write_config, tmp_path):
    """The resumed Trainer continues at the checkpoint's step, with its scheduler, to an uninterrupted run's weights."""
    from xstilts.training.phase import last_complete_checkpoint

    steps = 60
    config = tiny_run(
        tiny_phase({"task": "mnli", "max_examples": 60}, steps=steps, batch_size=2),
        save_steps=10,
        evaluation={"max_per_language": 4, "languages": ["en"]},
    )
    path = write_config(config)
    train(path, tmp_path / "whole")
    whole = log_lines(tmp_path / "whole")
    assert [r["step"] for r in whole] == list(range(1, steps + 1))

    run = tmp_path / "run"
    command = [sys.executable, "-m", "xstilts.cli", "train", str(path), "--output", str(run)]
    kill_once(command, lambda: bool(list(run.glob("phases/*/trainer/checkpoint-*/trainer_state.json"))), 120)
    assert not list((run / "phases").glob("*/phase.json")), "the phase finished before the kill"
    trainer = next((run / "phases").glob("*/trainer"))
    resume = last_complete_checkpoint(trainer)
    assert resume is not None, "no complete trainer checkpoint before the kill"
    saved_step = int(resume.rsplit("-", 1)[1])
    assert json.loads((Path(resume) / "trainer_state.json").read_text())["global_step"] == saved_step
    before = len(log_lines(run))
    # A kill in the middle of a save leaves a newer checkpoint without its trainer state: it must be passed over.
    partial = trainer / "checkpoint-99999"
    partial.mkdir()
    (partial / "model.safetensors").write_bytes(b"cut short")

    train(path, run)
    record = json.loads(next((run / "phases").glob("*/phase.json")).read_text())
    assert record["resumed_from"] == resume and record["steps"] == steps
    resumed = log_lines(run)[before:]
    # The Trainer's own log of the resumed run: it starts right after the checkpoint's step, not at step 1.
    assert [r["step"] for r in resumed] == list(range(saved_step + 1, steps + 1))
    # The scheduler (and optimizer) state came back: the learning rate at each resumed step is the uninterrupted run's.
    by_step = {r["step"]: r for r in whole}
    for line in resumed:
        assert line["learning_rate"] == pytest.approx(by_step[line["step"]]["learning_rate"], rel=1e-9)
    assert resumed[0]["learning_rate"] != whole[0]["learning_rate"]
    ours, reference = weights(run), weights(tmp_path / "whole")
    assert ours.keys() == reference.keys()
    for name, tensor in reference.items():
        assert (ours[name] - tensor).abs().max().item() < 1e-5, name
