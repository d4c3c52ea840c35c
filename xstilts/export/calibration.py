"""The calibration sample of static int8: real evaluation texts of the task, in each gated language, kept apart
from the parity sample so that the gate never scores the items the activation ranges were fitted on."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from xstilts.contracts.evaluation import EvaluationSample
from xstilts.errors import XstiltsError
from xstilts.tasks import Example, get_task, load_examples, sample

CALIBRATION_BATCH = 8  # items per calibration batch, each padded to its longest, as a server pads

Feeds = list[dict[str, np.ndarray]]


@dataclass
class CalibrationSet:
    """The padded batches static int8 is calibrated on, and what they are (recorded in ``bundle.json``)."""

    feeds: Feeds
    description: dict[str, Any]


def evaluation_calibration(
    parity: EvaluationSample,
    data_dir: Path,
    count: int,
    seed: int,
    make_feeds: Callable[[Sequence[Example]], dict[str, np.ndarray]],
) -> CalibrationSet:
    """About ``count`` items of the parity sample's split, spread evenly over its languages, none of them (by
    item id) in the parity sample; each language sampled with ``seed`` from what is left."""
    if count < 1:
        raise XstiltsError(f"--calibration-examples must be at least 1, got {count}")
    spec = get_task(parity.task)
    languages = parity.languages
    per_language = math.ceil(count / len(languages))
    gated = {e.uid for examples in parity.examples.values() for e in examples}
    chosen: dict[str, list[Example]] = {}
    for lang in languages:
        pool = [e for e in load_examples(spec, parity.split, lang, data_dir) if e.uid not in gated]
        if not pool:
            raise XstiltsError(f"{parity.task} {parity.split} {lang}: no items outside the parity sample to calibrate")
        chosen[lang] = sample(pool, per_language, seed)
    feeds = [
        make_feeds(examples[i : i + CALIBRATION_BATCH])
        for examples in chosen.values()
        for i in range(0, len(examples), CALIBRATION_BATCH)
    ]
    description = {
        "task": parity.task,
        "split": parity.split,
        "seed": seed,
        "languages": languages,
        "examples": {lang: len(examples) for lang, examples in chosen.items()},
        "total": sum(len(examples) for examples in chosen.values()),
        "batch_size": CALIBRATION_BATCH,
        "overlap_with_parity_sample": len(gated & {e.uid for examples in chosen.values() for e in examples}),
    }
    return CalibrationSet(feeds, description)
