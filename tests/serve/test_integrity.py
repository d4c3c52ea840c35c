"""Verified bundles: a bundle whose files are not the ones its bundle.json records never serves.

The corruption that matters most is the quiet one: bytes flipped in the middle of ``model.onnx``, the size
unchanged, which ONNX Runtime loads and answers with (shown here with verification turned off).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.serve.conftest import ROOT, ServerProcess, clean_env
from xstilts.contracts.bundle import MODEL_FILE, load_manifest
from xstilts.serve.core.integrity import BundleMismatch, verify_bundle


def get(url: str, **kwargs) -> httpx.Response:
    """``httpx.get`` with a timeout that a busy machine's model loads fit in."""
    return httpx.get(url, **{"timeout": 60, **kwargs})


def post(url: str, **kwargs) -> httpx.Response:
    """``httpx.post`` with a timeout that a busy machine's model loads fit in."""
    return httpx.post(url, **{"timeout": 60, **kwargs})


def flip_middle(path: Path, count: int = 64) -> None:
    """Invert ``count`` bytes in the middle of ``path``: same size, different content."""
    data = bytearray(path.read_bytes())
    middle = len(data) // 2
    data[middle : middle + count] = bytes(b ^ 0xFF for b in data[middle : middle + count])
    path.write_bytes(bytes(data))


def copied_bundle(repository: Path, target: Path, name: str = "tiny-xnli", variant: str = "fp32") -> Path:
    folder = target / name / variant
    shutil.copytree(repository / name / variant, folder)
    return folder


def wait_for(check, what: str, timeout: float = 90.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def test_intact_bundles_pass_and_every_difference_is_named(repository: Path, tmp_path: Path) -> None:
    folder = copied_bundle(repository, tmp_path)
    manifest = load_manifest(folder)
    verify_bundle(folder, manifest)  # as exported: nothing to say

    model = folder / MODEL_FILE
    original = model.read_bytes()
    flip_middle(model)
    assert model.stat().st_size == len(original)
    with pytest.raises(BundleMismatch, match=r"model\.onnx has sha256 [0-9a-f]{12}\.\.\., bundle\.json records"):
        verify_bundle(folder, manifest)

    model.write_bytes(original[:-1])
    with pytest.raises(BundleMismatch, match=rf"model\.onnx has {len(original) - 1} bytes, bundle\.json records"):
        verify_bundle(folder, manifest)

    model.write_bytes(original)
    (folder / "tokenizer.json").unlink()
    with pytest.raises(BundleMismatch, match=r"tokenizer\.json is missing"):
        verify_bundle(folder, manifest)

    shutil.copy(repository / "tiny-xnli" / "fp32" / "tokenizer.json", folder / "tokenizer.json")
    (folder / "model.onnx_data").write_bytes(b"weights nobody recorded")
    with pytest.raises(BundleMismatch, match=r"records no size and sha256 for model\.onnx_data"):
        verify_bundle(folder, manifest)


def test_flipped_bytes_in_the_middle_never_serve(repository: Path, tmp_path: Path) -> None:
    """Same size, bytes flipped mid-file: the model stays failed with its reason in /v1/models, the repository
    index and /readyz, one error line in the log, and its requests get 503 (model control explicit, so the
    server stays up to say so)."""
    broken = tmp_path / "repository"
    flip_middle(copied_bundle(repository, broken) / MODEL_FILE)
    copied_bundle(repository, broken, "tiny-xcopa")
    env = {"XSTILTS_MODEL_CONTROL": "explicit"}
    server = ServerProcess(broken, tmp_path / "server.log", env).start(wait_ready=False)
    try:
        url = server.url

        def models() -> dict | None:
            try:
                listed = {m["name"]: m for m in get(f"{url}/v1/models").json()["models"]}
            except httpx.TransportError:
                return None
            done = all(m["state"] != "loading" for m in listed.values())
            return listed if done else None

        listed = wait_for(models, "both models to load or fail")
        xnli = listed["tiny-xnli"]
        assert xnli["state"] == "failed", xnli
        assert "model.onnx has sha256" in xnli["error"] and "changed after export" in xnli["error"]
        assert listed["tiny-xcopa"]["state"] == "ready"

        ready = get(f"{url}/readyz")
        assert ready.status_code == 503 and "model.onnx has sha256" in ready.json()["error"]
        predict = post(f"{url}/v1/models/tiny-xnli/predict", json={"inputs": ["Hallo."]})
        assert predict.status_code == 503 and predict.json()["error_type"] == "unavailable"
        assert "model.onnx has sha256" in predict.json()["error"]
        assert get(f"{url}/v2/models/tiny-xnli/ready").status_code == 503

        index = {(e["name"], e["version"]): e for e in post(f"{url}/v2/repository/index").json()}
        entry = index[("tiny-xnli", "fp32")]
        assert entry["state"] == "UNAVAILABLE" and "model.onnx has sha256" in entry["reason"]
        assert index[("tiny-xcopa", "fp32")]["state"] == "READY"

        errors = [line for line in server.logs().splitlines() if line.startswith("ERROR") and "tiny-xnli" in line]
        assert len(errors) == 1, errors
        assert "cannot serve tiny-xnli/fp32" in errors[0] and "model.onnx has sha256" in errors[0]
    finally:
        assert server.stop() == 0, server.logs()


def test_without_verification_the_same_bundle_serves(repository: Path, tmp_path: Path) -> None:
    """What --verify-bundles guards against: ONNX Runtime takes the flipped bytes and answers."""
    broken = tmp_path / "repository"
    flip_middle(copied_bundle(repository, broken) / MODEL_FILE)
    env = {"XSTILTS_VERIFY_BUNDLES": "false"}
    server = ServerProcess(broken, tmp_path / "server.log", env).start()
    try:
        answer = post(f"{server.url}/v1/models/tiny-xnli/predict", json={"inputs": ["Hallo."]}, timeout=60)
        assert answer.status_code == 200, answer.text
    finally:
        assert server.stop() == 0, server.logs()


def test_with_model_control_none_a_corrupt_bundle_stops_the_server(repository: Path, tmp_path: Path) -> None:
    broken = tmp_path / "repository"
    flip_middle(copied_bundle(repository, broken) / MODEL_FILE)
    done = subprocess.run(
        [sys.executable, "-m", "xstilts.cli", "serve", "--port", "0"],
        env=clean_env({"XSTILTS_REPOSITORY": str(broken)}),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1, done.stderr
    assert "cannot serve tiny-xnli/fp32: tiny-xnli/fp32: model.onnx has sha256" in done.stderr
