"""The report's plots (matplotlib, Agg backend), each captioned with the targets, the budget, the data and the
machine:

* ``latency_throughput.png``: p50 and p99 latency against achieved throughput, per target (closed-loop sweep
  as lines, open-loop runs as separate markers);
* ``accuracy_languages.png``: accuracy per language per target, through the API;
* ``pareto.png``: average accuracy against single-stream p99 latency and against peak throughput, with the
  Pareto front (nothing else is both at least as accurate and at least as fast).

Each ``plot_*`` returns whether it drew anything (a run without the figures it needs gets no plot).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from xstilts.bench.report.captions import caption
from xstilts.bench.report.figures import Point, pareto_front, peak_throughput, reference_scenario
from xstilts.contracts.results import BenchResults, TargetResult

FILES = {
    "latency": "latency_throughput.png",
    "accuracy": "accuracy_languages.png",
    "pareto": "pareto.png",
}


def _figure(width: float, height: float, results: BenchResults, panels: int = 1) -> tuple[Any, Any]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, panels, figsize=(width, height), squeeze=False)
    figure.text(0.01, 0.01, caption(results), fontsize=7, va="bottom", ha="left", family="monospace", wrap=True)
    return figure, axes[0]


def _save(figure: Any, path: Path, bottom: float) -> None:
    import matplotlib.pyplot as plt

    figure.tight_layout(rect=(0, bottom, 1, 1))
    tmp = path.with_name(f".{path.name}.tmp.png")
    figure.savefig(tmp, dpi=110)
    plt.close(figure)
    tmp.replace(path)


def _colors(n: int) -> list[Any]:
    import matplotlib

    cmap = matplotlib.colormaps["tab10"]
    return [cmap(i % 10) for i in range(n)]


def _latency_lines(ax: Any, target: TargetResult, color: Any) -> None:
    """One target's closed-loop sweep (lines, annotated with users) and open-loop runs (triangles)."""
    good = [s for s in target.good_scenarios() if s.latency_ms.p50 is not None]
    closed = sorted((s for s in good if s.mode == "closed"), key=lambda s: s.users)
    if closed:
        x = [s.requests_per_s for s in closed]
        ax.plot(x, [s.latency_ms.p50 for s in closed], "o-", color=color, label=f"{target.label} p50")
        ax.plot(x, [s.latency_ms.p99 for s in closed], "o--", color=color, alpha=0.7, label=f"{target.label} p99")
        for s in closed:
            ax.annotate(
                f"u{s.users}",
                (s.requests_per_s, s.latency_ms.p99),
                fontsize=7,
                textcoords="offset points",
                xytext=(3, 3),
                color=color,
            )
    opened = [s for s in good if s.mode == "open"]
    for marker, quantile, alpha in (("^", "p50", 1.0), ("v", "p99", 0.7)):
        if opened:
            ax.scatter(
                [s.requests_per_s for s in opened],
                [getattr(s.latency_ms, quantile) for s in opened],
                marker=marker,
                color=color,
                s=50,
                alpha=alpha,
                label=f"{target.label} open loop {quantile}",
            )


def plot_latency_throughput(results: BenchResults, path: Path) -> bool:
    targets = [t for t in results.targets if any(s.mode in ("closed", "open") for s in t.scenarios)]
    if not targets:
        return False
    figure, (ax,) = _figure(10, 6.6, results)
    for target, color in zip(targets, _colors(len(targets)), strict=True):
        _latency_lines(ax, target, color)
    xs = [x for line in ax.get_lines() for x in line.get_xdata()]
    xs += [x for c in ax.collections for x, _ in c.get_offsets()]
    xs = [x for x in xs if x > 0]
    wide = bool(xs) and max(xs) / min(xs) > 20  # the naive server next to ONNX Runtime: orders of magnitude apart
    if wide:
        ax.set_xscale("log")
    ax.set_xlabel("achieved throughput (requests/s" + (", log scale)" if wide else ")"))
    ax.set_ylabel("latency (ms, log scale)")
    ax.set_yscale("log")
    ax.grid(True, which="both", alpha=0.3)
    ax.set_title("Latency against throughput (closed-loop sweep: lines, u = users; open loop: triangles)")
    ax.legend(fontsize=7, ncol=2)
    _save(figure, path, 0.13)
    return True


