"""The shipped Prometheus configuration and alert rules, with Debian's real ``prometheus`` and ``promtool``.

``deploy/prometheus/prometheus.yml`` scrapes as the ServiceMonitor does; ``alerts.yml`` passes ``promtool check
rules`` and its unit tests (``alerts.test.yml``), which must fail when a rule is broken; the PrometheusRule under
k8s/monitoring carries the same groups. Then a real Prometheus on 127.0.0.1, started with the shipped files (only the
target and a 1 s interval changed), scrapes a running ``xstilts serve`` and answers queries over the server's series.
"""

from __future__ import annotations

import math
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml

from tests.deploy.support import (
    ALERT_RULES,
    ALERT_TESTS,
    PROMETHEUS_CONFIG,
    PROMETHEUS_RULE,
    exported_series,
    find_tool,
    one,
)
from tests.helpers import unavailable
from tests.serve.conftest import ServerProcess
from xstilts.bench.servers import free_port

# generous waits (never asserted durations): on a loaded 2-core machine the server took over 90 s to be ready
SLOW_MACHINE_S = 300.0
HINT = "install Debian's prometheus package (.ci/install-system-deps) or set {env}"
# a comparison with a constant that ends a rule's expression: its threshold
THRESHOLD = re.compile(r"\s*(==|!=|>=|<=|>|<)\s*[\d.]+\s*$")


def tool(name: str) -> str:
    env = name.upper()
    path = find_tool(name, env)
    if path is None:
        unavailable(f"{name} not found: " + HINT.format(env=env))
    return path


@pytest.fixture(scope="module")
def promtool() -> str:
    return tool("promtool")


def rules() -> list[dict]:
    return [rule for group in yaml.safe_load(ALERT_RULES.read_text())["groups"] for rule in group["rules"]]


def run(command: list[str], cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=120, check=False)


def test_config_and_rules_pass_promtool_check(promtool: str) -> None:
    done = run([promtool, "check", "config", str(PROMETHEUS_CONFIG)])  # checks the rule files it names too
    assert done.returncode == 0, done.stdout + done.stderr
    done = run([promtool, "check", "rules", str(ALERT_RULES)])
    assert done.returncode == 0 and f"{len(rules())} rules found" in done.stdout, done.stdout + done.stderr


def test_rule_unit_tests_pass(promtool: str) -> None:
    done = run([promtool, "test", "rules", ALERT_TESTS.name], cwd=ALERT_TESTS.parent)
    assert done.returncode == 0 and "SUCCESS" in done.stdout, done.stdout + done.stderr


def test_the_asked_for_alerts_exist_and_each_has_a_firing_unit_test() -> None:
    names = {rule["alert"] for rule in rules()}
    assert {"XstiltsOverloaded", "XstiltsHighLatencyP99", "XstiltsNotReady", "XstiltsErrorRate"} <= names
    tested = yaml.safe_load(ALERT_TESTS.read_text())["tests"]
    fired = {case["alertname"] for test in tested for case in test["alert_rule_test"] if case["exp_alerts"]}
    quiet = {case["alertname"] for test in tested for case in test["alert_rule_test"] if not case["exp_alerts"]}
    assert names <= fired, f"no unit test expects these to fire: {names - fired}"
    assert names <= quiet, f"no unit test expects these to stay quiet early on: {names - quiet}"


@pytest.mark.parametrize("mutation", ["never fires", "no threshold"])
@pytest.mark.parametrize("alert", [rule["alert"] for rule in rules()])
def test_a_broken_rule_fails_its_unit_tests(promtool: str, tmp_path: Path, alert: str, mutation: str) -> None:
    """The unit tests can fail: a rule that never fires, or fires without its threshold (so also on the series
    meant to stay quiet), is caught."""
    document = yaml.safe_load(ALERT_RULES.read_text())
    for group in document["groups"]:
        for rule in group["rules"]:
            if rule["alert"] == alert:
                expr = rule["expr"].strip()
                if mutation == "never fires":
                    rule["expr"] = f"({expr}) and on() (vector(0) > 1)"
                else:
                    assert THRESHOLD.search(expr), f"{alert}: no threshold at the end of {expr}"
                    rule["expr"] = THRESHOLD.sub("", expr)
    (tmp_path / ALERT_RULES.name).write_text(yaml.safe_dump(document))
    shutil.copy(ALERT_TESTS, tmp_path / ALERT_TESTS.name)
    assert run([promtool, "check", "rules", ALERT_RULES.name], cwd=tmp_path).returncode == 0
    done = run([promtool, "test", "rules", ALERT_TESTS.name], cwd=tmp_path)
    assert done.returncode != 0, f"{alert} broken ({mutation}) and its unit tests still pass:\n{done.stdout}"
    assert alert in done.stdout + done.stderr


