"""Parsers from each source format to :class:`Example` lists."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path

from xstilts.errors import XstiltsError
from xstilts.tasks.formats import csv_records, glue_json_records, jsonl_records, read_all, tsv_records, tsv_rows
from xstilts.tasks.mining import read_mining_set
from xstilts.tasks.types import Example

NLI_LABELS = ("entailment", "neutral", "contradiction")
_ANLI_CODES = {"e": "entailment", "n": "neutral", "c": "contradiction"}
# English prompts for COPA-style questions, as jiant and XTREME-R use them; kept English in every language.
COPA_QUESTIONS = {"cause": "What was the cause?", "effect": "What happened as a result?"}


def _label_index(labels: Sequence[str], value: str, where: str) -> int:
    try:
        return labels.index(value)
    except ValueError:
        raise XstiltsError(f"{where}: label {value!r} is not one of {list(labels)}") from None


def xnli(prefix: str):
    """XNLI TSVs: the labelled layout (with a header and pairID) or XTREME's (premise, hypothesis, label).

    Item ids are row numbers, which are parallel across languages in both layouts.
    """

    def parse(paths: Sequence[Path], language: str) -> list[Example]:
        examples = []
        for path in paths:
            first = next(tsv_rows(path), [])
            with_header = bool(first) and first[0] == "pairID"
            rows = (
                ((r["premise"], r["hypothesis"], r["label"]) for r in tsv_records(path))
                if with_header
                else ((r[0], r[1], r[2] if len(r) > 2 else "") for r in tsv_rows(path))
            )
            for index, (premise, hypothesis, label) in enumerate(rows):
                if not label:
                    raise XstiltsError(f"{path}: row {index + 1} has no label (XTREME strips test labels)")
                examples.append(
                    Example(
                        f"{prefix}/{index}", language, premise, hypothesis, _label_index(NLI_LABELS, label, str(path))
                    )
                )
        return examples

    return parse


def pawsx(prefix: str):
    """PAWS-X in XTREME's layout: sentence1, sentence2, label; rows parallel across languages."""

    def parse(paths: Sequence[Path], language: str) -> list[Example]:
        examples = []
        for index, row in enumerate(read_all(paths, tsv_rows)):
            if len(row) < 3 or row[2] not in ("0", "1"):
                raise XstiltsError(f"{paths[0]}: row {index + 1} has no 0/1 label (PAWS-X test is unlabelled)")
            examples.append(Example(f"{prefix}/{index}", language, row[0], row[1], int(row[2])))
        return examples

    return parse


def glue_json(prefix: str, labels: Sequence[str], label_aliases: dict[str, str] | None = None):
    """GLUE-style JSON objects of ``{text_a, text_b, label}`` keyed by id (the MNLI, QQP, SNLI subsets)."""
    aliases = label_aliases or {}

    def parse(paths: Sequence[Path], language: str) -> list[Example]:
        examples = []
        for path in paths:
            for key, item in glue_json_records(path):
                label = aliases.get(str(item["label"]), str(item["label"]))
                examples.append(
                    Example(
                        f"{prefix}/{key}",
                        language,
                        item["text_a"],
                        item.get("text_b"),
                        _label_index(labels, label, str(path)),
                    )
                )
        return examples

    return parse


def anli(paths: Sequence[Path], language: str) -> list[Example]:
    """ANLI analysis CSVs (context, statement, gold_label in e/n/c), ids from the file's uid column."""
    examples = []
    for path in paths:
        for row in csv_records(path):
            label = _ANLI_CODES.get(row["gold_label"])
            if label is None:
                raise XstiltsError(f"{path}: unknown gold_label {row['gold_label']!r}")
            examples.append(
                Example(f"anli/{row['uid']}", language, row["context"], row["statement"], NLI_LABELS.index(label))
            )
    return examples


def copa(prefix: str):
    """COPA and XCOPA JSON lines: premise, choice1, choice2, question (cause/effect), label, idx."""

    def parse(paths: Sequence[Path], language: str) -> list[Example]:
        examples = []
        for path in paths:
            for row in jsonl_records(path):
                examples.append(
                    Example(
                        f"{prefix}/{row['idx']}",
                        language,
                        row["premise"],
                        COPA_QUESTIONS[row["question"]],
                        int(row["label"]),
                        (row["choice1"], row["choice2"]),
                    )
                )
        return examples

    return parse


