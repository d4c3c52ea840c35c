"""The server Deployment agrees with the server: settings, routes, port, probes, shutdown drain, scaling.

The ConfigMap each overlay renders is loaded with the server's own ``load_settings``, and the probes are sent to the
server's real FastAPI app (built by ``create_app`` with no model, so nothing loads) with those settings and an API
key configured: each probe must answer without the key, and readiness must turn 503 once the server drains.
"""

from __future__ import annotations

import warnings

import pytest
import yaml

from tests.deploy.support import (
    ADAPTER_VALUES,
    CONTRACT_ROUTES,
    SETTINGS_ENV,
    build_app,
    container,
    cpu_quantity,
    objects,
    one,
    pod_claims,
    server_routes,
    server_settings,
)
from xstilts.serve.settings import load_settings

OVERLAYS = ["overlays/cpu", "overlays/gpu", "examples/queue-depth-hpa", "examples/models-init-container"]
PROBES = ("startupProbe", "readinessProbe", "livenessProbe")
DRAIN_MARGIN_SECONDS = 5


def deployment_of(docs: list[dict]) -> dict:
    return one(docs, "Deployment", "xstilts")


def test_server_implements_the_contract_routes():
    routes = server_routes()
    assert routes >= CONTRACT_ROUTES, f"missing: {sorted(CONTRACT_ROUTES - routes)}"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_probes_are_on_real_routes_and_the_named_port(rendered, overlay):
    routes = server_routes()
    server = container(deployment_of(rendered[overlay]))
    for probe in PROBES:
        assert probe in server, f"{overlay}: the server container has no {probe}"
        get = server[probe]["httpGet"]
        assert get["path"] in routes, f"{overlay}: {probe} path {get['path']} is not a server route"
        assert get["port"] == "http", f"{overlay}: {probe} should use the named port http, not {get['port']}"
    assert server["readinessProbe"]["httpGet"]["path"] == "/readyz", "readiness must follow loading and draining"
    assert server["livenessProbe"]["httpGet"]["path"] == "/healthz", "liveness must not fail while draining"


