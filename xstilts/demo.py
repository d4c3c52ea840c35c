"""``xstilts demo``: the README's main job, the whole system end to end on the default model.

A short training of me5-small on English MNLI, zero-shot XNLI evaluation in 15 languages, export to fp32 and
int8 ONNX bundles behind the parity gate, then ``xstilts bench`` serving each variant and the naive PyTorch
server in turn: accuracy per language through the API, latency and throughput under load, one report.
Each step is the same subcommand a user would run; a rerun reuses the finished training and export.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import yaml

from xstilts.contracts.bundle import list_bundles
from xstilts.errors import XstiltsError
from xstilts.tasks.commands import add_data_dir

DEFAULT_MODEL = "me5-small"
BUNDLE_NAME = "me5-demo"


def demo_config(steps: int, per_language: int) -> dict:
    """The training run: MNLI as the English target for XNLI, a budget of minutes on two CPU cores."""
    return {
        "model": DEFAULT_MODEL,
        "seed": 0,
        "max_length": 64,
        "freeze_embeddings": True,
        "target": {"tasks": [{"task": "mnli"}], "max_steps": steps, "batch_size": 16, "learning_rate": 1.0e-4},
        "evaluation": {"task": "xnli", "max_per_language": per_language},
    }


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "demo",
        help="the main job: train me5-small briefly, export fp32 and int8, serve and bench them, write a report",
        description=__doc__.splitlines()[0],
    )
    parser.add_argument("--output", type=Path, default=Path("demo-output"), help="folder for everything it writes")
    parser.add_argument("--steps", type=int, default=120, help="MNLI training steps of 16 pairs (default: 120)")
    parser.add_argument("--per-language", type=int, default=60, help="XNLI items per language for every accuracy")
    parser.add_argument("--duration", default="6s", help="time bound of each load scenario (default: 6s)")
    add_data_dir(parser)
    parser.set_defaults(handler=run)


def _stage(title: str, argv: list[str]) -> None:
    from xstilts.cli import main

    print(f"\n== {title} ==\n$ xstilts {' '.join(argv)}", flush=True)
    code = main(argv)
    if code != 0:
        raise XstiltsError(f"demo stopped: 'xstilts {argv[0]}' exited with code {code}")


def run(args: argparse.Namespace) -> int:
    if args.steps < 1 or args.per_language < 1:
        raise XstiltsError("--steps and --per-language must be at least 1")
    output: Path = args.output
    output.mkdir(parents=True, exist_ok=True)
    data = ["--data-dir", str(args.data_dir)] if args.data_dir else []
    config = output / "demo.yaml"
    config.write_text(yaml.safe_dump(demo_config(args.steps, args.per_language), sort_keys=False))
    run_dir, repository = output / "run", output / "repository"

    _stage("1/3 train: me5-small on MNLI, zero-shot XNLI", ["train", str(config), "--output", str(run_dir), *data])
    exported = list_bundles(repository).get(BUNDLE_NAME, {}) if repository.is_dir() else {}
    if {"fp32", "int8"} <= set(exported) and _same_checkpoint(run_dir, repository):
        print(f"\n== 2/3 export ==\n{repository / BUNDLE_NAME} already holds this checkpoint's fp32 and int8 bundles")
    else:
        if (repository / BUNDLE_NAME).exists():
            raise XstiltsError(f"{repository / BUNDLE_NAME} holds another export: remove it or pick another --output")
        _stage(
            "2/3 export: fp32 and int8 ONNX bundles, parity-checked on XNLI",
            [
                "export", str(run_dir / "checkpoint"), "--repository", str(repository), "--name", BUNDLE_NAME,
                "--variants", "fp32,int8", "--parity-examples", str(args.per_language), "--keep-failed", *data,
            ],
        )  # fmt: skip
    bench_dir = output / "bench"
    _stage(
        "3/3 serve and bench: fp32, int8 and the naive PyTorch server, one after another",
        [
            "bench", "--repository", str(repository),
            "--compare", f"{BUNDLE_NAME}/fp32,{BUNDLE_NAME}/int8,{BUNDLE_NAME}/naive",
            "--naive-checkpoint", str(run_dir / "checkpoint"), "--per-language", str(args.per_language),
            "--users", "1,4", "--rates", "0.5x", "--duration", args.duration, "--max-requests", "1000",
            "--output", str(bench_dir), *data,
        ],
    )  # fmt: skip
    print(f"\ndemo done: the report is {bench_dir / 'report.md'}")
    return 0


def _same_checkpoint(run_dir: Path, repository: Path) -> bool:
    """Whether the exported bundle came from this run's checkpoint (by its weights' hash)."""
    from xstilts.contracts.hashing import file_sha256

    weights = (run_dir / "checkpoint").resolve() / "model.safetensors"
    bundle = json.loads((repository / BUNDLE_NAME / "fp32" / "bundle.json").read_text())
    recorded = ((bundle.get("build") or {}).get("checkpoint") or {}).get("weights_sha256")
    return weights.is_file() and recorded == file_sha256(weights)
