"""``report.md``: the summary table, accuracy per language, the load scenarios per target, the method."""

from __future__ import annotations

from typing import Any

from xstilts.bench.report.captions import budget_line, data_line
from xstilts.bench.report.figures import peak_closed_rate, peak_throughput, reference_scenario
from xstilts.bench.report.plots import FILES
from xstilts.bench.report.tables import ms
from xstilts.contracts.results import BenchResults, ScenarioResult, TargetResult


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


def markdown(results: BenchResults, plots: dict[str, bool]) -> str:
    m = results.machine
    lines = [
        "# Bench report",
        "",
        f"Created {results.created} by `{results.command or 'xstilts bench'}`"
        f" ({results.wall_s if results.wall_s is not None else '?'} s in all).",
        "",
        f"- **Machine**: {m.cpu}, {m.cores} cores ({m.usable_cores} usable), {m.memory_gb} GB, "
        f"{m.platform}, Python {m.python}; load average {m.load_average} at start, "
        f"{m.load_average_end} at the end.",
        "- **Versions**: " + ", ".join(f"{k} {v}" for k, v in m.versions.items()) + f", xstilts {m.xstilts}.",
        f"- **Data**: {data_line(results)}.",
        f"- **Budget**: {budget_line(results)}.",
        "- The load generator (locust, `FastHttpUser`) runs on the same machine as the server and takes CPU from it.",
        "",
    ]
    lines += _summary_section(results)
    if plots.get("pareto"):
        lines += [f"![accuracy against latency and throughput]({FILES['pareto']})", ""]
    lines += _accuracy_section(results, plots)
    lines += _load_section(results, plots)
    lines += _method_section()
    return "\n".join(lines) + "\n"


def _agreement(t: TargetResult) -> str:
    """The summary's *agrees* cell: the comparison with export, or why there is none."""
    parity = t.accuracy.parity if t.accuracy else None
    if t.accuracy_error:
        return "**no** (accuracy pass failed, see below)"
    if parity is None or not parity.available:
        return "-"
    agrees = "yes" if parity.agrees else "**no** (" + ", ".join(parity.flagged or []) + ")"
    if parity.export_gate == "failed":
        agrees += " (failed the export parity gate)"
    return agrees


def _summary_section(results: BenchResults) -> list[str]:
    rows = []
    for t in results.targets:
        if t.error:
            rows.append([t.label, "FAILED: " + t.error.splitlines()[0]] + ["-"] * 6)
            continue
        a = t.accuracy
        recorded = a.parity.average.bundle if a and a.parity.average else None
        ref = reference_scenario(t)
        rows.append(
            [
                t.label,
                _pct(a.average if a else None),
                _pct(recorded),
                _agreement(t),
                _f(ref.latency_ms.p50 if ref else None),
                _f(ref.latency_ms.p99 if ref else None),
                _f(peak_closed_rate(t)),
                _f(peak_throughput(t)),
            ]
        )
    header = [
        "target",
        "accuracy (API, %)",
        "recorded at export (%)",
        "agrees",
        "single-stream p50 (ms)",
        "single-stream p99 (ms)",
        "peak closed-loop req/s",
        "peak seq/s",
    ]
    return [
        "## Summary",
        "",
        *_table(header, rows),
        "",
        "Accuracy is the plain average over languages. *Recorded at export* is `bundle.json` `parity` for the "
        "served variant (for the naive server: the PyTorch checkpoint's accuracy recorded there); *agrees* applies "
        "the tolerance rule below. Single stream is the closed-loop run with one user.",
        "",
    ]


def _accuracy_line(t: TargetResult) -> str:
    """How one target's accuracy pass was sent, and what it was compared with."""
    assert t.accuracy is not None
    parity, req = t.accuracy.parity, t.accuracy.requests
    text = (
        f"- {t.label}: {req.items} items in {req.requests} requests of up to {req.batch_items} items, "
        f"{req.seconds:.1f} s, {req.truncated} truncated. "
    )
    if not parity.available:
        return text + f"No comparison: {parity.reason or 'no bundle'}."
    return text + (
        f"Compared with {parity.compared_with or 'bundle.json'}: "
        f"{'the same items' if parity.same_items else 'a different sample'}; rule {parity.rule}; "
        + ("agrees." if parity.agrees else f"**differs** in {', '.join(parity.flagged or [])}.")
    )


