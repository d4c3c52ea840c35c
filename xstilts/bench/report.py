"""The bench report: ``results.json`` (written by the runner), CSV tables, plots (PNG) and ``report.md``.

Plots (matplotlib, Agg backend), each captioned with the models and variants, the budget, the data and the
machine:

* ``latency_throughput.png``: p50 and p99 latency against achieved throughput, per target (closed-loop sweep
  as lines, open-loop runs as separate markers);
* ``accuracy_languages.png``: accuracy per language per target, through the API;
* ``pareto.png``: average accuracy against single-stream p99 latency and against peak throughput, with the
  Pareto front (nothing else is both at least as accurate and at least as fast).
"""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

from xstilts.atomic import write_text_atomic

SCENARIO_COLUMNS = [
    "target",
    "model",
    "variant",
    "server",
    "scenario",
    "mode",
    "users",
    "offered_rate",
    "items_per_request",
    "requests",
    "ok",
    "failures",
    "unfinished",
    "error_rate",
    "window_s",
    "requests_per_s",
    "sequences_per_s",
    "p50_ms",
    "p90_ms",
    "p95_ms",
    "p99_ms",
    "max_ms",
    "mean_ms",
    "server_mean_queue_ms",
    "server_mean_inference_ms",
    "server_mean_tokenization_ms",
    "server_mean_request_ms",
    "server_mean_batch_size",
    "server_batches",
    "ended_by",
    "within_bounds",
    "duration_bound_s",
    "request_bound",
    "wall_s",
    "client_cpu_warning",
]
ACCURACY_COLUMNS = [
    "target",
    "model",
    "variant",
    "server",
    "language",
    "examples",
    "accuracy",
    "bundle_accuracy",
    "difference",
    "tolerance",
    "flag",
]
FILES = {
    "latency": "latency_throughput.png",
    "accuracy": "accuracy_languages.png",
    "pareto": "pareto.png",
}


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else seconds * 1000


def scenario_rows(results: dict[str, Any]) -> list[dict[str, Any]]:
    rows = []
    for target in results["targets"]:
        for s in target.get("scenarios", []):
            server = s.get("server") or {}
            lat = s.get("latency_ms") or {}
            rows.append(
                {
                    "target": target["label"],
                    "model": target["model"],
                    "variant": target.get("variant"),
                    "server": target.get("server"),
                    "scenario": s["name"],
                    "mode": s["mode"],
                    "users": s["users"],
                    "offered_rate": s.get("rate"),
                    "items_per_request": s["items_per_request"],
                    "requests": s.get("requests"),
                    "ok": s.get("ok"),
                    "failures": s.get("failures"),
                    "unfinished": s.get("unfinished"),
                    "error_rate": s.get("error_rate"),
                    "window_s": s.get("window_s"),
                    "requests_per_s": s.get("requests_per_s"),
                    "sequences_per_s": s.get("sequences_per_s"),
                    "p50_ms": lat.get("p50"),
                    "p90_ms": lat.get("p90"),
                    "p95_ms": lat.get("p95"),
                    "p99_ms": lat.get("p99"),
                    "max_ms": lat.get("max"),
                    "mean_ms": lat.get("mean"),
                    "server_mean_queue_ms": _ms(server.get("mean_queue")),
                    "server_mean_inference_ms": _ms(server.get("mean_inference")),
                    "server_mean_tokenization_ms": _ms(server.get("mean_tokenization")),
                    "server_mean_request_ms": _ms(server.get("mean_request")),
                    "server_mean_batch_size": server.get("mean_batch_size"),
                    "server_batches": server.get("batches"),
                    "ended_by": s.get("ended_by"),
                    "within_bounds": s.get("within_bounds"),
                    "duration_bound_s": s["bounds"]["duration_s"],
                    "request_bound": s["bounds"]["max_requests"],
                    "wall_s": s.get("wall_s"),
                    "client_cpu_warning": s.get("client_cpu_warning"),
                }
            )
    return rows


def accuracy_rows(results: dict[str, Any]) -> list[dict[str, Any]]:
    rows = []
    for target in results["targets"]:
        accuracy = target.get("accuracy")
        if not accuracy:
            continue
        parity = (accuracy.get("parity") or {}).get("languages") or {}
        for lang, value in accuracy["languages"].items():
            p = parity.get(lang) or {}
            rows.append(
                {
                    "target": target["label"],
                    "model": target["model"],
                    "variant": target.get("variant"),
                    "server": target.get("server"),
                    "language": lang,
                    "examples": value["examples"],
                    "accuracy": value["accuracy"],
                    "bundle_accuracy": p.get("bundle"),
                    "difference": p.get("difference"),
                    "tolerance": p.get("tolerance"),
                    "flag": p.get("flag"),
                }
            )
    return rows


