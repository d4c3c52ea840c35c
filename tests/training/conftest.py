"""Fixtures for the training tests: tiny-model configs written to a temporary folder."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml


@pytest.fixture
def write_config(tmp_path: Path):
    """Write a run config (a dict) as YAML and return its path."""

    def write(config: dict, name: str = "run.yaml") -> Path:
        path = tmp_path / name
        path.write_text(yaml.safe_dump(config))
        return path

    return write


def tiny_phase(*tasks: dict, steps: int = 3, batch_size: int = 4, **extra) -> dict:
    return {"tasks": list(tasks), "max_steps": steps, "batch_size": batch_size, **extra}


def tiny_run(target: dict, *intermediate: dict, evaluation: dict | None = None, **extra) -> dict:
    return {
        "model": "tiny-xlmr",
        "max_length": 48,
        "save_steps": 50,
        "intermediate": list(intermediate),
        "target": target,
        "evaluation": evaluation or {"max_per_language": 8, "languages": ["en", "de"]},
        **extra,
    }
