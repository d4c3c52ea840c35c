"""One wrk run (Debian's C load generator) with ``post.lua``: real request bodies posted in turn, the summary the
script prints read back, plus wrk's own CPU use and the server's."""

from __future__ import annotations

import json
import os
import resource
import subprocess
from pathlib import Path
from typing import Any

from xstilts.errors import XstiltsError

LUA = Path(__file__).with_name("post.lua")
SUMMARY_PREFIX = "XSTILTS_WRK "
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def process_cpu_seconds(pid: int) -> float:
    """User and system CPU seconds a process has used so far (Linux ``/proc``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime + stime


def wrk_command(url: str, connections: int, seconds: float) -> list[str]:
    return [
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


def read_summary(stdout: str) -> dict[str, Any]:
    """The ``XSTILTS_WRK {json}`` line ``post.lua`` prints when wrk is done."""
    line = next((x for x in stdout.splitlines() if x.startswith(SUMMARY_PREFIX)), None)
    if line is None:
        raise XstiltsError(f"wrk printed no {SUMMARY_PREFIX.strip()} summary: {stdout.strip()[-300:]}")
    return json.loads(line.removeprefix(SUMMARY_PREFIX))


def run_wrk(url: str, path: str, bodies: Path, connections: int, seconds: float, rate: float = 0.0,
            server_pid: int | None = None) -> dict[str, Any]:  # fmt: skip
    """One wrk run: its counts (``requests``, ``non_2xx``, errors), requests/s, latency in ms, and the CPU cores
    wrk and (with ``server_pid``) the server used; ``rate`` > 0 offers about that many requests/s in all."""
    env = {
        **os.environ,
        "XSTILTS_WRK_BODIES": str(bodies),
        "XSTILTS_WRK_PATH": path,
        "XSTILTS_WRK_RATE": str(rate),
        "XSTILTS_WRK_CONNECTIONS": str(connections),
    }
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    server_before = process_cpu_seconds(server_pid) if server_pid else 0.0
    done = subprocess.run(wrk_command(url, connections, seconds), env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise XstiltsError(f"wrk exited with {done.returncode}: {(done.stderr or done.stdout).strip()[-300:]}")
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    server_after = process_cpu_seconds(server_pid) if server_pid else 0.0
    result = read_summary(done.stdout)
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
