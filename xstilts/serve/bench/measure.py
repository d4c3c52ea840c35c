"""The server against its bare session, on real XNLI texts, in one run (the README's serving figures).

    apt-get install wrk
    python -m xstilts.serve.bench.measure --repository REPO --model NAME [--variant int8] [--out result.json]

1. The bare session: the engine ``xstilts serve`` builds (same settings), in this process, on pre-tokenized texts:
   throughput at batch sizes 1 to 64 (texts in arrival order, and sorted by length within blocks), batch-1
   latency.
2. ``xstilts serve`` in a subprocess, loaded by wrk (Debian's C load generator, with ``post.lua``: one real XNLI
   pair per request, all languages mixed): saturation throughput (the best over a few connection counts), one
   client at a time (median latency), and an offered load of half the saturation rate (p50 and p99 latency).

Bare and server runs alternate in rounds and each round's ratios use its own bare figures, so that other work on
the machine (which shares its cores) weighs on both sides alike; the summary takes the median over rounds and
records the load average. wrk's own CPU time is reported: it stays a small share of a core.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from xstilts.paths import resolve_data_dir
from xstilts.serve.bench.bare import Bare
from xstilts.serve.bench.payloads import write_bodies, xnli_pairs

LUA = Path(__file__).with_name("post.lua")
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def process_cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime + stime


def run_wrk(url: str, path: str, bodies: Path, connections: int, seconds: float, rate: float = 0.0,
            server_pid: int | None = None) -> dict[str, Any]:  # fmt: skip
    """One wrk run; its summary plus requests/s, wrk's own CPU share and the server's."""
    env = {
        **os.environ,
        "XSTILTS_WRK_BODIES": str(bodies),
        "XSTILTS_WRK_PATH": path,
        "XSTILTS_WRK_RATE": str(rate),
        "XSTILTS_WRK_CONNECTIONS": str(connections),
    }
    command = [
        "wrk",
        "-t1",
        f"-c{connections}",
        f"-d{int(seconds)}s",
        "--latency",
        "--timeout",
        "30s",
        "-s",
        str(LUA),
        url,
    ]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    server_before = process_cpu_seconds(server_pid) if server_pid else 0.0
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=True)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    server_after = process_cpu_seconds(server_pid) if server_pid else 0.0
    line = next(x for x in done.stdout.splitlines() if x.startswith("XSTILTS_WRK "))
    result = json.loads(line.removeprefix("XSTILTS_WRK "))
    duration = result["duration_us"] / 1e6
    result["requests_per_second"] = round(result["requests"] / duration, 1)
    wrk_cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    result["wrk_cpu_cores"] = round(wrk_cpu / duration, 3)
    if server_pid:
        result["server_cpu_cores"] = round((server_after - server_before) / duration, 3)
    result["connections"] = connections
    result["offered_rate"] = rate or None
    result["latency_ms"] = {k: round(v / 1000, 2) for k, v in result.pop("latency_us").items()}
    return result


def start_server(repository: Path, model: str, variant: str, port: int, env: dict[str, str]) -> subprocess.Popen:
    settings = {
        "XSTILTS_REPOSITORY": str(repository),
        "XSTILTS_MODELS": f"{model}={variant}",
        "XSTILTS_PORT": str(port),
        "XSTILTS_LOG_LEVEL": "warning",
        **env,
    }
    clean = {k: v for k, v in os.environ.items() if not k.startswith("XSTILTS_") or k == "XSTILTS_CACHE_DIR"}
    process = subprocess.Popen([sys.executable, "-m", "xstilts.cli", "serve"], env={**clean, **settings})
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"the server exited with {process.returncode}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code == 200:
                return process
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    process.kill()
    raise SystemExit("the server did not become ready in 300 s")


def load_bare(repository: Path, model: str, variant: str, pairs, env: dict[str, str]) -> Bare:
    """The engine exactly as ``xstilts serve`` with the same settings builds it, in this process."""
    from xstilts.serve.engine import load_model, plan_models
    from xstilts.serve.settings import load_settings

    settings = load_settings(
        {"repository": repository, "models": f"{model}={variant}"},
        env={k: v for k, v in env.items() if k.startswith("XSTILTS_")},
    )
    (planned,) = plan_models(settings, "CPUExecutionProvider")
    return Bare(load_model(planned, settings), pairs)


def median(values: list[float]) -> float:
    return round(statistics.median(values), 3)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
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
    args = parser.parse_args(argv)
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is missing: apt-get install wrk")
    env = dict(item.split("=", 1) for item in args.env)
    pairs = xnli_pairs(resolve_data_dir(args.data_dir), args.pairs)
    work = Path(tempfile.mkdtemp(prefix="xstilts-bench-"))
    bodies = write_bodies(pairs, work / "bodies.jsonl")
    bare = load_bare(args.repository, args.model, args.variant, pairs, env)
    result: dict[str, Any] = {
        "model": args.model,
        "variant": args.variant,
        "cpus": os.cpu_count(),
        "server_settings": env,
        "texts": f"{len(pairs)} XNLI test pairs, all languages, one pair per request; "
        f"{bare.mean_tokens:.1f} tokens on average",
        "load_average_start": os.getloadavg(),
    }
    print("bare session, every batch size ...", flush=True)
    scan = bare.scan((1, 2, 4, 8, 16, 32, 64), args.bare_seconds)
    result["bare_scan"] = scan
    print(json.dumps(scan), flush=True)
    contenders = sorted(scan, key=scan.get, reverse=True)[:2]

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    path = f"/v1/models/{args.model}/predict"
    server = start_server(args.repository, args.model, args.variant, port, env)
    rounds = []
    try:
        run_wrk(url, path, bodies, 16, 5)  # warm-up
        for number in range(args.rounds):
            figures: dict[str, Any] = {"load_average": os.getloadavg()}
            figures["bare"] = {key: bare.run(key, args.bare_seconds) for key in contenders}
            figures["bare_batch1_latency_ms"] = bare.latency(args.bare_seconds)
            saturation = [
                run_wrk(url, path, bodies, int(c), args.seconds, server_pid=server.pid)
                for c in args.connections.split(",")
            ]
            best = max(saturation, key=lambda r: r["requests_per_second"])
            single = run_wrk(url, path, bodies, 1, args.seconds, server_pid=server.pid)
            half = run_wrk(
                url, path, bodies, 32, args.seconds, rate=best["requests_per_second"] / 2, server_pid=server.pid
            )
            bare_best = max(figures["bare"].values())
            figures.update(
                saturation_runs=saturation,
                one_client=single,
                half=half,
                saturation_ratio=round(best["requests_per_second"] / bare_best, 3),
                latency_ratio=round(single["latency_ms"]["p50"] / figures["bare_batch1_latency_ms"]["p50"], 3),
            )
            rounds.append(figures)
            print(
                f"round {number + 1}: bare {figures['bare']} seq/s, server {best['requests_per_second']} req/s "
                f"(x{figures['saturation_ratio']}); one client p50 {single['latency_ms']['p50']} ms vs bare "
                f"{figures['bare_batch1_latency_ms']['p50']} ms (x{figures['latency_ratio']}); half load "
                f"{half['requests_per_second']} req/s p50 {half['latency_ms']['p50']} ms "
                f"p99 {half['latency_ms']['p99']} ms; "
                f"load {figures['load_average'][0]:.1f}",
                flush=True,
            )
        metrics = httpx.get(f"{url}/metrics").text
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(60)
    result["rounds"] = rounds
    result["load_average_end"] = os.getloadavg()
    batch_count = sum(float(x.split()[-1]) for x in metrics.splitlines() if x.startswith("xstilts_batch_size_count"))
    batch_sum = sum(float(x.split()[-1]) for x in metrics.splitlines() if x.startswith("xstilts_batch_size_sum"))
    saturation_rps = [max(r["requests_per_second"] for r in f["saturation_runs"]) for f in rounds]
    result["summary"] = {
        "rounds": len(rounds),
        "bare_best_sequences_per_second": median([max(f["bare"].values()) for f in rounds]),
        "bare_best_batch": contenders[0],
        "server_saturation_requests_per_second": median(saturation_rps),
        "saturation_ratio": median([f["saturation_ratio"] for f in rounds]),
        "bare_batch1_p50_ms": median([f["bare_batch1_latency_ms"]["p50"] for f in rounds]),
        "one_client_p50_ms": median([f["one_client"]["latency_ms"]["p50"] for f in rounds]),
        "one_client_latency_ratio": median([f["latency_ratio"] for f in rounds]),
        "half_saturation_requests_per_second": median([f["half"]["requests_per_second"] for f in rounds]),
        "half_saturation_p50_ms": median([f["half"]["latency_ms"]["p50"] for f in rounds]),
        "half_saturation_p99_ms": median([f["half"]["latency_ms"]["p99"] for f in rounds]),
        "mean_items_per_batch": round(batch_sum / batch_count, 2) if batch_count else None,
        "wrk_cpu_cores_at_saturation": median(
            [max(f["saturation_runs"], key=lambda r: r["requests_per_second"])["wrk_cpu_cores"] for f in rounds]
        ),
        "errors": sum(
            r["non_2xx"] + r["connect_errors"] + r["timeouts"]
            for f in rounds
            for r in [*f["saturation_runs"], f["one_client"], f["half"]]
        ),
        "load_average_during": median([f["load_average"][0] for f in rounds]),
    }
    print(json.dumps(result["summary"], indent=2))
    if args.out:
        args.out.write_text(json.dumps(result, indent=2) + "\n")
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
