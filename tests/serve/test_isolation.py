"""The serving stage never loads torch, transformers or optimum, not even through another module."""

from __future__ import annotations

import subprocess
import sys

from tests.serve.conftest import ROOT

HEAVY = ("torch", "transformers", "optimum")


def test_serving_imports_no_training_libraries() -> None:
    code = (
        "import sys\n"
        "import xstilts.serve.app, xstilts.serve.server, xstilts.serve.commands\n"
        "from xstilts.cli import build_parser\n"
        "build_parser().parse_args(['serve', '--repository', '.'])\n"
        f"print(sorted(m for m in {HEAVY!r} if m in sys.modules))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
