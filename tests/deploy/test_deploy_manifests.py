"""Every kustomization under k8s/ renders with kubectl, and what it renders is valid Kubernetes.

Built-in kinds are validated strictly (unknown fields fail) against the schemas kubernetes-validate ships, for an
older and the newest Kubernetes release it knows. Custom resources have no schema there: they are listed in
``CRD_KINDS`` and checked in their own tests (KServe's against its vendored CRD schemas, test_deploy_kserve.py; the
Prometheus Operator's ServiceMonitor field by field, its PrometheusRule against the rule file, which promtool
checks).
"""

from __future__ import annotations

import functools
from pathlib import Path

import pytest

from tests.deploy.support import CRD_KINDS, K8S_VERSIONS, kustomize_dirs, one, server_routes

DIRS = [str(d) for d in kustomize_dirs()]
EXPECTED_DIRS = {
    "base",
    "overlays/cpu",
    "overlays/gpu",
    "jobs/train",
    "jobs/export",
    "monitoring",
    "examples/queue-depth-hpa",
    "examples/models-init-container",
    "kserve/runtimes",
    "kserve/cpu",
    "kserve/gpu",
}


@functools.lru_cache(maxsize=1)
def _validator():
    """kubernetes-validate's ``validate``, with its JSON schema files read once instead of on every call."""
    import kubernetes_validate.utils as kv

    if not hasattr(kv.schema_contents, "cache_info"):
        kv.schema_contents = functools.lru_cache(maxsize=None)(kv.schema_contents)
    return kv


def test_the_expected_kustomizations_exist():
    assert {str(Path(d)) for d in EXPECTED_DIRS} <= set(DIRS)


@pytest.mark.parametrize("directory", DIRS)
def test_kustomization_renders(rendered, directory):
    docs = rendered[directory]
    assert docs, f"k8s/{directory} renders nothing"
    keys = [(d["apiVersion"], d["kind"], d["metadata"]["name"]) for d in docs]
    assert len(keys) == len(set(keys)), f"k8s/{directory} renders an object twice: {sorted(keys)}"


@pytest.mark.parametrize("directory", DIRS)
def test_builtin_objects_validate_strictly(rendered, directory):
    kv = _validator()
    versions = [kv.latest_version() if v == "latest" else v for v in K8S_VERSIONS]
    checked = 0
    for doc in rendered[directory]:
        if (doc["apiVersion"], doc["kind"]) in CRD_KINDS:
            continue
        for version in versions:
            try:
                kv.validate(doc, version, strict=True)
            except kv.ValidationError as exc:
                where = ".".join(str(p) for p in exc.path)
                pytest.fail(
                    f"k8s/{directory}: {doc['kind']}/{doc['metadata']['name']} is invalid for Kubernetes "
                    f"{version} at {where}: {exc.message}"
                )
            except kv.SchemaNotFoundError as exc:
                pytest.fail(f"k8s/{directory}: {exc.message}; a custom resource must be listed in CRD_KINDS")
        checked += 1
    crds = [d for d in rendered[directory] if (d["apiVersion"], d["kind"]) in CRD_KINDS]
    assert checked + len(crds) > 0, f"k8s/{directory} renders no object to validate"


def test_invalid_objects_are_caught():
    """The validator really is strict: a misspelt field and a wrong type both fail."""
    kv = _validator()
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "x"},
        "spec": {"ports": [{"port": 80, "targetPort": "http"}], "selectr": {"a": "b"}},
    }
    with pytest.raises(kv.ValidationError):
        kv.validate(service, "1.30.0", strict=True)
    service["spec"] = {"ports": [{"port": "eighty"}]}
    with pytest.raises(kv.ValidationError):
        kv.validate(service, "1.30.0", strict=True)


def test_crd_objects_are_only_the_listed_kinds(rendered):
    builtin_groups = ("v1", "apps/v1", "batch/v1", "policy/v1", "autoscaling/v2")
    for directory, docs in rendered.all().items():
        for doc in docs:
            known = doc["apiVersion"] in builtin_groups or (doc["apiVersion"], doc["kind"]) in CRD_KINDS
            assert known, f"k8s/{directory}: {doc['apiVersion']} {doc['kind']} is neither built in nor a listed CRD"


def test_servicemonitor_scrapes_the_server_metrics(rendered, cpu):
    """The ServiceMonitor (no schema available) is checked by hand: it selects the server's Service by its labels,
    scrapes a named port that Service has, on the server's real metrics route."""
    monitor = one(rendered["monitoring"], "ServiceMonitor")
    spec = monitor["spec"]
    assert set(spec) <= {"selector", "endpoints", "namespaceSelector", "jobLabel", "targetLabels", "podTargetLabels"}
    service = one(cpu, "Service", "xstilts")
    wanted = spec["selector"]["matchLabels"]
    assert wanted.items() <= service["metadata"]["labels"].items(), "the ServiceMonitor does not select the Service"
    ports = {p["name"] for p in service["spec"]["ports"]}
    routes = server_routes()
    for endpoint in spec["endpoints"]:
        assert set(endpoint) <= {"port", "path", "interval", "scrapeTimeout", "scheme", "honorLabels"}
        assert endpoint["port"] in ports, f"ServiceMonitor port {endpoint['port']} is not a Service port {ports}"
        assert endpoint.get("path", "/metrics") == "/metrics"
        assert "/metrics" in routes, f"the server has no /metrics route: it has {sorted(routes)}"
        interval = int(endpoint["interval"].rstrip("s"))
        timeout = int(endpoint["scrapeTimeout"].rstrip("s"))
        assert timeout <= interval, "a scrape timeout longer than the interval is rejected by Prometheus"


def test_grafana_dashboard_configmap_is_labelled_for_the_sidecar(rendered):
    dashboard = one(rendered["monitoring"], "ConfigMap", "xstilts-grafana-dashboard")
    assert dashboard["metadata"]["labels"].get("grafana_dashboard") == "1"
    assert dashboard["metadata"]["name"] == "xstilts-grafana-dashboard", "a hashed name would pile up copies"
    assert list(dashboard["data"]) == ["xstilts-dashboard.json"]