def test_rules_read_only_series_the_server_exports() -> None:
    series = set(exported_series()) | {"up"}
    for rule in rules():
        names = set(re.findall(r"\b(?:xstilts_\w+|up)\b(?=\s*[{\[)]|\s*[=<>!])", rule["expr"]))
        assert names, f"{rule['alert']} reads no series: {rule['expr']}"
        assert names <= series, f"{rule['alert']} reads series the server does not export: {names - series}"
        for counter in re.findall(r"\b(xstilts_\w+_total)\b", rule["expr"]):
            assert re.search(rf"rate\({counter}\b", rule["expr"]), f"{rule['alert']}: {counter} without rate()"


def test_the_prometheus_rule_carries_the_same_groups(rendered) -> None:
    rule = one(rendered["monitoring"], "PrometheusRule")
    assert rule["spec"] == yaml.safe_load(ALERT_RULES.read_text()), (
        "k8s/monitoring/prometheusrule.yaml and deploy/prometheus/alerts.yml differ: copy alerts.yml's groups over"
    )
    assert PROMETHEUS_RULE.is_file()


def test_the_scrape_config_mirrors_the_servicemonitor(rendered, cpu) -> None:
    """Same job name (the operator names it after the Service), path, interval and timeout as the ServiceMonitor."""
    monitor = one(rendered["monitoring"], "ServiceMonitor")
    service = one(cpu, "Service", "xstilts")
    (endpoint,) = monitor["spec"]["endpoints"]
    (job,) = yaml.safe_load(PROMETHEUS_CONFIG.read_text())["scrape_configs"]
    assert job["job_name"] == service["metadata"]["name"]
    assert job["metrics_path"] == endpoint["path"]
    assert (job["scrape_interval"], job["scrape_timeout"]) == (endpoint["interval"], endpoint["scrapeTimeout"])
    # both add a target label `endpoint`, which the server's own label of that name must win over
    assert job["honor_labels"] is True and endpoint["honorLabels"] is True
    (targets,) = job["static_configs"]
    assert targets["labels"] == {"service": service["metadata"]["name"], "endpoint": endpoint["port"]}


# -- a real Prometheus against a running server ----------------------------------------------------------------------


class Prometheus:
    """Debian's ``prometheus`` on 127.0.0.1 with the shipped configuration, its target and intervals changed."""

    def __init__(self, binary: str, target: str, folder: Path) -> None:
        config = yaml.safe_load(PROMETHEUS_CONFIG.read_text())
        config["global"].update(scrape_interval="1s", evaluation_interval="1s")
        (job,) = config["scrape_configs"]
        job.update(scrape_interval="1s", scrape_timeout="1s")
        job["static_configs"][0]["targets"] = [target]
        (folder / "prometheus.yml").write_text(yaml.safe_dump(config))
        shutil.copy(ALERT_RULES, folder / ALERT_RULES.name)
        self.url = f"http://127.0.0.1:{free_port()}"
        self.log = folder / "prometheus.log"
        command = [
            binary,
            f"--config.file={folder / 'prometheus.yml'}",
            f"--storage.tsdb.path={folder / 'data'}",
            f"--web.listen-address={self.url.removeprefix('http://')}",
        ]
        with open(self.log, "wb") as out:
            self.process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)

    def logs(self) -> str:
        return self.log.read_text(errors="replace")

    def query(self, promql: str) -> list[dict]:
        answer = httpx.get(f"{self.url}/api/v1/query", params={"query": promql}, timeout=10).json()
        assert answer["status"] == "success", answer
        return answer["data"]["result"]

    def wait(self, promql: str, holds, timeout: float = 60.0) -> list[dict]:
        """The query's result once ``holds(result)``; polls (Prometheus scrapes every second)."""
        deadline = time.monotonic() + timeout
        result: list[dict] = []
        while time.monotonic() < deadline:
            assert self.process.poll() is None, f"prometheus exited:\n{self.logs()}"
            try:
                result = self.query(promql)
            except httpx.TransportError:
                result = []
            if holds(result):
                return result
            time.sleep(0.25)
        raise AssertionError(f"{promql}: {result} after {timeout:.0f} s\n{self.logs()[-3000:]}")

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


