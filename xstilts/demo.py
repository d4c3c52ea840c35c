"""``xstilts demo``: the README's main job, run on the default model."""

from __future__ import annotations

import argparse

from xstilts.models.commands import check_model, list_models
from xstilts.tasks.commands import add_data_dir
from xstilts.tasks.commands import run as list_tasks

DEFAULT_MODEL = "me5-small"


def register(subparsers) -> None:
    parser = subparsers.add_parser("demo", help="the main job: tasks, models, and a check of the default model")
    add_data_dir(parser)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    print("== tasks ==")
    list_tasks(argparse.Namespace(names=[], json=False, data_dir=args.data_dir))
    print("\n== models ==")
    list_models(argparse.Namespace(json=False))
    print(f"\n== conversion check of the default model, {DEFAULT_MODEL} ==")
    return check_model(argparse.Namespace(name=DEFAULT_MODEL, json=False))
