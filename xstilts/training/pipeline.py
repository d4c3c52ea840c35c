"""The X-STILTs chain: intermediate phases, the target phase, zero-shot evaluation, and the run's manifest."""

from __future__ import annotations

import json
import os
import platform
import time
from pathlib import Path
from typing import Any

from xstilts import __version__
from xstilts.atomic import write_json_atomic, write_text_atomic
from xstilts.contracts.checkpoint import CheckpointInfo
from xstilts.contracts.evaluation import EvaluationSample, load_evaluation_sample
from xstilts.contracts.hashing import file_sha256, json_digest
from xstilts.errors import XstiltsError
from xstilts.models import resolve_model
from xstilts.qa.windows import DOC_STRIDE
from xstilts.tasks import check_no_leak, get_task
from xstilts.training.config import RunConfig, evaluation_spec
from xstilts.training.data import TaskExamples, phase_examples
from xstilts.training.encoder_target import check_no_shared_files, encoder_results, evaluated_uids
from xstilts.training.evaluate import evaluate, load_tokenizer
from xstilts.training.phase import PHASE_FILE, PhasePlan, run_phase

MANIFEST_FILE = "manifest.json"
RESULTS_FILE = "results.json"
TRAIN_LOG_FILE = "train_log.jsonl"


def model_identity(source: str) -> dict[str, Any]:
    """What a first phase starts from: the resolved folder's config hash (hub ids stand for themselves)."""
    config = Path(source) / "config.json"
    return {
        "source": source if not config.is_file() else Path(source).name,
        "config_sha256": file_sha256(config) if config.is_file() else None,
    }


def describe_part(part: TaskExamples, data_dir: Path) -> dict[str, Any]:
    files = sorted(set(part.files))
    return {
        "task": part.task.name,
        "data": f"{part.source}/{part.split}",
        "languages": list(part.languages),
        "examples": len(part.examples),
        "files": [{"path": str(p.relative_to(data_dir)), "sha256": file_sha256(p)} for p in files],
    }


def plan_phases(config: RunConfig, data_dir: Path, store: Path, start: str) -> list[PhasePlan]:
    """Resolve every phase's data and key; a key covers its config, its data and everything before it."""
    plans: list[PhasePlan] = []
    upstream: dict[str, Any] = model_identity(start)
    for index, phase in enumerate(config.phases, 1):
        seed, max_length = config.seed_of(phase), config.max_length_of(phase)
        parts = phase_examples(phase, data_dir, seed, config.target_of(phase))
        key = json_digest(
            {
                # Settings added later enter the key only when set, so earlier phases keep their keys.
                "phase": phase.model_dump(exclude={"head_learning_rate"} if phase.head_learning_rate is None else None),
                "upstream": upstream,
                "seed": seed,
                "max_length": max_length,
                "freeze": config.freeze_embeddings,
                **({"pooling": config.pooling} if config.pooling != "cls" else {}),
                **({"doc_stride": config.doc_stride} if config.doc_stride != DOC_STRIDE else {}),
                "precision": config.precision,
                "data": [describe_part(p, data_dir)["files"] for p in parts],
            }
        )
        folder = store / f"{index:02d}-{phase.label}-{key[:10]}"
        previous = plans[-1].folder if plans else None
        start_from = str(plans[-1].checkpoint) if plans else start
        plans.append(PhasePlan(index, phase, parts, key, folder, start_from, previous, seed, max_length))
        upstream = {"phase_key": key}
    return plans


def evaluation_sample(config: RunConfig, data_dir: Path) -> EvaluationSample:
    """The items the target is evaluated on: the same seeded ones in every evaluated language."""
    task, split = evaluation_spec(config)
    e = config.evaluation
    return load_evaluation_sample(task, data_dir, e.languages, e.max_per_language, e.seed, split)


def check_leaks(plans: list[PhasePlan], eval_uids: set[str]) -> None:
    """No evaluated item may be a translation of an item trained on in any phase."""
    for plan in plans:
        for part in plan.parts:
            check_no_leak(
                (e.uid for e in part.examples),
                eval_uids,
                f"phase {plan.index} ({plan.config.label}) trains on {part.source}/{part.split}",
            )


def check_target(config: RunConfig) -> None:
    """The evaluation task must fit the target task's head (a retrieval target: be a retrieval task too)."""
    target = get_task(config.target_task)
    evaluated = get_task(evaluation_spec(config)[0])
    if evaluated.kind is not target.kind or evaluated.num_labels != target.num_labels:
        raise XstiltsError(
            f"evaluation task {evaluated.name} ({evaluated.kind.value}, {evaluated.num_labels} labels) does not "
            f"fit the target head of {target.name} ({target.kind.value}, {target.num_labels} labels)"
        )


