"""Measuring bundles on this machine's CPU: file size, load time and single-process throughput."""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from xstilts.contracts.bundle import MODEL_FILE, load_manifest
from xstilts.contracts.interface import interface_of, token_feeds
from xstilts.contracts.providers import CPU
from xstilts.export.encode import complete_feeds

BATCH_SIZES = (1, 16)
LENGTHS = (64, 128)
FIRST_ORDINARY_ID = 5  # past XLM-R's special tokens; throughput does not depend on which ids
WINDOWS = 5


def measure_bundles(
    folders: Sequence[Path],
    batch_sizes: Sequence[int] = BATCH_SIZES,
    lengths: Sequence[int] = LENGTHS,
    seconds: float = 3.0,
) -> list[dict[str, Any]]:
    """Per bundle folder: model file size, session load time and sequences per second per (batch, length).

    One ONNX Runtime session with its default threads, as one server process runs it; each figure is the best
    of ``WINDOWS`` windows splitting ``seconds``. A multiple-choice sequence is one choice of one item.
    Variants that only run on GPUs as deployed are listed, not measured.
    """
    return [_measure(Path(folder), batch_sizes, lengths, seconds) for folder in folders]


def _measure(folder: Path, batch_sizes: Sequence[int], lengths: Sequence[int], seconds: float) -> dict[str, Any]:
    import onnxruntime as ort

    manifest = load_manifest(folder)
    model_bytes = sum(v["bytes"] for k, v in manifest.files.items() if k.startswith(MODEL_FILE))
    row: dict[str, Any] = {"name": manifest.name, "variant": manifest.variant, "file_mb": model_bytes / 2**20}
    providers = manifest.execution.get("providers", [CPU])
    if CPU not in providers or ("tensorrt" in manifest.execution and providers[0] != CPU):
        row["skipped"] = f"deployed on {providers[0]}: CPU numbers would not say how it runs there"
        return row
    started = time.perf_counter()
    session = ort.InferenceSession(str(folder / MODEL_FILE), providers=[CPU])
    row["load_s"] = time.perf_counter() - started
    names = [i.name for i in session.get_inputs()]
    interface = interface_of(manifest.kind)
    row["sequences_per_s"] = {
        f"b{batch}_len{length}": _throughput(session, names, interface.shape(batch, length, manifest.choices), seconds)
        for length in lengths
        for batch in batch_sizes
    }
    return row


def _throughput(session: Any, names: list[str], shape: tuple[int, ...], seconds: float) -> float:
    """Sequences per second of the best of several short windows: on a shared machine, the least disturbed one."""
    rng = np.random.default_rng(0)
    ids = rng.integers(FIRST_ORDINARY_ID, 1000, size=shape, dtype=np.int64)
    feeds = complete_feeds(token_feeds(ids, np.ones_like(ids)), names)
    for _ in range(2):
        session.run(None, feeds)
    best, deadline = 0.0, time.perf_counter() + seconds
    while True:
        runs, started = 0, time.perf_counter()
        while runs < 3 or time.perf_counter() - started < seconds / WINDOWS:
            session.run(None, feeds)
            runs += 1
        best = max(best, runs / (time.perf_counter() - started))
        if time.perf_counter() >= deadline:
            return best * int(np.prod(shape[:-1]))
