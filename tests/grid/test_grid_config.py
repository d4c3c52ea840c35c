"""Grid configs: deterministic expansion and listing, one-line errors for bad configs, the shipped configs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.grid.conftest import CELL_IDS, REPO, TINY, grid
from xstilts.cli import main
from xstilts.grid.cells import expand
from xstilts.grid.config import load_grid

CONFIGS = REPO / "configs" / "grid"


def test_list_is_deterministic_and_shows_aliases():
    first, second = grid(str(TINY), "--list"), grid(str(TINY), "--list")
    assert first.returncode == 0 and first.stdout == second.stdout
    lines = first.stdout.splitlines()
    assert [line.split()[1] for line in lines[2:5]] == CELL_IDS
    assert "also tiny-xlmr__mnli-0__pawsx__s0" in lines[2] and "load scenarios" in lines[3]
    assert lines[-1] == "3 cells"


@pytest.mark.parametrize(("name", "cells"), [("cpu.yaml", 198), ("xlmr-gpu.yaml", 156), ("tiny.yaml", 3)])
def test_shipped_grids_expand(name: str, cells: int):
    config = load_grid(CONFIGS / name)
    expanded = expand(config)
    assert len(expanded) == cells == len({c.id for c in expanded})
    assert [c.id for c in expanded] == [c.id for c in expand(load_grid(CONFIGS / name))]
    assert not any(c.arm == "multilingual-then-mnli" and c.target == "xnli" for c in expanded)
    for cell in expanded:  # the same target budget for every arm of a target
        same = [c for c in expanded if c.target == cell.target and c.target_steps is None and c.model == cell.model]
        assert len({str(c.run["target"]) for c in same if c.seed == cell.seed}) == 1


def test_cpu_grid_settings():
    config = load_grid(CONFIGS / "cpu.yaml")
    assert config.models == ["me5-small@3L", "me5-small@6L", "me5-small"] and config.seeds == [0, 1, 2]
    cells = expand(config)
    for cell in cells:
        assert cell.run["max_length"] <= 128 and cell.run["freeze_embeddings"]
        assert all(p["batch_size"] == 32 for p in [*cell.run["intermediate"], cell.run["target"]])
    durations = sorted({c.intermediate_steps for c in cells if c.intermediate_steps is not None})
    assert durations == [100, 1000]  # 0 and 300 are the baseline and the mnli arm: aliases
    assert sum(c.load for c in cells) == 27


def write(tmp_path: Path, change) -> Path:
    config = yaml.safe_load(TINY.read_text())
    change(config)
    path = tmp_path / "grid.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def xnli_target(config: dict) -> None:
    config["targets"]["xnli"] = {
        "target": {"tasks": [{"task": "mnli"}], "max_steps": 2},
        "evaluation": {"task": "xnli", "max_per_language": 4},
    }


BAD = {
    "unknown axis": (lambda c: c.update(sizes=["small"]), "unknown axis or setting 'sizes'"),
    "unknown task": (lambda c: c["arms"]["mnli"][0]["tasks"][0].update(task="mnlx"), "unknown task 'mnlx'"),
    "unknown model": (lambda c: c.update(models=["tiny-xlmr", "no-such-model"]), "unknown model 'no-such-model'"),
    "invalid arm/target": (xnli_target, "multilingual-then-mnli__xnli__s0 (arm multilingual-then-mnli, target xnli)"),
    "unknown duration arm": (lambda c: c["intermediate_steps"].update(arms=["mnl"]), "unknown arm 'mnl'"),
    "axis in base": (lambda c: c["base"].update(model="tiny-xlmr"), "base.model is set by the grid's axes"),
    "pattern matching nothing": (lambda c: c.update(exclude=["*__nope__*"]), "matches no cell"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_configs_are_one_line_errors(case: str, tmp_path: Path, capsys):
    change, message = BAD[case]
    assert main(["grid", str(write(tmp_path, change)), "--list"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("xstilts: error: ") and err.count("\n") == 1 and message in err, err


def test_invalid_combination_states_its_reason_and_can_be_excluded(tmp_path: Path, capsys):
    assert main(["grid", str(write(tmp_path, xnli_target)), "--list"]) == 2
    assert "not zero-shot transfer" in capsys.readouterr().err

    def excluded(config: dict) -> None:
        xnli_target(config)
        config["exclude"] = ["*__multilingual-then-mnli__xnli__*"]

    assert main(["grid", str(write(tmp_path, excluded)), "--list"]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == "5 cells"


def test_a_missing_config_and_a_cell_out_of_range(tmp_path: Path):
    done = grid(str(tmp_path / "nothing.yaml"), "--list")
    assert (
        done.returncode == 2
        and done.stderr == f"xstilts: error: grid config {tmp_path / 'nothing.yaml'} does not exist\n"
    )
    done = grid(str(TINY), "--cell", "3", "--output", str(tmp_path / "out"))
    assert done.returncode == 2 and "cells 0 to 2" in done.stderr and not (tmp_path / "out").exists()


def test_the_grid_process_loads_no_training_libraries():
    """The stages run in subprocesses of their own; the grid process itself stays light."""
    code = (
        "import sys\n"
        "import xstilts.grid.commands, xstilts.grid.runner, xstilts.grid.report, xstilts.grid.k8s\n"
        "print(sorted(m for m in ('torch', 'transformers', 'optimum', 'onnxruntime') if m in sys.modules))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == "[]", done.stderr + done.stdout


def test_a_retrieval_target_is_evaluated_on_each_arms_encoder(tmp_path):
    def add_tatoeba(config):
        config["targets"]["tatoeba"] = {"target": {"task": "tatoeba"}, "evaluation": {"languages": ["deu"]}}
        config["extra_target_steps"] = {"arms": ["baseline"], "steps": [8]}

    cells = expand(load_grid(write(tmp_path, add_tatoeba)))
    retrieval = [c for c in cells if c.target == "tatoeba"]
    assert [c.arm for c in retrieval] == ["baseline", "mnli", "multilingual-then-mnli"]  # no longer target budget
    for cell in retrieval:
        assert not cell.trains_target and cell.run["target"] == {"task": "tatoeba", "layer": None}
    trained = [c for c in cells if c.target == "pawsx"]
    assert all(c.trains_target for c in trained) and any(c.target_steps == 8 for c in trained)
    from xstilts.grid.stages import embedding_args

    assert embedding_args(retrieval[0]) == ["--kind", "embedding"] and embedding_args(trained[0]) == []


def test_qa_targets_are_trained_and_their_bench_runs_the_qa_accuracy_pass(tmp_path, data_dir):
    """XQuAD and MLQA as targets (trained on English TyDiQA-GoldP): cells whose bench measures F1 through the API."""
    from xstilts.contracts.evaluation import load_evaluation_sample
    from xstilts.contracts.kinds import TaskKind
    from xstilts.grid.stages import bench_settings, embedding_args

    def add_qa(config):
        config["base"].update(max_length=128, doc_stride=32)
        for task in ("xquad", "mlqa"):
            config["targets"][task] = {
                "target": {"tasks": [{"task": task, "max_examples": 24}], "max_steps": 2},
                "evaluation": {"languages": ["en", "de"], "max_per_language": 6},
            }

    config = load_grid(write(tmp_path, add_qa))
    cells = expand(config)
    for task in ("xquad", "mlqa"):
        qa = [c for c in cells if c.target == task]
        assert [c.arm for c in qa] == ["baseline", "mnli", "multilingual-then-mnli"]
        for cell in qa:
            assert cell.trains_target and embedding_args(cell) == []  # exported as a span_qa checkpoint bundle
            assert cell.run["target"]["tasks"][0]["task"] == task and cell.run["doc_stride"] == 32
            flags = bench_settings(config, cell)
            assert flags["--scenarios"].split(",")[0] == "accuracy" and flags["--languages"] == "en,de"
        # the bench's task is the bundle's (the checkpoint's target), and run_accuracy answers a span QA sample
        # with the QA pass (xstilts.bench.qa: EM/F1 through the API), on the sample these flags draw
        sample = load_evaluation_sample(task, data_dir, ["en", "de"], int(flags["--per-language"]), 0)
        assert sample.kind is TaskKind.SPAN_QA and sample.size == 12


def test_tagging_targets_train_a_token_head_and_bench_its_accuracy(tmp_path):
    """PAN-X and UD-POS are trained targets like PAWS-X: exported as task bundles (no --kind), benched with the
    accuracy pass on the target's own evaluation sample (the bench dispatches on the bundle's kind)."""
    from xstilts.grid.stages import bench_settings, embedding_args

    def add_tagging(config):
        for task in ("panx", "udpos"):
            config["targets"][task] = {
                "target": {"tasks": [{"task": task, "max_examples": 20}], "max_steps": 2},
                "evaluation": {"languages": ["en", "de"], "max_per_language": 8},
            }

    config = load_grid(write(tmp_path, add_tagging))
    cells = expand(config)
    for task in ("panx", "udpos"):
        tagging = [c for c in cells if c.target == task]
        assert [c.arm for c in tagging] == ["baseline", "mnli", "multilingual-then-mnli"]
        for cell in tagging:
            assert cell.trains_target and cell.run["target"]["tasks"][0]["task"] == task
            assert embedding_args(cell) == []
        flags = bench_settings(config, tagging[0])
        assert flags["--scenarios"].split(",")[0] == "accuracy"
        assert (flags["--per-language"], flags["--languages"]) == ("8", "en,de")