def run(config: RunConfig, output: Path, data_dir: Path, phase_store: Path | None = None) -> dict[str, Any]:
    """Run (or resume) the whole chain into ``output`` and return the results."""
    check_target(config)
    start = resolve_model(config.model)
    plans = plan_phases(config, data_dir, phase_store or output / "phases", start)
    if config.trains_target:
        evaluated = evaluation_sample(config, data_dir)
        check_leaks(plans, {e.uid for examples in evaluated.examples.values() for e in examples})
    else:
        check_leaks(plans, evaluated_uids(config, data_dir))
        trained = {f"{p.index} ({p.config.label})": [f for part in p.parts for f in part.files] for p in plans}
        check_no_shared_files(config, trained, data_dir)
    output.mkdir(parents=True, exist_ok=True)
    tokenizer = load_tokenizer(start)
    started = time.time()
    records = []
    for plan in plans:
        if plan.done:
            print(f"phase {plan.index} ({plan.config.label}) already trained: {plan.folder.name}")
            records.append({**json.loads((plan.folder / PHASE_FILE).read_text()), "reused": True})
            continue
        print(f"phase {plan.index}/{len(plans)} ({plan.config.label}): training into {plan.folder}")
        records.append({**run_phase(plan, config, tokenizer), "reused": False})

    lineage = manifest(config, plans, records, data_dir, time.time() - started)
    if config.trains_target:
        checkpoint = plans[-1].checkpoint
        target_info = get_task(config.target_task)
        CheckpointInfo(
            task=evaluated.task,
            kind=target_info.kind.value,
            labels=list(target_info.labels),
            languages=evaluated.languages,
            max_length=plans[-1].max_length,
            lineage=lineage,
        ).save(checkpoint)
        results = evaluation_results(config, plans[-1], evaluated)
        write_json_atomic(checkpoint / RESULTS_FILE, results)
    else:  # the encoder the intermediate phases left, or the pretrained model itself
        checkpoint = plans[-1].checkpoint if plans else Path(start)
        cache = plans[-1].folder if plans else output
        results = encoder_results(config, checkpoint, plans[-1].key if plans else json_digest(model_identity(start)),
                                  cache, data_dir)  # fmt: skip
    write_json_atomic(output / MANIFEST_FILE, lineage)
    write_json_atomic(output / RESULTS_FILE, results)
    link_checkpoint(output / "checkpoint", checkpoint)
    collect_logs(plans, output / TRAIN_LOG_FILE)
    return results


def evaluation_results(config: RunConfig, target: PhasePlan, evaluated: EvaluationSample) -> dict:
    """Evaluate the target checkpoint, reusing a stored result for the same checkpoint and evaluation config."""
    spec = {"task": evaluated.task, "split": evaluated.split}
    key = json_digest({"phase": target.key, "evaluation": config.evaluation.model_dump(), **spec})
    stored = target.folder / f"results-{key[:10]}.json"
    if stored.is_file():
        return json.loads(stored.read_text())
    results = {"key": key, **evaluate(target.checkpoint, evaluated, config.evaluation.batch_size)}
    write_json_atomic(stored, results)
    return results


def manifest(
    config: RunConfig,
    plans: list[PhasePlan],
    records: list[dict],
    data_dir: Path,
    wall_time: float,
) -> dict[str, Any]:
    """The lineage of the target checkpoint: model, every phase's data, budget, seed and time, and the machine."""
    import torch
    import transformers

    return {
        "xstilts_version": __version__,
        "model": config.model,
        "config": config.model_dump(),
        "phases": [
            {
                "index": p.index,
                "label": p.config.label,
                "key": p.key,
                "folder": p.folder.name,
                "tasks": [describe_part(part, data_dir) for part in p.parts],
                "steps": r["steps"],
                "batch_size": p.config.batch_size,
                "gradient_accumulation": p.config.gradient_accumulation,
                "learning_rate": p.config.learning_rate,
                "head_learning_rate": p.config.heads_learning_rate,
                "max_length": p.max_length,
                "seed": p.seed,
                "sampling": p.config.sampling if len(p.parts) > 1 else None,
                "task_weights": r.get("task_weights"),
                "train_loss": r["train_loss"],
                "wall_time_s": r["wall_time_s"],
                "device": r["device"],
                "reused": r["reused"],
            }
            for p, r in zip(plans, records, strict=True)
        ],
        "evaluation": {**evaluation_spec(config)._asdict(), **config.evaluation.model_dump()},
        "wall_time_s": round(wall_time, 1),
        "machine": {
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        },
    }


def link_checkpoint(link: Path, target: Path) -> None:
    """Point ``output/checkpoint`` at the target phase's checkpoint, or at a retrieval target's encoder (a relative
    symlink, replaced atomically)."""
    tmp = link.with_name(link.name + ".tmp")
    tmp.unlink(missing_ok=True)
    tmp.symlink_to(os.path.relpath(target, link.parent))
    os.replace(tmp, link)


def collect_logs(plans: list[PhasePlan], path: Path) -> None:
    lines = []
    for plan in plans:
        log = plan.folder / "log.jsonl"
        if log.is_file():
            lines.extend(log.read_text().splitlines())
    write_text_atomic(path, "\n".join(lines) + ("\n" if lines else ""))
