"""The training run config: a model, phases of (multi-)task training, the target phase, and the evaluation.

A YAML file, validated strictly: an unknown key, task, split or language fails before any training starts.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal, NamedTuple

import yaml
from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, ValidationError, model_validator

from xstilts.contracts.checkpoint import Pooling
from xstilts.contracts.evaluation import evaluation_split
from xstilts.contracts.kinds import TaskKind
from xstilts.errors import XstiltsError
from xstilts.qa.windows import DOC_STRIDE
from xstilts.tasks import get_task, resolve_languages, training_data
from xstilts.yamlfile import load_mapping


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TaskData(Strict):
    """One task's training data within a phase."""

    task: str
    split: str | None = None  # default: the task's train split
    languages: list[str] | Literal["all"] | None = None  # default: the split's languages
    max_examples: int | None = Field(default=None, gt=0)  # per language, seeded sample


class PhaseConfig(Strict):
    """One training phase: its tasks and optimisation budget. Unset fields take the run's defaults."""

    name: str | None = None
    tasks: list[TaskData] = Field(min_length=1)
    max_steps: int | None = Field(default=None, gt=0)
    epochs: float | None = Field(default=None, gt=0)
    learning_rate: float = Field(default=3e-5, gt=0)
    # The heads' own learning rate (default: learning_rate). A fresh head on small pooled features needs far larger
    # steps than the encoder: Adam moves each weight by about the learning rate per step.
    head_learning_rate: float | None = Field(default=None, gt=0)
    batch_size: int = Field(default=32, gt=0)
    gradient_accumulation: int = Field(default=1, gt=0)
    warmup_ratio: float = Field(default=0.1, ge=0, lt=1)
    weight_decay: float = Field(default=0.01, ge=0)
    max_length: int | None = Field(default=None, gt=8)
    seed: int | None = None
    # Multi-task batch sampling, as jiant: proportional to size, size**(1/temperature), or sizes capped at cap.
    sampling: Literal["proportional", "temperature", "capped"] = "proportional"
    temperature: float = Field(default=2.0, gt=0)
    cap: int | None = Field(default=None, gt=0)

    @model_validator(mode="after")
    def _one_budget(self) -> PhaseConfig:
        if (self.max_steps is None) == (self.epochs is None):
            raise ValueError("give exactly one of max_steps or epochs")
        if self.sampling == "capped" and self.cap is None:
            raise ValueError("sampling 'capped' needs cap")
        return self

    @property
    def label(self) -> str:
        return self.name or "+".join(t.task for t in self.tasks)

    @property
    def heads_learning_rate(self) -> float:
        """The heads' learning rate in effect: ``head_learning_rate``, else the encoder's."""
        return self.head_learning_rate or self.learning_rate


class EncoderTarget(Strict):
    """A target without a training phase (sentence retrieval): the encoder the intermediate phases left (with none,
    the pretrained model) is evaluated as it is."""

    task: str
    layer: int | None = Field(default=None, ge=0)  # hidden state to pool (default: the base model's measured best)


def target_shape(value: Any) -> str:
    """Which target shape a config's ``target`` is: a training phase (``tasks:``) or an encoder (``task:``)."""
    if isinstance(value, EncoderTarget) or (isinstance(value, dict) and "task" in value and "tasks" not in value):
        return "encoder"
    return "phase"


Target = Annotated[
    Annotated[PhaseConfig, Tag("phase")] | Annotated[EncoderTarget, Tag("encoder")], Discriminator(target_shape)
]


class EvaluationConfig(Strict):
    """Zero-shot evaluation of the target checkpoint."""

    task: str | None = None  # default: the target task
    split: str | None = None  # default: the zero-shot protocol's evaluation split
    languages: list[str] | Literal["all"] = "all"
    max_per_language: int | None = Field(default=None, gt=0)  # the same seeded items in every language
    batch_size: int = Field(default=64, gt=0)
    seed: int = 0


