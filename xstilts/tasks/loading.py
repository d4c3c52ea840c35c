"""Finding a split's files in a data folder and reading its examples."""

from __future__ import annotations

import random
from collections.abc import Iterable, Sequence
from pathlib import Path

from xstilts.errors import XstiltsError
from xstilts.tasks.registry import TASKS
from xstilts.tasks.types import Example, Split, Task


def get_task(name: str) -> Task:
    """The registered task called ``name``."""
    try:
        return TASKS[name]
    except KeyError:
        raise XstiltsError(f"unknown task {name!r}: known tasks are {', '.join(TASKS)}") from None


def get_split(task: Task, split: str) -> Split:
    """The split ``split`` of ``task``."""
    try:
        return task.splits[split]
    except KeyError:
        raise XstiltsError(
            f"task {task.name} has no split {split!r}: its splits are {', '.join(task.splits)}"
        ) from None


def resolve_languages(task: Task, split: str, languages: str | Iterable[str] | None) -> tuple[str, ...]:
    """Expand ``all``/None to the split's languages and check every named language exists in it."""
    available = get_split(task, split).languages
    if languages is None or languages == "all":
        return available
    wanted = tuple(languages.split(",")) if isinstance(languages, str) else tuple(languages)
    unknown = [lang for lang in wanted if lang not in available]
    if unknown:
        raise XstiltsError(
            f"task {task.name} split {split} has no language {', '.join(unknown)}: it has {', '.join(available)}"
        )
    return wanted


def split_files(task: Task, split: str, language: str, data_dir: Path) -> list[Path]:
    """The files holding ``task``/``split`` in ``language``, from the first layout present in ``data_dir``."""
    templates = get_split(task, split).templates_for(language)
    for template in templates:
        paths = [data_dir / part.format(lang=language) for part in template.split("+")]
        if all(path.is_file() for path in paths):
            return paths
    expected = " or ".join(str(data_dir / t.split("+")[0].format(lang=language)) for t in templates)
    raise XstiltsError(
        f"{task.name} {split} ({language}) not found: expected {expected}; "
        "point --data-dir or XSTILTS_DATA_DIR at a folder holding it"
    )


def load_examples(task: Task, split: str, language: str, data_dir: Path) -> list[Example]:
    """Every example of ``task``/``split`` in ``language``."""
    spec = get_split(task, split)
    examples = spec.parser(split_files(task, split, language, data_dir), language)
    return [e for e in examples if spec.keep(e)] if spec.keep else examples


def sample(examples: Sequence[Example], limit: int | None, seed: int) -> list[Example]:
    """A seeded sample of at most ``limit`` examples, in their original order (all of them when no limit)."""
    if limit is None or limit >= len(examples):
        return list(examples)
    picked = sorted(random.Random(seed).sample(range(len(examples)), limit))
    return [examples[i] for i in picked]


def sample_items(
    examples_by_language: dict[str, list[Example]], limit: int | None, seed: int
) -> dict[str, list[Example]]:
    """Sample the same items in every language (by item id), so that per-language figures stay comparable."""
    if limit is None:
        return examples_by_language
    common = set.intersection(*(set(e.uid for e in ex) for ex in examples_by_language.values()))
    chosen = set(sample(sorted(common), limit, seed))
    return {lang: [e for e in ex if e.uid in chosen] for lang, ex in examples_by_language.items()}
