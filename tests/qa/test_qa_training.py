"""A few steps of QA training on the tiny model, then its zero-shot XQuAD evaluation: numbers shaped right."""

from __future__ import annotations

from pathlib import Path

from tests.training.conftest import tiny_phase, tiny_run
from xstilts.training.config import load_config
from xstilts.training.pipeline import run


def test_tiny_qa_run_evaluates_f1_per_language(write_config, data_dir: Path, tmp_path: Path):
    target = tiny_phase({"task": "xquad", "max_examples": 24}, steps=2, batch_size=4)
    path = write_config(tiny_run(target, evaluation={"max_per_language": 6, "languages": ["en", "zh"]},
                                 max_length=128, doc_stride=32))  # fmt: skip
    results = run(load_config(path), tmp_path / "run", data_dir)
    assert results["metric"] == "f1" and set(results["languages"]) == {"en", "zh"}
    for figures in results["languages"].values():
        assert figures["examples"] == 6 and 0 <= figures["exact_match"] <= figures["f1"] <= 1
    assert results["average"] == sum(v["f1"] for v in results["languages"].values()) / 2
