"""The bench results contract (``results.json``): written by the bench runner, read by the bench report and by the
grid's rows.

Plain dataclasses, read strictly (a missing or unknown key is one clear error naming where) and written as the
JSON the bench has always written: a field named in its class's ``OMIT_NONE`` is left out while it is None (a
target whose accuracy pass did not run has no ``accuracy`` key). Mappings that other contracts define are kept
as they are: ``served`` is the server's ``GET /v1/models/{name}`` answer, ``bundle_data``/``parity_data`` are
what ``bundle.json`` recorded of its sample, ``data`` is :meth:`EvaluationSample.describe`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from xstilts.contracts.records import Record, load
from xstilts.errors import XstiltsError

RESULTS_SCHEMA = "xstilts.bench.results/1"
RESULTS_FILE = "results.json"
NAIVE_SERVER = "naive"
XSTILTS_SERVER = "xstilts"


class Part(Record):
    """A part of ``results.json``."""

    WHERE: ClassVar[str] = RESULTS_FILE


# ---------------------------------------------------------------------------------------------------- the run


@dataclass
class Machine(Part):
    """The machine the figures come from (the load average says how busy a shared machine was)."""

    cpu: str
    cores: int | None
    usable_cores: int | None
    memory_gb: float | None
    platform: str
    python: str
    load_average: list[float] | None
    versions: dict[str, str]
    xstilts: str
    load_average_end: list[float] | None = None

    OMIT_NONE = frozenset({"load_average_end"})


@dataclass
class OfflineBudget(Part):
    users: int
    items_per_request: int


@dataclass
class Budget(Part):
    """What was measured and within which bounds (the ``xstilts bench`` flags)."""

    scenarios: list[str]
    closed_loop_users: list[int]
    open_loop_rates: list[str]
    open_loop_users: int
    offline: OfflineBudget
    items_per_request: int
    duration_s_per_scenario: float
    max_requests_per_scenario: int
    accuracy_pass: bool
    accuracy_batch_items: int


@dataclass
class SampleInfo(Part):
    """The evaluation sample every target got (:meth:`EvaluationSample.describe`)."""

    task: str
    split: str
    seed: int
    per_language: int | None
    languages: list[str]
    examples: dict[str, int]
    total: int


# ---------------------------------------------------------------------------------------------------- accuracy


@dataclass
class LanguageAccuracy(Part):
    examples: int
    correct: int
    accuracy: float


@dataclass
class RequestStats(Part):
    """How the accuracy pass was sent: requests, items, truncated items, seconds, items per request."""

    requests: int
    items: int
    truncated: int
    seconds: float
    batch_items: int


@dataclass
class LanguageParity(Part):
    """One language's accuracy through the API against the accuracy ``bundle.json`` recorded at export."""

    api: float
    bundle: float
    bundle_examples: int
    difference: float
    tolerance: float
    flag: bool


@dataclass
class ParityAverage(Part):
    api: float | None
    bundle: float | None


@dataclass
class Parity(Part):
    """The comparison with export; only ``available`` and ``reason`` when there is nothing to compare with."""

    available: bool
    reason: str | None = None
    variant: str | None = None
    same_items: bool | None = None
    rule: str | None = None
    bundle_data: dict[str, Any] | None = None
    export_gate: str | None = None
    languages: dict[str, LanguageParity] | None = None
    average: ParityAverage | None = None
    flagged: list[str] | None = None
    agrees: bool | None = None
    compared_with: str | None = None

    OMIT_NONE = frozenset(
        {"reason", "variant", "same_items", "rule", "bundle_data", "export_gate", "languages", "average", "flagged"}
        | {"agrees", "compared_with"}
    )


@dataclass
class Accuracy(Part):
    """Accuracy through the API per language, their plain average, how it was sent, the comparison with export."""

    languages: dict[str, LanguageAccuracy]
    average: float
    requests: RequestStats
    parity: Parity
    metric: str | None = None  # what "accuracy" is when not a label's: "top-1 retrieval accuracy" (retrieval)

    OMIT_NONE = frozenset({"metric"})


# ---------------------------------------------------------------------------------------------------- load


@dataclass
class Bounds(Part):
    duration_s: float
    max_requests: int
    timeout_s: float


@dataclass
class Latency(Part):
    """Latency percentiles (nearest rank), in ms; None without a successful request."""

    p50: float | None = None
    p90: float | None = None
    p95: float | None = None
    p99: float | None = None
    max: float | None = None
    min: float | None = None
    mean: float | None = None


@dataclass
class Unfinished(Part):
    count: int
    max: float | None


