"""Turning examples into ONNX feeds with the ``tokenizers`` package, the way a server does (no torch)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from xstilts.contracts.interface import ZERO_INPUTS, interface_of, token_feeds
from xstilts.contracts.kinds import TaskKind
from xstilts.tasks import Example
from xstilts.tasks.encoding import Segments, example_segments


def configure_tokenizer(source: Path, target: Path, max_length: int, pad_id: int, pad_token: str) -> None:
    """Copy ``tokenizer.json`` with the checkpoint's truncation and padding built in, so servers need no settings."""
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(source))
    tokenizer.enable_truncation(max_length, strategy="longest_first")
    tokenizer.enable_padding(pad_id=pad_id, pad_token=pad_token)
    tokenizer.save(str(target))


class Encoder:
    """Token ids and attention masks for examples, from a bundle's configured ``tokenizer.json``."""

    def __init__(self, tokenizer_file: Path, kind: TaskKind) -> None:
        from tokenizers import Tokenizer

        self.tokenizer = Tokenizer.from_file(str(tokenizer_file))
        self.kind = kind
        self.interface = interface_of(kind)

    def token_ids(self, segments: Sequence[Segments]) -> list[list[int]]:
        """Unpadded ids of segment pairs, as the model sees them."""
        encodings = self.tokenizer.encode_batch([a if b is None else (a, b) for a, b in segments])
        return [[i for i, m in zip(e.ids, e.attention_mask, strict=True) if m] for e in encodings]

    def feeds(self, examples: Sequence[Example]) -> dict[str, np.ndarray]:
        """The token inputs for a batch, shaped as the kind's graph interface says ([batch, (choices,) sequence]).

        Every sequence is padded to the batch's longest.
        """
        per_example = [example_segments(self.kind, e) for e in examples]
        width = {len(s) for s in per_example}
        if len(width) != 1:
            raise ValueError(f"examples of one batch have different numbers of choices: {sorted(width)}")
        encodings = self.tokenizer.encode_batch([a if b is None else (a, b) for s in per_example for a, b in s])
        ids = np.array([e.ids for e in encodings], dtype=np.int64)
        mask = np.array([e.attention_mask for e in encodings], dtype=np.int64)
        shape = self.interface.shape(len(examples), ids.shape[-1], width.pop())
        return token_feeds(ids.reshape(shape), mask.reshape(shape))


def complete_feeds(feeds: dict[str, np.ndarray], input_names: Sequence[str]) -> dict[str, np.ndarray]:
    """The feeds a graph taking ``input_names`` wants: its token inputs, and zeros for the optional ones."""
    complete = {name: feeds[name] for name in input_names if name in feeds}
    complete.update({name: np.zeros_like(feeds["input_ids"]) for name in ZERO_INPUTS if name in input_names})
    return complete
