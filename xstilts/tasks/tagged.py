"""Tagged-word files in the XTREME layout (PAN-X, UD-POS): ``word<TAB>tag`` per line, a blank line between
sentences. Every tag must belong to the task's tag set; a malformed line fails naming its file and line number."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

from xstilts.errors import XstiltsError
from xstilts.tasks.types import Example, Parser

# WikiANN / PAN-X named entities in BIO form; "O" first, so that tag index 0 means "no entity"
PANX_TAGS = ("O", "B-PER", "I-PER", "B-ORG", "I-ORG", "B-LOC", "I-LOC")
# Universal Dependencies' 17 universal part-of-speech tags
UPOS_TAGS = (
    "ADJ", "ADP", "ADV", "AUX", "CCONJ", "DET", "INTJ", "NOUN", "NUM",
    "PART", "PRON", "PROPN", "PUNCT", "SCONJ", "SYM", "VERB", "X",
)  # fmt: skip


def _sentences(path: Path, tags: frozenset[str]) -> Iterator[tuple[list[str], list[str]]]:
    """(words, tags) of each sentence of ``path``, checking every line."""
    words: list[str] = []
    labels: list[str] = []
    with path.open(encoding="utf-8", newline="") as handle:
        for number, line in enumerate(handle, 1):
            line = line.rstrip("\n").rstrip("\r")
            if not line.strip():
                if words:
                    yield words, labels
                words, labels = [], []
                continue
            fields = line.split("\t")
            if len(fields) != 2 or not fields[0].strip() or not fields[1]:
                raise XstiltsError(
                    f"{path}:{number}: expected 'word<TAB>tag', got {line[:60]!r} (XTREME strips test tags)"
                )
            if fields[1] not in tags:
                raise XstiltsError(f"{path}:{number}: tag {fields[1]!r} is not one of {sorted(tags)}")
            words.append(fields[0])
            labels.append(fields[1])
    if words:
        yield words, labels


def tagged_words(prefix: str, tags: Sequence[str]) -> Parser:
    """A parser of tagged-word files; item ids are ``{prefix}-{language}/{sentence index}`` (sentences of different
    languages are not translations of each other)."""
    allowed = frozenset(tags)

    def parse(paths: Sequence[Path], language: str) -> list[Example]:
        examples = []
        for path in paths:
            for words, labels in _sentences(path, allowed):
                uid = f"{prefix}-{language}/{len(examples)}"
                examples.append(
                    Example(uid, language, " ".join(words), None, 0, words=tuple(words), tags=tuple(labels))
                )
        return examples

    return parse
