"""One-line descriptions of a bench run (its data, budget and machine), shared by the plots' captions and the
Markdown report."""

from __future__ import annotations

from xstilts.contracts.results import BenchResults


def budget_line(results: BenchResults) -> str:
    b = results.budget
    parts = [f"each scenario <= {b.duration_s_per_scenario:g} s and <= {b.max_requests_per_scenario} requests"]
    if "closed" in b.scenarios:
        parts.append(f"closed loop {','.join(map(str, b.closed_loop_users))} users")
    if "open" in b.scenarios and b.open_loop_rates:
        parts.append(f"open loop {', '.join(b.open_loop_rates)}")
    if "offline" in b.scenarios:
        parts.append(f"offline {b.offline.users} users x {b.offline.items_per_request} items")
    parts.append(f"{b.items_per_request} item(s) per online request")
    return "; ".join(parts)


def data_line(results: BenchResults) -> str:
    d = results.data
    counts = set(d.examples.values())
    per = f"{counts.pop()}" if len(counts) == 1 else f"{min(d.examples.values())}-{max(d.examples.values())}"
    sampled = "all items" if d.per_language is None else f"seeded sample (seed {d.seed})"
    return f"{d.task} {d.split}: {per} items x {len(d.languages)} languages, {sampled}"


def machine_line(results: BenchResults) -> str:
    m = results.machine
    ort = m.versions.get("onnxruntime") or m.versions.get("onnxruntime-gpu") or "?"
    busy = f", load avg {m.load_average[0]:g} at start" if m.load_average else ""
    return f"{m.cpu}, {m.cores} cores ({m.usable_cores} usable){busy}, onnxruntime {ort}"


def caption(results: BenchResults) -> str:
    targets = ", ".join(t.label for t in results.targets)
    return "\n".join(
        [
            f"targets: {targets}",
            f"data: {data_line(results)}",
            f"budget: {budget_line(results)}",
            f"machine: {machine_line(results)}; client (locust) on the same machine",
        ]
    )
