"""The KServe manifests under k8s/kserve: valid against KServe's published CRD schemas, and agreeing with the server.

The schemas are the CRDs' ``openAPIV3Schema`` of the KServe release the manifests target, vendored under
``tests/deploy/schemas/`` with their source. They are checked strictly, as ``kubectl apply`` (strict field
validation) does: an unknown field fails wherever the schema does not preserve unknown fields.
"""

from __future__ import annotations

import functools
import gzip
import json
import warnings
from pathlib import Path

import pytest

from tests.deploy.support import build_app, one, pod_claims, server_routes
from xstilts.serve.settings import load_settings

KSERVE_VERSION = "v0.20.0"
SCHEMAS = Path(__file__).parent / "schemas" / f"kserve-{KSERVE_VERSION}"
KSERVE_DIRS = ("kserve/runtimes", "kserve/cpu", "kserve/gpu")
PROBES = ("startupProbe", "readinessProbe", "livenessProbe")
IMAGE_UID = 10001  # the serving images' USER (tests/deploy/test_deploy_dockerfile.py checks it is non-root)
PRESTOP_MARGIN_SECONDS = 5


def strict(schema: dict) -> dict:
    """The schema with ``additionalProperties: false`` on every object that lists its properties and does not
    preserve unknown fields: what the API server's strict field validation rejects."""
    if isinstance(schema, dict):
        schema = {key: strict(value) for key, value in schema.items()}
        lists_properties = "properties" in schema and "additionalProperties" not in schema
        if lists_properties and not schema.get("x-kubernetes-preserve-unknown-fields"):
            schema["additionalProperties"] = False
    elif isinstance(schema, list):
        schema = [strict(value) for value in schema]
    return schema


@functools.lru_cache(maxsize=1)
def validators() -> dict[tuple[str, str], object]:
    """(apiVersion, kind) -> a jsonschema validator for each vendored schema."""
    import jsonschema

    found = {}
    for path in sorted(SCHEMAS.glob("*.json.gz")):
        doc = json.loads(gzip.decompress(path.read_bytes()))
        schema = strict(doc["openAPIV3Schema"])
        found[(f"{doc['group']}/{doc['version']}", doc["kind"])] = jsonschema.Draft7Validator(schema)
    assert found, f"no schemas in {SCHEMAS}"
    return found


