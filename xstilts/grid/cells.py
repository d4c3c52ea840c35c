"""Expanding a grid into cells: one training run each, with a stable id, in a deterministic order.

Order: seeds, then models, then targets; within those, every arm as written, then the arms' duration variants,
then the longer target budgets. A cell whose run config equals an earlier one's (the mnli arm without its mnli
phase is the baseline) is not run twice: the earlier cell carries its id as an alias.
"""

from __future__ import annotations

import fnmatch
import json
import os
import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from xstilts.errors import XstiltsError
from xstilts.grid.config import GridConfig
from xstilts.training.config import RunConfig, evaluation_spec, target_shape, validate_names

SEPARATOR = "__"


@dataclass(frozen=True)
class Cell:
    """One training run of the grid and where it sits on the axes."""

    id: str
    model: str
    arm: str
    intermediate_steps: int | None  # the duration axis (steps of the arm's last intermediate phase), or as written
    target: str
    target_steps: int | None  # the learning-curve axis (steps of the target phase), or as written
    seed: int
    run: dict[str, Any]  # the training run config, normalised
    load: bool  # whether the bench runs load scenarios for this cell
    aliases: tuple[str, ...] = ()

    @property
    def trains_target(self) -> bool:
        """Whether the cell trains a target phase (a retrieval target evaluates the encoder it is left with)."""
        return target_shape(self.run["target"]) == "phase"

    @property
    def bundle(self) -> str:
        """The cell's name in the model repository (bundle names allow no '@')."""
        return re.sub(r"[^A-Za-z0-9._-]", "-", self.id)

    def axes(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "arm": self.arm,
            "intermediate_steps": self.intermediate_steps,
            "target": self.target,
            "target_steps": self.target_steps,
            "seed": self.seed,
        }


def model_label(model: str) -> str:
    """A model's part of a cell id: the alias, or a local folder's name."""
    name = Path(model).name if os.sep in model else model
    return re.sub(r"[^A-Za-z0-9@._-]+", "-", name).strip("-")


def cell_id(model: str, arm: str, steps: int | None, target: str, target_steps: int | None, seed: int) -> str:
    arm_part = arm if steps is None else f"{arm}-{steps}"
    target_part = target if target_steps is None else f"{target}-t{target_steps}"
    return SEPARATOR.join((model_label(model), arm_part, target_part, f"s{seed}"))


def with_steps(phase: dict[str, Any], steps: int) -> dict[str, Any]:
    """The phase with a step budget instead of its own (steps or epochs)."""
    return {**{k: v for k, v in phase.items() if k != "epochs"}, "max_steps": steps}


def run_config(
    config: GridConfig, model: str, arm: str, steps: int | None, target: str, target_steps: int | None, seed: int
) -> dict[str, Any]:
    """The training run config of one cell, before validation."""
    phases = [{**config.phase_defaults, **p} for p in config.arms[arm]]
    if steps is not None:
        phases = phases[:-1] + ([with_steps(phases[-1], steps)] if steps > 0 else [])
    recipe = config.targets[target]
    if target_shape(recipe.target) == "encoder":  # a retrieval target: nothing to train, no phase defaults
        target_phase = dict(recipe.target)
    else:
        target_phase = {**config.phase_defaults, **recipe.target}
        if target_steps is not None:
            target_phase = with_steps(target_phase, target_steps)
    base = dict(config.base)
    evaluation = {**base.pop("evaluation", {}), **recipe.evaluation}
    return {
        **base,
        "model": model,
        "seed": seed,
        "intermediate": phases,
        "target": target_phase,
        "evaluation": evaluation,
    }


def validated(run: dict[str, Any], where: str) -> RunConfig:
    """The run config as ``xstilts train`` will read it; an error names the cell."""
    try:
        parsed = RunConfig.model_validate(run)
    except ValidationError as exc:
        first = exc.errors()[0]
        path = ".".join(str(p) for p in first["loc"])
        raise XstiltsError(f"{where}: {path}: {first['msg'].removeprefix('Value error, ')}") from None
    try:
        validate_names(parsed)
    except XstiltsError as exc:
        raise XstiltsError(f"{where}: {exc}") from None
    return parsed