class RunConfig(Strict):
    """A whole run: model, intermediate phases, target phase, evaluation, and run-wide defaults."""

    model: str
    seed: int = 0
    max_length: int = Field(default=128, gt=8)
    doc_stride: int = Field(default=DOC_STRIDE, gt=0)  # extractive QA: context tokens consecutive windows share
    freeze_embeddings: bool = False
    pooling: Pooling = "cls"  # what every head reads: the first token ([CLS]) or the mean of the token states
    precision: Literal["fp32", "bf16", "fp16"] = "fp32"
    save_steps: int = Field(default=100, gt=0)
    intermediate: list[PhaseConfig] = Field(default_factory=list)
    target: Target
    evaluation: EvaluationConfig = EvaluationConfig()

    @model_validator(mode="after")
    def _single_target_task(self) -> RunConfig:
        if isinstance(self.target, PhaseConfig) and len(self.target.tasks) != 1:
            raise ValueError("the target phase trains exactly one task")
        return self

    @property
    def trains_target(self) -> bool:
        """Whether the target has a training phase (a retrieval target evaluates the encoder as it is)."""
        return isinstance(self.target, PhaseConfig)

    @property
    def phases(self) -> list[PhaseConfig]:
        return [*self.intermediate, self.target] if isinstance(self.target, PhaseConfig) else list(self.intermediate)

    @property
    def target_task(self) -> str:
        return self.target.tasks[0].task if isinstance(self.target, PhaseConfig) else self.target.task

    # A phase's unset seed and max_length take the run's: the one place those defaults resolve.
    def seed_of(self, phase: PhaseConfig) -> int:
        return phase.seed if phase.seed is not None else self.seed

    def max_length_of(self, phase: PhaseConfig) -> int:
        return phase.max_length or self.max_length

    def target_of(self, phase: PhaseConfig) -> str | None:
        """The target task when ``phase`` is the target phase (its data default to the zero-shot protocol's)."""
        return self.target_task if phase is self.target else None


def resolved_split(data: TaskData, target: str | None = None) -> tuple[str, str]:
    """(task whose files to read, split) for a phase's task entry; a zero-shot target reads its protocol's data."""
    task = get_task(data.task)
    if data.split:
        return data.task, data.split
    source, split = training_data(data.task) if data.task == target else (data.task, task.train_split)
    if not split:
        raise XstiltsError(f"task {data.task} has no training split: name one with 'split:' ({', '.join(task.splits)})")
    return source, split


class EvaluationSpec(NamedTuple):
    """What the target is evaluated on: a task and one of its splits."""

    task: str
    split: str


def evaluation_spec(config: RunConfig) -> EvaluationSpec:
    """The task (default: the target's) and split (default: its evaluation split) the target is evaluated on."""
    task = config.evaluation.task or config.target_task
    return EvaluationSpec(task, config.evaluation.split or evaluation_split(task))


def evaluated_languages(config: RunConfig) -> tuple[str, ...]:
    """The languages the evaluation names, resolved against its split."""
    spec = evaluation_spec(config)
    return resolve_languages(get_task(spec.task), spec.split, config.evaluation.languages)


def check_target_shape(config: RunConfig) -> None:
    """A retrieval task is a target without training (``target: {task: ...}``); every other target trains."""
    retrieval = get_task(config.target_task).kind is TaskKind.EMBEDDING
    if retrieval and config.trains_target:
        raise XstiltsError(
            f"target task {config.target_task} is a retrieval task with nothing to train on: write "
            f"target: {{task: {config.target_task}}} (the encoder the intermediate phases leave is evaluated)"
        )
    if not retrieval and not config.trains_target:
        raise XstiltsError(
            f"target task {config.target_task} needs a training phase: target: {{tasks: [{{task: "
            f"{config.target_task}}}], max_steps: N}}; only retrieval tasks are evaluated without one"
        )


def validate_names(config: RunConfig) -> None:
    """Check every task, split and language the config names, before anything is loaded or trained."""
    check_target_shape(config)
    for phase in config.phases:
        for data in phase.tasks:
            source, split = resolved_split(data, config.target_of(phase))
            resolve_languages(get_task(source), split, data.languages)
    evaluated_languages(config)


def load_config(path: Path, overrides: list[str] | None = None) -> RunConfig:
    """Read a YAML run config, apply ``key.sub=value`` overrides, and validate it strictly."""
    data = load_mapping(path, "config")
    for override in overrides or []:
        apply_override(data, override)
    try:
        config = RunConfig.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "config"
        raise XstiltsError(f"config {path}: {where}: {first['msg']}") from None
    validate_names(config)
    return config


def apply_override(data: dict, override: str) -> None:
    """Set ``a.b.0.c=value`` in nested config data; the value is parsed as YAML (numbers, lists, ...)."""
    key, sep, raw = override.partition("=")
    if not sep or not key:
        raise XstiltsError(f"override {override!r} must look like key.sub=value")
    node: Any = data
    parts = key.split(".")
    for part in parts[:-1]:
        node = node[int(part)] if isinstance(node, list) else node.setdefault(part, {})
    last = parts[-1]
    value = yaml.safe_load(raw)
    if isinstance(node, list):
        node[int(last)] = value
    else:
        node[last] = value