def to_csv(rows: list[dict[str, Any]], columns: list[str]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: "" if row.get(k) is None else row.get(k) for k in columns})
    return buffer.getvalue()


# ---------------------------------------------------------------------------------------------------- captions


def budget_line(results: dict[str, Any]) -> str:
    b = results["budget"]
    parts = [f"each scenario <= {b['duration_s_per_scenario']:g} s and <= {b['max_requests_per_scenario']} requests"]
    if "closed" in b["scenarios"]:
        parts.append(f"closed loop {','.join(map(str, b['closed_loop_users']))} users")
    if "open" in b["scenarios"] and b["open_loop_rates"]:
        parts.append(f"open loop {', '.join(b['open_loop_rates'])}")
    if "offline" in b["scenarios"]:
        parts.append(f"offline {b['offline']['users']} users x {b['offline']['items_per_request']} items")
    parts.append(f"{b['items_per_request']} item(s) per online request")
    return "; ".join(parts)


def data_line(results: dict[str, Any]) -> str:
    d = results["data"]
    counts = set(d["examples"].values())
    per = f"{counts.pop()}" if len(counts) == 1 else f"{min(d['examples'].values())}-{max(d['examples'].values())}"
    sampled = "all items" if d["per_language"] is None else f"seeded sample (seed {d['seed']})"
    return f"{d['task']} {d['split']}: {per} items x {len(d['languages'])} languages, {sampled}"


def machine_line(results: dict[str, Any]) -> str:
    m = results["machine"]
    ort = m["versions"].get("onnxruntime") or m["versions"].get("onnxruntime-gpu") or "?"
    load = m.get("load_average")
    busy = f", load avg {load[0]:g} at start" if load else ""
    return f"{m['cpu']}, {m['cores']} cores ({m['usable_cores']} usable){busy}, onnxruntime {ort}"


def caption(results: dict[str, Any]) -> str:
    targets = ", ".join(t["label"] for t in results["targets"])
    return "\n".join(
        [
            f"targets: {targets}",
            f"data: {data_line(results)}",
            f"budget: {budget_line(results)}",
            f"machine: {machine_line(results)}; client (locust) on the same machine",
        ]
    )


# ---------------------------------------------------------------------------------------------------- plots


def _figure(width: float, height: float, results: dict[str, Any], panels: int = 1) -> tuple[Any, Any]:
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


def plot_latency_throughput(results: dict[str, Any], path: Path) -> bool:
    targets = [t for t in results["targets"] if any(s["mode"] in ("closed", "open") for s in t.get("scenarios", []))]
    if not targets:
        return False
    figure, (ax,) = _figure(10, 6.6, results)
    for target, color in zip(targets, _colors(len(targets)), strict=True):
        good = [s for s in target["scenarios"] if not s.get("error") and s["latency_ms"]["p50"] is not None]
        closed = sorted((s for s in good if s["mode"] == "closed"), key=lambda s: s["users"])
        if closed:
            x = [s["requests_per_s"] for s in closed]
            ax.plot(x, [s["latency_ms"]["p50"] for s in closed], "o-", color=color, label=f"{target['label']} p50")
            ax.plot(
                x,
                [s["latency_ms"]["p99"] for s in closed],
                "o--",
                color=color,
                alpha=0.7,
                label=f"{target['label']} p99",
            )
            for s in closed:
                ax.annotate(
                    f"u{s['users']}",
                    (s["requests_per_s"], s["latency_ms"]["p99"]),
                    fontsize=7,
                    textcoords="offset points",
                    xytext=(3, 3),
                    color=color,
                )
        opened = [s for s in good if s["mode"] == "open"]
        if opened:
            ax.scatter(
                [s["requests_per_s"] for s in opened],
                [s["latency_ms"]["p50"] for s in opened],
                marker="^",
                color=color,
                s=50,
                label=f"{target['label']} open loop p50",
            )
            ax.scatter(
                [s["requests_per_s"] for s in opened],
                [s["latency_ms"]["p99"] for s in opened],
                marker="v",
                color=color,
                s=50,
                alpha=0.7,
                label=f"{target['label']} open loop p99",
            )
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


