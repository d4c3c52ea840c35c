"""Real servers for the serving tests: uvicorn on 127.0.0.1 over the tiny model repository.

``ServerProcess`` runs ``xstilts serve`` in a subprocess (the CLI, environment settings and real signals);
``ThreadServer`` runs the same app and uvicorn server in a thread of the test process, for the cases that need
to reach into the server (a model that is still loading, the moment draining starts).
"""

from __future__ import annotations

import contextlib
import gc
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.helpers import export_tiny_embedding
from xstilts.bench.servers import free_port

ROOT = Path(__file__).resolve().parents[2]


def clean_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The test process's environment without any XSTILTS_* server setting, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("XSTILTS_") or k in ("XSTILTS_CACHE_DIR",)}
    env.update(extra or {})
    return env


class ServerProcess:
    """``xstilts serve`` in a subprocess, configured by environment variables, its output in a log file."""

    def __init__(self, repository: Path, log_file: Path, env: dict[str, str] | None = None) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_file = log_file
        self.env = clean_env({"XSTILTS_REPOSITORY": str(repository), "XSTILTS_PORT": str(self.port), **(env or {})})
        self.process: subprocess.Popen | None = None

    def start(self, wait_ready: bool = True, timeout: float = 90.0) -> ServerProcess:
        with open(self.log_file, "wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "xstilts.cli", "serve"],
                env=self.env,
                cwd=ROOT,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        if wait_ready:
            self.wait_ready(timeout)
        return self

    def wait_ready(self, timeout: float = 90.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(f"server exited with {self.process.returncode}:\n{self.logs()}")
            try:
                if httpx.get(f"{self.url}/readyz", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"server not ready after {timeout} s:\n{self.logs()}")

    def logs(self) -> str:
        return self.log_file.read_text(errors="replace") if self.log_file.exists() else ""

    def terminate(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)

    def stop(self, timeout: float = 30.0) -> int | None:
        if self.process is None:
            return None
        self.terminate()
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise


class ThreadServer:
    """The app under the CLI's uvicorn server class, in a thread; ``state`` is the live server state; ``tracer``
    replaces the one the settings give (a tracer keeping its spans in memory)."""

    def __init__(self, state, tracer=None) -> None:
        import uvicorn

        from xstilts.serve.http.app import create_app
        from xstilts.serve.http.server import DrainingServer

        self.state = state
        self.app = create_app(state, tracer)
        config = uvicorn.Config(self.app, host="127.0.0.1", port=0, log_level="warning", lifespan="on")
        self.server = DrainingServer(config, state)
        state.on_fatal = self.server.fail  # as xstilts serve does
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.url = ""

    def __enter__(self) -> ThreadServer:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("thread server did not start")
            time.sleep(0.02)
        port = self.server.servers[0].sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        return self

    def wait_ready(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while not self.state.ready:
            if time.monotonic() > deadline:
                raise RuntimeError(f"not ready: {[(m.name, m.status, m.error) for m in self.state.models.values()]}")
            time.sleep(0.02)

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(30)
        forget_apps()


def forget_apps() -> None:
    """Let the apps this process built go. FastAPI remembers every endpoint it has classified in module-level
    caches (``fastapi.dependencies.models``), and the route functions close over their app, so every app built in
    a process (its models and sessions: hundreds of MB each) stays alive; a server builds one, the tests many."""
    from fastapi.dependencies import models

    for value in vars(models).values():
        if callable(getattr(value, "cache_clear", None)):
            value.cache_clear()
    gc.collect()


def thread_server(repository: Path, tracer=None, **settings) -> ThreadServer:
    """A :class:`ThreadServer` for ``repository`` with ``settings`` (fields of ``Settings``)."""
    from xstilts.serve.core.state import build_state
    from xstilts.serve.settings import Settings

    return ThreadServer(build_state(Settings(repository=repository, port=0, **settings)), tracer)


@contextlib.contextmanager
def loading_server(repository: Path, **settings) -> Iterator[tuple[ThreadServer, threading.Event]]:
    """A running :class:`ThreadServer` whose models stay loading until the test sets the gate it is given."""
    from xstilts.serve.core.engine import load_model

    gate = threading.Event()

    def slow_loader(planned, config):
        gate.wait(60)
        return load_model(planned, config)

    server = thread_server(repository, **settings)
    server.state.loader = slow_loader
    try:
        with server:
            yield server, gate
    finally:
        gate.set()


@pytest.fixture(scope="session")
def repository(tiny_repository: Path) -> Path:
    """The tiny repository: tiny-xnli (fp32, int8) and tiny-xcopa (fp32)."""
    return tiny_repository


@pytest.fixture(scope="session")
def embedding_repository(tiny_repository: Path, data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """tiny-embed (fp32, int8: layer 1, mean pooling, prefix ``query: ``) next to a copy of tiny-xnli's fp32."""
    repository = tmp_path_factory.mktemp("embedding-repository")
    export_tiny_embedding(repository, data_dir)
    shutil.copytree(tiny_repository / "tiny-xnli" / "fp32", repository / "tiny-xnli" / "fp32")
    return repository


@pytest.fixture(scope="module")
def server(repository: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """The default server (auth off, default limits), started by the CLI from environment variables."""
    log_file = tmp_path_factory.mktemp("server") / "server.log"
    process = ServerProcess(repository, log_file, {"XSTILTS_MAX_QUEUE_DELAY_MS": "5"}).start()
    yield process
    code = process.stop()
    assert code == 0, process.logs()


@pytest.fixture()
def client(server: ServerProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=60) as http:
        yield http


def metric_samples(text: str, name: str) -> dict[tuple, float]:
    """``{label items: value}`` of every sample called ``name`` in a Prometheus text exposition."""
    from prometheus_client.parser import text_string_to_metric_families

    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name:
                found[tuple(sorted(sample.labels.items()))] = sample.value
    return found


def metric_total(text: str, name: str, **labels: str) -> float:
    """The sum of the samples called ``name`` whose labels include ``labels``."""
    return sum(
        value
        for key, value in metric_samples(text, name).items()
        if all(dict(key).get(k) == v for k, v in labels.items())
    )
