"""The wrk measurement: the real wrk with ``post.lua`` against a real server, the bare session, the whole command.

What is asserted is what the measurement counts and reports, never how fast anything ran.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import unavailable
from xstilts.bench import measure, server_metrics
from xstilts.bench.bare import batches
from xstilts.bench.payloads import mixed_items, predict_path, request_body, write_body_lines
from xstilts.bench.wrk import run_wrk
from xstilts.contracts.evaluation import load_evaluation_sample

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True, scope="module")
def wrk_installed() -> None:
    if shutil.which("wrk") is None:
        unavailable("wrk is missing: apt-get install wrk (.ci/install-system-deps)")


@pytest.fixture(scope="module")
def bodies(xnli_sample, tmp_path_factory) -> Path:
    """One real XNLI pair per body, languages mixed, as the measurement writes them."""
    items = mixed_items(xnli_sample)
    path = tmp_path_factory.mktemp("wrk") / "bodies.jsonl"
    return write_body_lines(path, [request_body(xnli_sample.kind, [e]) for e in items])


def answered(before: server_metrics.Samples | None, after: server_metrics.Samples | None) -> dict[str, int]:
    change = server_metrics.delta(before, after, "tiny-xnli")
    assert change is not None
    return change.requests


def test_wrk_counts_the_requests_the_server_answered(server, bodies):
    lines = bodies.read_text(encoding="utf-8").splitlines()
    assert len(lines) > 100 and all(json.loads(line)["inputs"][0]["text_pair"] for line in lines)
    before = server_metrics.scrape(server.url)
    result = run_wrk(server.url, predict_path("tiny-xnli"), bodies, 2, 1, server_pid=server.process.pid)
    after = server_metrics.scrape(server.url)
    assert result["requests"] > 0 and result["non_2xx"] == 0
    assert result["connect_errors"] == result["timeouts"] == 0
    # every request wrk counted was a real body the server answered with 200 (a connection's last request may be
    # answered after wrk stopped counting)
    ok = answered(before, after).get("200", 0)
    assert result["requests"] <= ok <= result["requests"] + 2
    assert result["requests_per_second"] > 0 and result["connections"] == 2 and result["offered_rate"] is None
    assert 0 < result["latency_ms"]["p50"] <= result["latency_ms"]["p99"] <= result["latency_ms"]["max"]
    assert result["server_cpu_cores"] > 0 and result["wrk_cpu_cores"] >= 0


def test_wrk_counts_non_2xx_answers(server, bodies):
    result = run_wrk(server.url, predict_path("no-such-model"), bodies, 1, 1)
    assert result["requests"] > 0 and result["non_2xx"] == result["requests"]


def test_the_lua_script_cycles_through_the_bodies(server, bodies, tmp_path):
    """Two bodies in turn, one the server accepts and one it refuses: one connection alternates between them."""
    good = json.loads(bodies.read_text(encoding="utf-8").splitlines()[0])
    alternating = write_body_lines(tmp_path / "two.jsonl", [good, {"inputs": []}])
    before = server_metrics.scrape(server.url)
    result = run_wrk(server.url, predict_path("tiny-xnli"), alternating, 1, 1, rate=200.0)
    after = server_metrics.scrape(server.url)
    requests, refused = result["requests"], result["non_2xx"]
    assert requests >= 4 and requests // 2 <= refused <= requests - requests // 2
    statuses = answered(before, after)
    assert statuses.get("200", 0) >= requests - refused
    assert sum(n for status, n in statuses.items() if status != "200") >= refused
    assert result["offered_rate"] == 200.0


def test_batches_use_every_text_and_sort_within_blocks():
    # batches of 2 sort within blocks of 4 batches: the long texts of the first block stay ahead of the short ones
    sequences = [[0] * n for n in (13, 9, 12, 10, 16, 11, 15, 14, 5, 1, 4, 2, 8, 3, 7, 6)]
    plain = batches(sequences, 2, by_length=False)
    assert plain == [sequences[i : i + 2] for i in range(0, 16, 2)]
    ordered = batches(sequences, 2, by_length=True)
    assert all(len(b) == 2 for b in ordered)
    assert [len(s) for b in ordered for s in b] == [*range(9, 17), *range(1, 9)]


def test_the_bare_session_reports_every_batch_size(tiny_repository, xnli_sample):
    items = mixed_items(xnli_sample)
    bare = measure.load_bare(tiny_repository, "tiny-xnli", "fp32", items, {})
    assert len(bare.sequences) == len(items) and bare.mean_tokens > 2
    scan = bare.scan((1, 4), 0.2)
    assert list(scan) == ["1", "4", "4 by length"] and all(v > 0 for v in scan.values())
    latency = bare.latency(0.2)
    assert set(latency) == {"p50", "p99", "calls"}
    assert latency["calls"] > 0 and 0 < latency["p50"] <= latency["p99"]
    assert bare.run("4 by length", 0.1) > 0


@pytest.mark.parametrize(("fixture", "model", "task"), [("qa_repository", "tiny-xquad", "xquad"),
                                                         ("tagging_repository", "tiny-panx", "panx")])  # fmt: skip
def test_the_bare_session_runs_every_window_of_an_item(request, data_dir, fixture, model, task):
    """A QA context or a long sentence is several sequences, as the server windows it: throughput counts them all,
    latency runs each item's windows in one call."""
    from xstilts.serve.core.tagging import TagItem

    repository = request.getfixturevalue(fixture)
    items = mixed_items(load_evaluation_sample(task, data_dir, None, 4, 0))
    bare = measure.load_bare(repository, model, "fp32", items, {})
    loaded = bare_model(repository, model)
    if task == "xquad":
        windows = loaded.spans.windows([(e.text_b, e.text_a) for e in items])
        expected = [[w.ids for w in windows if w.item == i] for i in range(len(items))]
    else:
        expected = [[w.ids for w in s] for s in loaded.tagger.windows([TagItem.from_words(e.words) for e in items])]
    assert bare.items == expected and bare.sequences == [s for item in expected for s in item]
    assert max(len(item) for item in bare.items) > 1 and bare.sequences_per_item > 1  # some items take windows
    assert all(len(s) <= loaded.manifest.max_length for s in bare.sequences)
    assert bare.latency(0.2)["calls"] > 0 and bare.run("4", 0.1) > 0


