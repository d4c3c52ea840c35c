"""The bench stage end to end: one running server (``--url``), or several started in turn (``--compare``).

For each target (a model and variant served by ``xstilts serve``, or the naive reference), in this order: what
the server says it serves, the accuracy pass over the evaluation sample, then the load scenarios (closed-loop
sweep, open loop at rates that may be fractions of the closed-loop peak, offline). Every target gets the same
sample and the same payload bodies; servers started here run one at a time on this machine and are always
stopped. Results go to ``results.json``, CSV files, and ``report.md`` with its plots.
"""

from __future__ import annotations

import os
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from xstilts.atomic import write_json_atomic
from xstilts.bench import accuracy as acc
from xstilts.bench import load, retrieval, servers
from xstilts.bench.config import BenchConfig, Target, bench_task, reference_manifest
from xstilts.bench.machine import machine_info
from xstilts.bench.payloads import make_payloads, write_payloads
from xstilts.contracts.bundle import BundleManifest, load_manifest
from xstilts.contracts.evaluation import EvaluationSample, load_evaluation_sample
from xstilts.contracts.kinds import TaskKind
from xstilts.contracts.results import (
    RESULTS_FILE,
    Accuracy,
    BenchResults,
    BundleFacts,
    SampleInfo,
    ScenarioResult,
    TargetResult,
)
from xstilts.errors import XstiltsError
from xstilts.paths import resolve_data_dir


def prepare(
    config: BenchConfig, task: str, models: list[str], manifest: BundleManifest | None = None
) -> tuple[EvaluationSample, dict[str, dict[str, Path]]]:
    """The evaluation sample and, per model name, its payload files (the same bodies for every model).

    A retrieval task's languages default to those of ``manifest``'s parity sample (else all present but English).
    """
    data_dir = resolve_data_dir(config.data_dir)
    languages = retrieval.sample_languages(task, data_dir, config.languages, manifest)
    try:
        sample = load_evaluation_sample(task, data_dir, languages, config.per_language, config.seed)
    except XstiltsError as exc:
        if "no shared items" in str(exc) and config.per_language is not None:
            raise XstiltsError(f"{exc} (its languages hold different items: pass --per-language all)") from None
        raise
    folder = config.raw / "payloads"
    files: dict[str, dict[str, Path]] = {}
    for model in dict.fromkeys(models):
        files[model] = {
            "online": write_payloads(
                folder / f"{model}-online.json", make_payloads(sample, model, config.items_per_request, config.seed)
            ),
            "offline": write_payloads(
                folder / f"{model}-offline.json", make_payloads(sample, model, config.offline_items, config.seed)
            ),
        }
    return sample, files


def run_load(
    url: str, target: Target, config: BenchConfig, payloads: dict[str, Path], folder: Path, log: Any
) -> list[ScenarioResult]:
    """The scenarios for one target, in order: closed-loop sweep, open loop, offline."""
    results: list[ScenarioResult] = []
    common = {"duration_s": config.duration_s, "max_requests": config.max_requests, "seed": config.seed}
    if "closed" in config.scenarios:
        for users in config.users:
            scenario = load.Scenario(
                f"closed-u{users}",
                "closed",
                users,
                payloads=payloads["online"],
                items_per_request=config.items_per_request,
                **common,
            )
            results.append(_run(url, target, scenario, folder, config, log))
    if "open" in config.scenarios and config.rates:
        closed = [r for r in results if r.mode == "closed" and not r.error]
        peak = max((r.requests_per_s for r in closed), default=None)
        for value, relative in config.rates:
            if relative:
                if not peak:
                    log(f"  open loop at {value:g}x peak skipped: no closed-loop peak measured (give rates in req/s)")
                    continue
                rate, rule = value * peak, f"{value:g}x the peak closed-loop rate ({peak:.1f} req/s)"
            else:
                rate, rule = value, "given"
            scenario = load.Scenario(
                f"open-{value:g}x" if relative else f"open-r{value:g}",
                "open",
                config.open_users,
                payloads=payloads["online"],
                items_per_request=config.items_per_request,
                rate=rate,
                rate_rule=rule,
                **common,
            )
            results.append(_run(url, target, scenario, folder, config, log))
    if "offline" in config.scenarios:
        scenario = load.Scenario(
            f"offline-u{config.offline_users}",
            "offline",
            config.offline_users,
            payloads=payloads["offline"],
            items_per_request=config.offline_items,
            **common,
        )
        results.append(_run(url, target, scenario, folder, config, log))
    return results