def plot_accuracy(results: dict[str, Any], path: Path) -> bool:
    targets = [t for t in results["targets"] if t.get("accuracy")]
    if not targets:
        return False
    languages = list(targets[0]["accuracy"]["languages"])
    groups = [*languages, "avg"]
    figure, (ax,) = _figure(min(16, max(10, 0.3 * len(groups) * len(targets) + 3)), 6.2, results)
    width = 0.8 / len(targets)
    for k, (target, color) in enumerate(zip(targets, _colors(len(targets)), strict=True)):
        values = [target["accuracy"]["languages"].get(lang, {}).get("accuracy") for lang in languages]
        values.append(target["accuracy"]["average"])
        xs = [i + (k - (len(targets) - 1) / 2) * width for i in range(len(groups))]
        ax.bar(xs, [100 * (v or 0) for v in values], width, color=color, label=target["label"])
    ax.set_xticks(range(len(groups)), groups)
    ax.set_ylabel("accuracy through the API (%)")
    values = [100 * t["accuracy"]["languages"][lang]["accuracy"] for t in targets for lang in languages]
    ax.set_ylim(max(0, min(values) - 10), min(100, max(values) + 8))
    ax.grid(True, axis="y", alpha=0.3)
    ax.set_title("Accuracy per language, measured through the API")
    ax.legend(fontsize=8)
    _save(figure, path, 0.13)
    return True


def reference_scenario(target: dict[str, Any]) -> dict[str, Any] | None:
    """Single stream: the closed-loop run with the fewest users."""
    closed = [s for s in target.get("scenarios", []) if s["mode"] == "closed" and not s.get("error")]
    return min(closed, key=lambda s: s["users"]) if closed else None


def peak_throughput(target: dict[str, Any]) -> float | None:
    """The most sequences/s any scenario achieved without errors."""
    values = [
        s["sequences_per_s"]
        for s in target.get("scenarios", [])
        if not s.get("error") and not s.get("failures") and s.get("sequences_per_s")
    ]
    return max(values) if values else None


Point = tuple[float, float, str]


def pareto_front(points: list[Point], lower_is_better: bool = True) -> list[Point]:
    """Points not dominated: none other is at least as good on x (cost or benefit) and on accuracy (y)."""
    ordered = sorted(points, key=lambda p: (p[0] if lower_is_better else -p[0], -p[1]))
    front, best = [], float("-inf")
    for point in ordered:
        if point[1] > best:
            front.append(point)
            best = point[1]
    return front


def plot_pareto(results: dict[str, Any], path: Path) -> bool:
    latency_points, throughput_points = [], []
    for target in results["targets"]:
        if not target.get("accuracy"):
            continue
        avg = 100 * target["accuracy"]["average"]
        ref = reference_scenario(target)
        if ref and ref["latency_ms"]["p99"] is not None:
            latency_points.append((ref["latency_ms"]["p99"], avg, target["label"]))
        peak = peak_throughput(target)
        if peak:
            throughput_points.append((peak, avg, target["label"]))
    if not latency_points and not throughput_points:
        return False
    figure, axes = _figure(12, 5.8, results, panels=2)
    panels = (
        (axes[0], latency_points, True, "p99 latency, single stream (ms, log scale)", "Accuracy vs single-stream p99"),
        (axes[1], throughput_points, False, "peak throughput (sequences/s, log scale)", "Accuracy vs peak throughput"),
    )
    labels = [t["label"] for t in results["targets"]]
    colors = dict(zip(labels, _colors(len(labels)), strict=True))
    for ax, points, lower, xlabel, title in panels:
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
    _save(figure, path, 0.16)
    return True


# ---------------------------------------------------------------------------------------------------- markdown


def _f(value: Any, digits: int = 1, suffix: str = "") -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.{digits}f}{suffix}"
    return f"{value}{suffix}"


