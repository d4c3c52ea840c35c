"""Bad configs fail with one clear message before any training starts."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.training.conftest import tiny_phase, tiny_run
from xstilts.errors import XstiltsError
from xstilts.training.config import load_config
from xstilts.training.data import task_weights


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda c: c.update(learning_rat=1), "learning_rat"),
        (lambda c: c["target"].update(epochs=1), "exactly one of max_steps or epochs"),
        (lambda c: c["target"]["tasks"][0].update(task="nope"), "unknown task 'nope'"),
        (lambda c: c["target"]["tasks"][0].update(languages=["xx"]), "no language xx"),
        (lambda c: c["evaluation"].update(languages=["en", "klingon"]), "no language klingon"),
        (lambda c: c["target"]["tasks"][0].update(split="train"), "no split 'train'"),
        (lambda c: c.update(model="no/such/folder"), "does not exist"),
    ],
)
def test_bad_config_is_rejected_with_a_clear_message(write_config, change, message):
    config = tiny_run(tiny_phase({"task": "pawsx"}))
    change(config)
    with pytest.raises(XstiltsError, match=message):
        path = write_config(config)
        config_obj = load_config(path)
        from xstilts.models import resolve_model

        resolve_model(config_obj.model)


def test_target_whose_labels_do_not_fit_the_evaluation_fails_before_training(write_config, tmp_path):
    config = tiny_run(tiny_phase({"task": "pawsx"}), evaluation={"task": "xnli", "max_per_language": 4})
    result = subprocess.run(
        [sys.executable, "-m", "xstilts.cli", "train", str(write_config(config)), "--output", str(tmp_path / "run")],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 2
    assert "does not fit the target head" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "run" / "phases").exists()


def test_a_leaking_config_fails_before_training(write_config, tmp_path):
    config = tiny_run(tiny_phase({"task": "pawsx"}), tiny_phase({"task": "pawsx", "split": "dev", "languages": ["de"]}))
    result = subprocess.run(
        [sys.executable, "-m", "xstilts.cli", "train", str(write_config(config)), "--output", str(tmp_path / "run")],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 2 and "translations of trained items" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_missing_checkpoint_for_eval_is_a_clear_error(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "xstilts.cli", "eval", str(tmp_path / "none"), "--task", "xnli"],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 2 and "not a model checkpoint" in result.stderr


def test_overrides_apply_before_validation(write_config):
    path = write_config(tiny_run(tiny_phase({"task": "pawsx"})))
    config = load_config(path, ["target.max_steps=7", "evaluation.languages=[en,fr]"])
    assert config.target.max_steps == 7 and config.evaluation.languages == ["en", "fr"]
    with pytest.raises(XstiltsError, match="key.sub=value"):
        load_config(path, ["target.max_steps"])


@pytest.mark.parametrize(("sampling", "expected"), [("proportional", 0.9), ("temperature", 0.75), ("capped", 0.5)])
def test_task_weights(sampling, expected):
    weights = task_weights({"a": 90, "b": 10}, sampling, temperature=2.0, cap=10)
    assert weights["a"] == pytest.approx(expected) and sum(weights.values()) == pytest.approx(1.0)
