"""Load scenarios, each one locust run in its own process, bounded in time and in requests.

* closed loop: ``users`` users, each sending its next request when the last is answered (concurrency = users);
  a sweep over user counts traces latency against throughput;
* open loop: Poisson arrivals at a fixed rate, latency counted from when each request was due (MLPerf's
  Server scenario), so a saturated server shows its queue instead of slowing the client down;
* offline: maximum throughput, a few users sending large batches (MLPerf's Offline scenario).

Figures come from every request's latency, which the locustfile records (percentiles by nearest rank), with
locust's own JSON statistics kept alongside; ``/metrics`` is scraped before and after each run.
"""

from __future__ import annotations

import json
import math
import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from xstilts.bench import server_metrics
from xstilts.contracts.results import Bounds, Latency, LocustStats, ScenarioResult, Unfinished
from xstilts.errors import XstiltsError

LOCUSTFILE = Path(__file__).with_name("locustfile.py")
PERCENTILES = (50, 90, 95, 99)
# time locust may take beyond --run-time: start-up, spawning, the last answers, writing its files
STARTUP_GRACE_S = 20.0
TERM_GRACE_S = 10.0
MODES = ("closed", "open", "offline")


@dataclass
class Scenario:
    """One bounded locust run."""

    name: str
    mode: str  # closed | open | offline
    users: int
    duration_s: float
    max_requests: int
    payloads: Path
    items_per_request: int
    rate: float | None = None  # open loop: requests/s offered
    rate_rule: str | None = None  # how the rate was chosen, e.g. "0.5x peak closed-loop"
    seed: int = 0

    def describe(self) -> dict[str, Any]:
        data = asdict(self)
        data["payloads"] = self.payloads.name
        return data


def parse_duration(text: str | float) -> float:
    """``90``, ``90s``, ``2m``, ``1m30s`` or ``1h`` in seconds."""
    if isinstance(text, int | float):
        return float(text)
    value = str(text).strip().lower()
    if re.fullmatch(r"\d+(\.\d+)?", value):
        return float(value)
    parts = re.findall(r"(\d+(?:\.\d+)?)([hms])", value)
    if not parts or "".join(n + u for n, u in parts) != value:
        raise XstiltsError(f"cannot read duration {text!r}: write e.g. 30s, 2m or 1m30s")
    return sum(float(n) * {"h": 3600, "m": 60, "s": 1}[u] for n, u in parts)


def parse_ints(text: str, what: str) -> list[int]:
    try:
        values = [int(v) for v in str(text).split(",") if v.strip()]
    except ValueError:
        raise XstiltsError(f"{what}: expected comma-separated integers, got {text!r}") from None
    if not values or any(v < 1 for v in values):
        raise XstiltsError(f"{what}: expected positive integers, got {text!r}")
    return values


def parse_rates(text: str) -> list[tuple[float, bool]]:
    """``5,10`` (requests/s) or ``0.5x,0.9x`` (fractions of the peak closed-loop throughput): (value, relative)."""
    rates = []
    for part in str(text).split(","):
        part = part.strip().lower()
        if not part:
            continue
        relative = part.endswith("x")
        try:
            value = float(part[:-1] if relative else part)
        except ValueError:
            raise XstiltsError(f"--rates: cannot read {part!r}: write requests/s (10) or of peak (0.5x)") from None
        if value <= 0:
            raise XstiltsError(f"--rates: {part!r} is not positive")
        rates.append((value, relative))
    return rates


def percentile(ordered: list[float], q: float) -> float | None:
    """Nearest-rank percentile of an ascending list (the smallest value with at least q% at or below it)."""
    if not ordered:
        return None
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


def locust_command(url: str, scenario: Scenario, prefix: Path, api_key: str | None = None) -> list[str]:
    """The ``locust`` command line of a scenario (headless, quiet, bounded, writing its files under ``prefix``)."""
    command = [
        sys.executable,
        "-m",
        "locust",
        "-f",
        str(LOCUSTFILE),
        "--headless",
        "--host",
        url.rstrip("/"),
        "--users",
        str(scenario.users),
        "--spawn-rate",
        str(scenario.users),
        "--run-time",
        f"{max(1, math.ceil(scenario.duration_s))}s",
        "--payloads",
        str(scenario.payloads),
        "--max-requests",
        str(scenario.max_requests),
        "--latency-file",
        f"{prefix}_latency.json",
        "--bench-seed",
        str(scenario.seed),
        "--csv",
        str(prefix),
        "--json-file",
        str(prefix),
        "--only-summary",
        "--exit-code-on-error",
        "0",
        "--loglevel",
        "WARNING",
    ]
    if scenario.mode == "open" and scenario.rate:
        command += ["--arrival-rate", f"{scenario.rate:.6g}"]
    if api_key:
        command += ["--api-key", api_key]
    return command


