"""Readers for the on-disk formats the tasks come in (TSV, GLUE-style JSON, JSON lines, CSV)."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator, Sequence
from pathlib import Path

from xstilts.errors import XstiltsError

csv.field_size_limit(1 << 24)


def tsv_rows(path: Path) -> Iterator[list[str]]:
    """Rows of a tab-separated file with no quoting (the XTREME files contain bare quotes)."""
    with path.open(encoding="utf-8", newline="") as handle:
        for line in handle:
            line = line.rstrip("\n").rstrip("\r")
            if line:
                yield line.split("\t")


def tsv_records(path: Path) -> Iterator[dict[str, str]]:
    """Rows of a TSV file with a header line, as dictionaries."""
    rows = tsv_rows(path)
    header = next(rows, None)
    if header is None:
        return
    for row in rows:
        yield dict(zip(header, row, strict=False))


def glue_json_records(path: Path) -> Iterator[tuple[str, dict[str, str]]]:
    """Items of a JSON object keyed by id, such as ``{"0": {"text_a": ..., "text_b": ..., "label": ...}}``."""
    with path.open(encoding="utf-8") as handle:
        data = json.load(handle)
    if not isinstance(data, dict):
        raise XstiltsError(f"{path}: expected a JSON object keyed by item id")
    yield from data.items()


def jsonl_records(path: Path) -> Iterator[dict]:
    """Objects of a JSON-lines file."""
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            if line.strip():
                try:
                    yield json.loads(line)
                except json.JSONDecodeError as exc:
                    raise XstiltsError(f"{path}:{number}: not JSON ({exc.msg})") from None


def csv_records(path: Path) -> Iterator[dict[str, str]]:
    """Rows of a comma-separated file with a header, as dictionaries."""
    with path.open(encoding="utf-8", newline="") as handle:
        yield from csv.DictReader(handle)


def read_all(paths: Sequence[Path], reader) -> Iterator:
    """Chain a reader over several files."""
    for path in paths:
        yield from reader(path)
