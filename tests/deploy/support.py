"""Helpers for the deployment checks: rendering kustomizations, reading the Dockerfile, the server's real routes.

Everything here runs offline: kubectl only renders (``kubectl kustomize``, no cluster), the Kubernetes schemas come
from the kubernetes-validate package, and the server's routes are read from its code without loading a model.
"""

from __future__ import annotations

import fnmatch
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "k8s"
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
DASHBOARD = K8S / "monitoring" / "xstilts-dashboard.json"
PROMETHEUS_RULE = K8S / "monitoring" / "prometheusrule.yaml"
PROMETHEUS_DIR = ROOT / "deploy" / "prometheus"
PROMETHEUS_CONFIG = PROMETHEUS_DIR / "prometheus.yml"
ALERT_RULES = PROMETHEUS_DIR / "alerts.yml"
ALERT_TESTS = PROMETHEUS_DIR / "alerts.test.yml"
ADAPTER_VALUES = K8S / "monitoring" / "prometheus-adapter-values.yaml"
SERVE_PACKAGE = ROOT / "xstilts" / "serve"


# Kubernetes versions the built-in objects must validate against (strict schemas: unknown fields fail): an older
# release still common on managed clusters, and the newest schema kubernetes-validate carries.
K8S_VERSIONS = ("1.30.0", "latest")

# Custom resources have no schema in kubernetes-validate; each kind listed here is checked by its own test instead.
CRD_KINDS = {
    ("monitoring.coreos.com/v1", "ServiceMonitor"),
    ("monitoring.coreos.com/v1", "PrometheusRule"),
    ("serving.kserve.io/v1alpha1", "ClusterServingRuntime"),
    ("serving.kserve.io/v1beta1", "InferenceService"),
}

# The server contract: every setting's environment variable, and the metrics with their types.
SETTINGS_ENV = [
    "XSTILTS_REPOSITORY",
    "XSTILTS_HOST",
    "XSTILTS_PORT",
    "XSTILTS_GRPC_PORT",
    "XSTILTS_MODELS",
    "XSTILTS_VARIANT",
    "XSTILTS_PROVIDERS",
    "XSTILTS_REQUIRE_GPU",
    "XSTILTS_MAX_BATCH_SIZE",
    "XSTILTS_MAX_BATCH_TOKENS",
    "XSTILTS_MAX_QUEUE_DELAY_MS",
    "XSTILTS_MAX_QUEUE_SIZE",
    "XSTILTS_INTRA_OP_THREADS",
    "XSTILTS_INTER_OP_THREADS",
    "XSTILTS_MAX_BODY_BYTES",
    "XSTILTS_MAX_ITEMS",
    "XSTILTS_MAX_WINDOWS",
    "XSTILTS_VERIFY_BUNDLES",
    "XSTILTS_MODEL_CONTROL",
    "XSTILTS_POLL_SECONDS",
    "XSTILTS_API_KEY",
    "XSTILTS_API_KEY_FILE",
    "XSTILTS_AUTH_HEALTH",
    "XSTILTS_DRAIN_SECONDS",
    "XSTILTS_LOG_LEVEL",
    "XSTILTS_ACCESS_LOG",
    "XSTILTS_OTLP_ENDPOINT",
    "XSTILTS_TRACE_SAMPLE_RATIO",
]
CONTRACT_METRICS = {
    "xstilts_requests_total": "counter",
    "xstilts_request_duration_seconds": "histogram",
    "xstilts_queue_duration_seconds": "histogram",
    "xstilts_tokenization_duration_seconds": "histogram",
    "xstilts_inference_duration_seconds": "histogram",
    "xstilts_batch_size": "histogram",
    "xstilts_queue_depth": "gauge",
    "xstilts_tokens_total": "counter",
    "xstilts_model_info": "gauge",
    "xstilts_ready": "gauge",
}
# the series Prometheus stores for each metric type
SUFFIXES = {"counter": ("",), "gauge": ("",), "histogram": ("_bucket", "_sum", "_count")}
CONTRACT_ROUTES = {
    "/healthz",
    "/readyz",
    "/metrics",
    "/v2/health/live",
    "/v2/health/ready",
    "/v2/models/{name}",
    "/v2/models/{name}/infer",
    "/v1/models/{name}/predict",
    "/docs",
}


