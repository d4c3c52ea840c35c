"""compose.yaml: valid for Debian's docker-compose, and the whole stack up with stand-in images.

The server service runs the ``serve-cpu`` image the session built FROM the Debian stand-in; the Prometheus service
runs a stand-in too (this machine's Debian ``prometheus`` binary laid out as ``prom/prometheus``), with the shipped
deploy/prometheus files mounted as compose.yaml mounts them. Prometheus scrapes every 15 s there, as shipped.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml

from tests.container.engine import ROOT, SERVE_IMAGE, Engine, build_prometheus_standin
from tests.deploy.support import global_args
from tests.helpers import unavailable
from xstilts.bench.servers import free_port
from xstilts.serve.settings import load_settings

COMPOSE_FILE = ROOT / "compose.yaml"
PROJECT = "xstilts-test"
# the variables compose.yaml reads (its header documents them)
SETTINGS = ("XSTILTS_MODELS", "XSTILTS_HTTP_PORT", "PROMETHEUS_PORT", "PYTHON_IMAGE", "PROMETHEUS_IMAGE")


def compose_binary() -> str:
    found = shutil.which("docker-compose")
    if found is None:
        unavailable("docker-compose not found: install Debian's docker-compose (.ci/install-system-deps)")
    return found


def compose(env: dict[str, str], *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    command = [compose_binary(), "--file", str(COMPOSE_FILE), "--project-name", PROJECT, *args]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=timeout, check=False)
    assert done.returncode == 0, (
        f"docker-compose {' '.join(args)} exited {done.returncode}:\n{done.stdout}{done.stderr}"
    )
    return done


def test_compose_file_is_valid_and_matches_the_image() -> None:
    """``docker-compose config`` with the defaults: what a user with a registry gets."""
    env = {k: v for k, v in os.environ.items() if k not in SETTINGS}
    rendered = yaml.safe_load(compose(env, "config").stdout)
    services = rendered["services"]
    assert set(services) == {"xstilts", "prometheus"}
    server = services["xstilts"]
    assert server["image"] == SERVE_IMAGE and server["build"]["target"] == "serve-cpu"
    default = global_args()["PYTHON_IMAGE"]
    assert server["build"]["args"] == {"PYTHON_IMAGE": default}, "compose.yaml's base differs from the Dockerfile's"
    assert all(str(p).startswith("127.0.0.1:") for p in server["ports"]), server["ports"]
    assert any(v.endswith(":/models:ro") for v in server["volumes"]), server["volumes"]
    assert server["read_only"] is True and "/tmp" in server["tmpfs"]
    drain = load_settings(env={"XSTILTS_REPOSITORY": "/models"}).drain_seconds
    grace = int(server["stop_grace_period"].rstrip("s"))
    assert grace >= drain + 5, f"stop_grace_period {grace} s leaves the {drain} s drain no margin"
    prometheus = services["prometheus"]
    (config,) = [v for v in prometheus["volumes"] if v.endswith(":/etc/prometheus:ro")]
    assert Path(config.split(":")[0]) == ROOT / "deploy" / "prometheus"
    assert "--config.file=/etc/prometheus/prometheus.yml" in prometheus["command"]
    scrape = yaml.safe_load((ROOT / "deploy" / "prometheus" / "prometheus.yml").read_text())["scrape_configs"]
    assert scrape[0]["static_configs"][0]["targets"] == ["xstilts:8000"], "Prometheus scrapes the compose service"


@pytest.fixture()
def stack(engine: Engine, serve_image: str, standin: str, mounted_repository: Path) -> Iterator[dict[str, str]]:
    """``docker-compose up`` of the whole file with the stand-ins; ``down`` (volumes too) at the end."""
    binary = shutil.which("prometheus")
    if binary is None:
        unavailable("prometheus not found: install Debian's prometheus package (.ci/install-system-deps)")
    env = {
        **engine.env(),
        "PYTHON_IMAGE": standin,
        "PROMETHEUS_IMAGE": build_prometheus_standin(engine, standin, Path(binary)),
        "XSTILTS_MODELS": str(mounted_repository),
        "XSTILTS_HTTP_PORT": str(free_port()),
        "PROMETHEUS_PORT": str(free_port()),
    }
    compose(env, "down", "--volumes")  # what a killed earlier run left
    compose(env, "up", "--detach", "--no-build")  # the image serve_image built: the one compose.yaml names
    try:
        yield env
    finally:
        logs = compose(env, "logs", "--no-color").stdout
        compose(env, "down", "--volumes", "--timeout", "30")
        print(logs[-2000:])


def test_the_stack_serves_and_its_prometheus_scrapes_the_server(stack: dict[str, str]) -> None:
    server = f"http://127.0.0.1:{stack['XSTILTS_HTTP_PORT']}"
    prometheus = f"http://127.0.0.1:{stack['PROMETHEUS_PORT']}"
    deadline = time.monotonic() + 90
    while True:
        try:
            if httpx.get(f"{server}/readyz", timeout=2).status_code == 200:
                break
        except httpx.TransportError:
            pass
        assert time.monotonic() < deadline, "the compose server never turned ready"
        time.sleep(0.2)
    for index in range(5):
        body = {"inputs": [{"text": f"Compose {index}.", "text_pair": "A pair."}]}
        assert httpx.post(f"{server}/v1/models/tiny-xnli/predict", json=body, timeout=60).status_code == 200
    query = 'sum(xstilts_requests_total{job="xstilts", endpoint="v1_predict", status="200"})'
    deadline = time.monotonic() + 120  # scrapes every 15 s, as shipped
    result: list = []
    while time.monotonic() < deadline:
        try:
            result = httpx.get(f"{prometheus}/api/v1/query", params={"query": query}, timeout=5).json()["data"][
                "result"
            ]
        except (httpx.TransportError, KeyError, ValueError):
            result = []
        if result and float(result[0]["value"][1]) == 5:
            break
        time.sleep(1)
    assert result and float(result[0]["value"][1]) == 5, f"{query}: {result}"
    rules = httpx.get(f"{prometheus}/api/v1/rules", timeout=5).json()["data"]["groups"]
    assert {r["name"] for g in rules for r in g["rules"]} >= {"XstiltsNotReady", "XstiltsErrorRate"}
