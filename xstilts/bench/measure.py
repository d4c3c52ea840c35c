"""The server against its bare session, on real XNLI texts, in one run (the README's serving figures).

    apt-get install wrk
    python -m xstilts.bench.measure --repository REPO --model NAME [--variant int8] [--out result.json]

1. The bare session: the engine ``xstilts serve`` builds (same settings), in this process, on pre-tokenized texts:
   throughput at batch sizes 1 to 64 (texts in arrival order, and sorted by length within blocks), batch-1
   latency (:mod:`xstilts.bench.bare`).
2. ``xstilts serve`` in a subprocess, loaded by wrk (Debian's C load generator, with ``post.lua``: one real XNLI
   pair per request, all languages mixed; :mod:`xstilts.bench.wrk`): saturation throughput (the best over a few
   connection counts), one client at a time (median latency), and an offered load of half the saturation rate
   (p50 and p99 latency).

The texts are the bench's payloads (:mod:`xstilts.bench.payloads`): every XNLI test item in a seeded mixed order,
the first ``--pairs`` of them. Bare and server runs alternate in rounds and each round's ratios use its own bare
figures, so that other work on the machine (which shares its cores) weighs on both sides alike; the summary takes
the median over rounds and records the load average. wrk's own CPU time is reported: it stays a small share of a
core.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

from xstilts.bench import server_metrics
from xstilts.bench.bare import Bare
from xstilts.bench.payloads import mixed_items, predict_path, request_body, write_body_lines
from xstilts.bench.servers import ServerProcess, running, xstilts_server
from xstilts.bench.wrk import run_wrk
from xstilts.contracts.evaluation import load_evaluation_sample
from xstilts.errors import XstiltsError
from xstilts.paths import resolve_data_dir
from xstilts.tasks.encoding import example_segments

TASK = "xnli"
BATCH_SIZES = (1, 2, 4, 8, 16, 32, 64)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m xstilts.bench.measure", description=__doc__.splitlines()[0])
    parser.add_argument("--repository", type=Path, required=True)
    parser.add_argument("--model", required=True)
    parser.add_argument("--variant", default="int8")
    parser.add_argument("--data-dir", help="data folder (default: $XSTILTS_DATA_DIR, else ../shared/data)")
    parser.add_argument("--pairs", type=int, default=3000, help="XNLI test pairs to cycle through")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds of bare and server runs")
    parser.add_argument("--seconds", type=float, default=10, help="length of each wrk run")
    parser.add_argument("--bare-seconds", type=float, default=5, help="length of each bare run")
    parser.add_argument("--connections", default="16,64", help="connection counts tried for saturation")
    parser.add_argument("--env", action="append", default=[], help="server setting KEY=VALUE (XSTILTS_*), repeatable")
    parser.add_argument("--out", type=Path, help="write the figures here as JSON")
    return parser.parse_args(argv)


def server_settings(pairs: list[str]) -> dict[str, str]:
    """``--env KEY=VALUE`` settings: ``XSTILTS_*`` names only (the bare session reads the very same)."""
    settings = {}
    for item in pairs:
        key, sep, value = item.partition("=")
        if not sep or not key.startswith("XSTILTS_"):
            raise XstiltsError(f"--env {item!r}: expected XSTILTS_NAME=VALUE")
        settings[key] = value
    return settings


def load_bare(repository: Path, model: str, variant: str, items: list, env: dict[str, str]) -> Bare:
    """The engine exactly as ``xstilts serve`` with the same settings builds it, in this process."""
    from xstilts.serve.core.engine import load_model
    from xstilts.serve.core.repository import plan_models
    from xstilts.serve.settings import load_settings

    settings = load_settings({"repository": repository, "models": f"{model}={variant}"}, env=env)
    (planned,) = plan_models(settings)
    loaded = load_model(planned, settings)
    return Bare(loaded, [example_segments(loaded.manifest.kind, e) for e in items])


def median(values: list[float]) -> float:
    return round(statistics.median(values), 3)


def measure_round(server: ServerProcess, path: str, bodies: Path, bare: Bare, contenders: list[str],
                  args: argparse.Namespace) -> dict[str, Any]:  # fmt: skip
    """One round: the bare contenders and batch-1 latency, then saturation, one client and half load under wrk."""
    figures: dict[str, Any] = {"load_average": os.getloadavg()}
    figures["bare"] = {key: bare.run(key, args.bare_seconds) for key in contenders}
    figures["bare_batch1_latency_ms"] = bare.latency(args.bare_seconds)
    pid = server.process.pid
    saturation = [
        run_wrk(server.url, path, bodies, int(c), args.seconds, server_pid=pid) for c in args.connections.split(",")
    ]
    best = max(saturation, key=lambda r: r["requests_per_second"])
    single = run_wrk(server.url, path, bodies, 1, args.seconds, server_pid=pid)
    half = run_wrk(server.url, path, bodies, 32, args.seconds, rate=best["requests_per_second"] / 2, server_pid=pid)
    figures.update(
        saturation_runs=saturation,
        one_client=single,
        half=half,
        saturation_ratio=round(best["requests_per_second"] / max(figures["bare"].values()), 3),
        latency_ratio=round(single["latency_ms"]["p50"] / figures["bare_batch1_latency_ms"]["p50"], 3),
    )
    return figures


def round_line(number: int, figures: dict[str, Any]) -> str:
    best = max(figures["saturation_runs"], key=lambda r: r["requests_per_second"])
    single, half = figures["one_client"], figures["half"]
    return (
        f"round {number}: bare {figures['bare']} seq/s, server {best['requests_per_second']} req/s "
        f"(x{figures['saturation_ratio']}); one client p50 {single['latency_ms']['p50']} ms vs bare "
        f"{figures['bare_batch1_latency_ms']['p50']} ms (x{figures['latency_ratio']}); half load "
        f"{half['requests_per_second']} req/s p50 {half['latency_ms']['p50']} ms "
        f"p99 {half['latency_ms']['p99']} ms; load {figures['load_average'][0]:.1f}"
    )


def summarize(rounds: list[dict[str, Any]], contenders: list[str], metrics: server_metrics.Samples | None) -> dict:
    """The medians over rounds, the server's mean batch size, and every error wrk counted."""
    batch_count = server_metrics.total(metrics, "xstilts_batch_size_count") if metrics else 0.0
    batch_sum = server_metrics.total(metrics, "xstilts_batch_size_sum") if metrics else 0.0
    best_runs = [max(f["saturation_runs"], key=lambda r: r["requests_per_second"]) for f in rounds]
    return {
        "rounds": len(rounds),
        "bare_best_sequences_per_second": median([max(f["bare"].values()) for f in rounds]),
        "bare_best_batch": contenders[0],
        "server_saturation_requests_per_second": median([r["requests_per_second"] for r in best_runs]),
        "saturation_ratio": median([f["saturation_ratio"] for f in rounds]),
        "bare_batch1_p50_ms": median([f["bare_batch1_latency_ms"]["p50"] for f in rounds]),
        "one_client_p50_ms": median([f["one_client"]["latency_ms"]["p50"] for f in rounds]),
        "one_client_latency_ratio": median([f["latency_ratio"] for f in rounds]),
        "half_saturation_requests_per_second": median([f["half"]["requests_per_second"] for f in rounds]),
        "half_saturation_p50_ms": median([f["half"]["latency_ms"]["p50"] for f in rounds]),
        "half_saturation_p99_ms": median([f["half"]["latency_ms"]["p99"] for f in rounds]),
        "mean_items_per_batch": round(batch_sum / batch_count, 2) if batch_count else None,
        "wrk_cpu_cores_at_saturation": median([r["wrk_cpu_cores"] for r in best_runs]),
        "errors": sum(
            r["non_2xx"] + r["connect_errors"] + r["timeouts"]
            for f in rounds
            for r in [*f["saturation_runs"], f["one_client"], f["half"]]
        ),
        "load_average_during": median([f["load_average"][0] for f in rounds]),
    }