@pytest.fixture(scope="module")
def scraped(
    tiny_repository: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[ServerProcess, Prometheus]]:
    binary = tool("prometheus")
    folder = tmp_path_factory.mktemp("prometheus")
    server = ServerProcess(tiny_repository, folder / "server.log").start(timeout=SLOW_MACHINE_S)
    prometheus = Prometheus(binary, server.url.removeprefix("http://"), folder)
    try:
        yield server, prometheus
    finally:
        prometheus.stop()
        assert server.stop(timeout=SLOW_MACHINE_S) == 0, server.logs()


def test_prometheus_scrapes_the_server(scraped: tuple[ServerProcess, Prometheus]) -> None:
    server, prometheus = scraped
    # scraped once before the requests, so that rate() sees them arrive (a counter's first sample has no increase)
    (up,) = prometheus.wait('up{job="xstilts"}', lambda r: len(r) == 1 and r[0]["value"][1] == "1")
    host = server.url.removeprefix("http://").split(":")[0]
    assert up["value"][1] == "1"  # a synthetic series: the target labels show
    assert {k: up["metric"][k] for k in ("service", "endpoint", "pod")} == {
        "service": "xstilts",
        "endpoint": "http",
        "pod": host,
    }, up["metric"]

    query = 'sum by (endpoint, status) (xstilts_requests_total{job="xstilts", model="tiny-xnli"})'

    def counts(result: list[dict]) -> dict[tuple[str, str], float]:
        return {(r["metric"]["endpoint"], r["metric"]["status"]): float(r["value"][1]) for r in result}

    with httpx.Client(base_url=server.url, timeout=60) as client:
        for index in range(12):
            body = {"inputs": [{"text": f"Request {index}.", "text_pair": "A pair."}]}
            assert client.post("/v1/models/tiny-xnli/predict", json=body).status_code == 200
            if index == 0:  # the server creates a series at its first observation: let Prometheus see it at 1 first
                prometheus.wait(query, lambda r: counts(r) == {("v1_predict", "200"): 1.0})
        v2 = {
            "inputs": [
                {"name": "text_a", "shape": [1], "datatype": "BYTES", "data": ["One text."]},
                {"name": "text_b", "shape": [1], "datatype": "BYTES", "data": ["Its pair."]},
            ]
        }
        for _ in range(3):
            assert client.post("/v2/models/tiny-xnli/infer", json=v2).status_code == 200
        assert client.post("/v1/models/tiny-xnli/predict", json={"inputs": []}).status_code == 422

    expected = {("v1_predict", "200"): 12.0, ("v2_infer", "200"): 3.0, ("v1_predict", "422"): 1.0}
    result = prometheus.wait(query, lambda r: counts(r) == expected)
    assert counts(result) == expected

    p99 = (
        "histogram_quantile(0.99, sum by (le) "
        '(rate(xstilts_request_duration_seconds_bucket{job="xstilts", model="tiny-xnli"}[1m])))'
    )
    (quantile,) = prometheus.wait(p99, lambda r: len(r) == 1 and math.isfinite(float(r[0]["value"][1])))
    assert 0 < float(quantile["value"][1]) <= 10.0, quantile  # within the histogram's buckets

    depth = prometheus.wait('xstilts_queue_depth{job="xstilts"}', lambda r: len(r) == 2)
    assert {r["metric"]["model"]: float(r["value"][1]) for r in depth} == {"tiny-xnli": 0.0, "tiny-xcopa": 0.0}

    def health(_: list[dict]) -> bool:
        groups = httpx.get(f"{prometheus.url}/api/v1/rules", timeout=10).json()["data"]["groups"]
        states.clear()
        states.update({r["name"]: r["health"] for g in groups for r in g["rules"]})
        return set(states.values()) == {"ok"}

    states: dict[str, str] = {}
    prometheus.wait("vector(1)", health, timeout=30)  # every rule evaluated without error on the real series
    assert set(states) == {rule["alert"] for rule in rules()}, states
