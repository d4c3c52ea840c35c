"""The bench stage end to end: one running server (``--url``), or several started in turn (``--compare``).

For each target (a model and variant served by ``xstilts serve``, or the naive reference), in this order: what
the server says it serves, the accuracy pass over the evaluation sample, then the load scenarios (closed-loop
sweep, open loop at rates that may be fractions of the closed-loop peak, offline). Every target gets the same
sample and the same payload bodies; servers started here run one at a time on this machine and are always
stopped. Results go to ``results.json``, CSV files, and ``report.md`` with its plots.
"""

from __future__ import annotations

import os
import platform
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from xstilts import __version__
from xstilts.atomic import write_json_atomic
from xstilts.bench import accuracy as acc
from xstilts.bench import load, servers
from xstilts.bench.payloads import make_payloads, write_payloads
from xstilts.contracts.bundle import BundleManifest, list_bundles, load_manifest
from xstilts.contracts.evaluation import EvaluationSample, load_evaluation_sample
from xstilts.errors import XstiltsError
from xstilts.paths import resolve_data_dir

RESULTS_SCHEMA = "xstilts.bench.results/1"
NAIVE = "naive"


@dataclass
class BenchConfig:
    """What to measure and within which bounds (the ``xstilts bench`` flags)."""

    output: Path
    task: str | None = None
    data_dir: Path | None = None
    languages: str | None = None
    per_language: int | None = 200
    seed: int = 0
    accuracy: bool = True
    accuracy_batch: int = acc.DEFAULT_BATCH_ITEMS
    accuracy_timeout_s: float = 900.0
    scenarios: tuple[str, ...] = load.MODES
    users: list[int] = field(default_factory=lambda: [1, 2, 4, 8])
    rates: list[tuple[float, bool]] = field(default_factory=lambda: [(0.5, True), (0.9, True)])
    open_users: int = 1
    offline_users: int = 4
    offline_items: int = 32
    items_per_request: int = 1
    duration_s: float = 10.0
    max_requests: int = 2000
    api_key: str | None = None
    command: str = ""

    @property
    def raw(self) -> Path:
        """Bulky working files (payloads, locust's own files, server logs), apart from the report."""
        return self.output / "raw"

    def describe(self) -> dict[str, Any]:
        return {
            "scenarios": list(self.scenarios),
            "closed_loop_users": self.users,
            "open_loop_rates": [f"{v:g}x peak" if rel else f"{v:g}/s" for v, rel in self.rates],
            "open_loop_users": self.open_users,
            "offline": {"users": self.offline_users, "items_per_request": self.offline_items},
            "items_per_request": self.items_per_request,
            "duration_s_per_scenario": self.duration_s,
            "max_requests_per_scenario": self.max_requests,
            "accuracy_pass": self.accuracy,
            "accuracy_batch_items": self.accuracy_batch,
        }


@dataclass
class Target:
    """One thing to measure: a model and variant, on a server given or started here."""

    model: str
    variant: str | None  # None: whatever the server serves (--url); "naive" for the reference
    url: str | None = None

    @property
    def label(self) -> str:
        return f"{self.model}/{self.variant}" if self.variant else self.model

    @property
    def naive(self) -> bool:
        return self.variant == NAIVE


def machine_info() -> dict[str, Any]:
    """The machine the figures come from (shared machines: the load average says how busy it was)."""
    cpu = platform.processor() or platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text(errors="replace").splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count()
    memory = None
    meminfo = Path("/proc/meminfo")
    if meminfo.is_file():
        for line in meminfo.read_text().splitlines():
            if line.startswith("MemTotal"):
                memory = round(int(line.split()[1]) / 1024 / 1024, 1)
    versions = {}
    for name in ("onnxruntime", "onnxruntime-gpu", "tokenizers", "locust", "torch", "transformers", "fastapi"):
        try:
            versions[name] = version(name)
        except PackageNotFoundError:
            continue
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "usable_cores": usable,
        "memory_gb": memory,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "load_average": [round(x, 2) for x in os.getloadavg()] if hasattr(os, "getloadavg") else None,
        "versions": versions,
        "xstilts": __version__,
    }


