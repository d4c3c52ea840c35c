"""An export killed while it writes leaves only its hidden staging folder, which nothing lists or serves."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

from tests.helpers import kill_once
from xstilts.contracts.bundle import BUNDLE_FILE, list_bundles

KILL_WINDOW_VARIANTS = "fp32,int8,fp16,O1,O2,O3"  # enough variants that the kill lands between two of them


@contextlib.contextmanager
def serving(repository: Path, log: Path) -> Iterator[str]:
    """``xstilts serve`` on ``repository`` at a free port until the block ends; yields its URL."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if not k.startswith("XSTILTS_") or k == "XSTILTS_CACHE_DIR"}
    env.update(XSTILTS_REPOSITORY=str(repository), XSTILTS_PORT=str(port))
    url = f"http://127.0.0.1:{port}"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "xstilts.cli", "serve"], env=env, stdout=out, stderr=subprocess.STDOUT
        )
    try:
        deadline = time.monotonic() + 120
        while True:
            assert process.poll() is None, f"server exited: {log.read_text(errors='replace')}"
            assert time.monotonic() < deadline, f"server not ready: {log.read_text(errors='replace')}"
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                    break
            time.sleep(0.1)
        yield url
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def test_a_killed_export_is_neither_listed_nor_served(
    tiny_checkpoints: dict[str, Path], tiny_repository: Path, data_dir: Path, tmp_path: Path
) -> None:
    repository = tmp_path / "repository"
    repository.mkdir()
    shutil.copytree(tiny_repository / "tiny-xnli", repository / "tiny-xnli")
    command = [
        *(sys.executable, "-m", "xstilts.cli", "export", str(tiny_checkpoints["xnli"])),
        *("--repository", str(repository), "--name", "killed", "--variants", KILL_WINDOW_VARIANTS),
        *("--parity-examples", "8", "--max-accuracy-drop", "100", "--data-dir", str(data_dir)),
    ]
    code = kill_once(command, lambda: bool(list(repository.glob(f".killed.*.partial/*/{BUNDLE_FILE}"))))
    assert code == -signal.SIGKILL, f"the export ended by itself (exit code {code})"
    staged = list(repository.glob(".killed.*.partial"))

    assert len(staged) == 1 and list(staged[0].glob(f"*/{BUNDLE_FILE}")), "the kill left no written variant"
    assert not (repository / "killed").exists()
    assert set(list_bundles(repository)) == {"tiny-xnli"}
    with serving(repository, tmp_path / "serve.log") as url:
        listed = httpx.get(f"{url}/v1/models", timeout=10).json()["models"]
        assert [m["name"] for m in listed] == ["tiny-xnli"]
        staged_name = staged[0].name
        for name in ("killed", staged_name):
            assert httpx.get(f"{url}/v1/models/{name}", timeout=10).status_code == 404
            assert httpx.get(f"{url}/v2/models/{name}", timeout=10).status_code == 404
