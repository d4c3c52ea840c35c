"""A checkpoint worth gating: the tiny model trained to classify its own parity sample right."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.export.support import CPU_VARIANTS, GATE_EXAMPLES
from tests.helpers import make_tiny_checkpoint, memorize
from xstilts.contracts.checkpoint import CheckpointInfo
from xstilts.contracts.evaluation import load_evaluation_sample


@pytest.fixture(scope="session")
def memorized_checkpoint(tmp_path_factory: pytest.TempPathFactory, data_dir: Path) -> Path:
    """An English XNLI checkpoint that gets its whole parity sample right (accuracy 1.0 to lose)."""
    folder = make_tiny_checkpoint(tmp_path_factory.mktemp("memorized") / "xnli-en", "xnli", languages=["en"])
    info = CheckpointInfo.load(folder)
    sample = load_evaluation_sample(info.task, data_dir, info.languages, GATE_EXAMPLES, seed=0)
    assert memorize(folder, sample.examples["en"]) == 1.0
    return folder


@pytest.fixture(scope="session")
def variants_repository(tmp_path_factory: pytest.TempPathFactory, memorized_checkpoint: Path, data_dir: Path) -> Path:
    """Every variant this machine can build, of the memorized checkpoint, through the default 1-point gate."""
    from xstilts.export import export_checkpoint

    repository = tmp_path_factory.mktemp("variants")
    export_checkpoint(
        memorized_checkpoint,
        repository,
        "memorized",
        CPU_VARIANTS,
        data_dir=data_dir,
        parity_examples=GATE_EXAMPLES,
        calibration_examples=16,
    )
    return repository
