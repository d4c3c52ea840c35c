"""Finding a split's files in a data folder and reading its examples."""

from __future__ import annotations

import random
import re
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


def resolve_languages(
    task: Task, split: str, languages: str | Iterable[str] | None, data_dir: Path | None = None
) -> tuple[str, ...]:
    """Expand ``all``/None to the split's languages and check every named language exists in it.

    For a ``present_only`` split with ``data_dir`` given, the languages are those present there.
    """
    spec = get_split(task, split)
    available = present_languages(task, split, data_dir) if spec.present_only and data_dir else spec.languages
    if languages is None or languages == "all":
        return available
    wanted = tuple(languages.split(",")) if isinstance(languages, str) else tuple(languages)
    unknown = [lang for lang in wanted if lang not in available]
    if unknown:
        raise XstiltsError(
            f"task {task.name} split {split} has no language {', '.join(unknown)}: it has {', '.join(available)}"
        )
    return wanted


def _language_pattern(part: str) -> re.Pattern:
    """A path template part as a regular expression whose every ``{lang}`` matches the same language code."""
    first, *rest = part.split("{lang}")
    pattern = re.escape(first)
    for i, piece in enumerate(rest):
        pattern += ("(?P<lang>[A-Za-z_-]+)" if i == 0 else "(?P=lang)") + re.escape(piece)
    return re.compile(pattern)


def present_languages(task: Task, split: str, data_dir: Path) -> tuple[str, ...]:
    """The languages of ``task``/``split`` whose files ``data_dir`` holds, in any layout: declared ones first, in
    order, then (for a ``present_only`` split) any other language found in the layout, sorted."""
    spec = get_split(task, split)
    found: set[str] = set()
    if spec.present_only:
        for template in spec.layouts:
            first = template.split("+")[0]
            pattern = _language_pattern(first)
            for path in data_dir.glob(first.replace("{lang}", "*")):
                match = pattern.fullmatch(path.relative_to(data_dir).as_posix())
                if match:
                    found.add(match["lang"])
    present = [lang for lang in (*spec.languages, *sorted(found - set(spec.languages))) if _files(spec, lang, data_dir)]
    return tuple(present)


def _files(spec: Split, language: str, data_dir: Path) -> list[Path] | None:
    for template in spec.templates_for(language):
        paths = [data_dir / part.format(lang=language) for part in template.split("+")]
        if all(path.is_file() for path in paths):
            return paths
    return None


def split_files(task: Task, split: str, language: str, data_dir: Path) -> list[Path]:
    """The files holding ``task``/``split`` in ``language``, from the first layout present in ``data_dir``."""
    spec = get_split(task, split)
    paths = _files(spec, language, data_dir)
    if paths is not None:
        return paths
    templates = spec.templates_for(language)
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
    examples_by_language: dict[str, list[Example]], limit: int | None, seed: int, parallel: bool = True
) -> dict[str, list[Example]]:
    """Sample the same items in every language (by item id), so that per-language figures stay comparable; for
    a split that is not ``parallel``, a seeded sample of each language's own items."""
    if limit is None:
        return examples_by_language
    if not parallel:
        return {lang: sample(ex, limit, seed) for lang, ex in examples_by_language.items()}
    common = set.intersection(*(set(e.uid for e in ex) for ex in examples_by_language.values()))
    chosen = set(sample(sorted(common), limit, seed))
    return {lang: [e for e in ex if e.uid in chosen] for lang, ex in examples_by_language.items()}
