"""The tiny grid run once per module through the CLI, killed with SIGKILL mid-way and resumed to the end."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
TINY = REPO / "configs" / "grid" / "tiny.yaml"
CELL_IDS = [
    "tiny-xlmr__baseline__pawsx__s0",
    "tiny-xlmr__mnli__pawsx__s0",
    "tiny-xlmr__multilingual-then-mnli__pawsx__s0",
]


def grid(*args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    """``xstilts grid ARGS`` in a subprocess, from the repository's root."""
    return subprocess.run(
        [sys.executable, "-m", "xstilts.cli", "grid", *args], capture_output=True, text=True, timeout=timeout, cwd=REPO
    )


def kill_leftovers(marker: str) -> None:
    """SIGKILL what the killed grid had started in sessions of their own (servers, locust): every process whose
    command line names this test's own temporary folder."""
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        with contextlib.suppress(OSError):
            if marker in (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace"):
                os.kill(int(proc.name), signal.SIGKILL)


@dataclass
class GridRun:
    output: Path
    data_dir: Path
    rows_at_kill: list[str]  # ids of the rows written before the kill
    first_row_at_kill: bytes
    resumed: subprocess.CompletedProcess
    killed_while: str

    def rows(self) -> list[dict]:
        return [json.loads(line) for line in (self.output / "results.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def grid_run(tmp_path_factory: pytest.TempPathFactory, data_dir: Path) -> GridRun:
    """Run the tiny grid; kill it (SIGKILL, whole process group) once the second cell trains; run it again.

    The kill comes right after a Trainer checkpoint is complete (its trainer_state.json, written last), not during
    a save: the training stage resumes from the newest checkpoint folder even when a kill left it half-written.
    """
    output = tmp_path_factory.mktemp("grid") / "out"
    command = [sys.executable, "-m", "xstilts.cli", "grid", str(TINY), "--output", str(output)]
    command += ["--data-dir", str(data_dir)]
    process = subprocess.Popen(
        command, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    first_row = output / "cells" / CELL_IDS[0] / "row.json"
    deadline = time.time() + 300
    killed_while = ""
    while time.time() < deadline and process.poll() is None and not killed_while:
        if first_row.is_file():
            if list((output / "phases").glob("01-mnli-*/trainer/checkpoint-*/trainer_state.json")):
                killed_while = "training the second cell, after a Trainer checkpoint"
            elif list((output / "phases").glob("01-mnli-*/phase.json")):
                killed_while = "after the second cell's first phase"
        time.sleep(0.02)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    kill_leftovers(str(output))
    assert killed_while, f"the grid never reached its second cell (exit code {process.returncode})"
    rows_at_kill = sorted(p.parent.name for p in (output / "cells").glob("*/row.json"))
    first_row_at_kill = first_row.read_bytes()
    resumed = grid(str(TINY), "--output", str(output), "--data-dir", str(data_dir))
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    return GridRun(output, data_dir, rows_at_kill, first_row_at_kill, resumed, killed_while)