@pytest.mark.parametrize("overlay", ["overlays/cpu", "overlays/gpu"])
def test_probes_answer_on_the_real_app_with_the_overlay_settings(rendered, overlay):
    """With an API key set, each probe path answers 200 without it (kubelet sends none) while the API answers 401;
    once draining, readiness answers 503 and liveness still 200."""
    docs = rendered[overlay]
    env = server_settings(docs)
    app, state = build_app(env, api_key="a-test-key")
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*httpx.*")  # starlette's note on its test client's transport
        from fastapi.testclient import TestClient

    client = TestClient(app)  # no `with`: the lifespan (model loading) does not run
    server = container(deployment_of(docs))
    for probe in PROBES:
        path = server[probe]["httpGet"]["path"]
        assert client.get(path).status_code == 200, f"{overlay}: {probe} {path} does not answer 200 without a key"
    assert client.get("/v1/models").status_code == 401, "the API key is not enforced, so the check above is moot"
    metrics_path = deployment_of(docs)["spec"]["template"]["metadata"]["annotations"]["prometheus.io/path"]
    assert client.get(metrics_path).status_code == 200, "Prometheus (no key) cannot scrape the metrics"
    state.begin_drain()
    assert client.get(server["readinessProbe"]["httpGet"]["path"]).status_code == 503
    assert client.get(server["livenessProbe"]["httpGet"]["path"]).status_code == 200


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_settings_are_valid_for_the_server(rendered, overlay):
    env = server_settings(rendered[overlay])
    unknown = set(env) - set(SETTINGS_ENV) - {"XSTILTS_CACHE_DIR"}
    assert not unknown, f"{overlay}: ConfigMap keys the server does not read: {sorted(unknown)}"
    assert "XSTILTS_API_KEY" not in env, "the API key belongs in a Secret, not the ConfigMap"
    assert env["XSTILTS_HOST"] == "0.0.0.0", "the server must listen on all addresses in a pod"
    settings = load_settings(env=env)
    assert settings.port == int(env["XSTILTS_PORT"])
    assert settings.auth_health is False, "kubelet probes and Prometheus carry no API key"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_ports_agree(rendered, overlay):
    docs = rendered[overlay]
    port = int(server_settings(docs)["XSTILTS_PORT"])
    deployment = deployment_of(docs)
    ports = {p["name"]: p["containerPort"] for p in container(deployment)["ports"]}
    assert ports == {"http": port}, f"{overlay}: containerPort {ports} differs from XSTILTS_PORT={port}"
    annotations = deployment["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert int(annotations["prometheus.io/port"]) == port
    service = one(docs, "Service", "xstilts")
    assert [p["targetPort"] for p in service["spec"]["ports"]] == ["http"]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_shutdown_drains_within_the_grace_period(rendered, overlay):
    """preStop sleep (endpoints drop the pod) + XSTILTS_DRAIN_SECONDS (in-flight requests finish) + a margin must
    fit in terminationGracePeriodSeconds, or the kubelet kills requests mid-flight."""
    docs = rendered[overlay]
    drain = float(server_settings(docs)["XSTILTS_DRAIN_SECONDS"])
    pod = deployment_of(docs)["spec"]["template"]["spec"]
    command = container(deployment_of(docs))["lifecycle"]["preStop"]["exec"]["command"]
    assert command[0] == "sleep" and len(command) == 2, f"preStop should be a plain sleep, got {command}"
    pre_stop = float(command[1])
    assert 1 <= pre_stop <= 15, "a few seconds: long enough for endpoints to update, short enough not to stall"
    grace = pod["terminationGracePeriodSeconds"]
    assert grace >= pre_stop + drain + DRAIN_MARGIN_SECONDS, (
        f"{overlay}: terminationGracePeriodSeconds {grace} < preStop {pre_stop} + drain {drain} + "
        f"{DRAIN_MARGIN_SECONDS}"
    )


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_resources_and_threads(rendered, overlay):
    docs = rendered[overlay]
    server = container(deployment_of(docs))
    requests, limits = server["resources"]["requests"], server["resources"]["limits"]
    assert {"cpu", "memory"} <= set(requests) and {"cpu", "memory"} <= set(limits)
    assert cpu_quantity(requests["cpu"]) <= cpu_quantity(limits["cpu"])
    threads = int(server_settings(docs)["XSTILTS_INTRA_OP_THREADS"])
    assert 1 <= threads <= cpu_quantity(limits["cpu"]), "more ONNX Runtime threads than CPUs only adds contention"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_pdb_hpa_and_service_select_the_server(rendered, overlay):
    docs = rendered[overlay]
    deployment = deployment_of(docs)
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert deployment["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert one(docs, "Service", "xstilts")["spec"]["selector"].items() <= labels.items()
    pdb = one(docs, "PodDisruptionBudget", "xstilts")
    assert pdb["spec"]["selector"]["matchLabels"].items() <= labels.items()
    hpa = one(docs, "HorizontalPodAutoscaler", "xstilts")
    target = hpa["spec"]["scaleTargetRef"]
    assert (target["kind"], target["name"]) == ("Deployment", deployment["metadata"]["name"])
    assert hpa["spec"]["minReplicas"] > pdb["spec"]["minAvailable"], "at minimum scale a node drain would block"
    assert "replicas" not in deployment["spec"], "the HPA owns the replica count; `kubectl apply` would reset it"
    for spread in deployment["spec"]["template"]["spec"].get("topologySpreadConstraints", []):
        assert spread["labelSelector"]["matchLabels"].items() <= labels.items()
    assert any(m["type"] == "Resource" and m["resource"]["name"] == "cpu" for m in hpa["spec"]["metrics"])
    assert "cpu" in container(deployment)["resources"]["requests"], "CPU utilization needs a CPU request"


def test_gpu_overlay_requests_a_gpu_on_gpu_nodes(gpu):
    deployment = deployment_of(gpu)
    pod = deployment["spec"]["template"]["spec"]
    server = container(deployment)
    assert server["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert pod["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in pod["tolerations"]
    assert server["image"].split(":")[0].endswith("serve-gpu")
    env = server_settings(gpu)
    assert env["XSTILTS_PROVIDERS"] == "tensorrt,cuda,cpu"
    assert env["XSTILTS_REQUIRE_GPU"] == "true"


def test_cpu_overlay_stays_off_gpus(cpu):
    deployment = deployment_of(cpu)
    server = container(deployment)
    assert "nvidia.com/gpu" not in server["resources"]["limits"]
    assert "nodeSelector" not in deployment["spec"]["template"]["spec"]
    assert server["image"].split(":")[0].endswith("serve-cpu")
    env = server_settings(cpu)
    assert env["XSTILTS_PROVIDERS"] == "cpu" and env["XSTILTS_REQUIRE_GPU"] == "false"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_server_pod_security_and_volumes(rendered, overlay):
    docs = rendered[overlay]
    deployment = deployment_of(docs)
    pod = deployment["spec"]["template"]["spec"]
    server = container(deployment)
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert server["securityContext"]["readOnlyRootFilesystem"] is True
    env = server_settings(docs)
    mounts = {m["name"]: m for m in server["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    # the model repository: mounted read-only where XSTILTS_REPOSITORY points, from a PVC the overlay renders or
    # from an emptyDir an init container fills
    assert mounts["models"]["mountPath"] == env["XSTILTS_REPOSITORY"] and mounts["models"]["readOnly"] is True
    models = volumes["models"]
    if "persistentVolumeClaim" in models:
        claims = {d["metadata"]["name"] for d in objects(docs, "PersistentVolumeClaim")}
        assert models["persistentVolumeClaim"]["claimName"] in claims
    else:
        assert "emptyDir" in models
        fills = [c for c in pod.get("initContainers", []) for m in c["volumeMounts"] if m["name"] == "models"]
        assert fills, f"{overlay}: the models emptyDir is never filled"
    # the API key file lies in the Secret volume, under the key the Secret item maps
    secret = volumes["api-key"]["secret"]
    key_file = env["XSTILTS_API_KEY_FILE"]
    items = {i["path"] for i in secret["items"]}
    assert any(key_file == f"{mounts['api-key']['mountPath'].rstrip('/')}/{path}" for path in items)
    assert secret["secretName"] == "xstilts-api-key"
    # TensorRT engines and other caches go to a writable volume, since the root filesystem is read-only
    assert any(env["XSTILTS_CACHE_DIR"] == m["mountPath"] for m in server["volumeMounts"])
    assert pod_claims(pod) <= {"xstilts-models"}


def test_queue_depth_hpa_uses_a_metric_the_adapter_serves(rendered):
    hpa = one(rendered["examples/queue-depth-hpa"], "HorizontalPodAutoscaler", "xstilts")
    pods_metrics = [m["pods"]["metric"]["name"] for m in hpa["spec"]["metrics"] if m["type"] == "Pods"]
    assert pods_metrics == ["xstilts_queue_depth"]
    rules = yaml.safe_load(ADAPTER_VALUES.read_text())["rules"]["custom"]
    served = {rule["name"]["as"]: rule for rule in rules}
    for name in pods_metrics:
        assert name in served, f"prometheus-adapter does not publish {name}"
        assert served[name]["seriesQuery"].startswith("xstilts_queue_depth{")
        assert set(served[name]["resources"]["overrides"]) == {"namespace", "pod"}
    gpu_overlay = one(rendered["overlays/gpu"], "HorizontalPodAutoscaler", "xstilts")
    assert hpa["spec"]["maxReplicas"] == gpu_overlay["spec"]["maxReplicas"], "the example is the GPU overlay + metric"