def parse_targets(entries: str, repository: Path) -> list[Target]:
    """``--compare``: ``NAME/VARIANT``, ``NAME`` (every variant of NAME) or ``NAME/naive``, comma-separated."""
    bundles = list_bundles(repository)
    targets: list[Target] = []
    for entry in (e.strip() for e in entries.split(",")):
        if not entry:
            continue
        name, _, variant = entry.partition("/")
        if name not in bundles:
            raise XstiltsError(f"--compare {entry}: {repository} has no model {name!r}; it has {', '.join(bundles)}")
        if not variant:
            targets += [Target(name, v) for v in sorted(bundles[name])]
        elif variant == NAIVE or variant in bundles[name]:
            targets.append(Target(name, variant))
        else:
            raise XstiltsError(
                f"--compare {entry}: {name} has no variant {variant!r}; it has {', '.join(sorted(bundles[name]))}"
                f" (or '{NAIVE}' for the PyTorch reference)"
            )
    if not targets:
        raise XstiltsError("--compare names nothing to compare")
    labels = [t.label for t in targets]
    if len(set(labels)) != len(labels):
        raise XstiltsError(f"--compare names a target twice: {', '.join(labels)}")
    return targets


def reference_manifest(repository: Path, model: str) -> BundleManifest:
    """A manifest of ``model`` (its fp32 variant if there is one): the naive server's lineage and references."""
    variants = list_bundles(repository).get(model) or {}
    if not variants:
        raise XstiltsError(f"{repository} has no model {model!r}")
    folder = variants.get("fp32") or variants[sorted(variants)[0]]
    return load_manifest(folder)


def prepare(config: BenchConfig, task: str, models: list[str]) -> tuple[EvaluationSample, dict[str, dict[str, Path]]]:
    """The evaluation sample and, per model name, its payload files (the same bodies for every model)."""
    sample = load_evaluation_sample(
        task, resolve_data_dir(config.data_dir), config.languages, config.per_language, config.seed
    )
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
) -> list[dict[str, Any]]:
    """The scenarios for one target, in order: closed-loop sweep, open loop, offline."""
    results: list[dict[str, Any]] = []
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
        closed = [r for r in results if r["mode"] == "closed" and not r.get("error")]
        peak = max((r["requests_per_s"] for r in closed), default=None)
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


def _run(url: str, target: Target, scenario: load.Scenario, folder: Path, config: BenchConfig, log: Any) -> dict:
    result = load.run_scenario(url, target.model, scenario, folder, config.api_key)
    lat = result["latency_ms"]
    if result.get("error"):
        log(f"  {scenario.name}: FAILED {result['error'].splitlines()[0]}")
    else:
        log(
            f"  {scenario.name}: {result['requests']} requests in {result['window_s']:.1f} s, "
            f"{result['requests_per_s']:.1f} req/s, {result['sequences_per_s']:.1f} seq/s, "
            f"p50 {_ms(lat['p50'])} p99 {_ms(lat['p99'])} ms, errors {result['error_rate'] or 0:.1%} "
            f"(ended by {result['ended_by']})"
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
) -> dict[str, Any]:
    """Everything measured for one target on a running server."""
    served = acc.served_model(url, target.model, config.api_key)
    variant = served.get("variant")
    log(f"{target.label}: served as {target.model}/{variant} ({served.get('precision')}, {served.get('provider')})")
    record: dict[str, Any] = {
        "label": target.label if target.variant else f"{target.model}/{variant}",
        "model": target.model,
        "variant": variant,
        "server": "naive" if target.naive else "xstilts",
        "url": url,
        "served": served,
        "bundle": _bundle_facts(manifest),
    }
    if served.get("task") and served["task"] != sample.task:
        raise XstiltsError(f"{target.label} serves task {served['task']}, the sample is {sample.task}")
    if config.accuracy:
        try:
            record["accuracy"] = accuracy_pass(url, target, variant, config, sample, manifest, log)
        except XstiltsError as exc:
            # the load scenarios still run: a slow or broken accuracy pass is reported, not fatal
            record["accuracy_error"] = str(exc)
            log(f"  accuracy pass FAILED: {exc}")
    record["scenarios"] = run_load(url, target, config, payloads, config.raw / "locust" / _slug(record["label"]), log)
    return record