def errors(doc: dict) -> list[str]:
    validator = validators()[(doc["apiVersion"], doc["kind"])]
    return [f"{'.'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(doc)]


def runtimes(rendered) -> dict[str, dict]:
    return {d["metadata"]["name"]: d for d in rendered["kserve/runtimes"] if d["kind"] == "ClusterServingRuntime"}


def runtime_env(runtime: dict) -> dict[str, str]:
    (container,) = runtime["spec"]["containers"]
    return {e["name"]: e["value"] for e in container["env"]}


def test_the_vendored_schemas_are_the_kinds_the_manifests_use() -> None:
    assert set(validators()) == {
        ("serving.kserve.io/v1alpha1", "ClusterServingRuntime"),
        ("serving.kserve.io/v1beta1", "InferenceService"),
    }
    assert KSERVE_VERSION in (SCHEMAS / "README.md").read_text()


@pytest.mark.parametrize("directory", KSERVE_DIRS)
def test_kserve_objects_validate_against_the_crd_schemas(rendered, directory: str) -> None:
    docs = rendered[directory]
    assert docs, f"k8s/{directory} renders nothing"
    for doc in docs:
        assert (doc["apiVersion"], doc["kind"]) in validators(), f"k8s/{directory}: no schema for {doc['kind']}"
        found = errors(doc)
        assert not found, f"k8s/{directory}: {doc['kind']}/{doc['metadata']['name']} is invalid for KServe:\n" + (
            "\n".join(found)
        )


def test_invalid_kserve_objects_are_caught(rendered) -> None:
    """The schemas really are strict: a misspelt field, a wrong type and a missing required field all fail."""
    service = one(rendered["kserve/cpu"], "InferenceService")
    misspelt = json.loads(json.dumps(service))
    misspelt["spec"]["predictor"]["model"]["storageURI"] = misspelt["spec"]["predictor"]["model"].pop("storageUri")
    assert any("storageURI" in e for e in errors(misspelt)), errors(misspelt)
    wrong = json.loads(json.dumps(service))
    wrong["spec"]["predictor"]["minReplicas"] = "two"
    assert errors(wrong)
    runtime = json.loads(json.dumps(runtimes(rendered)["xstilts-cpu"]))
    runtime["spec"]["containers"][0]["readinessProbe"]["httpGet"]["paht"] = "/readyz"
    assert errors(runtime)
    del runtime["spec"]["containers"]
    assert any("containers" in e for e in errors(runtime))


@pytest.mark.parametrize("name", ["xstilts-cpu", "xstilts-gpu"])
def test_runtimes_serve_the_repository_over_v2(rendered, name: str) -> None:
    """Settings load with the server's own loader; the port, probes, repository, user and writable folders agree."""
    runtime = runtimes(rendered)[name]
    spec = runtime["spec"]
    assert "v2" in spec["protocolVersions"]
    (container,) = spec["containers"]
    assert container["name"] == "kserve-container", "KServe finds the model server by this name"
    assert container["image"].split(":")[0] == f"xstilts-serve-{name.split('-')[1]}"
    settings = load_settings(env=runtime_env(runtime))
    assert str(settings.repository) == "/mnt/models", "KServe's storage initializer puts storageUri there"
    (port,) = container["ports"]
    assert port["containerPort"] == settings.port and settings.host == "0.0.0.0"
    assert spec["annotations"]["prometheus.kserve.io/port"] == str(settings.port)
    assert spec["annotations"]["prometheus.kserve.io/path"] in server_routes()
    routes = server_routes()
    for probe in PROBES:
        get = container[probe]["httpGet"]
        assert get["path"] in routes and get["port"] == port["name"], f"{name}: {probe} {get}"
    security = container["securityContext"]
    assert security["runAsNonRoot"] and security["runAsUser"] == IMAGE_UID and security["readOnlyRootFilesystem"]
    mounts = {m["mountPath"] for m in container["volumeMounts"]}
    volumes = {v["name"] for v in spec["volumes"] if "emptyDir" in v}
    assert {m["name"] for m in container["volumeMounts"]} <= volumes
    cache = runtime_env(runtime)["XSTILTS_CACHE_DIR"]  # xstilts.paths.cache_dir: TensorRT engines, conversions
    assert any(cache == m or cache.startswith(m + "/") for m in mounts), f"{name}: cache {cache} is not writable"
    assert "/tmp" in mounts
    prestop = int(container["lifecycle"]["preStop"]["exec"]["command"][-1])
    assert prestop + settings.drain_seconds + PRESTOP_MARGIN_SECONDS <= 35, "the InferenceServices' grace period"
    if name == "xstilts-gpu":
        assert runtime_env(runtime)["XSTILTS_PROVIDERS"].split(",")[0] == "tensorrt" and settings.require_gpu
        assert container["resources"]["limits"]["nvidia.com/gpu"] == "1"
        assert container["startupProbe"]["failureThreshold"] * container["startupProbe"]["periodSeconds"] >= 900


@pytest.mark.parametrize("name", ["xstilts-cpu", "xstilts-gpu"])
def test_runtime_probes_answer_on_the_real_app(rendered, name: str) -> None:
    """Each probe answers 200 on the server's app with the runtime's settings; once draining, readiness 503."""
    runtime = runtimes(rendered)[name]
    env = {**runtime_env(runtime), "XSTILTS_REQUIRE_GPU": "false"}  # no GPU here; the probes do not depend on it
    app, state = build_app(env)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*httpx.*")
        from fastapi.testclient import TestClient

    client = TestClient(app)
    (container,) = runtime["spec"]["containers"]
    for probe in PROBES:
        assert client.get(container[probe]["httpGet"]["path"]).status_code == 200, probe
    state.begin_drain()
    assert client.get(container["readinessProbe"]["httpGet"]["path"]).status_code == 503
    assert client.get(container["livenessProbe"]["httpGet"]["path"]).status_code == 200


@pytest.mark.parametrize("variant", ["cpu", "gpu"])
def test_inference_services_use_their_runtime(rendered, cpu, variant: str) -> None:
    service = one(rendered[f"kserve/{variant}"], "InferenceService")
    predictor = service["spec"]["predictor"]
    model = predictor["model"]
    runtime = runtimes(rendered)[model["runtime"]]
    assert model["runtime"] == f"xstilts-{variant}"
    formats = {(f["name"], f.get("version")) for f in runtime["spec"]["supportedModelFormats"]}
    assert (model["modelFormat"]["name"], model["modelFormat"].get("version")) in formats
    assert model["protocolVersion"] in runtime["spec"]["protocolVersions"]
    claim = model["storageUri"].removeprefix("pvc://").split("/")[0]
    assert claim in pod_claims(one(cpu, "Deployment", "xstilts")["spec"]["template"]["spec"]), (
        f"storageUri names claim {claim}, not the model repository k8s/base creates"
    )
    assert service["metadata"]["annotations"]["serving.kserve.io/deploymentMode"] == "Standard"
    assert predictor["terminationGracePeriodSeconds"] == 35
    assert 1 < predictor["minReplicas"] <= predictor["maxReplicas"], "one replica cannot roll without a gap"
    (container,) = runtime["spec"]["containers"]
    assert model["resources"] == container["resources"], "the InferenceService's resources differ from its runtime's"
    if variant == "gpu":
        assert model["resources"]["limits"]["nvidia.com/gpu"] == "1"
        assert predictor["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
        assert {t["key"] for t in predictor["tolerations"]} == {"nvidia.com/gpu"}