def _pct(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{100 * value:.{digits}f}"


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(" --- " for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines


def markdown(results: dict[str, Any], plots: dict[str, bool]) -> str:
    m = results["machine"]
    lines = [
        "# Bench report",
        "",
        f"Created {results['created']} by `{results['command'] or 'xstilts bench'}`"
        f" ({results.get('wall_s', '?')} s in all).",
        "",
        f"- **Machine**: {m['cpu']}, {m['cores']} cores ({m['usable_cores']} usable), {m.get('memory_gb')} GB, "
        f"{m['platform']}, Python {m['python']}; load average {m.get('load_average')} at start, "
        f"{m.get('load_average_end')} at the end.",
        "- **Versions**: " + ", ".join(f"{k} {v}" for k, v in m["versions"].items()) + f", xstilts {m['xstilts']}.",
        f"- **Data**: {data_line(results)}.",
        f"- **Budget**: {budget_line(results)}.",
        "- The load generator (locust, `FastHttpUser`) runs on the same machine as the server and takes CPU from it.",
        "",
        "## Summary",
        "",
    ]
    rows = []
    for t in results["targets"]:
        if t.get("error"):
            rows.append([t["label"], "FAILED: " + t["error"].splitlines()[0]] + ["-"] * 6)
            continue
        a = t.get("accuracy") or {}
        parity = a.get("parity") or {}
        if t.get("accuracy_error"):
            parity = {"available": True, "agrees": False, "flagged": ["accuracy pass failed, see below"]}
        ref = reference_scenario(t)
        closed = [s for s in t.get("scenarios", []) if s["mode"] == "closed" and not s.get("error")]
        peak_rps = max((s["requests_per_s"] for s in closed), default=None)
        agrees = "-"
        if parity.get("available"):
            agrees = "yes" if parity["agrees"] else "**no** (" + ", ".join(parity["flagged"]) + ")"
        if parity.get("export_gate") == "failed":
            agrees += " (failed the export parity gate)"
        rows.append(
            [
                t["label"],
                _pct(a.get("average")),
                _pct((parity.get("average") or {}).get("bundle")),
                agrees,
                _f(ref["latency_ms"]["p50"] if ref else None),
                _f(ref["latency_ms"]["p99"] if ref else None),
                _f(peak_rps),
                _f(peak_throughput(t)),
            ]
        )
    lines += _table(
        [
            "target",
            "accuracy (API, %)",
            "recorded at export (%)",
            "agrees",
            "single-stream p50 (ms)",
            "single-stream p99 (ms)",
            "peak closed-loop req/s",
            "peak seq/s",
        ],
        rows,
    )
    lines += [
        "",
        "Accuracy is the plain average over languages. *Recorded at export* is `bundle.json` `parity` for the "
        "served variant (for the naive server: the PyTorch checkpoint's accuracy recorded there); *agrees* applies "
        "the tolerance rule below. Single stream is the closed-loop run with one user.",
        "",
    ]
    if plots.get("pareto"):
        lines += [f"![accuracy against latency and throughput]({FILES['pareto']})", ""]
    lines += _accuracy_section(results, plots)
    lines += _load_section(results, plots)
    lines += _method_section(results)
    return "\n".join(lines) + "\n"


def _accuracy_section(results: dict[str, Any], plots: dict[str, bool]) -> list[str]:
    targets = [t for t in results["targets"] if t.get("accuracy")]
    failed = [f"- {t['label']}: the accuracy pass failed: {t['accuracy_error'].splitlines()[0]}"
              for t in results["targets"] if t.get("accuracy_error")]  # fmt: skip
    if not targets:
        return ["## Accuracy per language", "", *failed, ""] if failed else []
    languages = list(targets[0]["accuracy"]["languages"])
    lines = ["## Accuracy per language (through the API, %)", ""]
    rows = []
    for lang in [*languages, "avg"]:
        row = [lang]
        for t in targets:
            a = t["accuracy"]
            if lang == "avg":
                row.append(f"**{_pct(a['average'])}**")
                continue
            value = _pct(a["languages"][lang]["accuracy"])
            p = ((a.get("parity") or {}).get("languages") or {}).get(lang)
            if p is not None:
                value += f" ({_pct(p['bundle'])}{' ⚠' if p['flag'] else ''})"
            row.append(value)
        rows.append(row)
    lines += _table(["language", *[t["label"] for t in targets]], rows)
    lines += ["", "In brackets: the accuracy recorded at export; ⚠ marks a difference beyond the tolerance.", ""]
    for t in targets:
        parity = t["accuracy"].get("parity") or {}
        req = t["accuracy"]["requests"]
        text = (
            f"- {t['label']}: {req['items']} items in {req['requests']} requests of up to {req['batch_items']} items, "
            f"{req['seconds']:.1f} s, {req['truncated']} truncated. "
        )
        if parity.get("available"):
            text += (
                f"Compared with {parity.get('compared_with', 'bundle.json')}: "
                f"{'the same items' if parity['same_items'] else 'a different sample'}; rule {parity['rule']}; "
                + ("agrees." if parity["agrees"] else f"**differs** in {', '.join(parity['flagged'])}.")
            )
        else:
            text += f"No comparison: {parity.get('reason', 'no bundle')}."
        lines.append(text)
    lines += failed
    lines.append("")
    if plots.get("accuracy"):
        lines += [f"![accuracy per language]({FILES['accuracy']})", ""]
    return lines


def _load_section(results: dict[str, Any], plots: dict[str, bool]) -> list[str]:
    lines = ["## Load", ""]
    header = [
        "scenario",
        "users / rate",
        "requests",
        "req/s",
        "seq/s",
        "p50",
        "p90",
        "p95",
        "p99",
        "max",
        "errors",
        "server queue",
        "server inference",
        "mean batch",
        "ended by",
    ]
    for t in results["targets"]:
        scenarios = t.get("scenarios") or []
        if not scenarios:
            continue
        served = t.get("served") or {}
        lines += [
            f"### {t['label']}",
            "",
            f"Served by {'the naive PyTorch server' if t.get('server') == 'naive' else 'xstilts serve'}: "
            f"{served.get('precision', '-')} on {served.get('provider', '-')}"
            + (f"; ready {t['server_ready_s']} s after start" if t.get("server_ready_s") is not None else "")
            + ". Latencies in ms.",
            "",
        ]
        rows = []
        for s in scenarios:
            lat = s.get("latency_ms") or {}
            server = s.get("server") or {}
            if s["mode"] == "open":
                load_text = f"{s['rate']:.1f}/s offered"
            else:
                load_text = f"{s['users']} x {s['items_per_request']} items"
            rows.append(
                [
                    s["name"] + (" (FAILED)" if s.get("error") else ""),
                    load_text,
                    f"{s.get('requests', 0)}" + (f" +{s['unfinished']} unfinished" if s.get("unfinished") else ""),
                    _f(s.get("requests_per_s")),
                    _f(s.get("sequences_per_s")),
                    _f(lat.get("p50")),
                    _f(lat.get("p90")),
                    _f(lat.get("p95")),
                    _f(lat.get("p99")),
                    _f(lat.get("max")),
                    _pct(s.get("error_rate"), 2) + "%",
                    _f(_ms(server.get("mean_queue")), 2),
                    _f(_ms(server.get("mean_inference")), 2),
                    _f(server.get("mean_batch_size"), 2),
                    s.get("ended_by", "-") + (" ⚠ client CPU" if s.get("client_cpu_warning") else ""),
                ]
            )
        lines += _table(header, rows)
        lines.append("")
    lines += [
        "*server queue*: mean time an item waited for its batch; *server inference*: mean time of one batch in "
        "ONNX Runtime; *mean batch*: items per batch - all from the server's `/metrics`, before and after each "
        "scenario (the naive server has none). *ended by*: `requests` (the request cap), `time` (the duration "
        "cap) or `killed`; ⚠ client CPU: locust warned that its own CPU use was above 90%, so the client may "
        "have limited the figures.",
        "",
    ]
    if plots.get("latency"):
        lines += [f"![latency against throughput]({FILES['latency']})", ""]
    return lines


def _method_section(results: dict[str, Any]) -> list[str]:
    from xstilts.bench.accuracy import MIN_TOLERANCE, SAME_SAMPLE_FLIPS, Z_99

    return [
        "## Method",
        "",
        "- **Accuracy** is measured through `POST /v1/models/{name}/predict` on the evaluation sample, the items "
        "sent in order, one request at a time. It is compared with `bundle.json` `parity` (measured in-process at "
        f"export): on the same items, a difference beyond max({SAME_SAMPLE_FLIPS} items, {MIN_TOLERANCE:.0%}) is "
        f"flagged (only near-ties may flip); on another sample, beyond max({Z_99} standard errors of the "
        f"difference of two proportions, {MIN_TOLERANCE:.0%}).",
        "- **Closed loop**: each locust user sends a request, waits for the answer, sends the next; the user count "
        "is the concurrency. **Open loop**: requests arrive as a Poisson process at a fixed rate and are sent when "
        "due whatever the state of earlier ones; latency counts from when a request was due, so queueing behind a "
        "slow server is measured rather than hidden (coordinated omission). Requests still unanswered when the "
        "time runs out join the open-loop latency figures with their age so far (a lower bound). **Offline**: a "
        "few users sending large requests, for maximum throughput.",
        "- Every scenario is bounded by its duration and its request cap; locust runs in its own process per "
        "scenario and is stopped if it overruns. Percentiles are nearest-rank over every successful request's "
        "latency as recorded by the locustfile; throughput is successful requests (or sequences: one per item, "
        "one per choice for multiple choice) divided by the time from the first request to the last answer.",
        "- Servers started by `--compare` run one at a time on this machine with the same payloads.",
        "",
        "## Files",
        "",
        "`results.json` (everything), `scenarios.csv`, `accuracy.csv`, the plots; under `raw/` (bulky, not needed "
        "to read the report): `payloads/` (the request bodies), `locust/` (locust's own CSV and JSON statistics and "
        "logs per scenario), `servers/` (server logs).",
    ]


def write_report(results: dict[str, Any], folder: Path) -> dict[str, Path]:
    """Write the CSV files, the plots and ``report.md`` next to ``results.json``."""
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
