"""Session fixtures shared by every stage's tests: the real data folder, tiny checkpoints, a tiny model repository."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers import make_tiny_checkpoint
from xstilts.errors import XstiltsError
from xstilts.paths import resolve_data_dir

# A random tiny model is at chance, so these bundles are for plumbing; the gate itself is tested in tests/export.
PLUMBING_BUDGET = 100.0


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The real data folder ($XSTILTS_DATA_DIR, else ../shared/data), or a skip that says how to provide it."""
    try:
        return resolve_data_dir(None)
    except XstiltsError as exc:
        pytest.skip(f"real data not found ({exc})")


@pytest.fixture(scope="session")
def tiny_checkpoints(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """``{"xnli": pair-classification checkpoint, "xcopa": multiple-choice checkpoint}``, tiny and random."""
    root = tmp_path_factory.mktemp("checkpoints")
    return {task: make_tiny_checkpoint(root / task, task) for task in ("xnli", "xcopa")}


@pytest.fixture(scope="session")
def tiny_repository(
    tmp_path_factory: pytest.TempPathFactory, tiny_checkpoints: dict[str, Path], data_dir: Path
) -> Path:
    """A model repository with bundles ``tiny-xnli`` (fp32, int8) and ``tiny-xcopa`` (fp32)."""
    from xstilts.export import export_checkpoint

    repository = tmp_path_factory.mktemp("repository")
    for name, task, variants in (("tiny-xnli", "xnli", ["fp32", "int8"]), ("tiny-xcopa", "xcopa", ["fp32"])):
        export_checkpoint(
            tiny_checkpoints[task],
            repository,
            name,
            variants,
            data_dir=data_dir,
            parity_examples=8,
            max_accuracy_drop=PLUMBING_BUDGET,
        )
    return repository
