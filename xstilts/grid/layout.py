"""Where a grid keeps its files: one folder per cell, a shared phase store and model repository, the results."""

from __future__ import annotations

import contextlib
import fcntl
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class GridLayout:
    """``<output>/``: ``cells/<id>/``, ``phases/`` (shared by every cell), ``repository/``, ``results.jsonl|csv``."""

    root: Path

    @property
    def phases(self) -> Path:
        return self.root / "phases"

    @property
    def repository(self) -> Path:
        return self.root / "repository"

    @property
    def results(self) -> Path:
        return self.root / "results.jsonl"

    @property
    def results_csv(self) -> Path:
        return self.root / "results.csv"

    def lock(self, name: str) -> Path:
        return self.root / "locks" / f"{name}.lock"

    def cell(self, cell_id: str) -> CellLayout:
        return CellLayout(self.root / "cells" / cell_id)

    def row_files(self) -> list[Path]:
        return sorted((self.root / "cells").glob("*/row.json"))


@dataclass(frozen=True)
class CellLayout:
    """``cells/<id>/``: the run config, the training run, the bench output, stage logs and timings, the row."""

    root: Path

    @property
    def state(self) -> Path:
        return self.root / "cell.json"

    @property
    def config(self) -> Path:
        return self.root / "config.yaml"

    @property
    def run(self) -> Path:
        return self.root / "run"

    @property
    def bench(self) -> Path:
        return self.root / "bench"

    @property
    def timings(self) -> Path:
        return self.root / "timings.json"

    @property
    def row(self) -> Path:
        return self.root / "row.json"

    def log(self, stage: str) -> Path:
        return self.root / "logs" / f"{stage}.log"


@contextlib.contextmanager
def exclusive(path: Path, waiting: str | None = None) -> Iterator[None]:
    """Hold an exclusive lock on ``path`` (concurrent cells on one shared volume); say so if it has to wait."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if waiting:
                print(waiting, flush=True)
            fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