def _run(
    url: str, target: Target, scenario: load.Scenario, folder: Path, config: BenchConfig, log: Any
) -> ScenarioResult:
    result = load.run_scenario(url, target.model, scenario, folder, config.api_key)
    lat = result.latency_ms
    if result.error:
        log(f"  {scenario.name}: FAILED {result.error.splitlines()[0]}")
    else:
        log(
            f"  {scenario.name}: {result.requests} requests in {result.window_s:.1f} s, "
            f"{result.requests_per_s:.1f} req/s, {result.sequences_per_s:.1f} seq/s, "
            f"p50 {_ms(lat.p50)} p99 {_ms(lat.p99)} ms, errors {result.error_rate or 0:.1%} "
            f"(ended by {result.ended_by})"
        )
    return result


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def bench_target(
    url: str,
    target: Target,
    config: BenchConfig,
    sample: EvaluationSample,
    payloads: dict[str, Path],
    manifest: BundleManifest | None,
    log: Any,
) -> TargetResult:
    """Everything measured for one target on a running server."""
    served = acc.served_model(url, target.model, config.api_key)
    variant = served.get("variant")
    log(f"{target.label}: served as {target.model}/{variant} ({served.get('precision')}, {served.get('provider')})")
    record = TargetResult(
        label=target.label if target.variant else f"{target.model}/{variant}",
        model=target.model,
        variant=variant,
        server=target.server,
        url=url,
        served=served,
        bundle=_bundle_facts(manifest),
    )
    # an embedding model takes any retrieval task, an extractive QA model any QA task
    any_task = served.get("kind") in (TaskKind.EMBEDDING.value, TaskKind.SPAN_QA.value)
    if served.get("task") and served["task"] != sample.task and not (any_task and served["kind"] == sample.kind.value):
        raise XstiltsError(f"{target.label} serves task {served['task']}, the sample is {sample.task}")
    if config.accuracy:
        try:
            record.accuracy = accuracy_pass(url, target, variant, config, sample, manifest, log)
        except XstiltsError as exc:
            # the load scenarios still run: a slow or broken accuracy pass is reported, not fatal
            record.accuracy_error = str(exc)
            log(f"  accuracy pass FAILED: {exc}")
    record.scenarios = run_load(url, target, config, payloads, config.raw / "locust" / _slug(record.label), log)
    return record


def accuracy_pass(
    url: str,
    target: Target,
    variant: str | None,
    config: BenchConfig,
    sample: EvaluationSample,
    manifest: BundleManifest | None,
    log: Any,
) -> Accuracy:
    """The accuracy pass of one target, compared with the figure its bundle recorded at export."""
    deadline = time.monotonic() + config.accuracy_timeout_s
    if target.naive and manifest is not None:
        # the naive server runs the PyTorch checkpoint: the bundle's reference accuracy is its figure
        result = acc.run_accuracy(
            url, target.model, sample, _as_reference(manifest), config.accuracy_batch, config.api_key, deadline
        )
        compared_with = "the checkpoint's accuracy recorded at export (PyTorch)"
    else:
        result = acc.run_accuracy(url, target.model, sample, manifest, config.accuracy_batch, config.api_key, deadline)
        compared_with = f"the accuracy of {target.model}/{variant} recorded at export"
    parity = result.parity
    note = ""
    if parity.available:
        parity.compared_with = compared_with
        note = " - agrees with bundle.json" if parity.agrees else f" - DIFFERS in {', '.join(parity.flagged or [])}"
    log(
        f"  accuracy through the API: {result.average:.2%} average over {len(result.languages)} languages "
        f"({result.requests.items} items in {result.requests.seconds:.1f} s){note}"
    )
    return result


def _as_reference(manifest: BundleManifest) -> BundleManifest:
    """A copy of ``manifest`` whose parity accuracy is the PyTorch checkpoint's reference accuracy."""
    import copy

    reference = copy.deepcopy(manifest)
    languages = (reference.parity or {}).get("languages") or {}
    for values in languages.values():
        if "reference_accuracy" in values:
            values["accuracy"] = values["reference_accuracy"]
    reference.variant = f"{manifest.variant} reference (PyTorch checkpoint)"
    return reference


def _bundle_facts(manifest: BundleManifest | None) -> BundleFacts | None:
    if manifest is None:
        return None
    parity = manifest.parity or {}
    return BundleFacts(
        name=manifest.name,
        variant=manifest.variant,
        precision=manifest.precision,
        optimization=manifest.optimization,
        build=manifest.build.get("summary"),
        base_model=(manifest.lineage or {}).get("model") or (manifest.lineage or {}).get("base"),
        parity_data=parity.get("data"),
        parity_average=(parity.get("average_accuracy") or {}).get("variant"),
        reference_average=(parity.get("average_accuracy") or {}).get("reference"),
    )


