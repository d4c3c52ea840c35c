"""The serving stage never loads torch, transformers or optimum, and its core no web framework, not even through
another module (each checked in a fresh process)."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.serve.conftest import ROOT

HEAVY = ("torch", "transformers", "optimum")
WEB = ("fastapi", "starlette", "uvicorn")


def loaded_after(code: str, watched: tuple[str, ...]) -> list[str]:
    """Which of ``watched`` a fresh interpreter has imported after running ``code``."""
    probe = f"import json, sys\n{code}\nprint(json.dumps(sorted(m for m in {watched!r} if m in sys.modules)))\n"
    done = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_serving_imports_no_training_libraries() -> None:
    code = (
        "import xstilts.serve.http.app, xstilts.serve.http.server, xstilts.serve.commands\n"
        "from xstilts.cli import build_parser\n"
        "build_parser().parse_args(['serve', '--repository', '.'])\n"
    )
    assert loaded_after(code, HEAVY) == []


def test_the_serving_core_imports_no_web_framework() -> None:
    code = "from xstilts.serve.core import batcher, encoder, engine, errors, model, providers, repository, state\n"
    assert loaded_after(code, WEB + HEAVY) == []
    assert loaded_after("import xstilts.serve.http.app\n", WEB) == list(WEB[:2])  # the probe itself can fail
