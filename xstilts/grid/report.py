"""The grid report: a Markdown table and a PNG plot per research question, from ``results.jsonl``.

Every value is the mean ± standard deviation over seeds with n shown; a cell of the grid without a row reads
"not run", a combination outside the grid reads "–". Nothing is interpolated or filled in. Rows run under
other settings than the config's (another hash) are left out and counted.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from xstilts.atomic import write_text_atomic
from xstilts.grid.cells import Cell, cell_id, find
from xstilts.grid.config import GridConfig
from xstilts.grid.layout import GridLayout
from xstilts.grid.rows import read_results
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


# ---------------------------------------------------------------------------------------------------- plots


def _figure(panels: int) -> tuple[Any, list[Any]]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, max(panels, 1), figsize=(4.2 * max(panels, 1), 3.6), squeeze=False)
    return figure, list(axes[0])


def _save(figure: Any, path: Path) -> None:
    import matplotlib.pyplot as plt

    figure.tight_layout()
    tmp = path.with_name(f".{path.name}.tmp.png")
    figure.savefig(tmp, dpi=110)
    plt.close(figure)
    tmp.replace(path)


def line_plot(
    path: Path,
    panels: dict[str, dict[str, list[tuple[float, Stat | None]]]],
    xlabel: str,
    ylabel: str,
    xticks: list[str] | None = None,
) -> None:
    """One panel per title, one line per series, error bars of one std; points without values are left out."""
    figure, axes = _figure(len(panels))
    for ax, (title, series) in zip(axes, panels.items(), strict=False):
        for label, points in series.items():
            shown = [(x, s) for x, s in points if s is not None and s.n]
            if shown:
                ax.errorbar(
                    [x for x, _ in shown],
                    [s.mean for _, s in shown],
                    yerr=[s.std or 0 for _, s in shown],
                    marker="o",
                    capsize=3,
                    label=label,
                )
        ax.set_title(title, fontsize=9)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        if xticks:
            ax.set_xticks(range(len(xticks)), xticks, fontsize=8)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7)
    _save(figure, path)


def bar_plot(path: Path, panels: dict[str, dict[str, list[Stat | None]]], groups: list[str], ylabel: str) -> None:
    """One panel per title; per group (model) one bar per series, error bars of one std."""
    figure, axes = _figure(len(panels))
    for ax, (title, series) in zip(axes, panels.items(), strict=False):
        width = 0.8 / max(len(series), 1)
        for i, (label, stats) in enumerate(series.items()):
            shown = [(g, s) for g, s in enumerate(stats) if s is not None and s.n]
            ax.bar(
                [g + i * width for g, _ in shown],
                [s.mean for _, s in shown],
                width,
                yerr=[s.std or 0 for _, s in shown],
                capsize=3,
                label=label,
            )
        ax.set_xticks([g + 0.4 - width / 2 for g in range(len(groups))], groups, fontsize=8)
        ax.axhline(0, color="grey", linewidth=0.6)
        ax.set_title(title, fontsize=9)
        ax.set_ylabel(ylabel)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7)
    _save(figure, path)


# ---------------------------------------------------------------------------------------------------- questions


def q1_size(results: Results, folder: Path) -> str:
    c = results.config
    out = [
        "\n## 1. Model size vs zero-shot transfer, per intermediate arm\n",
        "Average non-English accuracy (%) of the training run's zero-shot evaluation.\n",
    ]
    panels = {}
    for target in c.targets:
        stats = {arm: [results.stat(non_english, m, arm, target) for m in c.models] for arm in c.arms}
        out += [f"\n**{target}**\n\n", table(["arm", *c.models], [[a, *map(cell_text, s)] for a, s in stats.items()])]
        panels[target] = {arm: list(enumerate(s)) for arm, s in stats.items()}
    line_plot(folder / "q1_size_transfer.png", panels, "model", "avg non-English accuracy (%)", list(c.models))
    out.append("\n![size vs transfer](q1_size_transfer.png)\n")
    if c.bench.load_arm:
        out.append(serving_section(results))
    return "".join(out)


SERVING = (
    ("closed_peak_seq_per_s", "peak seq/s (closed loop)", 0),
    ("open.p50_ms", "p50 ms (open loop)", 1),
    ("open.p99_ms", "p99 ms (open loop)", 1),
)


def serving_section(results: Results) -> str:
    c = results.config
    arm = c.bench.load_arm or ""
    out = [
        f"\nServing cost per size and variant (arm {arm}, seeds {c.load_seeds}; first open-loop rate "
        f"{c.bench.rates[0] if c.bench.rates else '-'}), and average non-English accuracy through the API:\n"
    ]
    for target in c.targets:
        rows = []
        for model in c.models:
            for variant in c.export.variants:
                api = results.stat(lambda r, v=variant: api_non_english(r, v), model, arm, target)
                figures = [cell_text(results.serving(model, arm, target, variant, k), digits=d) for k, _, d in SERVING]
                rows.append([model, variant, cell_text(api), *figures])
        headers = ["model", "variant", "API avg non-en %", *(h for _, h, _ in SERVING)]
        out += [f"\n**{target}**\n\n", table(headers, rows)]
    return "".join(out)


def q2_duration(results: Results, folder: Path) -> str:
    c = results.config
    out = ["\n## 2. Intermediate training duration vs accuracy and serving cost\n"]
    axis = c.intermediate_steps
    if axis is None:
        return out[0] + "\nNot in this grid (no `intermediate_steps`).\n"
    out.append("\nSteps of the arm's last intermediate phase (0: without it); average non-English accuracy (%).\n")
    accuracy_panels, serving_panels = {}, {}
    for arm in axis.arms:
        for target in c.targets:
            stats = {m: [results.stat(non_english, m, arm, target, steps=s) for s in axis.steps] for m in c.models}
            rows = [[str(s), *(cell_text(stats[m][i]) for m in c.models)] for i, s in enumerate(axis.steps)]
            out += [f"\n**{arm} → {target}**\n\n", table(["steps", *c.models], rows)]
            accuracy_panels[f"{arm} → {target}"] = {m: list(zip(axis.steps, v, strict=True)) for m, v in stats.items()}
            if arm == c.bench.load_arm:
                serving = {
                    f"{m} {v}": [
                        results.serving(m, arm, target, v, "closed_peak_seq_per_s", steps=s) for s in axis.steps
                    ]
                    for m in c.models
                    for v in c.export.variants
                }
                rows = [
                    [str(s), *(cell_text(vals[i], digits=0) for vals in serving.values())]
                    for i, s in enumerate(axis.steps)
                ]
                out += [f"\nPeak closed-loop sequences/s, {arm} → {target}:\n\n", table(["steps", *serving], rows)]
                serving_panels[f"{arm} → {target}"] = {
                    k: list(zip(axis.steps, v, strict=True)) for k, v in serving.items()
                }
    line_plot(
        folder / "q2_duration_accuracy.png", accuracy_panels, "intermediate steps", "avg non-English accuracy (%)"
    )
    out.append("\n![duration vs accuracy](q2_duration_accuracy.png)\n")
    if serving_panels:
        line_plot(folder / "q2_duration_serving.png", serving_panels, "intermediate steps", "peak sequences/s")
        out.append("\n![duration vs serving](q2_duration_serving.png)\n")
    return "".join(out)


def arms_missing(**arms: str | None) -> str | None:
    """A note when the report settings do not name the arms a question compares."""
    missing = [name for name, arm in arms.items() if arm is None]
    return f"\nNot in this grid (set report.{' and report.'.join(missing)}).\n" if missing else None


def q3_multilingual(results: Results, folder: Path) -> str:
    c, r = results.config, results.config.report
    out = ["\n## 3. Multilingual-then-English vs English-only intermediate training\n"]
    missing = arms_missing(english=r.english, multilingual=r.multilingual)
    if missing:
        return out[0] + missing
    out.append(f"\nArms {r.multilingual} and {r.english}: English accuracy and average non-English accuracy (%).\n")
    panels = {}
    for target in c.targets:
        rows, series = [], {f"{r.english} (non-en)": [], f"{r.multilingual} (non-en)": []}
        for model in c.models:
            cells = [
                results.stat(metric, model, arm, target)
                for arm in (r.english, r.multilingual)
                for metric in (english, non_english)
            ]
            rows.append([model, *map(cell_text, cells)])
            series[f"{r.english} (non-en)"].append(cells[1])
            series[f"{r.multilingual} (non-en)"].append(cells[3])
        headers = [
            "model",
            f"{r.english} en",
            f"{r.english} non-en",
            f"{r.multilingual} en",
            f"{r.multilingual} non-en",
        ]
        out += [f"\n**{target}**\n\n", table(headers, rows)]
        panels[target] = series
    bar_plot(folder / "q3_multilingual.png", panels, list(c.models), "avg non-English accuracy (%)")
    return "".join(out) + "\n![multilingual vs English-only](q3_multilingual.png)\n"


def gain_section(results: Results, folder: Path, title: str, arm: str, reference: str, name: str) -> str:
    c = results.config
    out = [title, f"\n{arm} minus {reference}, average non-English accuracy points, paired by seed.\n\n"]
    rows, panels = [], {}
    for target in c.targets:
        stats = [results.gain(non_english, m, arm, reference, target) for m in c.models]
        rows.append([target, *(cell_text(s, signed=True) for s in stats)])
        panels[target] = {f"{arm} − {reference}": stats}
    out.append(table(["target", *c.models], rows))
    bar_plot(folder / f"{name}.png", panels, list(c.models), "gain (accuracy points)")
    return "".join(out) + f"\n![{name}]({name}.png)\n"


def q4_gain_multilingual(results: Results, folder: Path) -> str:
    r = results.config.report
    title = "\n## 4. Gain of English-only over multilingual-then-English intermediate training\n"
    missing = arms_missing(english=r.english, multilingual=r.multilingual)
    if missing:
        return title + missing
    return gain_section(
        results, folder, title, r.english or "", r.multilingual or "", "q4_gain_english_vs_multilingual"
    )


def q5_gain_baseline(results: Results, folder: Path) -> str:
    c, r = results.config, results.config.report
    title = "\n## 5. Gain of English intermediate training over the baseline\n"
    missing = arms_missing(baseline=r.baseline, english=r.english)
    if missing:
        return title + missing
    baseline = r.baseline or ""
    out = [gain_section(results, folder, title, r.english or "", baseline, "q5_gain_english_vs_baseline")]
    arms = [arm for arm, phases in c.arms.items() if phases]
    longer = c.extra_target_steps.steps if c.extra_target_steps and baseline in c.extra_target_steps.arms else []
    out.append(
        f"\nEvery intermediate arm minus {baseline}, average non-English accuracy points, paired by seed: against "
        f"{baseline} with the same target steps, and against {baseline} with more target steps (so that a gain "
        "cannot come from under-training the baseline alone).\n\n"
    )
    references: list[tuple[str, int | None]] = [("same target steps", None)]
    references += [(f"{t} target steps", t) for t in longer]
    rows, panels = [], {}
    for target in c.targets:
        series: dict[str, list[Stat | None]] = {}
        for arm in arms:
            for label, steps in references:
                stats = [results.gain(non_english, m, arm, baseline, target, steps) for m in c.models]
                rows.append([target, arm, f"{baseline}, {label}", *(cell_text(s, signed=True) for s in stats)])
                if any(stat is not None and stat.n for stat in stats):  # a plot has no legend entry without bars
                    series[f"{arm} − {baseline}" + (f"@{steps}" if steps else "")] = stats
        panels[target] = series
    out.append(table(["target", "arm", "against", *c.models], rows))
    bar_plot(folder / "q5_gain_every_arm.png", panels, list(c.models), "gain (accuracy points)")
    out.append("\n![q5_gain_every_arm](q5_gain_every_arm.png)\n")
    if longer:
        out.append("\nThe baseline's learning curve, avg non-English accuracy (%):\n")
        for target in c.targets:
            written = c.targets[target].target.get("max_steps", "as written")
            rows = [
                [
                    str(t) if t else f"{written} (as written)",
                    *(cell_text(results.stat(non_english, m, baseline, target, t_steps=t)) for m in c.models),
                ]
                for t in [None, *longer]
            ]
            out.append(f"\n**{baseline} → {target}**, by target steps\n\n" + table(["target steps", *c.models], rows))
    return "".join(out)


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


def write_report(config: GridConfig, cells: list[Cell], grid: GridLayout, folder: Path, title: str) -> Path:
    """Write ``report.md`` and its plots into ``folder`` and return the report's path."""
    folder.mkdir(parents=True, exist_ok=True)
    results = Results(config, cells, read_results(grid.results))
    sections = [
        header(results, title),
        q1_size(results, folder),
        q2_duration(results, folder),
        q3_multilingual(results, folder),
        q4_gain_multilingual(results, folder),
        q5_gain_baseline(results, folder),
    ]
    path = folder / "report.md"
    write_text_atomic(path, "".join(sections))
    # the report's own data beside it: the rows it was read from, with their full lineage
    for source in (grid.results, grid.results_csv):
        if source.is_file():
            write_text_atomic(folder / source.name, source.read_text(encoding="utf-8"))
    return path