def run_locust(command: list[str], timeout_s: float, log_path: Path) -> tuple[int | None, str, float]:
    """Run locust; past ``timeout_s`` it gets SIGTERM (it then writes its files), later SIGKILL."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env.pop("XSTILTS_BENCH_PAYLOADS", None)
    started = time.monotonic()
    ended_by = "locust"
    with log_path.open("w", encoding="utf-8") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        try:
            code: int | None = process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            ended_by = "killed"
            process.send_signal(signal.SIGTERM)
            try:
                code = process.wait(timeout=TERM_GRACE_S)
            except subprocess.TimeoutExpired:
                process.kill()
                code = process.wait()
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
    return code, ended_by, time.monotonic() - started


def summarize(records: list[list[float]], unfinished_ms: list[float], open_loop: bool = False) -> dict[str, Any]:
    """Throughput and latency of one run from its per-request records (start, latency ms, ok, sequences).

    Requests still unanswered at the end are not errors; in a closed loop they are the users' last requests,
    cut by the time bound. In an open loop they are the queue a slow server built up, so their age so far
    (a lower bound of their latency) joins the latency distribution: nothing is hidden by ending the run.
    """
    ok = [r for r in records if r[2]]
    failures = len(records) - len(ok)
    latencies = sorted([r[1] for r in ok] + (list(unfinished_ms) if open_loop else []))
    if records:
        first = min(r[0] for r in records)
        last = max(r[0] + r[1] / 1000 for r in records)
        window = max(last - first, 1e-9)
    else:
        window = 0.0

    def rate(n: float) -> float:
        return n / window if window else 0.0

    latency = Latency(
        **{f"p{q}": percentile(latencies, q) for q in PERCENTILES},
        max=latencies[-1] if latencies else None,
        min=latencies[0] if latencies else None,
        mean=sum(latencies) / len(latencies) if latencies else None,
    )
    return {
        "requests": len(records),
        "ok": len(ok),
        "failures": failures,
        "unfinished": len(unfinished_ms),
        "error_rate": failures / len(records) if records else None,
        "window_s": round(window, 4),
        "requests_per_s": rate(len(ok)),
        "sequences_per_s": rate(sum(r[3] for r in ok)),
        "latency_ms": latency,
        "latency_includes_unfinished": bool(open_loop and unfinished_ms),
        "unfinished_ms": Unfinished(len(unfinished_ms), max(unfinished_ms) if unfinished_ms else None),
    }


def read_locust_json(path: Path) -> LocustStats | None:
    """Locust's own final statistics for the ``predict`` entry (aggregated over workers when distributed)."""
    if not path.is_file():
        return None
    try:
        entries = json.loads(path.read_text())
    except json.JSONDecodeError:
        return None
    entry = next((e for e in entries if e.get("name") == "predict"), None)
    if entry is None:
        return None
    times = sorted((float(k), v) for k, v in entry.get("response_times", {}).items())
    count = sum(v for _, v in times)

    def pct(q: float) -> float | None:
        need = max(1, math.ceil(q / 100 * count))
        seen = 0
        for value, n in times:
            seen += n
            if seen >= need:
                return value
        return None

    return LocustStats(
        num_requests=entry["num_requests"],
        num_failures=entry["num_failures"],
        mean_ms=entry["total_response_time"] / entry["num_requests"] if entry["num_requests"] else None,
        max_ms=entry["max_response_time"],
        **{f"p{q}_ms": pct(q) for q in PERCENTILES},
    )


def worker_latency_files(prefix: Path) -> list[Path]:
    main = Path(f"{prefix}_latency.json")
    found = [main] if main.is_file() else []
    return found + sorted(main.parent.glob(f"{main.stem}.worker-*{main.suffix}"))


def run_scenario(
    url: str,
    model: str,
    scenario: Scenario,
    folder: Path,
    api_key: str | None = None,
    grace_s: float = STARTUP_GRACE_S,
) -> ScenarioResult:
    """Run one scenario against ``url`` and return its figures (never raises for a failed run: it is recorded)."""
    folder.mkdir(parents=True, exist_ok=True)
    prefix = folder / scenario.name
    before = server_metrics.scrape(url, api_key)
    command = locust_command(url, scenario, prefix, api_key)
    timeout = scenario.duration_s + grace_s
    code, ended_by, wall = run_locust(command, timeout, folder / f"{scenario.name}.log")
    after = server_metrics.scrape(url, api_key)
    log_text = (folder / f"{scenario.name}.log").read_text(encoding="utf-8", errors="replace")
    records: list[list[float]] = []
    unfinished: list[float] = []
    stopped = None
    for path in worker_latency_files(prefix):
        data = json.loads(path.read_text())
        records += data["records"]
        unfinished += data.get("unfinished_ms", [])
        stopped = stopped or data.get("ended_by")
    error = None
    if not records and not unfinished:
        tail = "\n".join(log_text.strip().splitlines()[-5:])
        error = f"locust recorded no request (exit code {code}): {tail}"
    summary = summarize(records, unfinished, scenario.mode == "open")
    ended = "killed" if ended_by == "killed" else (stopped or "unknown")
    within = ended != "killed" and summary["requests"] + summary["unfinished"] <= scenario.max_requests
    return ScenarioResult(
        **scenario.describe(),
        bounds=Bounds(scenario.duration_s, scenario.max_requests, timeout),
        wall_s=round(wall, 3),
        exit_code=code,
        client_cpu_warning="CPU usage" in log_text,
        ended_by=ended,
        error=error,
        **summary,
        within_bounds=within and wall <= timeout,
        locust=read_locust_json(Path(f"{prefix}.json")),
        server=server_metrics.delta(before, after, model),
    )
