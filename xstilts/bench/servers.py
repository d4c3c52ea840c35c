"""Servers the bench starts itself, one at a time, on a free 127.0.0.1 port, and always stops.

``xstilts serve`` runs one model and one variant of a repository (for ``xstilts bench --compare`` and for the
wrk measurement); the naive reference server (:mod:`xstilts.bench.naive_server`, PyTorch, one request at a
time) runs the checkpoint the bundle was exported from (for an embedding bundle, its encoder with the bundle's
layer, pooling and prefix). Both are child processes: started, awaited on
``/readyz``, stopped with SIGTERM (then SIGKILL).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

from xstilts.contracts.bundle import BundleManifest
from xstilts.contracts.checkpoint import CHECKPOINT_FILE
from xstilts.contracts.hashing import file_sha256
from xstilts.errors import XstiltsError

READY_TIMEOUT_S = 300.0
STOP_TIMEOUT_S = 30.0
WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")


# inherited variables a server started with its own settings keeps (a cache is not a setting)
KEPT_VARIABLES = ("XSTILTS_CACHE_DIR",)


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nothing listens on now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


class ServerProcess:
    """A server child process with its log file; :meth:`stop` is safe to call twice."""

    def __init__(
        self, label: str, command: Sequence[str], port: int, log_path: Path, env: dict[str, str] | None = None
    ) -> None:
        self.label = label
        self.command = list(command)
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.log_path = log_path
        log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = log_path.open("w", encoding="utf-8")
        self.started = time.monotonic()
        self.process = subprocess.Popen(
            self.command,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env={**(os.environ if env is None else env), "PYTHONUNBUFFERED": "1"},
            start_new_session=True,
        )
        self.ready_s: float | None = None

    def log_tail(self, lines: int = 12) -> str:
        self._log.flush()
        text = self.log_path.read_text(encoding="utf-8", errors="replace").strip().splitlines()
        return "\n".join(text[-lines:])

    def wait_ready(self, timeout_s: float = READY_TIMEOUT_S) -> float:
        """Poll ``/readyz`` until 200; fail when the process exits or the time runs out. Returns seconds taken."""
        import httpx

        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            code = self.process.poll()
            if code is not None:
                raise XstiltsError(f"server {self.label} exited with code {code}:\n{self.log_tail()}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{self.url}/readyz", timeout=2.0).status_code == 200:
                    self.ready_s = time.monotonic() - self.started
                    return self.ready_s
            time.sleep(0.25)
        self.stop()
        raise XstiltsError(f"server {self.label} was not ready after {timeout_s:.0f} s:\n{self.log_tail()}")

    def stop(self, timeout_s: float = STOP_TIMEOUT_S) -> int | None:
        """SIGTERM (graceful drain), then SIGKILL after ``timeout_s``."""
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    self.process.kill()
                self.process.wait()
        if not self._log.closed:
            self._log.close()
        return self.process.returncode


@contextlib.contextmanager
def running(server: ServerProcess, timeout_s: float = READY_TIMEOUT_S) -> Iterator[ServerProcess]:
    """Wait for ``server`` to be ready, yield it, and stop it whatever happens."""
    try:
        server.wait_ready(timeout_s)
        yield server
    finally:
        server.stop()


def settings_environment(settings: dict[str, str]) -> dict[str, str]:
    """This process's environment with its ``XSTILTS_*`` server settings replaced by ``settings``."""
    inherited = {k: v for k, v in os.environ.items() if not k.startswith("XSTILTS_") or k in KEPT_VARIABLES}
    return {**inherited, **settings}


def xstilts_server(
    repository: Path,
    models: str,
    log_path: Path,
    extra_args: Sequence[str] = (),
    port: int | None = None,
    settings: dict[str, str] | None = None,
) -> ServerProcess:
    """``xstilts serve`` of ``repository`` for ``models`` (``NAME=VARIANT[,NAME=VARIANT...]``).

    ``settings`` (``XSTILTS_*`` variables): the server runs with exactly these settings and no ``XSTILTS_*``
    inherited from this environment; without them it inherits the environment as it is.
    """
    port = port or free_port()
    command = [
        sys.executable,
        "-m",
        "xstilts.cli",
        "serve",
        "--repository",
        str(repository),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--models",
        models,
        "--log-level",
        "warning",
        *extra_args,
    ]
    env = None if settings is None else settings_environment(settings)
    return ServerProcess(models.replace("=", "/"), command, port, log_path, env)


