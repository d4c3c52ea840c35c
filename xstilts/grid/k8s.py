"""The grid as a Kubernetes Indexed Job: one pod per cell (``--cell $(JOB_COMPLETION_INDEX)``), the grid config
in a ConfigMap, the data and runs volumes of the training Job (k8s/jobs/train), one GPU per pod.

Pods write only their own cell folder and row file; the shared phase store is guarded by a file lock, so cells
sharing a phase train it once, one after the other.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from xstilts.atomic import write_text_atomic
from xstilts.grid.cells import Cell
from xstilts.grid.config import GridConfig

CONFIG_DIR = "/etc/xstilts/grid"
CONFIG_KEY = "grid.yaml"
IMAGE = "xstilts-train"
INDEX_ENV = "JOB_COMPLETION_INDEX"
LABELS = {"app.kubernetes.io/name": "xstilts", "app.kubernetes.io/component": "grid"}

KUSTOMIZATION_HEADER = """\
# The research grid of {config} as a Kubernetes Indexed Job: {cells} cells, one pod each, {parallelism} at a time.
# Written by `xstilts grid {config} --emit-k8s DIR`; render with `kubectl kustomize DIR`.
# It mounts the claims xstilts-data and xstilts-runs that k8s/jobs/train creates (apply that first, fill the data
# claim). With parallelism above 1 across nodes both claims must be ReadWriteMany (or pin the pods to one node).
# The image needs the train, export, serve and bench extras (and onnxruntime-gpu for `--providers cuda,...`).
# Results gather in {output}/results.jsonl; the report: `xstilts grid grid.yaml --output {output} --report DIR`.
"""


def job(config: GridConfig, cells: list[Cell]) -> dict[str, Any]:
    k = config.kubernetes
    gpus = {"nvidia.com/gpu": k.gpus}
    container = {
        "name": "grid",
        "image": IMAGE,
        "imagePullPolicy": "IfNotPresent",
        "command": ["xstilts"],
        "args": ["grid", f"{CONFIG_DIR}/{CONFIG_KEY}", "--cell", f"$({INDEX_ENV})", "--output", k.output],
        "env": [
            # Set by the Job controller too; declared here so that $(JOB_COMPLETION_INDEX) in args always expands.
            {
                "name": INDEX_ENV,
                "valueFrom": {
                    "fieldRef": {"fieldPath": "metadata.annotations['batch.kubernetes.io/job-completion-index']"}
                },
            },
            {"name": "XSTILTS_DATA_DIR", "value": "/data"},
            {"name": "XSTILTS_CACHE_DIR", "value": "/runs/.cache"},
            {"name": "HF_HOME", "value": "/runs/.cache/huggingface"},
        ],
        "resources": {
            "requests": {"cpu": k.cpu, "memory": k.memory, **gpus},
            "limits": {"memory": k.memory, **gpus},
        },
        "volumeMounts": [
            {"name": "data", "mountPath": "/data", "readOnly": True},
            {"name": "runs", "mountPath": "/runs"},
            {"name": "config", "mountPath": CONFIG_DIR, "readOnly": True},
            {"name": "dshm", "mountPath": "/dev/shm"},
        ],
    }
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": k.name, "labels": LABELS},
        "spec": {
            "completionMode": "Indexed",
            "completions": len(cells),
            "parallelism": min(k.parallelism, len(cells)),
            "backoffLimitPerIndex": k.backoff_limit_per_index,
            "ttlSecondsAfterFinished": 604800,
            "template": {
                "metadata": {"labels": LABELS},
                "spec": {
                    "restartPolicy": "Never",
                    "automountServiceAccountToken": False,
                    "nodeSelector": {"nvidia.com/gpu.present": "true"},
                    "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
                    "securityContext": {
                        "runAsNonRoot": True,
                        "runAsUser": 10001,
                        "runAsGroup": 10001,
                        "fsGroup": 10001,
                    },
                    "containers": [container],
                    "volumes": [
                        {"name": "data", "persistentVolumeClaim": {"claimName": "xstilts-data", "readOnly": True}},
                        {"name": "runs", "persistentVolumeClaim": {"claimName": "xstilts-runs"}},
                        {"name": "config", "configMap": {"name": f"{k.name}-config"}},
                        {"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": "8Gi"}},
                    ],
                },
            },
        },
    }


def kustomization(config: GridConfig) -> dict[str, Any]:
    k = config.kubernetes
    return {
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "resources": ["job-grid.yaml"],
        "images": [{"name": IMAGE, "newName": k.image, "newTag": k.tag}],
        "configMapGenerator": [{"name": f"{k.name}-config", "files": [CONFIG_KEY]}],
    }


def emit(config: GridConfig, config_path: Path, cells: list[Cell], directory: Path) -> None:
    """Write ``job-grid.yaml``, ``kustomization.yaml`` and the grid config itself (the pods expand the same cells)."""
    k = config.kubernetes
    header = KUSTOMIZATION_HEADER.format(
        config=config_path.name, cells=len(cells), parallelism=min(k.parallelism, len(cells)), output=k.output
    )
    write_text_atomic(directory / CONFIG_KEY, config_path.read_text(encoding="utf-8"))
    write_text_atomic(directory / "job-grid.yaml", yaml.safe_dump(job(config, cells), sort_keys=False))
    write_text_atomic(directory / "kustomization.yaml", header + yaml.safe_dump(kustomization(config), sort_keys=False))
