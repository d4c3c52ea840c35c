"""The server against its bare session, on real evaluation texts, in one run (the README's serving figures).

    apt-get install wrk
    python -m xstilts.bench.measure --repository REPO --model NAME [--variant int8] [--naive] [--out result.json]

1. The bare session: the engine ``xstilts serve`` builds (same settings), in this process, on pre-tokenized
   sequences: throughput at batch sizes 1 to 64 (sequences in arrival order, and sorted by length within blocks),
   one-item latency (:mod:`xstilts.bench.bare`).
2. ``xstilts serve`` in a subprocess, loaded by wrk (Debian's C load generator, with ``post.lua``: one real item
   per request, all languages mixed; :mod:`xstilts.bench.wrk`): saturation throughput (the best over a few
   connection counts), one client at a time (median latency), and an offered load of half the saturation rate
   (p50 and p99 latency).
3. With ``--naive``, the naive PyTorch reference (:mod:`xstilts.bench.naive_server`) under the same wrk load:
   its saturation throughput, and the server's against it.

The items are the bench's payloads (:mod:`xstilts.bench.payloads`), in a seeded mixed order, the first
``--pairs`` of them: for a classifier, XNLI test pairs; for an embedding bundle, the sentences of its retrieval
task (the XNLI test premises in the languages its parity gate used), run by the bare session with the bundle's
prefix, as the server runs them; for an extractive QA bundle, its task's question/context pairs (the bare session
runs every window of each context); for a tagging bundle, its task's sentences as words (every window of each).
The saturation ratio compares sequences per second (requests times the items' mean sequences: windows for QA and
tagging, one otherwise). Bare and server runs alternate in rounds and each round's ratios use its own bare
figures, so that other work on the machine (which shares its cores) weighs on both sides alike; the summary takes
the median over rounds and records the load average. wrk's own CPU time is reported: it stays a small share of a
core.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import statistics
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from xstilts.bench import server_metrics
from xstilts.bench.bare import Bare
from xstilts.bench.payloads import mixed_items, predict_path, request_body, write_body_lines
from xstilts.bench.retrieval import sample_languages
from xstilts.bench.servers import (
    ServerProcess,
    find_checkpoint,
    naive_embedding_server,
    naive_server,
    running,
    xstilts_server,
)
from xstilts.bench.wrk import run_wrk
from xstilts.contracts.bundle import BundleManifest, load_manifest
from xstilts.contracts.evaluation import load_evaluation_sample
from xstilts.contracts.kinds import TaskKind
from xstilts.errors import XstiltsError
from xstilts.paths import resolve_data_dir
from xstilts.serve.core.tagging import TagItem
from xstilts.tasks import Example
from xstilts.tasks.encoding import example_segments

if TYPE_CHECKING:
    from xstilts.serve.core.engine import LoadedModel

CLASSIFIER_TASK = "xnli"  # classifiers are loaded with XNLI test pairs; other kinds with their own task's texts
BATCH_SIZES = (1, 2, 4, 8, 16, 32, 64)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m xstilts.bench.measure", description=__doc__.splitlines()[0])
    parser.add_argument("--repository", type=Path, required=True)
    parser.add_argument("--model", required=True)
    parser.add_argument("--variant", default="int8")
    parser.add_argument("--data-dir", help="data folder (default: $XSTILTS_DATA_DIR, else ../shared/data)")
    parser.add_argument("--pairs", type=int, default=3000, help="items (pairs, sentences, questions) to cycle through")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds of bare and server runs")
    parser.add_argument("--seconds", type=float, default=10, help="length of each wrk run")
    parser.add_argument("--bare-seconds", type=float, default=5, help="length of each bare run")
    parser.add_argument("--connections", default="16,64", help="connection counts tried for saturation")
    parser.add_argument("--env", action="append", default=[], help="server setting KEY=VALUE (XSTILTS_*), repeatable")
    parser.add_argument("--naive", action="store_true", help="also load the naive PyTorch reference server")
    parser.add_argument("--out", type=Path, help="write the figures here as JSON")
    return parser.parse_args(argv)


def server_settings(pairs: list[str]) -> dict[str, str]:
    """``--env KEY=VALUE`` settings: ``XSTILTS_*`` names only (the bare session reads the very same)."""
    settings = {}
    for item in pairs:
        key, sep, value = item.partition("=")
        if not sep or not key.startswith("XSTILTS_"):
            raise XstiltsError(f"--env {item!r}: expected XSTILTS_NAME=VALUE")
        settings[key] = value
    return settings


def item_sequences(loaded: LoadedModel, items: list[Example]) -> list[list[list[int]]]:
    """Each item's token sequences as the server builds them: a text or pair (one sequence), an embedding model's
    prefixed sentence, an extractive QA pair's context windows, a tagging sentence's word windows."""
    kind = loaded.manifest.kind
    if kind is TaskKind.SPAN_QA:
        assert loaded.spans is not None, "span QA models load their SpanReader"
        per_item: list[list[list[int]]] = [[] for _ in items]
        for window in loaded.spans.windows([(e.text_b or "", e.text_a) for e in items]):
            per_item[window.item].append(window.ids)
        return per_item
    if kind is TaskKind.TOKEN_CLASSIFICATION:
        assert loaded.tagger is not None, "tagging models load their Tagger"
        sentences = loaded.tagger.windows([TagItem.from_words(e.words) for e in items])
        return [[window.ids for window in sentence] for sentence in sentences]
    spec = loaded.manifest.embedding
    if kind is TaskKind.EMBEDDING and spec is not None:  # one sentence, prefixed, as /embed runs it
        segments = [[(spec.text(e.text_a), None)] for e in items]
    else:
        segments = [example_segments(kind, e) for e in items]
    return [encoded.sequences for encoded in loaded.encoder.encode(segments)]


def load_bare(repository: Path, model: str, variant: str, items: list[Example], env: dict[str, str]) -> Bare:
    """The engine exactly as ``xstilts serve`` with the same settings builds it, in this process."""
    from xstilts.serve.core.engine import load_model
    from xstilts.serve.core.repository import plan_models
    from xstilts.serve.settings import load_settings

    settings = load_settings({"repository": repository, "models": f"{model}={variant}"}, env=env)
    (planned,) = plan_models(settings)
    loaded = load_model(planned, settings)
    return Bare(loaded.engine, item_sequences(loaded, items))


def naive_process(repository: Path, manifest: BundleManifest, log_path: Path) -> ServerProcess:
    """The naive reference for ``manifest``: its encoder (embedding), or the checkpoint it was exported from."""
    if manifest.kind is TaskKind.EMBEDDING:
        return naive_embedding_server(repository / manifest.name / manifest.variant, manifest.name, log_path)
    checkpoint = find_checkpoint(manifest, [Path.cwd() / "runs", repository.resolve().parent])
    return naive_server(checkpoint, manifest.name, log_path)


def saturation(server: ServerProcess, path: str, bodies: Path, args: argparse.Namespace) -> list[dict[str, Any]]:
    """wrk runs at every ``--connections`` count, each request answered before the connection sends the next."""
    pid = server.process.pid
    counts = [int(c) for c in args.connections.split(",")]
    return [run_wrk(server.url, path, bodies, c, args.seconds, server_pid=pid) for c in counts]


def best_rate(runs: list[dict[str, Any]]) -> float:
    return max(r["requests_per_second"] for r in runs)


def error_count(runs: list[dict[str, Any]]) -> int:
    """Every failed request wrk counted in ``runs``: non-2xx answers, connection errors, timeouts."""
    return sum(r["non_2xx"] + r["connect_errors"] + r["timeouts"] for r in runs)


def median(values: list[float]) -> float:
    return round(statistics.median(values), 3)


def measure_round(server: ServerProcess, path: str, bodies: Path, bare: Bare, contenders: list[str],
                  args: argparse.Namespace, naive: ServerProcess | None = None) -> dict[str, Any]:  # fmt: skip
    """One round: the bare contenders and batch-1 latency, then saturation, one client and half load under wrk,
    then (with ``naive``) the naive server's saturation."""
    figures: dict[str, Any] = {"load_average": os.getloadavg()}
    figures["bare"] = {key: bare.run(key, args.bare_seconds) for key in contenders}
    figures["bare_batch1_latency_ms"] = bare.latency(args.bare_seconds)  # one item, all its sequences
    pid = server.process.pid
    runs = saturation(server, path, bodies, args)
    best = best_rate(runs)
    single = run_wrk(server.url, path, bodies, 1, args.seconds, server_pid=pid)
    half = run_wrk(server.url, path, bodies, 32, args.seconds, rate=best / 2, server_pid=pid)
    figures.update(
        saturation_runs=runs,
        one_client=single,
        half=half,
        saturation_ratio=round(best * bare.sequences_per_item / max(figures["bare"].values()), 3),
        latency_ratio=round(single["latency_ms"]["p50"] / figures["bare_batch1_latency_ms"]["p50"], 3),
    )
    if naive is not None:
        figures["naive_runs"] = saturation(naive, path, bodies, args)
        figures["naive_ratio"] = round(best / max(best_rate(figures["naive_runs"]), 1e-9), 3)
    return figures