def siqa(prefix: str):
    """Social IQa JSON lines: context, question, answerA-C, correct (A/B/C)."""

    def parse(paths: Sequence[Path], language: str) -> list[Example]:
        examples = []
        for index, row in enumerate(read_all(paths, jsonl_records)):
            examples.append(
                Example(
                    f"{prefix}/{index}",
                    language,
                    row["context"],
                    row["question"],
                    "ABC".index(row["correct"]),
                    (row["answerA"], row["answerB"], row["answerC"]),
                )
            )
        return examples

    return parse


def cosmosqa(paths: Sequence[Path], language: str) -> list[Example]:
    """Cosmos QA CSV: id, context, question, answer0-3, label."""
    return [
        Example(
            f"cosmosqa/{row['id']}",
            language,
            row["context"],
            row["question"],
            int(row["label"]),
            tuple(row[f"answer{i}"] for i in range(4)),
        )
        for row in read_all(paths, csv_records)
    ]


def in_half(uid: str, half: int) -> bool:
    """Deterministic two-way split of item ids by hash, independent of row order and language."""
    return int(hashlib.sha256(uid.encode()).hexdigest(), 16) % 2 == half


# --- retrieval: text_a in the language, text_b its English counterpart, label its index ---------------------------


def _plain_lines(path: Path) -> list[str]:
    with path.open(encoding="utf-8", newline="") as handle:
        return [line.rstrip("\n").rstrip("\r") for line in handle]


def tatoeba(paths: Sequence[Path], language: str) -> list[Example]:
    """LASER's Tatoeba test files: ``tatoeba.{xxx}-eng.{xxx}`` and ``.eng``, line-aligned (item ids per language)."""
    source_path, english_path = paths
    source, english = _plain_lines(source_path), _plain_lines(english_path)
    if len(source) != len(english):
        raise XstiltsError(
            f"{source_path} has {len(source)} lines but {english_path} has {len(english)}: "
            "Tatoeba files must be line-aligned"
        )
    return [
        Example(f"tatoeba-{language}/{i}", language, text, eng, i)
        for i, (text, eng) in enumerate(zip(source, english, strict=True))
    ]


def _premises(path: Path) -> dict[str, str]:
    """XNLI premises by promptID (each premise once), from the labelled layout."""
    premises: dict[str, str] = {}
    for record in tsv_records(path):
        if "promptID" not in record:
            raise XstiltsError(f"{path}: no promptID column (the premise proxy reads the labelled XNLI layout)")
        premises.setdefault(record["promptID"], record["premise"])
    return premises


def xnli_premises(paths: Sequence[Path], language: str) -> list[Example]:
    """XNLI test premises, deduplicated by promptID, paired with the English premise of the same promptID."""
    source_path, english_path = paths
    source, english = _premises(source_path), _premises(english_path)
    if source.keys() != english.keys():
        raise XstiltsError(f"{source_path} and {english_path} hold different premise ids (promptID)")
    return [
        Example(f"xnli-test/premise/{pid}", language, text, english[pid], i)
        for i, (pid, text) in enumerate(source.items())
    ]


def _contexts(path: Path) -> list[tuple[str, str]]:
    """(article/paragraph position, context) of a SQuAD-format file, in order."""
    data = json.loads(path.read_text(encoding="utf-8")).get("data", [])
    return [
        (f"{a}/{p}", paragraph["context"])
        for a, article in enumerate(data)
        for p, paragraph in enumerate(article["paragraphs"])
    ]


def xquad_contexts(paths: Sequence[Path], language: str) -> list[Example]:
    """XQuAD's 240 paragraphs, parallel by position across languages, each once, paired with the English one."""
    source_path, english_path = paths
    source, english = _contexts(source_path), _contexts(english_path)
    if [key for key, _ in source] != [key for key, _ in english]:
        raise XstiltsError(f"{source_path} and {english_path} do not hold the same articles and paragraphs")
    return [
        Example(f"xquad/context/{key}", language, text, eng, i)
        for i, ((key, text), (_, eng)) in enumerate(zip(source, english, strict=True))
    ]


def bucc2018(paths: Sequence[Path], language: str) -> list[Example]:
    """BUCC gold pairs as examples (the mining itself reads the whole ``MiningSet``)."""
    mining = read_mining_set(paths, language)
    return [
        Example(f"bucc2018-{language}/{src}", language, mining.source[src], mining.target[tgt], i)
        for i, (src, tgt) in enumerate(mining.gold)
    ]
