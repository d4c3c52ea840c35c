"""Running cells: skip finished ones, run the stages of the others, write each cell's row, rebuild the results.

A cell is finished when its ``row.json`` exists (the done marker, written last and atomically). A cell folder
remembers the hash of the settings it was started with; running it again under other settings is refused
rather than mixing results.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from xstilts.atomic import write_json_atomic
from xstilts.contracts.hashing import json_digest
from xstilts.errors import XstiltsError
from xstilts.grid import stages
from xstilts.grid.cells import Cell
from xstilts.grid.config import GridConfig
from xstilts.grid.layout import CellLayout, GridLayout
from xstilts.grid.rows import build_row, rebuild


def cell_hash(config: GridConfig, cell: Cell) -> str:
    """Everything that decides a cell's results: its run config, the export settings and its bench flags."""
    return json_digest(
        {"run": cell.run, "export": config.export.model_dump(), "bench": stages.bench_settings(config, cell)}
    )


def check_state(cell: Cell, paths: CellLayout, digest: str) -> None:
    """Refuse a cell folder started under other settings; remember the settings of a new one."""
    for path in (paths.row, paths.state):
        if path.is_file():
            recorded = json.loads(path.read_text()).get("config_hash")
            if recorded != digest:
                raise XstiltsError(
                    f"cell {cell.id} in {paths.root} was run with other settings (hash {recorded}, now {digest}): "
                    "use another --output, or remove that cell folder to run it again"
                )
            return
    write_json_atomic(paths.state, {"id": cell.id, "config_hash": digest, "axes": cell.axes()})


def finished(config: GridConfig, cell: Cell, grid: GridLayout) -> bool:
    paths = grid.cell(cell.id)
    if not paths.row.is_file():
        return False
    check_state(cell, paths, cell_hash(config, cell))
    return True


def run_cell(config: GridConfig, cell: Cell, grid: GridLayout, data_dir: Path) -> None:
    """Train, export and bench one cell (each stage skipped when its output is there), then write its row."""
    paths = grid.cell(cell.id)
    digest = cell_hash(config, cell)
    check_state(cell, paths, digest)
    timings = json.loads(paths.timings.read_text()) if paths.timings.is_file() else {}
    steps = (
        ("train", lambda: stages.train(cell, grid, paths, data_dir)),
        ("export", lambda: stages.export(config, cell, grid, paths, data_dir)),
        ("bench", lambda: stages.bench(config, cell, grid, paths, data_dir)),
    )
    for name, stage in steps:
        print(f"  {cell.id}: {name}", flush=True)
        seconds = stage()
        if seconds is None:
            print(f"  {cell.id}: {name} already done", flush=True)
            continue
        timings[name] = round(seconds, 1)
        write_json_atomic(paths.timings, timings)
    wall = {name: timings.get(name) for name, _ in steps}
    row = build_row(cell, digest, paths, grid, stages.bench_settings(config, cell), wall)
    write_json_atomic(paths.row, row)


def run_grid(config: GridConfig, cells: list[Cell], grid: GridLayout, data_dir: Path) -> None:
    """Run every unfinished cell in order; a failed cell does not stop the others, but fails the run at the end."""
    failed: list[str] = []
    for index, cell in enumerate(cells):
        prefix = f"[{index + 1}/{len(cells)}] {cell.id}"
        if finished(config, cell, grid):
            print(f"{prefix}: done, skipped", flush=True)
            continue
        print(f"{prefix}: running", flush=True)
        started = time.monotonic()
        try:
            run_cell(config, cell, grid, data_dir)
        except XstiltsError as exc:
            print(f"{prefix}: FAILED {exc}", flush=True)
            failed.append(cell.id)
            continue
        finally:
            rebuild(grid)
        print(f"{prefix}: finished in {time.monotonic() - started:.0f} s", flush=True)
    rebuild(grid)
    if failed:
        raise XstiltsError(
            f"{len(failed)} of {len(cells)} cells failed ({', '.join(failed)}): see their logs in "
            f"{grid.root / 'cells'}; running the grid again retries them"
        )


def run_one(config: GridConfig, cell: Cell, grid: GridLayout, data_dir: Path) -> None:
    """Run one cell (a Kubernetes Indexed Job's pod); only its own files and the rebuilt results are written."""
    if finished(config, cell, grid):
        print(f"{cell.id}: done, skipped", flush=True)
    else:
        try:
            run_cell(config, cell, grid, data_dir)
        finally:
            rebuild(grid)
    print(f"{cell.id}: row {grid.cell(cell.id).row}", flush=True)