def accuracy_pass(
    url: str,
    target: Target,
    variant: str | None,
    config: BenchConfig,
    sample: EvaluationSample,
    manifest: BundleManifest | None,
    log: Any,
) -> dict[str, Any]:
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
    parity = result["parity"]
    note = ""
    if parity.get("available"):
        parity["compared_with"] = compared_with
        note = " - agrees with bundle.json" if parity["agrees"] else f" - DIFFERS in {', '.join(parity['flagged'])}"
    log(
        f"  accuracy through the API: {result['average']:.2%} average over {len(result['languages'])} languages "
        f"({result['requests']['items']} items in {result['requests']['seconds']:.1f} s){note}"
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


def _bundle_facts(manifest: BundleManifest | None) -> dict[str, Any] | None:
    if manifest is None:
        return None
    parity = manifest.parity or {}
    return {
        "name": manifest.name,
        "variant": manifest.variant,
        "precision": manifest.precision,
        "optimization": manifest.optimization,
        "build": manifest.build.get("summary"),
        "base_model": (manifest.lineage or {}).get("model") or (manifest.lineage or {}).get("base"),
        "parity_data": parity.get("data"),
        "parity_average": (parity.get("average_accuracy") or {}).get("variant"),
        "reference_average": (parity.get("average_accuracy") or {}).get("reference"),
    }


def _slug(label: str) -> str:
    return label.replace("/", "__")


def new_results(config: BenchConfig, sample: EvaluationSample) -> dict[str, Any]:
    return {
        "schema": RESULTS_SCHEMA,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "command": config.command,
        "machine": machine_info(),
        "budget": config.describe(),
        "data": sample.describe(),
        "targets": [],
    }


def finish(results: dict[str, Any], config: BenchConfig, started: float) -> dict[str, Any]:
    from xstilts.bench.report import write_report

    results["wall_s"] = round(time.monotonic() - started, 1)
    results["machine"]["load_average_end"] = [round(x, 2) for x in os.getloadavg()]
    write_json_atomic(config.output / "results.json", results)
    write_report(results, config.output)
    return results


def bench_url(
    url: str, model: str, config: BenchConfig, repository: Path | None = None, log: Any = print
) -> dict[str, Any]:
    """Bench a server that is already running at ``url``."""
    started = time.monotonic()
    served = acc.served_model(url, model, config.api_key)
    task = config.task or served.get("task")
    if not task:
        raise XstiltsError(f"{url} does not say which task {model} serves: pass --task")
    sample, payloads = prepare(config, task, [model])
    results = new_results(config, sample)
    results["mode"] = "url"
    manifest = None
    if repository is not None and served.get("variant"):
        manifest = acc.bundle_manifest(repository, model, served["variant"])
    try:
        results["targets"].append(
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
) -> dict[str, Any]:
    """Start each target's server in turn on this machine, bench it, stop it; one report for all."""
    started = time.monotonic()
    manifests = {
        t.label: reference_manifest(repository, t.model) if t.naive else load_manifest(repository / t.model / t.variant)
        for t in targets
    }
    tasks = {m.task for m in manifests.values()}
    if config.task:
        tasks.add(config.task)
    if len(tasks) != 1:
        raise XstiltsError(f"the targets are for different tasks ({', '.join(sorted(tasks))}): compare one task")
    task = tasks.pop()
    checkpoints: dict[str, Path] = {}
    for target in targets:
        if target.naive:
            if naive_checkpoint is not None:
                checkpoints[target.label] = naive_checkpoint
            else:
                roots = [Path.cwd() / "runs", repository.resolve().parent]
                checkpoints[target.label] = servers.find_checkpoint(manifests[target.label], roots)
            log(f"{target.label}: checkpoint {checkpoints[target.label]}")
    sample, payloads = prepare(config, task, [t.model for t in targets])
    results = new_results(config, sample)
    results["mode"] = "compare"
    results["repository"] = str(repository)
    results["serve_args"] = serve_args or []
    logs = config.raw / "servers"
    try:
        for target in targets:
            if target.naive:
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
                    record["server_ready_s"] = round(server.ready_s or 0.0, 2)
                    if target.naive:
                        record["checkpoint"] = str(checkpoints[target.label])
            except XstiltsError as exc:
                log(f"{target.label}: FAILED {exc}")
                record = {
                    "label": target.label,
                    "model": target.model,
                    "variant": target.variant,
                    "server": "naive" if target.naive else "xstilts",
                    "error": str(exc),
                    "scenarios": [],
                }
            results["targets"].append(record)
    finally:
        finish(results, config, started)
    return results
