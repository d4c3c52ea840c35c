"""What ``xstilts bench`` measures: its settings (the flags) and its targets (``--compare`` entries)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from xstilts.bench import accuracy as acc
from xstilts.bench import load
from xstilts.contracts.bundle import BundleManifest, list_bundles, load_manifest
from xstilts.contracts.kinds import TaskKind
from xstilts.contracts.results import NAIVE_SERVER, XSTILTS_SERVER, Budget, OfflineBudget
from xstilts.errors import XstiltsError
from xstilts.tasks import get_task

NAIVE = NAIVE_SERVER  # the variant name that asks for the naive reference server


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

    def describe(self) -> Budget:
        return Budget(
            scenarios=list(self.scenarios),
            closed_loop_users=self.users,
            open_loop_rates=[f"{v:g}x peak" if rel else f"{v:g}/s" for v, rel in self.rates],
            open_loop_users=self.open_users,
            offline=OfflineBudget(self.offline_users, self.offline_items),
            items_per_request=self.items_per_request,
            duration_s_per_scenario=self.duration_s,
            max_requests_per_scenario=self.max_requests,
            accuracy_pass=self.accuracy,
            accuracy_batch_items=self.accuracy_batch,
        )


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

    @property
    def server(self) -> str:
        return NAIVE_SERVER if self.naive else XSTILTS_SERVER


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


def bench_task(manifests: list[BundleManifest], asked: str | None) -> str:
    """The one task the targets are benched on: theirs, or ``asked`` (``--task``). Embedding bundles take any
    retrieval task (their vectors are not tied to the task their parity gate used), extractive QA bundles any QA
    task (an XQuAD model benched on MLQA)."""
    tasks = {m.task for m in manifests}
    for kind, what in ((TaskKind.EMBEDDING, "a retrieval task"), (TaskKind.SPAN_QA, "an extractive QA task")):
        if asked and manifests and all(m.kind is kind for m in manifests):
            if get_task(asked).kind is not kind:
                raise XstiltsError(f"--task {asked}: {kind} models are benched on {what}, not {asked}")
            return asked
    if asked:
        tasks.add(asked)
    if len(tasks) != 1:
        raise XstiltsError(f"the targets are for different tasks ({', '.join(sorted(tasks))}): compare one task")
    return tasks.pop()
