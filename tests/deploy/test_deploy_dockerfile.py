"""The Dockerfile: hadolint-clean, the three targets, pinned bases, and what each image may and may not contain.

These checks read the Dockerfile (hadolint, and a small parser for stages) and compare it with pyproject.toml,
.dockerignore, the Kubernetes manifests and the server's routes; tests/container builds and runs ``serve-cpu``
(``serve-gpu`` and ``train`` need CUDA and PyTorch base images no registry-less machine has: linted only).
"""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from tests.deploy.support import (
    DOCKERFILE,
    ROOT,
    dockerfile_stages,
    dockerignore_patterns,
    dockerignored,
    global_args,
    server_routes,
    server_settings,
    stage_chain,
)

TARGETS = ("serve-cpu", "serve-gpu", "train")
SERVE = ("serve-cpu", "serve-gpu")


@pytest.fixture(scope="module")
def stages():
    return dockerfile_stages()


def installs(stages, target: str) -> str:
    """Every RUN line of the target and the stages it builds on or copies from."""
    return "\n".join(run for stage in stage_chain(stages, target) for run in stage.args("RUN"))


def env_of(stages, target: str) -> dict[str, str]:
    """The image's environment: ENV lines of the target and of the stages it is built FROM, in order."""
    chain, name = [], target
    while name in stages:
        chain.append(stages[name])
        name = stages[name].base
    env: dict[str, str] = {}
    for stage in reversed(chain):
        for line in stage.args("ENV"):
            env.update(dict(re.findall(r"(\w+)=(\S+)", line)))
    return env


def test_hadolint_passes(hadolint):
    done = subprocess.run(
        [hadolint, "--no-color", "--failure-threshold", "info", str(DOCKERFILE)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0 and not done.stdout.strip(), f"hadolint:\n{done.stdout}{done.stderr}"


def test_no_syntax_directive():
    """A ``# syntax=`` line makes BuildKit pull a frontend image first: no build without a registry."""
    head = DOCKERFILE.read_text().splitlines()[:5]
    assert not any(re.match(r"#\s*syntax\s*=", line, re.IGNORECASE) for line in head), head


def test_hadolint_catches_a_bad_dockerfile(hadolint, tmp_path):
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:latest\nRUN pip install flask\n")
    done = subprocess.run([hadolint, "--no-color", str(bad)], capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode != 0 and "DL3007" in done.stdout and "DL3013" in done.stdout


def test_targets_and_pinned_bases(stages):
    """Every external base is a global build argument (so that a machine without a registry can pass a stand-in)
    whose default, what a plain build uses, is a pinned tag."""
    assert set(TARGETS) <= set(stages)
    defaults = global_args()
    for stage in stages.values():
        if stage.base in stages or stage.base == "scratch":
            continue
        image, _, tag = stage.base.partition(":")
        assert tag and tag != "latest" and "$" not in stage.base, f"stage {stage.name}: unpinned base {stage.base}"
        argument = re.fullmatch(r"\$\{(\w+)\}", stage.written_base)
        assert argument and argument[1] in defaults, f"stage {stage.name}: FROM {stage.written_base} is no build arg"
    gpu_root = stage_chain(stages, "serve-gpu")[-1].base
    assert re.fullmatch(r"nvidia/cuda:13\.\d+\.\d+-cudnn-runtime-ubuntu24\.04", gpu_root), gpu_root
    assert re.fullmatch(r"pytorch/pytorch:2\.13\.0-cuda13\.\d+-cudnn9-runtime", stages["train"].base)


def test_images_install_the_right_extras(stages):
    if sys.version_info >= (3, 11):
        import tomllib
    else:
        import tomli as tomllib  # the dev extra installs it on Python 3.10
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    cpu, gpu, train = installs(stages, "serve-cpu"), installs(stages, "serve-gpu"), installs(stages, "train")
    assert '"./[serve]"' in cpu and "[gpu]" not in cpu
    assert '"./[gpu]"' in gpu and "[serve]" not in gpu, "the GPU image must not get the CPU onnxruntime"
    assert '"./[train,export,serve,bench]"' in train, "the grid's Job trains, exports, serves and benches"
    for text in (cpu, gpu):
        assert not re.search(r"\btorch\b|\[train|transformers", text), "the serving images carry no torch"
    assert not any(dep.startswith("onnxruntime") and not dep.startswith("onnxruntime-gpu") for dep in extras["gpu"])
    assert not any(dep.startswith(("torch", "transformers")) for dep in extras["serve"] + extras["gpu"])
    # TensorRT 10 (what onnxruntime-gpu's TensorRT provider links), pinned exactly, for CUDA 13
    pins = re.findall(r"TENSORRT_VERSION=(\S+)", "\n".join(a for s in stages.values() for a in s.args("ARG")))
    assert len(pins) == 1 and re.fullmatch(r"10\.\d+\.\d+\.\d+", pins[0]), pins
    assert '"tensorrt-cu13-libs==${TENSORRT_VERSION}"' in gpu


@pytest.mark.parametrize("target", SERVE)
def test_serving_images_run_as_a_non_root_user(stages, target):
    users = stages[target].args("USER")
    assert users, f"{target} sets no USER"
    assert users[-1].split(":")[0] not in ("root", "0")


@pytest.mark.parametrize("target", SERVE)
def test_serving_images_match_the_deployment(stages, cpu, target):
    env = env_of(stages, target)
    settings = server_settings(cpu)
    assert env["XSTILTS_PORT"] == settings["XSTILTS_PORT"]
    assert stages[target].args("EXPOSE") == [settings["XSTILTS_PORT"]]
    assert env["XSTILTS_HOST"] == "0.0.0.0"
    assert env["XSTILTS_REPOSITORY"] == settings["XSTILTS_REPOSITORY"]
    assert stages[target].args("ENTRYPOINT") == ['["xstilts"]'] and stages[target].args("CMD") == ['["serve"]']
    health = " ".join(stages[target].args("HEALTHCHECK"))
    path = re.search(r"http://127\.0\.0\.1:%s(/\w+)", health).group(1)
    assert path in server_routes()


def test_copied_sources_are_in_the_build_context(stages):
    """Every COPY from the context names something that exists and that .dockerignore lets through."""
    patterns = dockerignore_patterns()
    args = {}
    for stage in stages.values():
        for arg in stage.args("ARG"):
            name, _, default = arg.partition("=")
            args[name] = default
        for copy in stage.args("COPY"):
            words = [w for w in copy.split() if not w.startswith("--")]
            if "--from=" in copy:
                continue
            for source in words[:-1]:
                source = re.sub(r"\$\{(\w+)\}", lambda m: args[m.group(1)], source)
                assert (ROOT / source).exists(), f"COPY {source}: not in the repository"
                assert not dockerignored(source, patterns), f"COPY {source}: excluded by .dockerignore"
    assert dockerignored(".git", patterns) and dockerignored(".venv", patterns)
    assert dockerignored("xstilts/serve/__pycache__", patterns)