def plot_accuracy(results: BenchResults, path: Path) -> bool:
    targets = [t for t in results.targets if t.accuracy]
    if not targets:
        return False
    languages = list(targets[0].accuracy.languages)  # type: ignore[union-attr]
    groups = [*languages, "avg"]
    figure, (ax,) = _figure(min(16, max(10, 0.3 * len(groups) * len(targets) + 3)), 6.2, results)
    width = 0.8 / len(targets)
    for k, (target, color) in enumerate(zip(targets, _colors(len(targets)), strict=True)):
        accuracy = target.accuracy
        assert accuracy is not None
        values = [accuracy.languages[lang].accuracy if lang in accuracy.languages else None for lang in languages]
        values.append(accuracy.average)
        xs = [i + (k - (len(targets) - 1) / 2) * width for i in range(len(groups))]
        ax.bar(xs, [100 * (v or 0) for v in values], width, color=color, label=target.label)
    ax.set_xticks(range(len(groups)), groups)
    ax.set_ylabel("accuracy through the API (%)")
    values = [100 * t.accuracy.languages[lang].accuracy for t in targets for lang in languages]  # type: ignore[union-attr]
    ax.set_ylim(max(0, min(values) - 10), min(100, max(values) + 8))
    ax.grid(True, axis="y", alpha=0.3)
    ax.set_title("Accuracy per language, measured through the API")
    ax.legend(fontsize=8)
    _save(figure, path, 0.13)
    return True


def _pareto_points(results: BenchResults) -> tuple[list[Point], list[Point]]:
    """(single-stream p99, average accuracy) and (peak sequences/s, average accuracy) per target."""
    latency_points, throughput_points = [], []
    for target in results.targets:
        if not target.accuracy:
            continue
        avg = 100 * target.accuracy.average
        ref = reference_scenario(target)
        if ref and ref.latency_ms.p99 is not None:
            latency_points.append((ref.latency_ms.p99, avg, target.label))
        peak = peak_throughput(target)
        if peak:
            throughput_points.append((peak, avg, target.label))
    return latency_points, throughput_points


def _pareto_panel(ax: Any, points: list[Point], lower: bool, colors: dict[str, Any], xlabel: str, title: str) -> None:
    for k, (x, y, label) in enumerate(sorted(points)):
        ax.scatter([x], [y], s=60, color=colors[label], zorder=3)
        ax.annotate(label, (x, y), fontsize=8, textcoords="offset points", xytext=(5, 4 + 10 * (k % 3)))
    front = pareto_front(points, lower)
    if len(front) > 1:
        ax.step(
            [p[0] for p in front],
            [p[1] for p in front],
            where="post" if lower else "pre",
            color="grey",
            linestyle=":",
            label="Pareto front",
        )
        ax.legend(fontsize=8)
    ax.set_xscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("average accuracy through the API (%)")
    ax.set_title(title)
    ax.grid(True, which="both", alpha=0.3)
    if points:
        ys = [p[1] for p in points]
        ax.set_ylim(min(ys) - 2, max(ys) + 2)
        xs = [p[0] for p in points]
        ax.set_xlim(min(xs) / 1.6, max(xs) * 1.6)


def plot_pareto(results: BenchResults, path: Path) -> bool:
    latency_points, throughput_points = _pareto_points(results)
    if not latency_points and not throughput_points:
        return False
    figure, axes = _figure(12, 5.8, results, panels=2)
    labels = [t.label for t in results.targets]
    colors = dict(zip(labels, _colors(len(labels)), strict=True))
    panels = (
        (latency_points, True, "p99 latency, single stream (ms, log scale)", "Accuracy vs single-stream p99"),
        (throughput_points, False, "peak throughput (sequences/s, log scale)", "Accuracy vs peak throughput"),
    )
    for ax, (points, lower, xlabel, title) in zip(axes, panels, strict=True):
        _pareto_panel(ax, points, lower, colors, xlabel, title)
    _save(figure, path, 0.16)
    return True
