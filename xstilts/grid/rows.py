"""One result row per cell, read from the files its stages wrote; ``results.jsonl`` and ``results.csv`` rebuilt
from every cell's ``row.json`` (each cell writes only its own row, so concurrent cells never share a file)."""

from __future__ import annotations

import csv
import io
import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from xstilts.atomic import write_text_atomic
from xstilts.contracts.bundle import BUNDLE_FILE, MODEL_FILE, load_manifest
from xstilts.contracts.results import RESULTS_FILE, TargetResult
from xstilts.contracts.results import read_results as read_bench_results
from xstilts.errors import XstiltsError
from xstilts.grid.cells import Cell
from xstilts.grid.layout import CellLayout, GridLayout, exclusive
from xstilts.tasks import non_english_average

ROW_SCHEMA = "xstilts.grid.row/1"


def training_results(results: dict[str, Any]) -> dict[str, Any]:
    """Zero-shot figures of the checkpoint (accuracy, or the metric the results name), from the run's results.json."""
    metric = results.get("metric", "accuracy")
    return {
        "task": results["task"],
        "split": results["split"],
        "metric": metric,
        "per_language": results["sample_per_language"],
        "languages": {lang: v[metric] for lang, v in results["languages"].items()},
        "average": results["average"],
        "average_non_english": results.get("average_non_english"),
    }


def api_accuracy(target: TargetResult) -> dict[str, Any]:
    """Accuracy through the live API of one served variant, from the bench's results.json."""
    measured = target.accuracy
    if measured is None:
        why = target.accuracy_error or target.error
        raise XstiltsError(f"the bench measured no accuracy for {target.label}: {why}")
    languages = {lang: v.accuracy for lang, v in measured.languages.items()}
    return {
        "languages": languages,
        "average": measured.average,
        "average_non_english": non_english_average(languages),
        "items": measured.requests.items,
        "agrees_with_export": measured.parity.agrees,
        "export_parity_average": target.bundle.parity_average if target.bundle else None,
        "provider": (target.served or {}).get("provider"),
    }


def serving(target: TargetResult) -> dict[str, Any] | None:
    """Serving cost of one variant: best closed-loop throughput, offline throughput, open-loop latency."""
    scenarios = target.good_scenarios()
    if not scenarios:
        return None
    out: dict[str, Any] = {}
    closed = target.good_scenarios("closed")
    if closed:
        best = max(closed, key=lambda s: s.sequences_per_s)
        out |= {
            "closed_peak_seq_per_s": best.sequences_per_s,
            "closed_peak_users": best.users,
            "closed_peak_p50_ms": best.latency_ms.p50,
            "closed_peak_p99_ms": best.latency_ms.p99,
        }
    for s in scenarios:
        if s.mode == "offline":
            out["offline_seq_per_s"] = s.sequences_per_s
        elif s.mode == "open":
            out[s.name] = {
                "rate_rps": s.rate,
                "seq_per_s": s.sequences_per_s,
                "p50_ms": s.latency_ms.p50,
                "p99_ms": s.latency_ms.p99,
            }
    return out


def budget(cell: Cell, manifest: dict[str, Any], bench_flags: dict[str, str]) -> dict[str, Any]:
    """The training budget of the cell: steps per phase (a retrieval target trains none) and the sample sizes."""
    keys = ("label", "steps", "batch_size", "gradient_accumulation", "learning_rate", "max_length")
    phases = [
        {**{k: p[k] for k in keys}, "head_learning_rate": p.get("head_learning_rate", p["learning_rate"])}
        for p in manifest["phases"]
    ]
    intermediate = phases[:-1] if cell.trains_target else phases
    run_config = cell.run
    return {
        "intermediate_steps_total": sum(p["steps"] for p in intermediate),
        "target_steps": phases[-1]["steps"] if cell.trains_target else 0,
        "batch_size": phases[-1]["batch_size"] if phases else None,
        "max_length": run_config["max_length"],
        "freeze_embeddings": run_config["freeze_embeddings"],
        "pooling": run_config.get("pooling", "cls"),
        "evaluation_per_language": run_config["evaluation"]["max_per_language"],
        "bench_per_language": bench_flags["--per-language"],
        "phases": phases,
    }