def not_zero_shot(run: RunConfig) -> str | None:
    """Why a run would not measure zero-shot transfer: an intermediate phase trains the evaluated task itself."""
    evaluated, split = evaluation_spec(run)
    for phase in run.intermediate:
        for data in phase.tasks:
            if data.task == evaluated:
                return (
                    f"intermediate phase {phase.label} trains on {data.task} before the {evaluated} {split} "
                    "evaluation: the evaluated task would be seen in the evaluated languages, which is not "
                    "zero-shot transfer (and on the same split the leak check refuses it)"
                )
    return None


def candidates(config: GridConfig) -> list[tuple[str, int | None, int | None, str, str, int]]:
    """Every (model, steps, target steps, arm, target, seed) the axes span, in grid order."""
    out = []
    durations = config.intermediate_steps
    longer = config.extra_target_steps
    for seed in config.seeds:
        for model in config.models:
            for target in config.targets:
                out += [(model, None, None, arm, target, seed) for arm in config.arms]
                if durations:
                    out += [(model, s, None, arm, target, seed) for arm in durations.arms for s in durations.steps]
                # a retrieval target has no target phase whose budget could grow
                if longer and target_shape(config.targets[target].target) == "phase":
                    out += [(model, None, t, arm, target, seed) for arm in longer.arms for t in longer.steps]
    return out


def selected(config: GridConfig, ids: list[str]) -> list[bool]:
    """Which candidate ids the include/exclude patterns keep; a pattern that matches nothing is an error."""
    for label, patterns in (("include", config.include), ("exclude", config.exclude)):
        for pattern in patterns:
            if not any(fnmatch.fnmatchcase(i, pattern) for i in ids):
                raise XstiltsError(f"grid {label} pattern {pattern!r} matches no cell")
    return [
        (not config.include or any(fnmatch.fnmatchcase(i, p) for p in config.include))
        and not any(fnmatch.fnmatchcase(i, p) for p in config.exclude)
        for i in ids
    ]


def expand(config: GridConfig) -> list[Cell]:
    """The grid's cells, validated, without duplicates, in grid order."""
    cells: list[Cell] = []
    by_run: dict[str, int] = {}
    spanned = candidates(config)
    ids = [cell_id(m, a, s, t, ts, seed) for m, s, ts, a, t, seed in spanned]
    if len(set(ids)) != len(ids):
        raise XstiltsError("two cells get the same id: give models, arms and targets distinct names")
    for (model, steps, target_steps, arm, target, seed), id_, keep in zip(
        spanned, ids, selected(config, ids), strict=True
    ):
        if not keep:
            continue
        where = f"cell {id_} (arm {arm}, target {target})"
        run = validated(run_config(config, model, arm, steps, target, target_steps, seed), where)
        reason = not_zero_shot(run)
        if reason:
            raise XstiltsError(f"{where} is invalid: {reason}; leave it out with exclude: ['{id_}'] or a pattern")
        normal = run.model_dump(mode="json")
        key = json.dumps(normal, sort_keys=True)
        if key in by_run:
            first = cells[by_run[key]]
            cells[by_run[key]] = replace(first, aliases=(*first.aliases, id_))
            continue
        by_run[key] = len(cells)
        load = arm == config.bench.load_arm and seed in config.load_seeds
        cells.append(Cell(id_, model, arm, steps, target, target_steps, seed, normal, load))
    if not cells:
        raise XstiltsError("the grid has no cells left after include/exclude")
    return cells


def find(cells: list[Cell], id_: str) -> Cell | None:
    """The cell with this id or alias."""
    return next((c for c in cells if c.id == id_ or id_ in c.aliases), None)
