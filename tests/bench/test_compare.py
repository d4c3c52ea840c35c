"""The whole command: servers started and stopped in turn (with the naive reference), one report."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from xstilts.bench import servers
from xstilts.bench.report.captions import caption
from xstilts.contracts.bundle import load_manifest
from xstilts.contracts.results import read_results
from xstilts.errors import XstiltsError

REPO = Path(__file__).resolve().parents[2]
SMALL = [
    "--per-language",
    "3",
    "--languages",
    "en,sw,zh",
    "--users",
    "1,2",
    "--rates",
    "0.5x",
    "--duration",
    "2s",
    "--max-requests",
    "150",
    "--offline-items",
    "8",
    "--offline-users",
    "2",
]
DURATION_S, CAP = 2.0, 150


def bench(*args: str, timeout: float = 420) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "xstilts.cli", "bench", *args], capture_output=True, text=True, timeout=timeout, cwd=REPO
    )


def check_report(folder: Path, labels: list[str]) -> dict:
    results = json.loads((folder / "results.json").read_text())
    for name in (
        "report.md",
        "scenarios.csv",
        "accuracy.csv",
        "latency_throughput.png",
        "accuracy_languages.png",
        "pareto.png",
    ):
        assert (folder / name).is_file() and (folder / name).stat().st_size > 0, name
    assert [t["label"] for t in results["targets"]] == labels
    for target in results["targets"]:
        assert not target.get("error"), target.get("error")
        assert target["scenarios"], target["label"]
        for s in target["scenarios"]:
            assert not s.get("error"), s
            assert s["within_bounds"], s
            assert s["wall_s"] <= s["bounds"]["timeout_s"]
            assert s["requests"] + s["unfinished"] <= CAP
            assert s["window_s"] <= DURATION_S + 1
            assert s["failures"] == 0 and s["requests_per_s"] > 0
            assert s["latency_ms"]["p99"] >= s["latency_ms"]["p50"]
    report = (folder / "report.md").read_text()
    for label in labels:
        assert label in report
    # every figure is captioned with the targets, the data, the budget and the machine
    text = caption(read_results(folder / "results.json"))  # and the file reads back as the typed results
    assert all(label in text for label in labels)
    assert f"{results['data']['task']} {results['data']['split']}" in text and "seed" in text
    assert f"{CAP} requests" in text and "cores" in text and "onnxruntime" in text
    machine = results["machine"]
    assert machine["cpu"] and machine["cores"] and machine["versions"]["onnxruntime"]
    assert results["command"].startswith("xstilts bench")
    return results


def test_compare_fp32_int8_and_naive(tiny_repository, sensitive_checkpoints, tmp_path):
    out = tmp_path / "report"
    started = time.monotonic()
    done = bench(
        "--repository",
        str(tiny_repository),
        "--compare",
        "tiny-xnli,tiny-xnli/naive",
        "--naive-checkpoint",
        str(sensitive_checkpoints["xnli"]),
        "--output",
        str(out),
        *SMALL,
    )
    assert done.returncode == 0, done.stderr + done.stdout
    results = check_report(out, ["tiny-xnli/fp32", "tiny-xnli/int8", "tiny-xnli/naive"])
    by_label = {t["label"]: t for t in results["targets"]}
    assert by_label["tiny-xnli/naive"]["server"] == "naive"
    assert by_label["tiny-xnli/int8"]["served"]["precision"] == "int8"
    for target in results["targets"]:
        # on the sensitive tiny model, int8 answers move with their batch neighbours: the tolerance still accepts
        # each variant against what its bundle.json recorded (and fp32 and naive against the checkpoint's)
        assert target["accuracy"]["parity"]["available"] and target["accuracy"]["parity"]["agrees"], target["label"]
        assert [s["mode"] for s in target["scenarios"]] == ["closed", "closed", "open", "offline"]
    fp32, naive = by_label["tiny-xnli/fp32"]["accuracy"], by_label["tiny-xnli/naive"]["accuracy"]
    assert fp32["languages"] == naive["languages"]  # the same checkpoint, ONNX or PyTorch: the same answers
    assert by_label["tiny-xnli/fp32"]["scenarios"][0]["server"]["mean_batch_size"] >= 1
    assert by_label["tiny-xnli/naive"]["scenarios"][0]["server"] is None  # no /metrics there
    # every server started was stopped: nothing answers on their addresses any more
    for target in results["targets"]:
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"{target['url']}/healthz", timeout=2)
    assert time.monotonic() - started < 400


def test_url_mode_on_a_multiple_choice_model(server, tiny_repository, tmp_path):
    out = tmp_path / "url"
    done = bench(
        "--url",
        server.url,
        "--model",
        "tiny-xcopa",
        "--repository",
        str(tiny_repository),
        "--output",
        str(out),
        "--scenarios",
        "accuracy,closed,open",
        "--rates",
        "10",
        *[a for a in SMALL if a not in ("--rates", "0.5x")],
    )
    assert done.returncode == 0, done.stderr + done.stdout
    results = check_report(out, ["tiny-xcopa/fp32"])
    target = results["targets"][0]
    assert target["accuracy"]["parity"]["available"]
    scenarios = target["scenarios"]
    assert [s["name"] for s in scenarios] == ["closed-u1", "closed-u2", "open-r10"]
    assert all(s["sequences_per_s"] == pytest.approx(2 * s["requests_per_s"]) for s in scenarios)  # two choices


def test_user_errors_are_one_line(tiny_repository):
    done = bench("--repository", str(tiny_repository), "--compare", "tiny-xnli/fp16")
    assert done.returncode == 2 and "has no variant 'fp16'" in done.stderr and "Traceback" not in done.stderr
    done = bench("--url", "http://127.0.0.1:9")
    assert done.returncode == 2 and "--model" in done.stderr


def test_a_server_that_cannot_start_is_reported_and_stopped(tiny_repository, tmp_path):
    server = servers.xstilts_server(tiny_repository, "tiny-xnli=no-such-variant", tmp_path / "s.log")
    with pytest.raises(XstiltsError, match="exited with code"), servers.running(server, timeout_s=60):
        pass
    assert server.process.poll() is not None


def test_naive_checkpoint_found_by_lineage(tiny_repository, sensitive_checkpoints, tmp_path):
    manifest = load_manifest(tiny_repository / "tiny-xnli" / "fp32")
    root = tmp_path / "runs"
    shutil.copytree(sensitive_checkpoints["xcopa"], root / "b" / "checkpoint")
    shutil.copytree(sensitive_checkpoints["xnli"], root / "a" / "phases" / "checkpoint")
    assert servers.find_checkpoint(manifest, [root]) == (root / "a" / "phases" / "checkpoint").resolve()
    with pytest.raises(XstiltsError, match="--naive-checkpoint"):
        servers.find_checkpoint(manifest, [root / "b"])


def test_a_failed_accuracy_pass_is_reported_and_the_load_still_runs(server, tmp_path):
    out = tmp_path / "late"
    done = bench(
        "--url", server.url, "--model", "tiny-xnli", "--output", str(out), "--scenarios", "accuracy,closed",
        "--accuracy-timeout", "0s", "--users", "1", "--duration", "1s", "--max-requests", "50",
        "--per-language", "2", "--languages", "en",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr + done.stdout
    [target] = json.loads((out / "results.json").read_text())["targets"]
    assert "ran out of time" in target["accuracy_error"] and "accuracy" not in target
    assert target["scenarios"][0]["requests"] > 0
    assert "the accuracy pass failed" in (out / "report.md").read_text()