def round_line(number: int, figures: dict[str, Any]) -> str:
    best = max(figures["saturation_runs"], key=lambda r: r["requests_per_second"])
    single, half = figures["one_client"], figures["half"]
    line = (
        f"round {number}: bare {figures['bare']} seq/s, server {best['requests_per_second']} req/s "
        f"(x{figures['saturation_ratio']}); one client p50 {single['latency_ms']['p50']} ms vs bare "
        f"{figures['bare_batch1_latency_ms']['p50']} ms (x{figures['latency_ratio']}); half load "
        f"{half['requests_per_second']} req/s p50 {half['latency_ms']['p50']} ms "
        f"p99 {half['latency_ms']['p99']} ms; load {figures['load_average'][0]:.1f}"
    )
    if "naive_runs" in figures:
        line += f"; naive {best_rate(figures['naive_runs'])} req/s (server x{figures['naive_ratio']})"
    return line


def summarize(rounds: list[dict[str, Any]], contenders: list[str], metrics: server_metrics.Samples | None) -> dict:
    """The medians over rounds, the server's mean batch size, and every error wrk counted."""
    batch_count = server_metrics.total(metrics, "xstilts_batch_size_count") if metrics else 0.0
    batch_sum = server_metrics.total(metrics, "xstilts_batch_size_sum") if metrics else 0.0
    best_runs = [max(f["saturation_runs"], key=lambda r: r["requests_per_second"]) for f in rounds]
    summary = {
        "rounds": len(rounds),
        "bare_best_sequences_per_second": median([max(f["bare"].values()) for f in rounds]),
        "bare_best_batch": contenders[0],
        "server_saturation_requests_per_second": median([r["requests_per_second"] for r in best_runs]),
        "saturation_ratio": median([f["saturation_ratio"] for f in rounds]),
        "bare_batch1_p50_ms": median([f["bare_batch1_latency_ms"]["p50"] for f in rounds]),
        "one_client_p50_ms": median([f["one_client"]["latency_ms"]["p50"] for f in rounds]),
        "one_client_latency_ratio": median([f["latency_ratio"] for f in rounds]),
        "half_saturation_requests_per_second": median([f["half"]["requests_per_second"] for f in rounds]),
        "half_saturation_p50_ms": median([f["half"]["latency_ms"]["p50"] for f in rounds]),
        "half_saturation_p99_ms": median([f["half"]["latency_ms"]["p99"] for f in rounds]),
        "mean_items_per_batch": round(batch_sum / batch_count, 2) if batch_count else None,
        "wrk_cpu_cores_at_saturation": median([r["wrk_cpu_cores"] for r in best_runs]),
        "errors": sum(error_count([*f["saturation_runs"], f["one_client"], f["half"]]) for f in rounds),
        "load_average_during": median([f["load_average"][0] for f in rounds]),
    }
    naive = [f for f in rounds if "naive_runs" in f]
    if naive:
        summary["naive_saturation_requests_per_second"] = median([best_rate(f["naive_runs"]) for f in naive])
        summary["server_naive_ratio"] = median([f["naive_ratio"] for f in naive])
        summary["errors"] += sum(error_count(f["naive_runs"]) for f in naive)
    return summary


