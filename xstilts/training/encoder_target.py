"""A target without a training phase (sentence retrieval): the encoder the intermediate phases left, evaluated as
it is, with the base model's embedding setting (prefix, pooling, measured layer) unless the target names a layer.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from xstilts.atomic import write_json_atomic
from xstilts.contracts.hashing import json_digest
from xstilts.errors import XstiltsError
from xstilts.tasks import get_task, resolve_languages, split_files
from xstilts.training.config import EncoderTarget, RunConfig, evaluation_spec


def evaluated_uids(config: RunConfig, data_dir: Path) -> set[str]:
    """The items the retrieval evaluation reads, for the leak check (a mining set's sentences have none)."""
    from xstilts.retrieval.evaluate import MINING_TASKS, load_pairs

    task, split = evaluation_spec(config)
    if task in MINING_TASKS:
        return set()
    e = config.evaluation
    languages = resolve_languages(get_task(task), split, e.languages, data_dir)
    pairs = load_pairs(task, split, languages, data_dir, e.max_per_language, e.seed)
    return {example.uid for examples in pairs.values() for example in examples}


def check_no_shared_files(config: RunConfig, trained: dict[str, list[Path]], data_dir: Path) -> None:
    """No phase may train on a file the retrieval evaluation reads: a proxy's items (XNLI premises, XQuAD
    contexts) are named apart from their source task's, so only their files show that they are the same text."""
    task, split = evaluation_spec(config)
    spec = get_task(task)
    languages = resolve_languages(spec, split, config.evaluation.languages, data_dir)
    evaluated = {p.resolve() for lang in languages for p in split_files(spec, split, lang, data_dir)}
    for phase, files in trained.items():
        shared = sorted(str(p) for p in files if p.resolve() in evaluated)
        if shared:
            raise XstiltsError(
                f"phase {phase} trains on {shared[0]}, which the {task} {split} evaluation reads: the evaluated "
                "sentences would have been trained on; train on another split or task"
            )


def encoder_results(config: RunConfig, encoder_folder: Path, key: str, cache: Path, data_dir: Path) -> dict[str, Any]:
    """Retrieval figures of the encoder in ``encoder_folder``, reused from ``cache`` for the same encoder (``key``)
    and evaluation."""
    from xstilts.retrieval.embedding import Encoder
    from xstilts.retrieval.encoders import default_spec
    from xstilts.retrieval.evaluate import evaluate_retrieval

    assert isinstance(config.target, EncoderTarget)
    task, split = evaluation_spec(config)
    e = config.evaluation
    digest = json_digest({"encoder": key, "target": config.target.model_dump(), "evaluation": e.model_dump(),
                          "task": task, "split": split})  # fmt: skip
    stored = cache / f"results-{digest[:10]}.json"
    if stored.is_file():
        return json.loads(stored.read_text())
    encoder = Encoder(encoder_folder)
    spec = default_spec(config.model, encoder_folder, encoder.num_layers, config.target.layer)
    encoder.check_layer(spec.layer)
    results = {
        "key": digest,
        **evaluate_retrieval(encoder, task, spec, data_dir, e.languages, split, e.max_per_language, e.seed,
                             e.batch_size),
    }  # fmt: skip
    write_json_atomic(stored, results)
    return results
