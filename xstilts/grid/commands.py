"""``xstilts grid CONFIG``: run a research grid cell by cell, list it, emit it as a Kubernetes Job, or report it."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from xstilts.errors import XstiltsError
from xstilts.tasks.commands import add_data_dir

if TYPE_CHECKING:
    from xstilts.grid.cells import Cell
    from xstilts.grid.layout import GridLayout

RUNS_DIR = Path("runs")


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "grid",
        help="a research grid: train, export and bench every cell (models x arms x targets x seeds), then report",
        description="Expand a grid config into cells (one training run each); for every unfinished cell run "
        "'xstilts train', 'xstilts export' and 'xstilts bench', then write its row to OUTPUT/results.jsonl and "
        "results.csv. Finished cells are skipped, so a killed grid continues where it stopped.",
    )
    parser.add_argument("config", type=Path, help="YAML grid config (see configs/grid/)")
    parser.add_argument("--output", type=Path, help="grid folder (default: runs/grid-<config name>)")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--cell", type=int, metavar="I", help="run only cell I (a Kubernetes Indexed Job's index)")
    mode.add_argument("--list", action="store_true", help="print the cells with their index, id and state")
    mode.add_argument("--emit-k8s", type=Path, metavar="DIR", help="write the grid as a Kubernetes Indexed Job")
    mode.add_argument("--report", type=Path, metavar="DIR", help="write tables and plots per research question")
    add_data_dir(parser)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from xstilts.grid.cells import expand
    from xstilts.grid.config import load_grid
    from xstilts.grid.layout import GridLayout

    config = load_grid(args.config)
    cells = expand(config)
    grid = GridLayout(args.output or RUNS_DIR / f"grid-{args.config.stem}")
    if args.list:
        print_cells(cells, grid)
    elif args.emit_k8s:
        from xstilts.grid.k8s import emit

        emit(config, args.config, cells, args.emit_k8s)
        print(f"{len(cells)} cells as an Indexed Job in {args.emit_k8s}: kubectl apply -k {args.emit_k8s}")
    elif args.report:
        from xstilts.grid.report import write_report
        from xstilts.grid.rows import rebuild

        rebuild(grid)
        print(f"report: {write_report(config, cells, grid, args.report, args.config.name)}")
    else:
        from xstilts.grid import runner
        from xstilts.paths import resolve_data_dir

        if args.cell is not None and not 0 <= args.cell < len(cells):
            raise XstiltsError(f"--cell {args.cell}: the grid has cells 0 to {len(cells) - 1}")
        data_dir = resolve_data_dir(args.data_dir)
        if args.cell is None:
            runner.run_grid(config, cells, grid, data_dir)
        else:
            runner.run_one(config, cells[args.cell], grid, data_dir)
        print(f"results: {grid.results} and {grid.results_csv}")
    return 0


def print_cells(cells: list[Cell], grid: GridLayout) -> None:
    from xstilts.output import print_table

    rows = []
    for index, cell in enumerate(cells):
        state = "done" if grid.cell(cell.id).row.is_file() else "-"
        notes = (["load scenarios"] if cell.load else []) + (
            [f"also {', '.join(cell.aliases)}"] if cell.aliases else []
        )
        rows.append((index, cell.id, state, "; ".join(notes)))
    print_table(("index", "cell", "state", "notes"), rows)
    print(f"{len(cells)} cells")
