"""Values over seeds, looked up by a cell's place on the grid's axes, from the grid's rows (``results.jsonl``).

Every value is the mean ± standard deviation over seeds with n shown; a cell of the grid without a row reads
"not run", a combination outside the grid reads "–". Nothing is interpolated or filled in. Rows run under
other settings than the config's (another hash) are left out and counted.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from xstilts.grid.cells import Cell, cell_id, find
from xstilts.grid.config import GridConfig
from xstilts.grid.runner import cell_hash

NOT_RUN = "not run"
NOT_IN_GRID = "–"
Metric = Callable[[dict[str, Any]], float | None]


def non_english(row: dict[str, Any]) -> float | None:
    return row["training"]["average_non_english"]


def api_non_english(row: dict[str, Any], variant: str) -> float | None:
    """Through the API; None for a variant the bench did not measure (it failed the parity gate at export)."""
    return row["api"].get(variant, {}).get("average_non_english")


def english(row: dict[str, Any]) -> float | None:
    return row["training"]["languages"].get("en")


@dataclass
class Stat:
    """Values over seeds (accuracy as a fraction, or anything else with ``scale`` 1)."""

    values: list[float]
    scale: float = 100.0

    @property
    def n(self) -> int:
        return len(self.values)

    @property
    def mean(self) -> float:
        return self.scale * statistics.fmean(self.values)

    @property
    def std(self) -> float | None:
        return self.scale * statistics.stdev(self.values) if self.n > 1 else None

    def text(self, signed: bool = False, digits: int = 1) -> str:
        if not self.n:
            return NOT_RUN
        sign = "+" if signed else ""
        spread = f" ± {self.std:.{digits}f}" if self.std is not None else ""
        return f"{self.mean:{sign}.{digits}f}{spread} (n={self.n})"


def cell_text(stat: Stat | None, signed: bool = False, digits: int = 1) -> str:
    return NOT_IN_GRID if stat is None else stat.text(signed, digits)


class Results:
    """The rows of the grid's cells, looked up by their place on the axes."""

    def __init__(self, config: GridConfig, cells: list[Cell], rows: list[dict[str, Any]]) -> None:
        self.config, self.cells = config, cells
        current = {c.id: cell_hash(config, c) for c in cells}
        self.rows = {r["id"]: r for r in rows if current.get(r["id"]) == r["config_hash"]}
        self.stale = sum(1 for r in rows if r["id"] in current and current[r["id"]] != r["config_hash"])

    def row(
        self, model: str, arm: str, target: str, seed: int, steps: int | None = None, t_steps: int | None = None
    ) -> tuple[Cell | None, dict[str, Any] | None]:
        """The cell at this place of the axes (None: not in the grid) and its row (None: not run)."""
        cell = find(self.cells, cell_id(model, arm, steps, target, t_steps, seed))
        return cell, self.rows.get(cell.id) if cell else None

    def stat(self, metric: Metric, model: str, arm: str, target: str, **axes: Any) -> Stat | None:
        """The metric over seeds; None when the combination is not in the grid at all."""
        found = [self.row(model, arm, target, seed, **axes) for seed in self.config.seeds]
        if all(cell is None for cell, _ in found):
            return None
        values = [metric(row) for _, row in found if row is not None]
        return Stat([v for v in values if v is not None])

    def gain(
        self, metric: Metric, model: str, arm: str, reference: str, target: str, reference_steps: int | None = None
    ) -> Stat | None:
        """``arm`` minus ``reference`` (at ``reference_steps`` target steps if given), paired by seed (the seeds
        where both have a value)."""
        pairs = [
            (self.row(model, arm, target, s), self.row(model, reference, target, s, t_steps=reference_steps))
            for s in self.config.seeds
        ]
        if not any(a[0] and b[0] for a, b in pairs):
            return None
        values = [(metric(a[1]), metric(b[1])) for a, b in pairs if a[1] and b[1]]
        return Stat([x - y for x, y in values if x is not None and y is not None])

    def serving(self, model: str, arm: str, target: str, variant: str, key: str, **axes: Any) -> Stat | None:
        """A serving figure of the load-measured seeds (scale 1); None when the grid does not measure it there."""
        found = [self.row(model, arm, target, s, **axes) for s in self.config.load_seeds]
        if not any(cell is not None and cell.load for cell, _ in found):
            return None
        values = [lookup(row["serving"].get(variant, {}), key) for _, row in found if row is not None]
        return Stat([v for v in values if v is not None], scale=1.0)


def lookup(data: dict[str, Any], key: str) -> float | None:
    """``closed_peak_seq_per_s``, or ``open.p99_ms``: the first open-loop scenario's figure."""
    if key.startswith("open."):
        opened = [v for k, v in data.items() if k.startswith("open-")]
        return opened[0][key.removeprefix("open.")] if opened else None
    return data.get(key)


def table(headers: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines) + "\n"
