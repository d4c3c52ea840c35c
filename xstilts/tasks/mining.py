"""BUCC 2018 bitext mining data in the XTREME layout: sentences by id on both sides and the gold pairs.

Files (``{xx}`` one of de, fr, ru, zh; ``{split}`` dev or test): ``bucc2018/{xx}-en.{split}.{xx}`` and
``bucc2018/{xx}-en.{split}.en``, each line ``id<TAB>sentence``; ``bucc2018/{xx}-en.{split}.gold``, each line
``xx_id<TAB>en_id``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from xstilts.errors import XstiltsError


@dataclass(frozen=True)
class MiningSet:
    """One language pair's mining corpus: ``source`` (xx) and ``target`` (en) sentences by id, and the gold pairs."""

    language: str
    source: dict[str, str]
    target: dict[str, str]
    gold: tuple[tuple[str, str], ...]


def _lines(path: Path) -> list[tuple[int, list[str]]]:
    """(line number, tab-separated fields) of every non-empty line."""
    with path.open(encoding="utf-8", newline="") as handle:
        rows = [(n, line.rstrip("\n").rstrip("\r").split("\t")) for n, line in enumerate(handle, 1)]
    return [(n, fields) for n, fields in rows if fields != [""]]


def _sentences(path: Path) -> dict[str, str]:
    sentences: dict[str, str] = {}
    for number, fields in _lines(path):
        if len(fields) != 2 or not fields[0] or not fields[1].strip():
            raise XstiltsError(f"{path}:{number}: expected 'id<TAB>sentence'")
        if fields[0] in sentences:
            raise XstiltsError(f"{path}:{number}: sentence id {fields[0]!r} appears twice")
        sentences[fields[0]] = fields[1]
    return sentences


def _gold(path: Path, source: dict[str, str], target: dict[str, str]) -> tuple[tuple[str, str], ...]:
    pairs = []
    for number, fields in _lines(path):
        if len(fields) != 2 or not all(fields):
            raise XstiltsError(f"{path}:{number}: expected 'xx_id<TAB>en_id'")
        if fields[0] not in source or fields[1] not in target:
            raise XstiltsError(
                f"{path}:{number}: gold pair {fields[0]}/{fields[1]} names a sentence id not in the corpus"
            )
        pairs.append((fields[0], fields[1]))
    return tuple(pairs)


def read_mining_set(paths: Sequence[Path], language: str) -> MiningSet:
    """The ``MiningSet`` of ``paths`` = (xx sentences, en sentences, gold pairs)."""
    source_path, target_path, gold_path = paths
    source, target = _sentences(source_path), _sentences(target_path)
    return MiningSet(language, source, target, _gold(gold_path, source, target))