def _slug(label: str) -> str:
    return label.replace("/", "__")


def new_results(config: BenchConfig, sample: EvaluationSample, mode: str) -> BenchResults:
    return BenchResults(
        created=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        command=config.command,
        machine=machine_info(),
        budget=config.describe(),
        data=SampleInfo.from_json(sample.describe()),
        mode=mode,
    )


def finish(results: BenchResults, config: BenchConfig, started: float) -> BenchResults:
    from xstilts.bench.report import write_report

    results.wall_s = round(time.monotonic() - started, 1)
    results.machine.load_average_end = [round(x, 2) for x in os.getloadavg()]
    write_json_atomic(config.output / RESULTS_FILE, results.to_json())
    write_report(results, config.output)
    return results


def bench_url(
    url: str, model: str, config: BenchConfig, repository: Path | None = None, log: Any = print
) -> BenchResults:
    """Bench a server that is already running at ``url``."""
    started = time.monotonic()
    served = acc.served_model(url, model, config.api_key)
    task = config.task or served.get("task")
    if not task:
        raise XstiltsError(f"{url} does not say which task {model} serves: pass --task")
    manifest = None
    if repository is not None and served.get("variant"):
        manifest = acc.bundle_manifest(repository, model, served["variant"])
    sample, payloads = prepare(config, task, [model], manifest)
    results = new_results(config, sample, "url")
    try:
        results.targets.append(
            bench_target(url, Target(model, None, url), config, sample, payloads[model], manifest, log)
        )
    finally:
        finish(results, config, started)
    return results


def bench_compare(
    repository: Path,
    targets: list[Target],
    config: BenchConfig,
    naive_checkpoint: Path | None = None,
    serve_args: list[str] | None = None,
    naive_threads: int | None = None,
    log: Any = print,
) -> BenchResults:
    """Start each target's server in turn on this machine, bench it, stop it; one report for all."""
    started = time.monotonic()
    manifests = {
        t.label: reference_manifest(repository, t.model) if t.naive else load_manifest(repository / t.model / t.variant)
        for t in targets
    }
    task = bench_task(list(manifests.values()), config.task)
    checkpoints: dict[str, Path] = {}
    for target in targets:
        if target.naive and manifests[target.label].kind is TaskKind.EMBEDDING:
            # the encoder the bundle records (an alias or a folder), unless --naive-checkpoint names another
            checkpoints[target.label] = naive_checkpoint or Path(servers.encoder_of(manifests[target.label]))
        elif target.naive:
            if naive_checkpoint is not None:
                checkpoints[target.label] = naive_checkpoint
            else:
                roots = [Path.cwd() / "runs", repository.resolve().parent]
                checkpoints[target.label] = servers.find_checkpoint(manifests[target.label], roots)
            log(f"{target.label}: checkpoint {checkpoints[target.label]}")
    sample, payloads = prepare(config, task, [t.model for t in targets], next(iter(manifests.values()), None))
    results = new_results(config, sample, "compare")
    results.repository = str(repository)
    results.serve_args = serve_args or []
    logs = config.raw / "servers"
    try:
        for target in targets:
            manifest = manifests[target.label]
            if target.naive and manifest.kind is TaskKind.EMBEDDING:
                server = servers.naive_embedding_server(
                    repository / manifest.name / manifest.variant,
                    target.model,
                    logs / f"{_slug(target.label)}.log",
                    naive_threads,
                    encoder=str(checkpoints[target.label]),
                )
            elif target.naive:
                server = servers.naive_server(
                    checkpoints[target.label], target.model, logs / f"{_slug(target.label)}.log", naive_threads
                )
            else:
                server = servers.xstilts_server(
                    repository,
                    f"{target.model}={target.variant or 'auto'}",
                    logs / f"{_slug(target.label)}.log",
                    # a compared variant is named on purpose: measure it even if export kept it past the gate
                    ["--allow-failed-parity", *(serve_args or [])],
                )
            log(f"{target.label}: starting {server.url}")
            try:
                with servers.running(server):
                    record = bench_target(
                        server.url, target, config, sample, payloads[target.model], manifests[target.label], log
                    )
                    record.server_ready_s = round(server.ready_s or 0.0, 2)
                    if target.naive:
                        record.checkpoint = str(checkpoints[target.label])
            except XstiltsError as exc:
                log(f"{target.label}: FAILED {exc}")
                record = TargetResult(target.label, target.model, target.variant, target.server, error=str(exc))
            results.targets.append(record)
    finally:
        finish(results, config, started)
    return results
