"""A cell's three stages, each through its own command (``xstilts train``, ``export``, ``bench``) in a subprocess.

The grid talks to the stages through their files only. Each stage is skipped when its output is already there:
a trained run (its results, manifest and checkpoint), a complete bundle for every variant, a bench
``results.json`` without errors. Training resumes by itself (phase store, Trainer checkpoints).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from pathlib import Path

import yaml

from xstilts.atomic import write_text_atomic
from xstilts.contracts.bundle import load_manifest
from xstilts.contracts.checkpoint import CHECKPOINT_FILE
from xstilts.contracts.hashing import json_digest
from xstilts.contracts.kinds import TaskKind
from xstilts.contracts.results import RESULTS_FILE, BenchResults, read_results
from xstilts.errors import XstiltsError
from xstilts.grid.cells import Cell
from xstilts.grid.config import GridConfig
from xstilts.grid.layout import CellLayout, GridLayout, exclusive

ERROR_PREFIX = "xstilts: error: "


def run_command(argv: list[str], log: Path) -> float:
    """Run ``xstilts ARGV`` with its output in ``log``; returns its wall time, fails with its one-line error."""
    log.parent.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    with log.open("w", encoding="utf-8") as handle:
        handle.write(f"$ xstilts {' '.join(argv)}\n")
        handle.flush()
        code = subprocess.call([sys.executable, "-m", "xstilts.cli", *argv], stdout=handle, stderr=subprocess.STDOUT)
    if code != 0:
        lines = [line.strip() for line in log.read_text(encoding="utf-8", errors="replace").splitlines()]
        errors = [line.removeprefix(ERROR_PREFIX) for line in lines if line.startswith(ERROR_PREFIX)]
        last = errors[-1] if errors else next((line for line in reversed(lines) if line), "no output")
        raise XstiltsError(f"xstilts {argv[0]} exited with code {code}: {last} (log: {log})")
    return time.monotonic() - started


def data_args(data_dir: Path) -> list[str]:
    return ["--data-dir", str(data_dir)]


# ------------------------------------------------------------------------------------------------------ train


def trained(cell: Cell, paths: CellLayout) -> bool:
    """Whether the run wrote its results, manifest and checkpoint (a retrieval target's: the encoder's folder)."""
    run = paths.run
    checkpoint = run / "checkpoint" / (CHECKPOINT_FILE if cell.trains_target else "config.json")
    return all(p.is_file() for p in (run / "results.json", run / "manifest.json", checkpoint))


def first_phase_key(cell: Cell) -> str:
    """What every cell that could share a phase with this one shares: the model, run-wide settings, first phase."""
    run = cell.run
    first = (run["intermediate"] or [run["target"]])[0]
    shared = {k: run[k] for k in ("model", "seed", "max_length", "freeze_embeddings", "precision", "pooling")}
    return json_digest({**shared, "first_phase": first})


def train(cell: Cell, grid: GridLayout, paths: CellLayout, data_dir: Path) -> float | None:
    """Train the cell's run with the shared phase store; None when it was already trained."""
    write_text_atomic(paths.config, yaml.safe_dump(cell.run, sort_keys=False))
    if trained(cell, paths):
        return None
    argv = ["train", str(paths.config), "--output", str(paths.run), "--phase-store", str(grid.phases)]
    # Cells sharing phases must not train the same phase folder at once (parallel pods on one volume).
    with exclusive(grid.lock(f"phase-{first_phase_key(cell)}"), f"  {cell.id}: waiting for a cell sharing a phase"):
        return run_command([*argv, *data_args(data_dir)], paths.log("train"))


# ------------------------------------------------------------------------------------------------------ export


def exported(config: GridConfig, cell: Cell, grid: GridLayout) -> bool:
    """Whether every variant's bundle is complete; a bundle folder missing a variant cannot be reused."""
    folder = grid.repository / cell.bundle
    if not folder.exists():
        return False
    missing = [v for v in config.export.variants if not (folder / v / "bundle.json").is_file()]
    if missing:
        raise XstiltsError(
            f"{folder} exists without variant(s) {', '.join(missing)}: it was exported with other settings; "
            "remove it to export again"
        )
    for variant in config.export.variants:
        load_manifest(folder / variant)
    return True


