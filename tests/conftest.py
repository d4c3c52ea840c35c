"""Session fixtures shared by every stage's tests: the real data folder, tiny checkpoints, a tiny model repository."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers import (
    TAGGING_MAX_LENGTH,
    export_tiny_qa,
    export_tiny_tagger,
    make_sensitive_checkpoint,
    make_sensitive_qa_checkpoint,
    make_tiny_checkpoint,
    unavailable,
)
from xstilts.errors import XstiltsError
from xstilts.paths import resolve_data_dir

# A random tiny model is at chance, so these bundles are for plumbing; the gate itself is tested in tests/export.
PLUMBING_BUDGET = 100.0


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The real data folder ($XSTILTS_DATA_DIR, else ../shared/data); missing, a skip (a failure under CI)."""
    try:
        return resolve_data_dir(None)
    except XstiltsError as exc:
        unavailable(f"real data not found ({exc})")


@pytest.fixture(scope="session")
def tiny_checkpoints(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """``{"xnli": pair-classification checkpoint, "xcopa": multiple-choice checkpoint}``, tiny and random."""
    root = tmp_path_factory.mktemp("checkpoints")
    return {task: make_tiny_checkpoint(root / task, task) for task in ("xnli", "xcopa")}


@pytest.fixture(scope="session")
def sensitive_checkpoints(tmp_path_factory: pytest.TempPathFactory, data_dir: Path) -> dict[str, Path]:
    """``{"xnli": ..., "xcopa": ...}`` tiny checkpoints whose answers depend on every part of their input
    (see :func:`tests.helpers.make_sensitive_checkpoint`): the ones every end-to-end answer check uses."""
    root = tmp_path_factory.mktemp("sensitive")
    return {task: make_sensitive_checkpoint(root / task, task, data_dir) for task in ("xnli", "xcopa")}


@pytest.fixture(scope="session")
def tiny_repository(
    tmp_path_factory: pytest.TempPathFactory, sensitive_checkpoints: dict[str, Path], data_dir: Path
) -> Path:
    """A model repository with bundles ``tiny-xnli`` (fp32, int8) and ``tiny-xcopa`` (fp32), exported from the
    sensitive tiny checkpoints, so that a server that loses or mixes up any part of an input answers otherwise."""
    from xstilts.export import export_checkpoint

    repository = tmp_path_factory.mktemp("repository")
    for name, task, variants in (("tiny-xnli", "xnli", ["fp32", "int8"]), ("tiny-xcopa", "xcopa", ["fp32"])):
        export_checkpoint(
            sensitive_checkpoints[task],
            repository,
            name,
            variants,
            data_dir=data_dir,
            parity_examples=8,
            max_accuracy_drop=PLUMBING_BUDGET,
        )
    return repository


@pytest.fixture(scope="session")
def qa_checkpoint(tmp_path_factory: pytest.TempPathFactory, data_dir: Path) -> Path:
    """The sensitive tiny XQuAD checkpoint (see :func:`tests.helpers.make_sensitive_qa_checkpoint`)."""
    return make_sensitive_qa_checkpoint(tmp_path_factory.mktemp("sensitive-qa") / "xquad", data_dir)


@pytest.fixture(scope="session")
def qa_repository(tmp_path_factory: pytest.TempPathFactory, qa_checkpoint: Path, data_dir: Path) -> Path:
    """A model repository with ``tiny-xquad`` (fp32, int8), exported from the sensitive tiny QA checkpoint."""
    repository = tmp_path_factory.mktemp("qa-repository")
    export_tiny_qa(repository, qa_checkpoint, data_dir, variants=("fp32", "int8"))
    return repository


@pytest.fixture(scope="session")
def tagging_checkpoints(tmp_path_factory: pytest.TempPathFactory, data_dir: Path) -> dict[str, Path]:
    """``{"panx": ..., "udpos": ...}`` sensitive tiny tagging checkpoints with windows of ``TAGGING_MAX_LENGTH``."""
    root = tmp_path_factory.mktemp("taggers")
    return {
        task: make_sensitive_checkpoint(root / task, task, data_dir, max_length=TAGGING_MAX_LENGTH)
        for task in ("panx", "udpos")
    }


@pytest.fixture(scope="session")
def tagging_repository(
    tmp_path_factory: pytest.TempPathFactory, tagging_checkpoints: dict[str, Path], data_dir: Path
) -> Path:
    """A model repository with ``tiny-panx`` (fp32, int8) and ``tiny-udpos`` (fp32), exported from the sensitive
    tagging checkpoints."""
    repository = tmp_path_factory.mktemp("tagging-repository")
    for name, task, variants in (("tiny-panx", "panx", ["fp32", "int8"]), ("tiny-udpos", "udpos", ["fp32"])):
        export_tiny_tagger(
            repository, tagging_checkpoints[task], name, data_dir, variants, max_accuracy_drop=PLUMBING_BUDGET
        )
    return repository
