"""The training and export Jobs: GPU nodes, several GPUs through torchrun, and volumes that connect the two."""

from __future__ import annotations

import pytest

from tests.deploy.support import K8S, container, objects, one, pod_claims
from xstilts.training.config import load_config

TRAIN, EXPORT = "jobs/train", "jobs/export"


def pod(job: dict) -> dict:
    return job["spec"]["template"]["spec"]


@pytest.mark.parametrize("directory", [TRAIN, EXPORT])
def test_jobs_run_once_on_gpu_nodes(rendered, directory):
    job = one(rendered[directory], "Job", "xstilts-")
    spec = pod(job)
    assert spec["restartPolicy"] == "Never"
    assert job["spec"]["backoffLimit"] <= 2, "a failing multi-hour run should not be retried many times"
    assert spec["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in spec["tolerations"]
    work = spec["containers"][0]
    gpus = work["resources"]["limits"]["nvidia.com/gpu"]
    assert gpus >= 1
    assert work["resources"]["requests"].get("nvidia.com/gpu", gpus) == gpus, "GPU requests must equal limits"
    assert work["image"].split(":")[0].endswith("xstilts-train")
    assert spec["securityContext"]["runAsNonRoot"] is True


def test_training_uses_one_process_per_gpu(rendered):
    job = one(rendered[TRAIN], "Job", "xstilts-train")
    train = container(job, "train")
    gpus = train["resources"]["limits"]["nvidia.com/gpu"]
    assert gpus >= 2, "the template shows multi-GPU training"
    argv = train["command"] + train["args"]
    assert argv[0] == "torchrun"
    nproc = [a.split("=", 1)[1] for a in argv if a.startswith("--nproc-per-node=")]
    assert nproc == [str(gpus)], f"torchrun --nproc-per-node {nproc} differs from the {gpus} GPUs requested"
    module = argv.index("-m")
    assert argv[module + 1 : module + 3] == ["xstilts.cli", "train"]
    mounts = {m["mountPath"]: m for m in train["volumeMounts"]}
    assert "/dev/shm" in mounts, "NCCL needs more shared memory than the container default"
    env = {e["name"]: e["value"] for e in train["env"]}
    assert env["XSTILTS_DATA_DIR"] in mounts and mounts[env["XSTILTS_DATA_DIR"]].get("readOnly") is True


def test_training_config_is_mounted_and_valid(rendered):
    job = one(rendered[TRAIN], "Job", "xstilts-train")
    train = container(job, "train")
    config_arg = train["args"][train["args"].index("train") + 1]
    mounts = {m["name"]: m["mountPath"] for m in train["volumeMounts"]}
    volumes = {v["name"]: v for v in pod(job)["volumes"]}
    config_maps = {d["metadata"]["name"]: d for d in objects(rendered[TRAIN], "ConfigMap")}
    volume = next(name for name, path in mounts.items() if config_arg.startswith(path + "/"))
    config_map = config_maps[volumes[volume]["configMap"]["name"]]
    key = config_arg.rsplit("/", 1)[1]
    assert key in config_map["data"], f"{config_arg} is not a key of ConfigMap {config_map['metadata']['name']}"
    config = load_config(K8S / "jobs" / "train" / "train-config.yaml")  # strict: unknown keys and tasks fail
    assert config.target_task == "pawsx" and [p.label for p in config.intermediate] == ["mnli"]


def test_export_reads_what_training_writes_and_writes_what_servers_mount(rendered):
    train = container(one(rendered[TRAIN], "Job", "xstilts-train"), "train")
    export_job = one(rendered[EXPORT], "Job", "xstilts-export")
    export = container(export_job, "export")
    output = train["args"][train["args"].index("--output") + 1]
    assert export["command"] == ["xstilts"] and export["args"][0] == "export"
    checkpoint = export["args"][1]
    assert checkpoint == f"{output}/checkpoint", "`xstilts train --output DIR` leaves the checkpoint at DIR/checkpoint"
    repository = export["args"][export["args"].index("--repository") + 1]
    variants = export["args"][export["args"].index("--variants") + 1].split(",")
    assert {"fp32", "int8", "trt-fp16"} <= set(variants)

    # the run folder: same claim in both Jobs, mounted at the same path
    def claim_at(job: dict, work: dict, path: str) -> str:
        volumes = {v["name"]: v for v in pod(job)["volumes"]}
        mount = next(m for m in work["volumeMounts"] if path.startswith(m["mountPath"]))
        return volumes[mount["name"]]["persistentVolumeClaim"]["claimName"]

    train_job = one(rendered[TRAIN], "Job", "xstilts-train")
    assert claim_at(train_job, train, output) == claim_at(export_job, export, checkpoint)
    # the repository: the claim the servers mount at XSTILTS_REPOSITORY
    server_pod = one(rendered["overlays/cpu"], "Deployment", "xstilts")["spec"]["template"]["spec"]
    assert claim_at(export_job, export, repository) in pod_claims(server_pod)


def test_every_claim_a_job_mounts_is_rendered_somewhere(rendered):
    claims = set()
    for directory in ("base", TRAIN):
        claims |= {d["metadata"]["name"] for d in objects(rendered[directory], "PersistentVolumeClaim")}
    for directory in (TRAIN, EXPORT):
        for job in objects(rendered[directory], "Job"):
            missing = pod_claims(pod(job)) - claims
            assert not missing, f"{directory}: {job['metadata']['name']} mounts claims nothing creates: {missing}"


def test_job_kustomizations_are_separate(rendered):
    """Export must start only after training completed: the two Jobs are applied separately, never together."""
    assert [j["metadata"]["name"] for j in objects(rendered[TRAIN], "Job")] == ["xstilts-train"]
    assert [j["metadata"]["name"] for j in objects(rendered[EXPORT], "Job")] == ["xstilts-export"]
