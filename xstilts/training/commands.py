"""``xstilts train CONFIG`` and ``xstilts eval CHECKPOINT``."""

from __future__ import annotations

import argparse
from pathlib import Path

from xstilts.contracts.kinds import TaskKind
from xstilts.output import print_json, print_table
from xstilts.paths import resolve_data_dir
from xstilts.retrieval.commands import add_arguments as add_retrieval_arguments
from xstilts.tasks import get_task
from xstilts.tasks.commands import add_data_dir

RUNS_DIR = Path("runs")


def register(subparsers) -> None:
    train = subparsers.add_parser("train", help="run a chain of training phases and the zero-shot evaluation")
    train.add_argument("config", type=Path, help="YAML run config (see configs/)")
    train.add_argument("--output", type=Path, help="run folder (default: runs/<config name>)")
    train.add_argument(
        "--phase-store", type=Path, help="where phases live, shareable across runs (default: <output>/phases)"
    )
    train.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config value, e.g. --set target.max_steps=50 (repeatable)",
    )
    add_data_dir(train)
    train.set_defaults(handler=run_train)

    evaluate = subparsers.add_parser(
        "eval", help="zero-shot accuracy per language of a checkpoint, or retrieval figures of an encoder"
    )
    evaluate.add_argument(
        "checkpoint", type=Path, help="target checkpoint; for retrieval tasks also a model alias or phase folder"
    )
    evaluate.add_argument("--task", required=True)
    evaluate.add_argument("--split", help="default: the task's zero-shot evaluation split")
    evaluate.add_argument("--languages", default="all", help="comma-separated list, or all")
    evaluate.add_argument("--max-per-language", type=int, help="a seeded sample of the same items per language")
    evaluate.add_argument("--seed", type=int, default=0)
    evaluate.add_argument("--batch-size", type=int, default=64)
    evaluate.add_argument("--json", action="store_true")
    add_retrieval_arguments(evaluate)
    add_data_dir(evaluate)
    evaluate.set_defaults(handler=run_eval)


def print_results(results: dict) -> None:
    """The per-language figures of the metric the results name (accuracy unless ``metric`` says otherwise)."""
    metric = results.get("metric", "accuracy")
    rows = [(lang, f"{100 * v[metric]:.1f}", v["examples"]) for lang, v in results["languages"].items()]
    rows.append(("average", f"{100 * results['average']:.1f}", ""))
    print_table(("language", f"{metric} %", "examples"), rows)


def run_train(args: argparse.Namespace) -> int:
    from xstilts.training.config import load_config

    config = load_config(args.config, args.overrides)
    data_dir = resolve_data_dir(args.data_dir)
    from xstilts.training.pipeline import run

    output = args.output or RUNS_DIR / args.config.stem
    results = run(config, output, data_dir, args.phase_store)
    print(f"\n{results['task']} {results['split']}, zero-shot figures per language:")
    if config.trains_target:
        print_results(results)
    else:
        from xstilts.retrieval.commands import print_results as print_retrieval

        print_retrieval(results)
    print(f"\ncheckpoint: {output / 'checkpoint'}\nresults: {output / 'results.json'}")
    return 0


def run_eval(args: argparse.Namespace) -> int:
    from xstilts.contracts.checkpoint import CheckpointInfo
    from xstilts.contracts.evaluation import load_evaluation_sample

    if get_task(args.task).kind is TaskKind.EMBEDDING:
        from xstilts.retrieval.commands import run as run_retrieval

        return run_retrieval(args)
    CheckpointInfo.load(args.checkpoint)
    data_dir = resolve_data_dir(args.data_dir)
    sample = load_evaluation_sample(args.task, data_dir, args.languages, args.max_per_language, args.seed, args.split)
    from xstilts.training.evaluate import evaluate

    results = evaluate(args.checkpoint, sample, args.batch_size)
    if args.json:
        print_json(results)
    else:
        print_results(results)
    return 0
