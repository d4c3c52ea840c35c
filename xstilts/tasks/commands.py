"""``xstilts tasks``: list the registered tasks with their row counts read from the data folder."""

from __future__ import annotations

import argparse

from xstilts.output import print_json, print_table
from xstilts.paths import resolve_data_dir
from xstilts.tasks.loading import get_task, load_examples, present_languages
from xstilts.tasks.protocol import ZERO_SHOT
from xstilts.tasks.registry import TASKS


def add_data_dir(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data-dir", help="data folder (default: $XSTILTS_DATA_DIR, else ../shared/data)")


def register(subparsers) -> None:
    parser = subparsers.add_parser("tasks", help="list tasks, their languages and row counts")
    parser.add_argument("names", nargs="*", help="only these tasks")
    parser.add_argument("--json", action="store_true", help="print JSON")
    add_data_dir(parser)
    parser.set_defaults(handler=run)


def describe(name: str, data_dir) -> dict:
    """A task's registry entry with per-split, per-language row counts read from the files."""
    task = get_task(name)
    splits = {}
    for split_name, split in task.splits.items():
        # a present_only split (Tatoeba, BUCC) lists the languages the data folder holds, possibly none
        languages = present_languages(task, split_name, data_dir) if split.present_only else split.languages
        counts = {lang: len(load_examples(task, split_name, lang, data_dir)) for lang in languages}
        splits[split_name] = {"rows": counts, **({"note": split.note} if split.note else {})}
    entry = {
        "name": task.name,
        "kind": task.kind.value,
        "labels": list(task.labels),
        "languages": list(task.languages),
        "train_split": task.train_split or None,
        "eval_split": task.eval_split,
        "splits": splits,
        "description": task.description,
        "license": task.license,
    }
    if name in ZERO_SHOT:
        z = ZERO_SHOT[name]
        entry["zero_shot"] = {
            "train": f"{z.train_task}/{z.train_split}",
            "eval": f"{name}/{z.eval_split}",
            "protocol": z.note,
        }
    return entry


def run(args: argparse.Namespace) -> int:
    data_dir = resolve_data_dir(args.data_dir)
    names = args.names or list(TASKS)
    entries = [describe(name, data_dir) for name in names]
    if args.json:
        print_json(entries)
        return 0
    rows = []
    for e in entries:
        sizes = ", ".join(f"{s}={sum(v['rows'].values())}" for s, v in e["splits"].items())
        rows.append((e["name"], e["kind"], len(e["labels"]), len(e["languages"]), sizes))
    print_table(("task", "kind", "labels", "languages", "rows per split (all languages)"), rows)
    return 0