# --------------------------------------------------------------------------------------------------------------------
# tools
# --------------------------------------------------------------------------------------------------------------------


def find_tool(name: str, env: str) -> str | None:
    """``$env`` if set, else ``name`` on PATH, else next to this Python (a venv's bin/)."""
    if os.environ.get(env):
        return os.environ[env]
    found = shutil.which(name)
    if found:
        return found
    beside = Path(sys.executable).parent / name
    return str(beside) if beside.is_file() else None


def kustomize_dirs() -> list[Path]:
    """Every kustomization under k8s/, as paths relative to k8s/."""
    return sorted(p.parent.relative_to(K8S) for p in K8S.rglob("kustomization.yaml"))


def render(kubectl: str, directory: Path) -> list[dict[str, Any]]:
    """``kubectl kustomize`` one directory (relative to k8s/) into its objects."""
    done = subprocess.run(
        [kubectl, "kustomize", str(K8S / directory)], capture_output=True, text=True, timeout=120, check=False
    )
    if done.returncode != 0:
        raise AssertionError(f"kubectl kustomize k8s/{directory} failed ({done.returncode}):\n{done.stderr}")
    return [doc for doc in yaml.safe_load_all(done.stdout) if doc]


# --------------------------------------------------------------------------------------------------------------------
# rendered objects
# --------------------------------------------------------------------------------------------------------------------


def objects(docs: list[dict], kind: str) -> list[dict]:
    return [d for d in docs if d.get("kind") == kind]


def one(docs: list[dict], kind: str, name_prefix: str = "") -> dict:
    found = [d for d in objects(docs, kind) if d["metadata"]["name"].startswith(name_prefix)]
    assert len(found) == 1, f"expected one {kind} named {name_prefix}*, found {[d['metadata']['name'] for d in found]}"
    return found[0]


def container(deployment: dict, name: str = "server") -> dict:
    containers = {c["name"]: c for c in deployment["spec"]["template"]["spec"]["containers"]}
    assert name in containers, f"no container {name!r} in {deployment['metadata']['name']}"
    return containers[name]


def server_settings(docs: list[dict]) -> dict[str, str]:
    """The server ConfigMap's data, found through the Deployment's envFrom (the generated name has a hash)."""
    deployment = one(docs, "Deployment", "xstilts")
    refs = [e["configMapRef"]["name"] for e in container(deployment).get("envFrom", []) if "configMapRef" in e]
    assert len(refs) == 1, f"the server container should take its settings from one ConfigMap, got {refs}"
    maps = {d["metadata"]["name"]: d for d in objects(docs, "ConfigMap")}
    assert refs[0] in maps, f"envFrom names ConfigMap {refs[0]}, which the overlay does not render: {sorted(maps)}"
    return maps[refs[0]]["data"]


def cpu_quantity(value: str | int | float) -> float:
    text = str(value)
    return float(text[:-1]) / 1000 if text.endswith("m") else float(text)


def pod_claims(pod_spec: dict) -> set[str]:
    volumes = pod_spec.get("volumes", [])
    return {v["persistentVolumeClaim"]["claimName"] for v in volumes if "persistentVolumeClaim" in v}


# --------------------------------------------------------------------------------------------------------------------
# Dockerfile
# --------------------------------------------------------------------------------------------------------------------


@dataclass
class Stage:
    name: str
    base: str  # with the global build arguments' defaults filled in: what a plain `docker build` uses
    instructions: list[tuple[str, str]] = field(default_factory=list)  # (INSTRUCTION, arguments)
    written_base: str = ""  # the FROM argument as written, e.g. ``${PYTHON_IMAGE}``

    def args(self, instruction: str) -> list[str]:
        return [a for i, a in self.instructions if i == instruction]


def global_args(text: str | None = None) -> dict[str, str]:
    """The build arguments declared before the first FROM, with their defaults (the only ones FROM can use)."""
    defaults: dict[str, str] = {}
    for line in (DOCKERFILE.read_text() if text is None else text).splitlines():
        words = line.split(maxsplit=1)
        if words and words[0].upper() == "FROM":
            break
        if len(words) == 2 and words[0].upper() == "ARG":
            name, _, default = words[1].strip().partition("=")
            defaults[name] = default
    return defaults