def measure(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    """The whole comparison; bulky files (request bodies, the server's log) go to ``work``."""
    if shutil.which("wrk") is None:
        raise XstiltsError("wrk is missing: apt-get install wrk")
    env = server_settings(args.env)
    manifest = load_manifest(args.repository / args.model / args.variant)
    if manifest.kind is TaskKind.MULTIPLE_CHOICE:
        raise XstiltsError(f"{args.model}/{args.variant} is a multiple-choice model: measure takes classifiers, "
                           "embedding, extractive QA and tagging models")  # fmt: skip
    task = CLASSIFIER_TASK if manifest.kind in (TaskKind.SINGLE, TaskKind.PAIR) else manifest.task
    data_dir = resolve_data_dir(args.data_dir)
    languages = sample_languages(task, data_dir, None, manifest)
    sample = load_evaluation_sample(task, data_dir, languages, args.pairs, seed=0)
    items = mixed_items(sample, seed=0)[: args.pairs]
    bodies = write_body_lines(work / "bodies.jsonl", [request_body(sample.kind, [e]) for e in items])
    bare = load_bare(args.repository, args.model, args.variant, items, env)
    result: dict[str, Any] = {
        "model": args.model,
        "variant": args.variant,
        "kind": str(manifest.kind),
        "cpus": os.cpu_count(),
        "server_settings": env,
        "texts": f"{len(items)} {task} {sample.split} items, {len(sample.languages)} languages mixed, one per "
        f"request; {bare.sequences_per_item:.2f} sequences per item, {bare.mean_tokens:.1f} tokens per sequence",
        "sequences_per_request": round(bare.sequences_per_item, 3),
        "load_average_start": os.getloadavg(),
    }
    print("bare session, every batch size ...", flush=True)
    scan = result["bare_scan"] = bare.scan(BATCH_SIZES, args.bare_seconds)
    print(json.dumps(scan), flush=True)
    contenders = sorted(scan, key=scan.get, reverse=True)[:2]  # type: ignore[arg-type]
    server = xstilts_server(args.repository, f"{args.model}={args.variant}", work / "server.log", settings=env)
    path = predict_path(args.model, manifest.kind)
    rounds = []
    with contextlib.ExitStack() as stack:
        stack.enter_context(running(server))
        naive = None
        if args.naive:
            naive = stack.enter_context(running(naive_process(args.repository, manifest, work / "naive.log")))
        for warm in [server, naive] if naive else [server]:
            run_wrk(warm.url, path, bodies, 16, 5)  # warm-up
        for number in range(args.rounds):
            rounds.append(measure_round(server, path, bodies, bare, contenders, args, naive))
            print(round_line(number + 1, rounds[-1]), flush=True)
        metrics = server_metrics.scrape(server.url)
    result["rounds"] = rounds
    result["load_average_end"] = os.getloadavg()
    result["summary"] = summarize(rounds, contenders, metrics)
    return result


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="xstilts-bench-"))
    try:
        result = measure(args, work)
    except XstiltsError as exc:
        print(f"xstilts: error: {exc}", file=sys.stderr)
        return 2
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(result["summary"], indent=2))
    if args.out:
        args.out.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
