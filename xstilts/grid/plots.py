"""The grid report's plots: lines over an axis and bars per model, one panel per target, error bars of one std."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from xstilts.grid.stats import Stat


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
