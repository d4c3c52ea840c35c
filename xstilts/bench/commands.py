"""``xstilts bench``: accuracy and load of served models, side by side, in one report.

Two ways to call it::

    xstilts bench --url http://127.0.0.1:8000 --model me5-xnli [--repository models]   # a running server
    xstilts bench --repository models --compare me5-xnli/fp32,me5-xnli/int8,me5-xnli/naive  # started here
"""

from __future__ import annotations

import argparse
import shlex
import sys
from datetime import datetime
from pathlib import Path

from xstilts.errors import XstiltsError


class DefaultsShown(argparse.HelpFormatter):
    """Help that shows a flag's default when it has one."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        shown = action.default is not None and action.default is not False and action.default != ""
        if shown and action.default != argparse.SUPPRESS and "default" not in text:
            text += " (default: %(default)s)"
        return text


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "bench",
        help="measure served models: accuracy per language through the API, latency and throughput under load",
        description="Send a task's evaluation texts to a server: accuracy per language (compared with what the "
        "bundle recorded at export), then locust load scenarios (closed-loop sweep, open loop at a fixed arrival "
        "rate, offline maximum throughput). Writes results.json, CSV files, PNG plots and report.md. With "
        "--compare, starts each model/variant (and the naive PyTorch reference) in turn on this machine.",
        formatter_class=DefaultsShown,
    )
    where = parser.add_argument_group("what to measure")
    where.add_argument("--url", help="a running server (xstilts serve, or anything speaking its /v1 API)")
    where.add_argument("--model", help="with --url: the model name to send requests to")
    where.add_argument(
        "--repository", type=Path, help="model repository: bundles to start (--compare) or to compare accuracy with"
    )
    where.add_argument(
        "--compare",
        help="comma-separated NAME/VARIANT, NAME (all its variants) or NAME/naive (the PyTorch reference server), "
        "each served in turn",
    )
    where.add_argument("--naive-checkpoint", type=Path, help="checkpoint for NAME/naive (default: found by lineage)")
    where.add_argument("--naive-threads", type=int, default=None, help="torch threads of the naive server")
    where.add_argument(
        "--serve-args", default="", help='extra flags for every xstilts serve started, e.g. "--max-batch-size 16"'
    )
    where.add_argument("--api-key", default=None, help="bearer token for a server that needs one")

    data = parser.add_argument_group("data")
    data.add_argument("--task", help="task whose evaluation split to send (default: the model's task)")
    data.add_argument("--data-dir", type=Path, help="data folder (default: $XSTILTS_DATA_DIR or ../shared/data)")
    data.add_argument("--languages", default=None, help="comma-separated languages (default: all of the split)")
    data.add_argument(
        "--per-language", default="200", help="items per language, the same items in each ('all': the whole split)"
    )
    data.add_argument("--seed", type=int, default=0, help="seed of the sample, the body order and the arrivals")

    budget = parser.add_argument_group("budget and scenarios")
    budget.add_argument(
        "--scenarios", default="accuracy,closed,open,offline", help="which of accuracy,closed,open,offline to run"
    )
    budget.add_argument("--users", default="1,2,4,8", help="closed-loop sweep: user counts (concurrency)")
    budget.add_argument(
        "--rates", default="0.5x,0.9x", help="open loop: requests/s (10) or fractions of the closed-loop peak (0.5x)"
    )
    budget.add_argument("--open-users", type=int, default=1, help="open loop: users sharing the arrival rate")
    budget.add_argument("--offline-users", type=int, default=4, help="offline: concurrent users")
    budget.add_argument("--offline-items", type=int, default=32, help="offline: items per request")
    budget.add_argument("--items-per-request", type=int, default=1, help="closed and open loop: items per request")
    budget.add_argument("--duration", default="10s", help="time bound of each scenario (e.g. 30s, 2m)")
    budget.add_argument("--max-requests", type=int, default=2000, help="request bound of each scenario")
    budget.add_argument("--accuracy-batch", type=int, default=16, help="items per request in the accuracy pass")
    budget.add_argument("--accuracy-timeout", default="15m", help="time bound of the accuracy pass")
    parser.add_argument("--output", type=Path, help="output folder (default: bench-results/<timestamp>)")
    parser.set_defaults(handler=run)


def _per_language(text: str) -> int | None:
    if text.strip().lower() == "all":
        return None
    try:
        value = int(text)
    except ValueError:
        raise XstiltsError(f"--per-language: expected a number or 'all', got {text!r}") from None
    if value < 1:
        raise XstiltsError("--per-language must be at least 1")
    return value


def run(args: argparse.Namespace) -> int:
    from xstilts.bench import config as bench_config
    from xstilts.bench import load, runner

    if bool(args.url) == bool(args.compare):
        raise XstiltsError("give either --url URL --model NAME (a running server) or --repository DIR --compare A,B")
    if args.url and not args.model:
        raise XstiltsError("--url needs --model NAME")
    if args.compare and not args.repository:
        raise XstiltsError("--compare needs --repository DIR")
    wanted = [s.strip() for s in args.scenarios.split(",") if s.strip()]
    unknown = [s for s in wanted if s not in ("accuracy", *load.MODES)]
    if unknown:
        raise XstiltsError(f"--scenarios: unknown {', '.join(unknown)} (choose from accuracy,closed,open,offline)")
    for name in ("open_users", "offline_users", "offline_items", "items_per_request", "max_requests", "accuracy_batch"):
        if getattr(args, name) < 1:
            raise XstiltsError(f"--{name.replace('_', '-')} must be at least 1")
    output = args.output or Path("bench-results") / datetime.now().strftime("%Y%m%d-%H%M%S")
    config = bench_config.BenchConfig(
        output=output,
        task=args.task,
        data_dir=args.data_dir,
        languages=args.languages,
        per_language=_per_language(args.per_language),
        seed=args.seed,
        accuracy="accuracy" in wanted,
        accuracy_batch=args.accuracy_batch,
        accuracy_timeout_s=load.parse_duration(args.accuracy_timeout),
        scenarios=tuple(m for m in load.MODES if m in wanted),
        users=load.parse_ints(args.users, "--users"),
        rates=load.parse_rates(args.rates),
        open_users=args.open_users,
        offline_users=args.offline_users,
        offline_items=args.offline_items,
        items_per_request=args.items_per_request,
        duration_s=load.parse_duration(args.duration),
        max_requests=args.max_requests,
        api_key=args.api_key,
        command="xstilts " + shlex.join(sys.argv[1:]) if sys.argv[1:2] == ["bench"] else "xstilts bench",
    )
    print(f"writing to {output}")
    if args.url:
        runner.bench_url(args.url, args.model, config, args.repository)
    else:
        targets = bench_config.parse_targets(args.compare, args.repository)
        runner.bench_compare(
            args.repository,
            targets,
            config,
            naive_checkpoint=args.naive_checkpoint,
            serve_args=shlex.split(args.serve_args),
            naive_threads=args.naive_threads,
        )
    print(f"report: {output / 'report.md'}")
    return 0
