"""The bench's small rules, on real data where data is involved."""

from __future__ import annotations

import json

import pytest

from xstilts.bench import accuracy, load, server_metrics
from xstilts.bench.payloads import PayloadSet, make_payloads, read_payloads, write_payloads
from xstilts.bench.report import figures
from xstilts.errors import XstiltsError


def test_percentile_is_nearest_rank():
    values = [float(v) for v in range(1, 101)]
    assert load.percentile(values, 50) == 50.0
    assert load.percentile(values, 99) == 99.0
    assert load.percentile([3.0], 99) == 3.0
    assert load.percentile([], 50) is None
    assert load.percentile([1.0, 2.0], 50) == 1.0


def test_durations_and_rates():
    assert load.parse_duration("90") == 90
    assert load.parse_duration("1m30s") == 90
    assert load.parse_duration("2s") == 2
    with pytest.raises(XstiltsError):
        load.parse_duration("soon")
    assert load.parse_rates("0.5x, 12") == [(0.5, True), (12.0, False)]
    with pytest.raises(XstiltsError):
        load.parse_rates("-3")
    with pytest.raises(XstiltsError):
        load.parse_ints("1,0", "--users")


def test_summary_counts_open_loop_stragglers_as_latency():
    records = [[100.0, 10.0, 1, 1], [100.5, 20.0, 1, 1], [101.0, 30.0, 0, 1]]
    closed = load.summarize(records, [500.0], open_loop=False)
    assert closed["requests"] == 3 and closed["failures"] == 1 and closed["error_rate"] == pytest.approx(1 / 3)
    assert closed["latency_ms"].max == 20.0  # failures and cut-off requests are not latencies in a closed loop
    assert closed["requests_per_s"] == pytest.approx(2 / 1.03)
    opened = load.summarize(records, [500.0], open_loop=True)
    assert opened["latency_ms"].max == 500.0 and opened["latency_includes_unfinished"]


def test_pareto_front():
    points = [(10.0, 80.0, "big"), (5.0, 78.0, "small"), (6.0, 70.0, "worse"), (2.0, 60.0, "tiny")]
    assert [p[2] for p in figures.pareto_front(points, lower_is_better=True)] == ["tiny", "small", "big"]
    throughput = [(100.0, 80.0, "big"), (400.0, 78.0, "small"), (300.0, 70.0, "worse")]
    assert [p[2] for p in figures.pareto_front(throughput, lower_is_better=False)] == ["small", "big"]


def test_tolerance_same_items_is_tight_and_other_samples_statistical():
    assert accuracy.tolerance(0.8, 200, 0.8, 200, same_items=True) == pytest.approx(0.01)
    assert accuracy.tolerance(0.8, 8, 0.8, 8, same_items=True) == pytest.approx(0.25)
    wide = accuracy.tolerance(0.8, 100, 0.8, 100, same_items=False)
    assert wide == pytest.approx(2.576 * (0.16 * 0.02) ** 0.5)
    # int8 that changed 9% of the labels at export: its labels also move with the batch they are run in
    int8 = accuracy.tolerance(0.5, 60, 0.5, 60, same_items=True, fragile=0.09)
    assert int8 == pytest.approx(2.576 * (0.09 / 60) ** 0.5)
    assert int8 > accuracy.tolerance(0.5, 60, 0.5, 60, same_items=True)


METRICS_BEFORE = """
# TYPE xstilts_requests counter
xstilts_requests_total{model="m",endpoint="v1_predict",status="200"} 3.0
# TYPE xstilts_queue_duration_seconds histogram
xstilts_queue_duration_seconds_bucket{model="m",le="+Inf"} 3.0
xstilts_queue_duration_seconds_count{model="m"} 3.0
xstilts_queue_duration_seconds_sum{model="m"} 0.003
# TYPE xstilts_batch_size histogram
xstilts_batch_size_bucket{model="m",le="+Inf"} 2.0
xstilts_batch_size_count{model="m"} 2.0
xstilts_batch_size_sum{model="m"} 3.0
"""
METRICS_AFTER = """
# TYPE xstilts_requests counter
xstilts_requests_total{model="m",endpoint="v1_predict",status="200"} 13.0
xstilts_requests_total{model="m",endpoint="v1_predict",status="429"} 2.0
# TYPE xstilts_queue_duration_seconds histogram
xstilts_queue_duration_seconds_bucket{model="m",le="+Inf"} 13.0
xstilts_queue_duration_seconds_count{model="m"} 13.0
xstilts_queue_duration_seconds_sum{model="m"} 0.053
# TYPE xstilts_batch_size histogram
xstilts_batch_size_bucket{model="m",le="+Inf"} 7.0
xstilts_batch_size_count{model="m"} 7.0
xstilts_batch_size_sum{model="m"} 23.0
"""


def test_metric_deltas():
    change = server_metrics.delta(server_metrics.parse(METRICS_BEFORE), server_metrics.parse(METRICS_AFTER), "m")
    assert change.requests == {"200": 10, "429": 2}
    assert change.mean_queue == pytest.approx(0.005)
    assert change.mean_batch_size == pytest.approx(4.0)
    assert change.batches == 5
    assert change.mean_inference is None
    assert server_metrics.delta(None, server_metrics.parse(METRICS_AFTER), "m") is None


def test_payloads_cover_the_sample_with_real_texts(xnli_sample, xcopa_sample, tmp_path):
    payloads = make_payloads(xnli_sample, "tiny-xnli", items_per_request=5, seed=3)
    assert payloads.path == "/v1/models/tiny-xnli/predict"
    assert all(len(b["inputs"]) == 5 for b in payloads.bodies)
    sent = {(i["text"], i["text_pair"]) for b in payloads.bodies for i in b["inputs"]}
    wanted = {(e.text_a, e.text_b) for ex in xnli_sample.examples.values() for e in ex}
    assert sent == wanted  # every item of every language, nothing else
    assert payloads.sequences == payloads.items
    again = read_payloads(write_payloads(tmp_path / "p.json", payloads))
    assert again == payloads
    assert make_payloads(xnli_sample, "tiny-xnli", 5, seed=3).bodies == payloads.bodies  # seeded

    choices = make_payloads(xcopa_sample, "tiny-xcopa", items_per_request=1)
    item = choices.bodies[0]["inputs"][0]
    assert set(item) <= {"premise", "question", "choices"} and len(item["choices"]) == 2
    assert choices.sequences[0] == 2  # one sequence per choice

    (tmp_path / "bad.json").write_text(json.dumps({"schema": "other"}))
    with pytest.raises(XstiltsError):
        read_payloads(tmp_path / "bad.json")
    assert isinstance(payloads, PayloadSet)
