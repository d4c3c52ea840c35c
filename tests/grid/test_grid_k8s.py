"""``--emit-k8s``: an Indexed Job with one completion per cell, rendered by kubectl and validated offline."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml

from tests.deploy.support import K8S_VERSIONS, find_tool
from tests.grid.conftest import REPO, grid
from tests.helpers import unavailable
from xstilts.grid.cells import expand
from xstilts.grid.config import load_grid

GPU_GRID = REPO / "configs" / "grid" / "xlmr-gpu.yaml"


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[dict]]:
    kubectl = find_tool("kubectl", "KUBECTL")
    if kubectl is None:
        unavailable("kubectl not found: install Debian's kubernetes-client or set KUBECTL")
    folder = tmp_path_factory.mktemp("k8s") / "grid"
    done = grid(str(GPU_GRID), "--emit-k8s", str(folder))
    assert done.returncode == 0, done.stderr
    shown = subprocess.run([kubectl, "kustomize", str(folder)], capture_output=True, text=True, timeout=120)
    assert shown.returncode == 0, shown.stderr
    return folder, [d for d in yaml.safe_load_all(shown.stdout) if d]


def test_objects_validate_strictly(rendered):
    import kubernetes_validate.utils as kv

    _, docs = rendered
    assert sorted(d["kind"] for d in docs) == ["ConfigMap", "Job"]
    for doc in docs:
        for version in (kv.latest_version() if v == "latest" else v for v in K8S_VERSIONS):
            kv.validate(doc, version, strict=True)


def test_an_indexed_job_with_one_completion_per_cell(rendered):
    folder, docs = rendered
    job = next(d for d in docs if d["kind"] == "Job")
    cells = expand(load_grid(GPU_GRID))
    spec = job["spec"]
    assert spec["completionMode"] == "Indexed" and spec["completions"] == len(cells) == 156
    assert spec["parallelism"] == 4 and spec["backoffLimitPerIndex"] == 1
    pod = spec["template"]["spec"]
    assert pod["restartPolicy"] == "Never" and pod["securityContext"]["runAsNonRoot"] is True
    assert pod["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in pod["tolerations"]
    [container] = pod["containers"]
    assert container["image"] == "xstilts-train:0.1.0"
    assert container["command"] + container["args"] == [
        "xstilts", "grid", "/etc/xstilts/grid/grid.yaml", "--cell", "$(JOB_COMPLETION_INDEX)", "--output", "/runs/grid",
    ]  # fmt: skip
    env = {e["name"]: e for e in container["env"]}
    index = env["JOB_COMPLETION_INDEX"]["valueFrom"]["fieldRef"]["fieldPath"]
    assert index == "metadata.annotations['batch.kubernetes.io/job-completion-index']"
    assert env["XSTILTS_DATA_DIR"]["value"] == "/data"
    assert container["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert container["resources"]["requests"]["nvidia.com/gpu"] == 1
    volumes = {v["name"]: v for v in pod["volumes"]}
    claims = {v["persistentVolumeClaim"]["claimName"] for v in volumes.values() if "persistentVolumeClaim" in v}
    assert claims == {"xstilts-data", "xstilts-runs"}
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    assert volumes[mounts["/data"]]["persistentVolumeClaim"]["claimName"] == "xstilts-data"
    assert volumes[mounts["/runs"]]["persistentVolumeClaim"]["claimName"] == "xstilts-runs"
    # the grid config travels in the ConfigMap mounted where the command reads it, unchanged
    config_map = next(d for d in docs if d["kind"] == "ConfigMap")
    assert volumes[mounts["/etc/xstilts/grid"]]["configMap"]["name"] == config_map["metadata"]["name"]
    assert config_map["data"]["grid.yaml"] == GPU_GRID.read_text()
    assert len(expand(load_grid(folder / "grid.yaml"))) == spec["completions"]
    assert "--providers cuda,cpu" in load_grid(folder / "grid.yaml").bench.serve_args
