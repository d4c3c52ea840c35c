"""Tasks: the registry, loaders and zero-shot protocol shared by every stage (pure Python, no torch)."""

from xstilts.tasks.loading import (
    get_split,
    get_task,
    load_examples,
    present_languages,
    resolve_languages,
    sample,
    sample_items,
    split_files,
)
from xstilts.tasks.protocol import ZERO_SHOT, ZeroShot, check_no_leak, non_english_average, training_data
from xstilts.tasks.registry import TASKS
from xstilts.tasks.types import Example, Split, Task

__all__ = [
    "TASKS",
    "ZERO_SHOT",
    "Example",
    "Split",
    "Task",
    "ZeroShot",
    "check_no_leak",
    "get_split",
    "get_task",
    "load_examples",
    "non_english_average",
    "present_languages",
    "resolve_languages",
    "sample",
    "sample_items",
    "split_files",
    "training_data",
]