def export(config: GridConfig, cell: Cell, grid: GridLayout, paths: CellLayout, data_dir: Path) -> float | None:
    """Export the trained checkpoint into the grid's repository; None when its bundles were already complete.

    Every variant is kept, marked when it fails the parity gate: one failed variant must not cost the cell its
    row. The row records the failure; the bench measures a failed variant only with ``export.keep_failed``.
    """
    if exported(config, cell, grid):
        return None
    e = config.export
    argv = [
        "export", str(paths.run / "checkpoint"), "--repository", str(grid.repository), "--name", cell.bundle,
        "--variants", ",".join(e.variants), "--parity-examples", str(e.parity_examples),
        "--max-accuracy-drop", str(e.max_accuracy_drop), "--keep-failed", *embedding_args(cell),
    ]  # fmt: skip
    return run_command([*argv, *data_args(data_dir)], paths.log("export"))


def embedding_args(cell: Cell) -> list[str]:
    """A retrieval cell exports its encoder as an embedding bundle, at the layer its target names (if any)."""
    if cell.trains_target:
        return []
    layer = cell.run["target"].get("layer")
    return ["--kind", TaskKind.EMBEDDING.value, *(["--layer", str(layer)] if layer is not None else [])]


def benched_variants(config: GridConfig, cell: Cell, grid: GridLayout) -> list[str]:
    """The variants the bench measures: those that passed the parity gate, and failed ones with ``keep_failed``."""
    folder = grid.repository / cell.bundle
    keep = config.export.keep_failed
    variants = [v for v in config.export.variants if keep or not load_manifest(folder / v).failed_parity]
    if not variants:
        raise XstiltsError(f"every variant of {cell.id} failed the parity gate at export: nothing to measure")
    return variants


# ------------------------------------------------------------------------------------------------------ bench


def bench_settings(config: GridConfig, cell: Cell) -> dict[str, str]:
    """The bench flags of a cell (without paths): the target's evaluation sample, load scenarios if a load cell."""
    b, evaluation = config.bench, cell.run["evaluation"]
    per_language = b.per_language if b.per_language is not None else evaluation["max_per_language"] or "all"
    flags = {
        "--compare": ",".join(f"{cell.bundle}/{v}" for v in config.export.variants),
        "--per-language": str(per_language),
        "--seed": str(evaluation["seed"]),
        "--scenarios": ",".join(["accuracy", *(b.scenarios if cell.load else [])]),
        "--accuracy-batch": str(b.accuracy_batch),
        "--accuracy-timeout": b.accuracy_timeout,
        "--serve-args": b.serve_args,
    }
    if evaluation["languages"] != "all":
        flags["--languages"] = ",".join(evaluation["languages"])
    if cell.load:
        flags |= {
            "--users": ",".join(map(str, b.users)),
            "--rates": ",".join(b.rates),
            "--offline-users": str(b.offline_users),
            "--offline-items": str(b.offline_items),
            "--duration": b.duration,
            "--max-requests": str(b.max_requests),
        }
    return flags


def bench_errors(results: BenchResults) -> list[str]:
    errors = []
    for target in results.targets:
        for error in (target.error, target.accuracy_error):
            if error:
                errors.append(f"{target.label}: {error.splitlines()[0]}")
    return errors


def benched(paths: CellLayout) -> bool:
    """Whether the cell's bench wrote complete results without errors (unreadable ones are measured again)."""
    path = paths.bench / RESULTS_FILE
    if not path.is_file():
        return False
    try:
        return not bench_errors(read_results(path))
    except XstiltsError:
        return False


def bench(config: GridConfig, cell: Cell, grid: GridLayout, paths: CellLayout, data_dir: Path) -> float | None:
    """Serve each variant in turn and measure it; None when a complete bench result was already there."""
    if benched(paths):
        return None
    if paths.bench.exists():
        shutil.rmtree(paths.bench)  # a killed or failed bench: measure again from scratch
    settings = bench_settings(config, cell) | {
        "--compare": ",".join(f"{cell.bundle}/{v}" for v in benched_variants(config, cell, grid))
    }
    flags = [f"{flag}={value}" for flag, value in settings.items()]
    argv = ["bench", "--repository", str(grid.repository), *flags, "--output", str(paths.bench)]
    seconds = run_command([*argv, *data_args(data_dir)], paths.log("bench"))
    errors = bench_errors(read_results(paths.bench / RESULTS_FILE))
    if errors:
        raise XstiltsError(f"bench of {cell.id} failed: {'; '.join(errors)} (log: {paths.log('bench')})")
    return seconds
