"""The Grafana dashboard reads only metrics the server exports, under the names Prometheus stores them."""

from __future__ import annotations

import json
import re

import pytest

from tests.deploy.support import DASHBOARD, exported_series

PROMQL_WORDS = {
    "sum",
    "rate",
    "irate",
    "increase",
    "histogram_quantile",
    "by",
    "without",
    "max",
    "min",
    "avg",
    "count",
    "label_values",
    "le",
    "model",
    "endpoint",
    "status",
    "pod",
    "variant",
    "provider",
    "precision",
    "on",
    "and",
    "or",
}


@pytest.fixture(scope="module")
def dashboard() -> dict:
    return json.loads(DASHBOARD.read_text())


def panels(dashboard: dict) -> list[dict]:
    return [p for p in dashboard["panels"] if p["type"] != "row"]


def expressions(dashboard: dict) -> list[str]:
    return [t["expr"] for p in panels(dashboard) for t in p["targets"]]


def test_every_query_uses_exported_series(dashboard):
    series = exported_series()
    used = set()
    for expr in expressions(dashboard):
        assert expr.count("(") == expr.count(")") and expr.count("{") == expr.count("}"), expr
        names = set(re.findall(r"\bxstilts_\w+", expr))
        assert names, f"query reads no xstilts metric: {expr}"
        unknown = names - set(series)
        assert not unknown, f"{expr}\nreads series the server does not export: {unknown}"
        used |= names
        for quantile in re.finditer(r"histogram_quantile\(\s*([\d.]+)\s*,(.*)", expr):
            assert 0 < float(quantile.group(1)) < 1
            assert "_bucket" in quantile.group(2) and re.search(r"by \([^)]*\ble\b", quantile.group(2)), expr
        for counter in re.findall(r"\b(xstilts_\w+_total)\b", expr):
            assert re.search(rf"(rate|increase)\({counter}\b", expr), f"{counter} is a counter: use rate() ({expr})"
    wanted = {
        "xstilts_requests_total",
        "xstilts_request_duration_seconds_bucket",
        "xstilts_queue_duration_seconds_bucket",
        "xstilts_inference_duration_seconds_bucket",
        "xstilts_batch_size_bucket",
        "xstilts_queue_depth",
    }
    assert wanted <= used, f"the dashboard leaves out {wanted - used}"


def test_the_asked_for_panels_are_there(dashboard):
    by_title = {p["title"].lower(): p for p in panels(dashboard)}

    def find(*words: str) -> dict:
        hits = [p for title, p in by_title.items() if all(w in title for w in words)]
        assert hits, f"no panel titled with {words}: {sorted(by_title)}"
        return hits[0]

    assert "xstilts_requests_total" in find("request rate")["targets"][0]["expr"]
    latency = [t["expr"] for t in find("latency", "p50", "p99")["targets"]]
    assert any(e.startswith("histogram_quantile(0.5,") for e in latency)
    assert any(e.startswith("histogram_quantile(0.99,") for e in latency)
    queue_vs_inference = " ".join(t["expr"] for t in find("queue", "inference")["targets"])
    assert "xstilts_queue_duration_seconds" in queue_vs_inference
    assert "xstilts_inference_duration_seconds" in queue_vs_inference
    assert "xstilts_batch_size" in find("batch size")["targets"][0]["expr"]
    errors = find("errors", "status")["targets"][0]
    assert "by (status)" in errors["expr"] and 'status=~"[45].."' in errors["expr"]


def test_dashboard_is_importable(dashboard):
    assert dashboard["uid"] and dashboard["title"] and isinstance(dashboard["schemaVersion"], int)
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource" and variables["datasource"]["query"] == "prometheus"
    for panel in dashboard["panels"]:
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24, f"{panel['title']} is wider than the grid"
        if panel["type"] != "row":
            assert panel["datasource"]["uid"] == "${datasource}"
            assert panel["description"], f"{panel['title']} has no description"
    for expr in expressions(dashboard):
        if "xstilts_ready" not in expr:
            assert 'model=~"$model"' in expr, f"query ignores the model selector: {expr}"
    for expr in expressions(dashboard):
        words = set(re.findall(r"\b[a-z_]+\b(?=\s*\()", expr)) - PROMQL_WORDS
        assert not words, f"unexpected functions {words} in {expr}"