def dockerfile_stages(text: str | None = None) -> dict[str, Stage]:
    """The Dockerfile's stages by name (unnamed stages by index), line continuations joined, comments dropped;
    each stage's base with the global build arguments' defaults substituted."""
    text = DOCKERFILE.read_text() if text is None else text
    defaults = global_args(text)
    logical: list[str] = []
    current = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not current and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):
            continue
        if line.endswith("\\"):
            current += line[:-1] + " "
            continue
        logical.append(current + line)
        current = ""
    stages: dict[str, Stage] = {}
    stage: Stage | None = None
    for line in logical:
        instruction, _, arguments = line.partition(" ")
        instruction = instruction.upper()
        if instruction == "FROM":
            parts = arguments.split()
            parts = [p for p in parts if not p.startswith("--platform")]
            name = parts[2] if len(parts) >= 3 and parts[1].upper() == "AS" else str(len(stages))
            base = re.sub(r"\$\{(\w+)\}|\$(\w+)", lambda m: defaults.get(m[1] or m[2], m[0]), parts[0])
            stage = Stage(name=name, base=base, written_base=parts[0])
            stages[name] = stage
        elif stage is not None:
            stage.instructions.append((instruction, arguments.strip()))
    return stages


def stage_chain(stages: dict[str, Stage], name: str) -> list[Stage]:
    """A stage and every stage it builds on or copies from, transitively."""
    seen: list[Stage] = []
    todo = [name]
    while todo:
        current = stages[todo.pop()]
        if current in seen:
            continue
        seen.append(current)
        if current.base in stages:
            todo.append(current.base)
        for copy in current.args("COPY"):
            match = re.search(r"--from=(\S+)", copy)
            if match and match.group(1) in stages:
                todo.append(match.group(1))
    return seen


def dockerignore_patterns() -> list[str]:
    lines = DOCKERIGNORE.read_text().splitlines()
    return [line.strip().rstrip("/") for line in lines if line.strip() and not line.strip().startswith("#")]


def dockerignored(relative: str, patterns: list[str]) -> bool:
    """Whether .dockerignore keeps ``relative`` (or a parent folder of it) out of the build context."""
    parts = Path(relative).parts
    ignored = False
    for pattern in patterns:
        negate = pattern.startswith("!")
        pattern = pattern.lstrip("!")
        for depth in range(1, len(parts) + 1):
            candidate = "/".join(parts[:depth])
            if fnmatch.fnmatch(candidate, pattern) or (
                pattern.startswith("**/") and fnmatch.fnmatch(parts[depth - 1], pattern[3:])
            ):
                ignored = not negate
                break
    return ignored


# --------------------------------------------------------------------------------------------------------------------
# the server's routes
# --------------------------------------------------------------------------------------------------------------------


def build_app(env: dict[str, str], api_key: str | None = None) -> tuple[Any, Any]:
    """(app, state): the server's FastAPI app for settings ``env``, with no model planned.

    With no planned model nothing is read from the repository, and the lifespan that would load models never runs
    (no ``with TestClient(...)``), so the app answers its probe routes exactly as configured. Settings go through
    the server's own ``load_settings``.
    """
    from xstilts.serve.core.state import ServerState
    from xstilts.serve.http.app import create_app
    from xstilts.serve.settings import load_settings

    state = ServerState(load_settings(env=env), planned=[], api_key=api_key)
    return create_app(state), state


def server_routes() -> set[str]:
    """Paths of the app ``create_app`` builds: its own routes and those of the routers it includes (through the
    OpenAPI schema, since FastAPI keeps included routers as opaque objects in ``app.routes``)."""
    app, _ = build_app({"XSTILTS_REPOSITORY": str(ROOT / "deploy" / "models")})
    return ({getattr(route, "path", "") for route in app.routes} | set(app.openapi()["paths"])) - {""}


def exported_series() -> dict[str, str]:
    """Series name -> type, from the server's own metrics registry (which must hold the contract's metrics)."""
    from xstilts.serve.http.metrics import Metrics

    families = {}
    for family in Metrics().registry.collect():
        name = family.name + ("_total" if family.type == "counter" else "")
        families[name] = family.type
    missing = CONTRACT_METRICS.items() - families.items()
    assert not missing, f"the server does not export these contract metrics (name, type): {sorted(missing)}"
    return {name + suffix: kind for name, kind in families.items() for suffix in SUFFIXES[kind]}
