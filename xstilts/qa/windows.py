"""Question + context windows for extractive QA, on the ``tokenizers`` library alone (training, export and serving).

A context longer than a window is split into overlapping windows of ``max_length`` tokens (the question, then a
slice of the context, each with the model's special tokens); consecutive windows share ``doc_stride`` context
tokens. Each window keeps the character span of each of its context tokens, so a predicted token span maps back to
the original context. A gold answer maps to the token positions that cover it in each window holding it whole;
a window without it points both positions at the first token ([CLS] / ``<s>``), as in SQuAD-style training.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from xstilts.errors import XstiltsError
from xstilts.tasks.types import Example

DOC_STRIDE = 128  # context tokens two consecutive windows share
MAX_QUESTION_TOKENS = 64  # longer questions are cut (their first tokens kept), as in the SQuAD reference scripts
NO_ANSWER = 0  # the position a window without the answer points at: its first token
_SPECIAL_TOKENS = 4  # room a pair needs beyond its two texts (<s> q </s></s> c </s>; BERT needs 3)

Span = tuple[int, int]


@dataclass(frozen=True)
class Window:
    """One window of one item: token ids and, per token, its character span in the context (None outside it)."""

    item: int  # the index of the (question, context) pair this window belongs to
    ids: list[int]
    offsets: list[Span | None]

    def context_bounds(self) -> tuple[int, int]:
        """(first, last) token positions of the window's context slice."""
        positions = [i for i, span in enumerate(self.offsets) if span is not None]
        return positions[0], positions[-1]


def as_tokenizers(tokenizer: Any) -> Any:
    """A private ``tokenizers.Tokenizer`` copy of a ``tokenizers`` or transformers fast tokenizer (its settings are
    changed here and must not leak into the caller's)."""
    from tokenizers import Tokenizer

    backend = getattr(tokenizer, "backend_tokenizer", tokenizer)
    if not isinstance(backend, Tokenizer):
        raise XstiltsError(f"extractive QA needs a fast tokenizer (tokenizers), got {type(tokenizer).__name__}")
    return Tokenizer.from_str(backend.to_str())


class Windower:
    """Splits (question, context) pairs into windows of ``max_length`` tokens overlapping by ``doc_stride``."""

    def __init__(self, tokenizer: Any, max_length: int, doc_stride: int = DOC_STRIDE) -> None:
        room = max_length - MAX_QUESTION_TOKENS - _SPECIAL_TOKENS
        if doc_stride >= room:
            raise XstiltsError(
                f"doc stride {doc_stride} leaves no new context per window at max length {max_length} "
                f"(questions take up to {MAX_QUESTION_TOKENS} tokens): use a stride below {room}"
            )
        self.max_length, self.doc_stride = max_length, doc_stride
        self.tokenizer = as_tokenizers(tokenizer)
        self.tokenizer.no_padding()
        # questions alone: "only_second" truncation refuses a single sequence longer than max_length
        self.questions = as_tokenizers(self.tokenizer)
        self.questions.enable_truncation(MAX_QUESTION_TOKENS, strategy="longest_first")
        self.tokenizer.enable_truncation(max_length, stride=doc_stride, strategy="only_second")

    def _short_questions(self, questions: Sequence[str]) -> list[str]:
        """Questions cut to their first MAX_QUESTION_TOKENS tokens (cut on a token's character boundary)."""
        encodings = self.questions.encode_batch(list(questions), add_special_tokens=False)
        out = []
        for question, encoding in zip(questions, encodings, strict=True):
            long = bool(encoding.overflowing)
            out.append(question[: encoding.offsets[MAX_QUESTION_TOKENS - 1][1]] if long else question)
        return out

    def windows(self, questions: Sequence[str], contexts: Sequence[str]) -> list[Window]:
        """Every window of every pair, in pair order (each pair gives at least one)."""
        pairs = list(zip(self._short_questions(questions), contexts, strict=True))
        out: list[Window] = []
        for item, encoding in enumerate(self.tokenizer.encode_batch(pairs)):
            for part in (encoding, *encoding.overflowing):
                offsets = [
                    span if sequence == 1 else None
                    for span, sequence in zip(part.offsets, part.sequence_ids, strict=True)
                ]
                out.append(Window(item, list(part.ids), offsets))
        return out


def answer_positions(window: Window, answer_start: int, answer_text: str) -> Span:
    """The (start, end) token positions covering the answer in ``window``; (0, 0) when the window lacks it whole."""
    answer_end = answer_start + len(answer_text)
    first, last = window.context_bounds()
    spans = window.offsets
    if not (spans[first][0] <= answer_start and spans[last][1] >= answer_end):  # type: ignore[index]
        return NO_ANSWER, NO_ANSWER
    start = first
    while start < last and spans[start + 1][0] <= answer_start:  # type: ignore[index]
        start += 1
    end = start
    while end < last and spans[end][1] < answer_end:  # type: ignore[index]
        end += 1
    return start, end


def span_characters(context: str, window: Window, start: int, end: int) -> Span:
    """The character span in ``context`` of tokens ``start``..``end`` of ``window``, without surrounding whitespace
    (sentencepiece offsets include the space before a word)."""
    begin, finish = window.offsets[start][0], window.offsets[end][1]  # type: ignore[index]
    while begin < finish and context[begin].isspace():
        begin += 1
    while finish > begin and context[finish - 1].isspace():
        finish -= 1
    return begin, finish


def training_windows(windower: Windower, examples: Sequence[Example]) -> list[tuple[Window, Span]]:
    """Every window of every example with the token positions of its (first) gold answer, or (0, 0)."""
    windows = windower.windows([e.text_b or "" for e in examples], [e.text_a for e in examples])
    out = []
    for window in windows:
        text, start = examples[window.item].answers[0]
        out.append((window, answer_positions(window, start, text)))
    return out
