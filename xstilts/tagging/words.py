"""Words with character offsets: the one rule by which raw text is split into the words a tagging model reads.

The rule, for text given raw (not as words):

- whitespace separates words and belongs to none;
- a word is a maximal run of letters, combining marks and digits (Unicode categories L*, M*, N*), with the
  format characters (Cf: zero-width joiner and non-joiner) that join letters in Indic and Persian script;
- every other character (punctuation, symbols) is a word of its own: ``"Paris,"`` is ``Paris`` and ``,``;
- in Chinese and Japanese, written without spaces, each CJK ideograph, hiragana and katakana character is a word
  of its own (as PAN-X's Chinese and Japanese files are split); Hangul, written with spaces, follows the runs rule.
  Other scripts without spaces (Thai, Lao, Khmer, Burmese) are not segmented: a run is one word.

Pre-split words (training files, ``{"words": [...]}`` requests) are joined by single spaces, their offsets
pointing into that joined text.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence
from typing import NamedTuple

# Code-point ranges of the characters that are one word each: CJK ideographs (with the iteration and ideographic
# number marks), hiragana, katakana (with its phonetic extensions and the half-width forms).
_SINGLE_CHARACTER_RANGES = (
    (0x3005, 0x3007),
    (0x3040, 0x309F),
    (0x30A0, 0x30FF),
    (0x31F0, 0x31FF),
    (0x3400, 0x4DBF),
    (0x4E00, 0x9FFF),
    (0xF900, 0xFAFF),
    (0xFF66, 0xFF9F),
    (0x20000, 0x3FFFF),
)


class Word(NamedTuple):
    """A word and where it is in its text: ``text[start:end] == word.text``."""

    text: str
    start: int
    end: int


def _single_character(char: str) -> bool:
    point = ord(char)
    return any(low <= point <= high for low, high in _SINGLE_CHARACTER_RANGES)


def _in_run(char: str) -> bool:
    return unicodedata.category(char)[0] in "LMN" or unicodedata.category(char) == "Cf"


def split_words(text: str) -> list[Word]:
    """The words of raw ``text`` by the module's rule, with their character offsets."""
    words: list[Word] = []
    start = None  # where the current run began
    for position, char in enumerate(text):
        if start is not None and (not _in_run(char) or _single_character(char)):
            words.append(Word(text[start:position], start, position))
            start = None
        if char.isspace():
            continue
        if _single_character(char) or not _in_run(char):
            words.append(Word(char, position, position + 1))
        elif start is None:
            start = position
    if start is not None:
        words.append(Word(text[start:], start, len(text)))
    return words


def join_words(words: Sequence[str]) -> tuple[str, list[Word]]:
    """Pre-split ``words`` joined by single spaces, and each word's offsets in that text."""
    placed: list[Word] = []
    position = 0
    for word in words:
        placed.append(Word(word, position, position + len(word)))
        position += len(word) + 1
    return " ".join(words), placed