def naive_server(
    checkpoint: Path, model: str, log_path: Path, threads: int | None = None, port: int | None = None
) -> ServerProcess:
    """The reference: FastAPI and a transformers pipeline in PyTorch, one request at a time."""
    port = port or free_port()
    command = [
        sys.executable,
        "-m",
        "xstilts.bench.naive_server",
        "--checkpoint",
        str(checkpoint),
        "--name",
        model,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
    ]
    if threads:
        command += ["--threads", str(threads)]
    return ServerProcess(f"{model}/naive", command, port, log_path)


def encoder_of(manifest: BundleManifest) -> str:
    """The encoder an embedding bundle was exported from, as its build record names it (an alias or a folder)."""
    origin = (manifest.build or {}).get("checkpoint") or {}
    encoder = origin.get("folder") or (manifest.lineage or {}).get("encoder")
    if not encoder:
        raise XstiltsError(f"{manifest.name}/{manifest.variant} does not record its encoder: pass --naive-checkpoint")
    return str(encoder)


def naive_embedding_server(
    bundle: Path,
    model: str,
    log_path: Path,
    threads: int | None = None,
    port: int | None = None,
    encoder: str | None = None,
) -> ServerProcess:
    """The embedding reference: FastAPI and the bundle's encoder in PyTorch (its layer, pooling and prefix), one
    request at a time; ``encoder`` (default: the one the bundle records) names the encoder to run."""
    port = port or free_port()
    command = [sys.executable, "-m", "xstilts.bench.naive_server", "--bundle", str(bundle), "--name", model]
    command += ["--host", "127.0.0.1", "--port", str(port)]
    if encoder:
        command += ["--checkpoint", encoder]
    if threads:
        command += ["--threads", str(threads)]
    return ServerProcess(f"{model}/naive", command, port, log_path)


def candidate_checkpoints(roots: Sequence[Path]) -> list[Path]:
    """Folders holding an ``xstilts_checkpoint.json`` at most three levels under each root."""
    found: dict[Path, None] = {}
    for root in roots:
        if not root.is_dir():
            continue
        for pattern in (CHECKPOINT_FILE, f"*/{CHECKPOINT_FILE}", f"*/*/{CHECKPOINT_FILE}", f"*/*/*/{CHECKPOINT_FILE}"):
            for path in sorted(root.glob(pattern)):
                found.setdefault(path.parent.resolve(), None)
    return list(found)


def find_checkpoint(manifest: BundleManifest, roots: Sequence[Path]) -> Path:
    """The checkpoint a bundle was exported from, by the weights hash its build record holds (its lineage)."""
    origin = (manifest.build or {}).get("checkpoint") or {}
    wanted = origin.get("weights_sha256")
    if not wanted:
        raise XstiltsError(
            f"{manifest.name}/{manifest.variant} does not record its checkpoint's weights: pass --naive-checkpoint"
        )
    checked = []
    for folder in candidate_checkpoints(roots):
        try:
            info = json.loads((folder / CHECKPOINT_FILE).read_text())
        except (OSError, json.JSONDecodeError):
            continue
        if info.get("task") != manifest.task:
            continue
        weights = next((folder / w for w in WEIGHT_FILES if (folder / w).is_file()), None)
        if weights is None:
            continue
        checked.append(str(folder))
        if file_sha256(weights) == wanted:
            return folder
    where = ", ".join(str(r) for r in roots)
    raise XstiltsError(
        f"no checkpoint under {where} has the weights {manifest.name} was exported from "
        f"(sha256 {wanted[:12]}..., checked {len(checked)}): pass --naive-checkpoint DIR"
    )
