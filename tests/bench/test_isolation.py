"""The bench stage stays light: no torch, transformers or optimum, even transitively (checked in a fresh process)."""

from __future__ import annotations

import json
import subprocess
import sys

HEAVY = ("torch", "transformers", "optimum")
MODULES = [
    "xstilts.bench",
    "xstilts.bench.payloads",
    "xstilts.bench.accuracy",
    "xstilts.bench.qa",
    "xstilts.bench.server_metrics",
    "xstilts.bench.load",
    "xstilts.bench.servers",
    "xstilts.bench.report",
    "xstilts.bench.report.tables",
    "xstilts.bench.report.figures",
    "xstilts.bench.report.captions",
    "xstilts.bench.report.plots",
    "xstilts.bench.report.markdown",
    "xstilts.bench.runner",
    "xstilts.bench.config",
    "xstilts.bench.machine",
    "xstilts.bench.commands",
    "xstilts.bench.bare",
    "xstilts.bench.wrk",
    "xstilts.bench.measure",
    "xstilts.contracts.results",
]


def imported_after(code: str) -> list[str]:
    probe = f"{code}\nimport json, sys\nprint(json.dumps(sorted(sys.modules)))"
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def heavy(modules: list[str]) -> list[str]:
    return [m for m in modules if m.split(".")[0] in HEAVY]


def test_bench_modules_import_no_torch():
    assert heavy(imported_after("\n".join(f"import {m}" for m in MODULES))) == []


def test_accuracy_in_process_and_report_import_no_torch():
    code = (
        "import xstilts.bench.accuracy as a, xstilts.bench.report as r\n"
        # what in_process_predictions and the bare session of the wrk measurement load
        "import xstilts.serve.core.engine, xstilts.serve.core.repository, xstilts.serve.settings\n"
        "import matplotlib; matplotlib.use('Agg'); import matplotlib.pyplot"
    )
    assert heavy(imported_after(code)) == []


def test_locustfile_imports_no_torch_nor_gevent_here():
    # the locustfile runs in locust's own process; importing it there brings gevent, never torch
    modules = imported_after("import runpy; runpy.run_path('xstilts/bench/locustfile.py')")
    assert heavy(modules) == []
    assert "gevent" in modules
    # and the bench package itself never pulls in locust or gevent (pytest's process stays unpatched)
    assert not [m for m in imported_after("import xstilts.bench.runner") if m.split(".")[0] in ("locust", "gevent")]
