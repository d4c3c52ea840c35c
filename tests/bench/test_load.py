"""Short locust runs against a real server: sane figures, and every run ends within its bounds."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from xstilts.bench import load
from xstilts.bench.payloads import make_payloads, write_payloads
from xstilts.bench.servers import free_port


@pytest.fixture(scope="module")
def payload_file(xnli_sample, tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("payloads")
    return write_payloads(folder / "online.json", make_payloads(xnli_sample, "tiny-xnli", 1))


def scenario(payload_file: Path, name: str, mode: str, users: int, seconds: float, cap: int, **extra):
    return load.Scenario(name, mode, users, seconds, cap, payload_file, 1, **extra)


def test_closed_loop_run_is_sane_and_bounded_in_time(server, payload_file, tmp_path):
    started = time.monotonic()
    result = load.run_scenario(server.url, "tiny-xnli", scenario(payload_file, "c2", "closed", 2, 3, 100_000), tmp_path)
    elapsed = time.monotonic() - started
    assert not result.error, result
    assert result.ended_by == "time" and result.within_bounds
    assert result.failures == 0 and result.error_rate == 0
    assert result.requests > 10 and result.requests_per_s > 0 and result.sequences_per_s > 0
    lat = result.latency_ms
    assert 0 < lat.p50 <= lat.p90 <= lat.p95 <= lat.p99 <= lat.max
    assert result.window_s <= 3.5
    assert elapsed < 3 + load.STARTUP_GRACE_S
    # the server saw those requests: its own metrics, before and after
    seen = result.server
    assert seen.requests.get("200", 0) >= result.requests
    assert seen.mean_batch_size >= 1 and seen.mean_inference > 0 and seen.mean_queue is not None
    # locust's own statistics agree on the count
    assert result.locust.num_requests >= result.requests
    assert (tmp_path / "c2_stats.csv").is_file()


def test_request_cap_ends_the_run(server, payload_file, tmp_path):
    result = load.run_scenario(server.url, "tiny-xnli", scenario(payload_file, "cap", "closed", 3, 30, 40), tmp_path)
    assert result.ended_by == "requests" and result.within_bounds
    assert result.requests + result.unfinished <= 40 and result.requests >= 37
    assert result.wall_s < 20


def test_open_loop_keeps_its_arrival_rate(server, payload_file, tmp_path):
    run = scenario(payload_file, "o", "open", 1, 3, 10_000, rate=20.0)
    result = load.run_scenario(server.url, "tiny-xnli", run, tmp_path)
    assert result.failures == 0 and result.within_bounds
    assert 20 <= result.requests + result.unfinished <= 100  # Poisson arrivals at 20/s for up to 3 s
    assert result.latency_ms.p50 <= result.latency_ms.p99
    assert "--arrival-rate" in load.locust_command(server.url, run, tmp_path / "x")


def test_unreachable_server_is_recorded_not_raised(payload_file, tmp_path):
    url = f"http://127.0.0.1:{free_port()}"
    result = load.run_scenario(url, "tiny-xnli", scenario(payload_file, "down", "closed", 1, 2, 20), tmp_path)
    assert result.error_rate == 1.0 or result.error
    assert result.server is None and result.within_bounds


def test_locustfile_works_alone(server, data_dir, tmp_path):
    """``locust -f`` on the shipped file, no payload file: it builds its own from the data folder."""
    command = [
        sys.executable,
        "-m",
        "locust",
        "-f",
        str(load.LOCUSTFILE),
        "--headless",
        "-H",
        server.url,
        "-u",
        "1",
        "-r",
        "1",
        "-t",
        "10s",
        "--model",
        "tiny-xcopa",
        "--per-language",
        "2",
        "--data-dir",
        str(data_dir),
        "--max-requests",
        "15",
        "--json",
        "--only-summary",
        "--loglevel",
        "ERROR",
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    stats = json.loads(done.stdout)
    entry = next(e for e in stats if e["name"] == "predict")
    assert entry["num_requests"] == 15 and entry["num_failures"] == 0


def test_distributed_master_and_worker_share_the_cap(server, payload_file, tmp_path):
    """Locust's own distributed mode: one master, one worker (two processes here, two machines in real use)."""
    port = str(free_port())
    base = [sys.executable, "-m", "locust", "-f", str(load.LOCUSTFILE), "--loglevel", "WARNING"]
    worker = subprocess.Popen(
        [*base, "--worker", "--master-host", "127.0.0.1", "--master-port", port, "--payloads", str(payload_file),
         "--latency-file", str(tmp_path / "lat.json")],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        master = subprocess.run(
            [*base, "--master", "--master-bind-port", port, "--expect-workers", "1", "--expect-workers-max-wait",
             "30", "--headless", "-H", server.url, "-u", "2", "-r", "2", "-t", "20s", "--payloads", str(payload_file),
             "--max-requests", "60", "--json-file", str(tmp_path / "master"), "--only-summary"],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert master.returncode == 0, master.stderr
        worker.wait(timeout=20)
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()
    stats = load.read_locust_json(tmp_path / "master.json")
    assert stats.num_requests == 60 and stats.num_failures == 0
    [written] = list(tmp_path.glob("lat.worker-*.json"))
    assert len(json.loads(written.read_text())["records"]) == 60
