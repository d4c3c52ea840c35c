"""The grid report: ``report.md`` with a section and its plots per research question (:mod:`xstilts.grid.questions`,
rendered by :mod:`xstilts.grid.sections`), from ``results.jsonl``.

Every value is the mean ± standard deviation over seeds with n shown; a cell of the grid without a row reads
"not run", a combination outside the grid reads "–". Nothing is interpolated or filled in. Rows run under
other settings than the config's (another hash) are left out and counted.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from xstilts.atomic import write_text_atomic
from xstilts.grid.cells import Cell
from xstilts.grid.config import GridConfig
from xstilts.grid.layout import GridLayout
from xstilts.grid.questions import QUESTIONS, Question
from xstilts.grid.rows import read_results
from xstilts.grid.sections import render
from xstilts.grid.stats import NOT_IN_GRID, NOT_RUN, Results


def header(results: Results, title: str) -> str:
    c = results.config
    machines = {
        f"{r['lineage']['machine']['platform']}, {r['lineage']['machine']['cpus']} CPUs" for r in results.rows.values()
    }
    evaluation = ", ".join(
        f"{t}: {r.evaluation.get('max_per_language') or 'all'} items per language" for t, r in c.targets.items()
    )
    lines = [
        f"# Grid report: {title}\n\n",
        f"{len(results.rows)} of {len(results.cells)} cells have results; models {', '.join(c.models)}; "
        f"arms {', '.join(c.arms)}; targets {', '.join(c.targets)}; seeds {', '.join(map(str, c.seeds))}.\n\n",
        f'Values: mean ± standard deviation over seeds, n = seeds with results; "{NOT_RUN}": in the grid '
        f'but no result yet; "{NOT_IN_GRID}": not part of the grid (serving figures: not measured by design). '
        f"Zero-shot evaluation sample: {evaluation}.\n",
    ]
    if machines:
        lines.append(f"\nTrained on: {'; '.join(sorted(machines))}.\n")
    if results.stale:
        lines.append(f"\n{results.stale} rows were run under other settings than this config and are left out.\n")
    return "".join(lines)


def write_report(
    config: GridConfig,
    cells: list[Cell],
    grid: GridLayout,
    folder: Path,
    title: str,
    questions: Sequence[Question] = QUESTIONS,
) -> Path:
    """Write ``report.md`` and its plots into ``folder`` and return the report's path."""
    folder.mkdir(parents=True, exist_ok=True)
    results = Results(config, cells, read_results(grid.results))
    sections = [header(results, title), *(render(results, question, folder) for question in questions)]
    path = folder / "report.md"
    write_text_atomic(path, "".join(sections))
    # the report's own data beside it: the rows it was read from, with their full lineage
    for source in (grid.results, grid.results_csv):
        if source.is_file():
            write_text_atomic(folder / source.name, source.read_text(encoding="utf-8"))
    return path
