"""The grid config: a base training config, the axes (models, arms, targets, seeds, durations) and the settings of
the export, bench, report and Kubernetes stages. A YAML file, validated strictly before anything runs."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from xstilts.errors import XstiltsError
from xstilts.models import get_spec, parse_model_name
from xstilts.yamlfile import load_mapping

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
AXIS_KEYS = ("model", "seed", "intermediate", "target")  # what the axes set in every cell's run config


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TargetRecipe(Strict):
    """A target: its training phase (a run config's ``target``) and its zero-shot evaluation."""

    target: dict[str, Any]
    evaluation: dict[str, Any] = Field(default_factory=dict)


class StepsAxis(Strict):
    """A steps axis over some arms: the intermediate duration, or the baseline's longer target budgets."""

    arms: list[str] = Field(min_length=1)
    steps: list[int] = Field(min_length=1)


class ExportSettings(Strict):
    variants: list[str] = Field(default_factory=lambda: ["fp32", "int8"], min_length=1)
    parity_examples: int = Field(default=200, gt=0)
    max_accuracy_drop: float = Field(default=1.0, ge=0)
    keep_failed: bool = False  # also bench the variants that failed the gate (every variant is kept, marked)


class BenchSettings(Strict):
    """Accuracy through the API for every cell; load scenarios only for ``load_arm`` (serving cost per size)."""

    per_language: int | Literal["all"] | None = None  # default: the target's evaluation sample
    accuracy_batch: int = Field(default=16, gt=0)
    accuracy_timeout: str = "15m"
    load_arm: str | None = None  # None: no load scenarios
    load_seeds: list[int] | None = None  # default: the first seed only
    scenarios: list[Literal["closed", "open", "offline"]] = Field(default_factory=lambda: ["closed", "open"])
    users: list[int] = Field(default_factory=lambda: [1, 2, 4])
    rates: list[str] = Field(default_factory=lambda: ["0.5x"])
    offline_users: int = Field(default=4, gt=0)
    offline_items: int = Field(default=32, gt=0)
    duration: str = "10s"
    max_requests: int = Field(default=2000, gt=0)
    serve_args: str = ""  # extra `xstilts serve` flags, e.g. "--providers cuda,cpu" on a GPU


class ReportSettings(Strict):
    """Which arms answer which question."""

    baseline: str | None = None
    english: str | None = None  # English-only intermediate training
    multilingual: str | None = None  # multilingual, then English intermediate training


class KubernetesSettings(Strict):
    name: str = "xstilts-grid"
    image: str = "xstilts-train"
    tag: str = "0.1.0"
    parallelism: int = Field(default=2, gt=0)
    backoff_limit_per_index: int = Field(default=1, ge=0)
    gpus: int = Field(default=1, gt=0)
    cpu: str = "8"
    memory: str = "32Gi"
    output: str = "/runs/grid"


class GridConfig(Strict):
    base: dict[str, Any] = Field(default_factory=dict)
    phase_defaults: dict[str, Any] = Field(default_factory=dict)
    models: list[str] = Field(min_length=1)
    arms: dict[str, list[dict[str, Any]]] = Field(min_length=1)
    targets: dict[str, TargetRecipe] = Field(min_length=1)
    seeds: list[int] = Field(default_factory=lambda: [0], min_length=1)
    intermediate_steps: StepsAxis | None = None
    extra_target_steps: StepsAxis | None = None
    include: list[str] = Field(default_factory=list)
    exclude: list[str] = Field(default_factory=list)
    export: ExportSettings = ExportSettings()
    bench: BenchSettings = BenchSettings()
    report: ReportSettings = ReportSettings()
    kubernetes: KubernetesSettings = KubernetesSettings()

    @model_validator(mode="after")
    def _consistent(self) -> GridConfig:
        for key in AXIS_KEYS:
            if key in self.base:
                raise ValueError(f"base.{key} is set by the grid's axes, not in base")
        for kind, names in (("arm", self.arms), ("target", self.targets)):
            for name in names:
                if not NAME.match(name) or "__" in name:
                    raise ValueError(f"{kind} name {name!r}: letters, digits, '.', '_', '-' (no '__')")
        for label, axis in (
            ("intermediate_steps", self.intermediate_steps),
            ("extra_target_steps", self.extra_target_steps),
        ):
            for arm in axis.arms if axis else []:
                if arm not in self.arms:
                    raise ValueError(f"{label}: unknown arm {arm!r} (arms: {', '.join(self.arms)})")
                if label == "intermediate_steps" and not self.arms[arm]:
                    raise ValueError(f"{label}: arm {arm!r} has no intermediate phase to vary")
            if axis and min(axis.steps) < (0 if label == "intermediate_steps" else 1):
                raise ValueError(f"{label}: steps must be positive (0 allowed for intermediate_steps)")
        chosen = [self.bench.load_arm, self.report.baseline, self.report.english, self.report.multilingual]
        for arm in chosen:
            if arm is not None and arm not in self.arms:
                raise ValueError(f"unknown arm {arm!r} (arms: {', '.join(self.arms)})")
        if len(set(self.seeds)) != len(self.seeds) or len(set(self.models)) != len(self.models):
            raise ValueError("models and seeds must not repeat")
        return self

    @property
    def load_seeds(self) -> list[int]:
        return self.bench.load_seeds if self.bench.load_seeds is not None else self.seeds[:1]


def check_model(name: str) -> None:
    """A model alias (``ALIAS``, ``ALIAS@NL``) must be known; a folder path is checked where it runs."""
    ref = parse_model_name(name)
    if os.sep not in ref.base:
        get_spec(ref.base)


def load_grid(path: Path) -> GridConfig:
    """Read and validate a grid config; every error is one line that names the key."""
    data = load_mapping(path, "grid config")
    try:
        config = GridConfig.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        if first["type"] == "extra_forbidden" and len(first["loc"]) == 1:
            known = ", ".join(GridConfig.model_fields)
            raise XstiltsError(f"grid config {path}: unknown axis or setting {where!r} (known: {known})") from None
        message = first["msg"].removeprefix("Value error, ")
        raise XstiltsError(f"grid config {path}: {where + ': ' if where else ''}{message}") from None
    for model in config.models:
        check_model(model)
    return config