def measure(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    """The whole comparison; bulky files (request bodies, the server's log) go to ``work``."""
    if shutil.which("wrk") is None:
        raise XstiltsError("wrk is missing: apt-get install wrk")
    env = server_settings(args.env)
    sample = load_evaluation_sample(TASK, resolve_data_dir(args.data_dir), None, None, seed=0)
    items = mixed_items(sample, seed=0)[: args.pairs]
    bodies = write_body_lines(work / "bodies.jsonl", [request_body(sample.kind, [e]) for e in items])
    bare = load_bare(args.repository, args.model, args.variant, items, env)
    result: dict[str, Any] = {
        "model": args.model,
        "variant": args.variant,
        "cpus": os.cpu_count(),
        "server_settings": env,
        "texts": f"{len(items)} XNLI test pairs, all languages, one pair per request; "
        f"{bare.mean_tokens:.1f} tokens on average",
        "load_average_start": os.getloadavg(),
    }
    print("bare session, every batch size ...", flush=True)
    scan = result["bare_scan"] = bare.scan(BATCH_SIZES, args.bare_seconds)
    print(json.dumps(scan), flush=True)
    contenders = sorted(scan, key=scan.get, reverse=True)[:2]  # type: ignore[arg-type]
    server = xstilts_server(args.repository, f"{args.model}={args.variant}", work / "server.log", settings=env)
    path = predict_path(args.model)
    rounds = []
    with running(server):
        run_wrk(server.url, path, bodies, 16, 5)  # warm-up
        for number in range(args.rounds):
            rounds.append(measure_round(server, path, bodies, bare, contenders, args))
            print(round_line(number + 1, rounds[-1]), flush=True)
        metrics = server_metrics.scrape(server.url)
    result["rounds"] = rounds
    result["load_average_end"] = os.getloadavg()
    result["summary"] = summarize(rounds, contenders, metrics)
    return result


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="xstilts-bench-"))
    try:
        result = measure(args, work)
    except XstiltsError as exc:
        print(f"xstilts: error: {exc}", file=sys.stderr)
        return 2
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(result["summary"], indent=2))
    if args.out:
        args.out.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
