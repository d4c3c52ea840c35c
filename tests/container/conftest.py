"""Session fixtures for the container tests: the engine, the stand-in base, the ``serve-cpu`` image, a mountable
copy of the tiny repository, and the figures (image size, build times) printed at the end of the run."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.container.engine import (
    SERVE_IMAGE,
    Engine,
    build_target,
    cache_root,
    ensure_standin,
    missing_tools,
)
from tests.helpers import unavailable

# printed by pytest_terminal_summary: what docs/deploy.md records
FIGURES: dict[str, str] = {}


@pytest.fixture(scope="session")
def engine() -> Iterator[Engine]:
    """Our own dockerd, its data root cached between runs; stopped by its pid at the end of the session."""
    missing = missing_tools()
    if missing:
        unavailable("the container tests need " + "; ".join(missing))
    started = Engine.start(cache_root() / "docker")
    try:
        yield started
    finally:
        started.stop()


@pytest.fixture(scope="session")
def standin(engine: Engine) -> str:
    """The Debian stand-in for ``python:3.12.12-slim-trixie``, from the engine's cache or built now."""
    tag, seconds = ensure_standin(engine)
    FIGURES["stand-in base"] = f"{tag}, " + ("cached" if seconds is None else f"built in {seconds:.0f} s")
    return tag


@pytest.fixture(scope="session")
def serve_image(engine: Engine, standin: str) -> str:
    """The ``serve-cpu`` target built FROM the stand-in (layers the engine's cache holds are reused)."""
    seconds = build_target(engine, "serve-cpu", SERVE_IMAGE, {"PYTHON_IMAGE": standin})
    size = engine.image_size(SERVE_IMAGE)
    FIGURES["serve-cpu image"] = f"{size / 1e6:.0f} MB, built in {seconds:.0f} s"
    return SERVE_IMAGE


@pytest.fixture(scope="session")
def mounted_repository(tiny_repository: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the tiny repository that the image's user (uid 10001) can read: pytest's folders are private."""
    copy = tmp_path_factory.mktemp("mounted") / "repository"
    shutil.copytree(tiny_repository, copy)
    for path in [copy, *copy.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    copy.parent.chmod(0o755)
    return copy


def pytest_terminal_summary(terminalreporter) -> None:
    if FIGURES:
        terminalreporter.section("container figures")
        for what, figure in FIGURES.items():
            terminalreporter.write_line(f"{what}: {figure}")