def lineage(manifest: dict[str, Any], bundles: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The key facts of the training manifest (model, phases with data hashes) and of the bundles."""
    keep = ("index", "label", "key", "steps", "seed", "batch_size", "train_loss", "wall_time_s", "device", "reused")
    return {
        "model": manifest["model"],
        "xstilts_version": manifest["xstilts_version"],
        "phases": [
            {
                **{k: p[k] for k in keep},
                "tasks": [
                    {
                        "task": t["task"],
                        "data": t["data"],
                        "languages": t["languages"],
                        "examples": t["examples"],
                        "files": t["files"],
                    }
                    for t in p["tasks"]
                ],
            }
            for p in manifest["phases"]
        ],
        "machine": manifest["machine"],
        "bundles": bundles,
    }


def build_row(
    cell: Cell,
    config_hash: str,
    paths: CellLayout,
    grid: GridLayout,
    bench_flags: dict[str, str],
    wall_s: dict[str, float | None],
) -> dict[str, Any]:
    """The cell's row from its run's results.json and manifest.json, its bundles and its bench results.json."""
    results = json.loads((paths.run / "results.json").read_text())
    manifest = json.loads((paths.run / "manifest.json").read_text())
    targets = {t.variant: t for t in read_bench_results(paths.bench / RESULTS_FILE).targets}
    bundles = {}
    for folder in sorted((grid.repository / cell.bundle).iterdir()):
        if not (folder / BUNDLE_FILE).is_file():
            continue
        bundle = load_manifest(folder)
        bundles[folder.name] = {
            "precision": bundle.precision,
            "parity": bundle.parity.get("status"),
            "parity_accuracy_drop_points": bundle.parity.get("accuracy_drop_points"),
            "benched": folder.name in targets,
            "model_sha256": bundle.files.get(MODEL_FILE, {}).get("sha256"),
        }
    served = {v: serving(t) for v, t in targets.items()} if cell.load else {}
    return {
        "schema": ROW_SCHEMA,
        "id": cell.id,
        "aliases": list(cell.aliases),
        **cell.axes(),
        "config_hash": config_hash,
        "bundle": cell.bundle,
        "training": training_results(results),
        "api": {v: api_accuracy(t) for v, t in targets.items()},
        "serving": {v: s for v, s in served.items() if s},
        "budget": budget(cell, manifest, bench_flags),
        "wall_s": {**wall_s, "training_phases": round(sum(p["wall_time_s"] for p in manifest["phases"]), 1)},
        "lineage": lineage(manifest, bundles),
        "finished": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }


# ---------------------------------------------------------------------------------------------------- tables


def flatten(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested values as ``a.b.c`` columns; lists as ``;``-joined text (the lineage stays in the JSON lines)."""
    out: dict[str, Any] = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out |= flatten(value, f"{name}.")
        elif isinstance(value, list):
            out[name] = ";".join(json.dumps(v, sort_keys=True) if isinstance(v, dict) else str(v) for v in value)
        else:
            out[name] = value
    return out


def to_csv(rows: list[dict[str, Any]]) -> str:
    flat = [flatten({k: v for k, v in row.items() if k != "lineage"}) for row in rows]
    columns: list[str] = []
    for row in flat:
        columns += [c for c in row if c not in columns]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    for row in flat:
        writer.writerow({c: "" if row.get(c) is None else row[c] for c in columns})
    return buffer.getvalue()


def read_rows(grid: GridLayout) -> list[dict[str, Any]]:
    rows = [json.loads(path.read_text()) for path in grid.row_files()]
    return sorted(rows, key=lambda r: r["id"])


def rebuild(grid: GridLayout) -> list[dict[str, Any]]:
    """Rewrite results.jsonl and results.csv from every row.json, sorted by cell id, atomically and under a lock."""
    with exclusive(grid.lock("results")):
        rows = read_rows(grid)
        write_text_atomic(grid.results, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
        write_text_atomic(grid.results_csv, to_csv(rows))
    return rows


def read_results(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
