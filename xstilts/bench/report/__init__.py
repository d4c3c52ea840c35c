"""The bench report, written next to ``results.json``: CSV tables (:mod:`.tables`), plots (:mod:`.plots`) and
``report.md`` (:mod:`.markdown`), all read from the typed results (:mod:`xstilts.contracts.results`)."""

from __future__ import annotations

from pathlib import Path

from xstilts.atomic import write_text_atomic
from xstilts.bench.report.markdown import markdown
from xstilts.bench.report.plots import FILES, plot_accuracy, plot_latency_throughput, plot_pareto
from xstilts.bench.report.tables import ACCURACY_COLUMNS, SCENARIO_COLUMNS, accuracy_rows, scenario_rows, to_csv
from xstilts.contracts.results import BenchResults


def write_report(results: BenchResults, folder: Path) -> dict[str, Path]:
    """Write the CSV files, the plots and ``report.md`` into ``folder``; returns what was written."""
    folder.mkdir(parents=True, exist_ok=True)
    write_text_atomic(folder / "scenarios.csv", to_csv(scenario_rows(results), SCENARIO_COLUMNS))
    write_text_atomic(folder / "accuracy.csv", to_csv(accuracy_rows(results), ACCURACY_COLUMNS))
    plots = {
        "latency": plot_latency_throughput(results, folder / FILES["latency"]),
        "accuracy": plot_accuracy(results, folder / FILES["accuracy"]),
        "pareto": plot_pareto(results, folder / FILES["pareto"]),
    }
    write_text_atomic(folder / "report.md", markdown(results, plots))
    written = {name: folder / f"{name}.csv" for name in ("scenarios", "accuracy")}
    written["report"] = folder / "report.md"
    written.update({f"{k}_plot": folder / FILES[k] for k, made in plots.items() if made})
    return written
