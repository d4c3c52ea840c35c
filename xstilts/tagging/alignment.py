"""Words to model windows and back: tags on the first sub-word of each word, sentences split into windows.

A sentence whose sub-words do not fit one window of ``max_length`` tokens (special tokens included) is split,
between words, into consecutive windows that do not overlap; every word lands in exactly one window, so nothing
is truncated. Only a single word longer than a whole window is cut (its first sub-word, which carries its tag, is
kept). Training labels the first sub-word of each word with its tag and every other position ``IGNORE``; reading
back, a word takes the logits at its first sub-word. Uses ``tokenizers`` only: the server reads the same windows.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from tokenizers import Tokenizer

IGNORE = -100  # the label of positions the loss skips (torch's cross-entropy default)


@dataclass(frozen=True)
class Window:
    """One model input: token ids, and for each of the sentence's words ``first_word ...`` in it, the position of
    its first sub-word (-1 for a word the tokenizer turned into no token)."""

    ids: list[int]
    first_word: int
    first_tokens: list[int]

    @property
    def words(self) -> range:
        return range(self.first_word, self.first_word + len(self.first_tokens))


class WordTokenizer:
    """A ``tokenizers`` tokenizer reading pre-split words into windows of at most ``max_length`` tokens."""

    def __init__(self, tokenizer: Tokenizer, max_length: int) -> None:
        # a private copy: the caller's tokenizer may truncate or pad (the server's does), this one must not
        self.tokenizer = Tokenizer.from_str(tokenizer.to_str())
        self.tokenizer.no_padding()
        self.tokenizer.no_truncation()
        self.max_length = max_length
        self.room = max_length - self.tokenizer.num_special_tokens_to_add(False)
        if self.room < 1:
            raise ValueError(f"max_length {max_length} leaves no room for a word")

    def windows(self, sentences: Sequence[Sequence[str]]) -> list[list[Window]]:
        """The windows of each sentence (a list of words), in order."""
        counted = self.tokenizer.encode_batch(
            [list(s) for s in sentences], is_pretokenized=True, add_special_tokens=False
        )
        plans = [_plan(_token_counts(e.word_ids, len(s)), self.room) for e, s in zip(counted, sentences, strict=True)]
        flat = [list(sentence[a:b]) for sentence, plan in zip(sentences, plans, strict=True) for a, b in plan]
        self.tokenizer.enable_truncation(self.max_length)  # only a single over-long word is ever cut
        try:
            encoded = self.tokenizer.encode_batch(flat, is_pretokenized=True) if flat else []
        finally:
            self.tokenizer.no_truncation()
        out: list[list[Window]] = []
        position = 0
        for plan in plans:
            chunk = encoded[position : position + len(plan)]
            position += len(plan)
            out.append([_window(e.ids, e.word_ids, a, b - a) for e, (a, b) in zip(chunk, plan, strict=True)])
        return out


def _token_counts(word_ids: Sequence[int | None], words: int) -> list[int]:
    counts = [0] * words
    for word in word_ids:
        if word is not None:
            counts[word] += 1
    return counts


def _plan(counts: Sequence[int], room: int) -> list[tuple[int, int]]:
    """Word ranges [a, b) of consecutive windows, each holding at most ``room`` sub-words (or one longer word)."""
    plan: list[tuple[int, int]] = []
    start, used = 0, 0
    for index, count in enumerate(counts):
        if used + count > room and index > start:
            plan.append((start, index))
            start, used = index, 0
        used += count
    if start < len(counts) or not plan:
        plan.append((start, len(counts)))
    return plan


def _window(ids: list[int], word_ids: Sequence[int | None], first_word: int, words: int) -> Window:
    first = [-1] * words
    for position, word in enumerate(word_ids):
        if word is not None and first[word] < 0:
            first[word] = position
    return Window(list(ids), first_word, first)


def window_labels(window: Window, tag_ids: Sequence[int]) -> list[int]:
    """Training labels of a window: the word's tag at its first sub-word, ``IGNORE`` elsewhere."""
    labels = [IGNORE] * len(window.ids)
    for word, position in zip(window.words, window.first_tokens, strict=True):
        if position >= 0:
            labels[position] = tag_ids[word]
    return labels


def word_logits(windows: Sequence[Window], logits: Sequence[np.ndarray], words: int, labels: int) -> np.ndarray:
    """Per word ``[words, labels]``: the logits at each word's first sub-word (zeros for a word with no token).

    ``logits[i]`` is window ``i``'s ``[tokens, labels]`` array (padding after its tokens is ignored).
    """
    out = np.zeros((words, labels), dtype=np.float32)
    for window, scores in zip(windows, logits, strict=True):
        for word, position in zip(window.words, window.first_tokens, strict=True):
            if position >= 0:
                out[word] = scores[position]
    return out
