"""Fuzzing the OpenAPI schema with schemathesis against running servers: no request may get a 5xx.

Besides ``not_a_server_error``, every answer must have a documented status, content type and body schema; with a
key configured, requests without it must be refused.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.serve.conftest import ServerProcess, thread_server

pytest.importorskip("schemathesis")

CHECKS = ",".join(
    (
        "not_a_server_error",
        "status_code_conformance",
        "content_type_conformance",
        "response_schema_conformance",
        "response_headers_conformance",
    )
)


def schemathesis(url: str, tmp_path: Path, *extra: str) -> subprocess.CompletedProcess:
    command = [
        sys.executable, "-m", "schemathesis.cli", "run", f"{url}/openapi.json",
        "--phases", "examples,coverage,fuzzing",
        "--max-examples", "40",
        "--seed", "20200510",
        "--generation-database", "none",
        "--request-timeout", "30",
        "--workers", "2",
        *extra,
    ]  # fmt: skip
    return subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=600)


def generated(report: str) -> int:
    """How many test cases schemathesis says it generated."""
    found = re.search(r"(\d+) generated", report)
    return int(found.group(1)) if found else 0


def test_fuzzing_finds_no_server_error(repository: Path, tmp_path: Path) -> None:
    server = ServerProcess(repository, tmp_path / "server.log").start()
    try:
        done = schemathesis(server.url, tmp_path, "--checks", CHECKS)
    finally:
        assert server.stop() == 0, server.logs()
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-2000:]
    assert generated(done.stdout) > 500
    assert "Traceback" not in server.logs(), server.logs()  # no unhandled error, even one answered politely


def test_fuzzing_with_auth_finds_no_server_error_and_no_open_door(repository: Path, tmp_path: Path) -> None:
    with thread_server(repository, api_key="fuzz-key") as server:
        server.wait_ready()
        done = schemathesis(
            server.url, tmp_path, "--checks", CHECKS + ",ignored_auth", "--header", "Authorization: Bearer fuzz-key"
        )
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-2000:]
    assert generated(done.stdout) > 500
