"""The report's CSV tables: one row per scenario run (``scenarios.csv``), one per target and language
(``accuracy.csv``)."""

from __future__ import annotations

import csv
import io
from typing import Any

from xstilts.contracts.results import BenchResults, ScenarioResult, TargetResult

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
    "server_tokens_per_request",
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


def ms(seconds: float | None) -> float | None:
    return None if seconds is None else seconds * 1000


def _target_columns(target: TargetResult) -> dict[str, Any]:
    return {"target": target.label, "model": target.model, "variant": target.variant, "server": target.server}


def scenario_row(target: TargetResult, s: ScenarioResult) -> dict[str, Any]:
    lat, server = s.latency_ms, s.server
    return {
        **_target_columns(target),
        "scenario": s.name,
        "mode": s.mode,
        "users": s.users,
        "offered_rate": s.rate,
        "items_per_request": s.items_per_request,
        "requests": s.requests,
        "ok": s.ok,
        "failures": s.failures,
        "unfinished": s.unfinished,
        "error_rate": s.error_rate,
        "window_s": s.window_s,
        "requests_per_s": s.requests_per_s,
        "sequences_per_s": s.sequences_per_s,
        "p50_ms": lat.p50,
        "p90_ms": lat.p90,
        "p95_ms": lat.p95,
        "p99_ms": lat.p99,
        "max_ms": lat.max,
        "mean_ms": lat.mean,
        "server_mean_queue_ms": ms(server.mean_queue) if server else None,
        "server_mean_inference_ms": ms(server.mean_inference) if server else None,
        "server_mean_tokenization_ms": ms(server.mean_tokenization) if server else None,
        "server_mean_request_ms": ms(server.mean_request) if server else None,
        "server_mean_batch_size": server.mean_batch_size if server else None,
        "server_tokens_per_request": server.tokens_per_request if server else None,
        "server_batches": server.batches if server else None,
        "ended_by": s.ended_by,
        "within_bounds": s.within_bounds,
        "duration_bound_s": s.bounds.duration_s,
        "request_bound": s.bounds.max_requests,
        "wall_s": s.wall_s,
        "client_cpu_warning": s.client_cpu_warning,
    }


def scenario_rows(results: BenchResults) -> list[dict[str, Any]]:
    return [scenario_row(target, s) for target in results.targets for s in target.scenarios]


def accuracy_rows(results: BenchResults) -> list[dict[str, Any]]:
    rows = []
    for target in results.targets:
        if not target.accuracy:
            continue
        parity = target.accuracy.parity.languages or {}
        for lang, value in target.accuracy.languages.items():
            p = parity.get(lang)
            rows.append(
                {
                    **_target_columns(target),
                    "language": lang,
                    "examples": value.examples,
                    "accuracy": value.accuracy,
                    "bundle_accuracy": p.bundle if p else None,
                    "difference": p.difference if p else None,
                    "tolerance": p.tolerance if p else None,
                    "flag": p.flag if p else None,
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