def _accuracy_section(results: BenchResults, plots: dict[str, bool]) -> list[str]:
    targets = [t for t in results.targets if t.accuracy]
    failed = [f"- {t.label}: the accuracy pass failed: {t.accuracy_error.splitlines()[0]}"
              for t in results.targets if t.accuracy_error]  # fmt: skip
    if not targets:
        return ["## Accuracy per language", "", *failed, ""] if failed else []
    languages = list(targets[0].accuracy.languages)  # type: ignore[union-attr]
    rows = []
    for lang in [*languages, "avg"]:
        row = [lang]
        for t in targets:
            a = t.accuracy
            assert a is not None
            if lang == "avg":
                row.append(f"**{_pct(a.average)}**")
                continue
            value = _pct(a.languages[lang].accuracy)
            p = (a.parity.languages or {}).get(lang)
            if p is not None:
                value += f" ({_pct(p.bundle)}{' ⚠' if p.flag else ''})"
            row.append(value)
        rows.append(row)
    metric = targets[0].accuracy.metric  # type: ignore[union-attr]
    lines = [f"## Accuracy per language ({f'{metric}, ' if metric else ''}through the API, %)", ""]
    lines += _table(["language", *[t.label for t in targets]], rows)
    lines += ["", "In brackets: the accuracy recorded at export; ⚠ marks a difference beyond the tolerance.", ""]
    lines += [_accuracy_line(t) for t in targets]
    lines += failed
    lines.append("")
    if plots.get("accuracy"):
        lines += [f"![accuracy per language]({FILES['accuracy']})", ""]
    return lines


LOAD_HEADER = [
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
    "tokens / request",
    "ended by",
]


def _load_row(s: ScenarioResult) -> list[str]:
    lat, server = s.latency_ms, s.server
    load_text = f"{s.rate:.1f}/s offered" if s.mode == "open" and s.rate else f"{s.users} x {s.items_per_request} items"
    return [
        s.name + (" (FAILED)" if s.error else ""),
        load_text,
        f"{s.requests}" + (f" +{s.unfinished} unfinished" if s.unfinished else ""),
        _f(s.requests_per_s),
        _f(s.sequences_per_s),
        _f(lat.p50),
        _f(lat.p90),
        _f(lat.p95),
        _f(lat.p99),
        _f(lat.max),
        _pct(s.error_rate, 2) + "%",
        _f(ms(server.mean_queue) if server else None, 2),
        _f(ms(server.mean_inference) if server else None, 2),
        _f(server.mean_batch_size if server else None, 2),
        _f(server.tokens_per_request if server else None),
        s.ended_by + (" ⚠ client CPU" if s.client_cpu_warning else ""),
    ]


def _load_section(results: BenchResults, plots: dict[str, bool]) -> list[str]:
    lines = ["## Load", ""]
    for t in results.targets:
        if not t.scenarios:
            continue
        served = t.served or {}
        lines += [
            f"### {t.label}",
            "",
            f"Served by {'the naive PyTorch server' if t.naive else 'xstilts serve'}: "
            f"{served.get('precision', '-')} on {served.get('provider', '-')}"
            + (f"; ready {t.server_ready_s} s after start" if t.server_ready_s is not None else "")
            + ". Latencies in ms.",
            "",
        ]
        lines += _table(LOAD_HEADER, [_load_row(s) for s in t.scenarios])
        lines.append("")
    lines += [
        "*server queue*: mean time an item waited for its batch; *server inference*: mean time of one batch in "
        "ONNX Runtime; *mean batch*: items per batch (a QA context's windows count one each); *tokens / request*: "
        "real tokens the model ran per request (overlapping windows included) - all from the server's `/metrics`, "
        "before and after each scenario (the naive server has none). *ended by*: `requests` (the request cap), "
        "`time` (the duration cap) or `killed`; ⚠ client CPU: locust warned that its own CPU use was above 90%, "
        "so the client may have limited the figures.",
        "",
    ]
    if plots.get("latency"):
        lines += [f"![latency against throughput]({FILES['latency']})", ""]
    return lines


def _method_section() -> list[str]:
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