def bare_model(repository: Path, model: str):
    from xstilts.bench.accuracy import load_in_process

    return load_in_process(repository / model / "fp32")


def test_a_multiple_choice_model_is_refused_in_one_line(tiny_repository):
    command = [sys.executable, "-m", "xstilts.bench.measure", "--repository", str(tiny_repository), "--model",
               "tiny-xcopa", "--variant", "fp32"]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, cwd=REPO)
    assert done.returncode == 2 and "multiple-choice" in done.stderr and "Traceback" not in done.stderr


def test_the_measurement_end_to_end(tiny_repository, data_dir, tmp_path):
    out = tmp_path / "measure.json"
    command = [sys.executable, "-m", "xstilts.bench.measure", "--repository", str(tiny_repository), "--model",
               "tiny-xnli", "--variant", "fp32", "--data-dir", str(data_dir), "--pairs", "300", "--rounds", "1",
               "--seconds", "1", "--bare-seconds", "0.2", "--connections", "2", "--env",
               "XSTILTS_MAX_BATCH_SIZE=4", "--out", str(out)]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, cwd=REPO)
    assert done.returncode == 0, done.stderr + done.stdout
    result = json.loads(out.read_text())
    assert result["texts"].startswith("300 xnli test items") and result["sequences_per_request"] == 1
    assert result["server_settings"] == {"XSTILTS_MAX_BATCH_SIZE": "4"}
    assert set(result["bare_scan"]) == {"1", *(f"{b}{m}" for b in (2, 4, 8, 16, 32, 64) for m in ("", " by length"))}
    [figures] = result["rounds"]
    assert len(figures["saturation_runs"]) == 1 and figures["saturation_runs"][0]["connections"] == 2
    assert figures["half"]["offered_rate"] == pytest.approx(figures["saturation_runs"][0]["requests_per_second"] / 2)
    summary = result["summary"]
    assert summary["rounds"] == 1 and summary["errors"] == 0
    assert summary["bare_best_batch"] in result["bare_scan"]
    assert summary["server_saturation_requests_per_second"] > 0 and summary["saturation_ratio"] > 0
    assert 1 <= summary["mean_items_per_batch"] <= 4  # the server ran with the setting given
    assert json.loads(done.stdout[done.stdout.index("{\n") :]) == summary


def test_a_bad_setting_is_one_line(tiny_repository):
    command = [sys.executable, "-m", "xstilts.bench.measure", "--repository", str(tiny_repository), "--model",
               "tiny-xnli", "--env", "MAX_BATCH_SIZE=4"]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, cwd=REPO)
    assert done.returncode == 2 and "XSTILTS_NAME=VALUE" in done.stderr and "Traceback" not in done.stderr