@dataclass
class LocustStats(Part):
    """Locust's own final statistics for the predict requests."""

    num_requests: int
    num_failures: int
    mean_ms: float | None
    max_ms: float | None
    p50_ms: float | None
    p90_ms: float | None
    p95_ms: float | None
    p99_ms: float | None


@dataclass
class ServerView(Part):
    """The server's ``/metrics`` between the start and the end of a scenario (means in seconds)."""

    requests: dict[str, int]
    info: dict[str, str] | None
    request_count: int
    mean_request: float | None
    queue_count: int
    mean_queue: float | None
    tokenization_count: int
    mean_tokenization: float | None
    inference_count: int
    mean_inference: float | None
    batches: int
    mean_batch_size: float | None
    tokens: int
    queue_depth_after: float

    @property
    def tokens_per_request(self) -> float | None:
        """Real tokens the model ran per answered request (a QA context's windows and their overlap included)."""
        return self.tokens / self.request_count if self.request_count else None


@dataclass
class ScenarioResult(Part):
    """One bounded load run: its settings, how it ended, throughput, latency, locust's and the server's view."""

    name: str
    mode: str  # closed | open | offline
    users: int
    duration_s: float
    max_requests: int
    payloads: str
    items_per_request: int
    rate: float | None
    rate_rule: str | None
    seed: int
    bounds: Bounds
    wall_s: float
    exit_code: int | None
    client_cpu_warning: bool
    ended_by: str
    requests: int
    ok: int
    failures: int
    unfinished: int
    error_rate: float | None
    window_s: float
    requests_per_s: float
    sequences_per_s: float
    latency_ms: Latency
    latency_includes_unfinished: bool
    unfinished_ms: Unfinished
    within_bounds: bool
    locust: LocustStats | None
    server: ServerView | None
    error: str | None = None

    OMIT_NONE = frozenset({"error"})


# ---------------------------------------------------------------------------------------------------- targets


@dataclass
class BundleFacts(Part):
    """What the target's ``bundle.json`` says of itself, for the report."""

    name: str
    variant: str
    precision: str
    optimization: str | None
    build: str | None
    base_model: str | None
    parity_data: dict[str, Any] | None
    parity_average: float | None
    reference_average: float | None


@dataclass
class TargetResult(Part):
    """Everything measured for one model and variant (or the naive reference); ``error`` when it failed."""

    label: str
    model: str
    variant: str | None
    server: str  # XSTILTS_SERVER | NAIVE_SERVER
    url: str | None = None
    served: dict[str, Any] | None = None
    bundle: BundleFacts | None = None
    accuracy: Accuracy | None = None
    accuracy_error: str | None = None
    scenarios: list[ScenarioResult] = field(default_factory=list)
    server_ready_s: float | None = None
    checkpoint: str | None = None
    error: str | None = None

    OMIT_NONE = frozenset({"url", "served", "accuracy", "accuracy_error", "server_ready_s", "checkpoint", "error"})

    @property
    def naive(self) -> bool:
        return self.server == NAIVE_SERVER

    def good_scenarios(self, mode: str | None = None) -> list[ScenarioResult]:
        """The scenarios that ran (of ``mode`` if given)."""
        return [s for s in self.scenarios if not s.error and (mode is None or s.mode == mode)]


@dataclass
class BenchResults(Part):
    """One bench run: how it was called, on which machine, with which budget and data, and every target."""

    created: str
    command: str
    machine: Machine
    budget: Budget
    data: SampleInfo
    mode: str  # url | compare
    targets: list[TargetResult] = field(default_factory=list)
    repository: str | None = None
    serve_args: list[str] | None = None
    wall_s: float | None = None
    schema: str = RESULTS_SCHEMA

    OMIT_NONE = frozenset({"repository", "serve_args", "wall_s"})

    def to_json(self) -> dict[str, Any]:
        data = super().to_json()
        return {"schema": data.pop("schema"), **data}  # the schema first, as a reader looks for it

    @classmethod
    def from_json(cls, data: Any, where: str = RESULTS_FILE) -> BenchResults:
        schema = data.get("schema") if isinstance(data, dict) else None
        if schema != RESULTS_SCHEMA:
            raise XstiltsError(f"{where}: schema {schema!r} is not {RESULTS_SCHEMA!r}")
        return load(cls, data, where)


def read_results(path: Path) -> BenchResults:
    """Read and validate a bench ``results.json``."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise XstiltsError(f"cannot read bench results {path}: {exc.strerror}") from None
    except json.JSONDecodeError as exc:
        raise XstiltsError(f"bench results {path} is not JSON: {exc}") from None
    return BenchResults.from_json(data, str(path))
