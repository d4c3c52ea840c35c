"""A bundle's tokenizer: texts to token ids by the training rule, unpadded (batches are padded when they form).

Encoding follows training exactly (``xstilts.tasks.encoding`` gives the segments, the bundle's ``tokenizer.json``
its post-processor and ``longest_first`` truncation to the bundle's ``max_length``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from xstilts.tasks.encoding import Segments


@dataclass
class EncodedItem:
    """One item's token ids: one sequence for classification, one per choice for multiple choice; ``width`` is
    its longest sequence, ``tokens`` its real (unpadded) token count."""

    sequences: list[list[int]]
    truncated: bool
    width: int = field(init=False)
    tokens: int = field(init=False)

    def __post_init__(self) -> None:
        self.width = max(len(s) for s in self.sequences)
        self.tokens = sum(len(s) for s in self.sequences)


class TextEncoder:
    """``tokenizers`` with the bundle's truncation, no padding; ``pad_id`` is what batches are padded with."""

    def __init__(self, tokenizer_file: Path, max_length: int) -> None:
        from tokenizers import Tokenizer

        self.tokenizer = Tokenizer.from_file(str(tokenizer_file))
        padding = self.tokenizer.padding or {}
        pad_id = padding.get("pad_id")
        if pad_id is None:
            pad_id = self.tokenizer.token_to_id("<pad>")
        self.pad_id = int(pad_id) if pad_id is not None else 0
        self.max_length = max_length
        self.tokenizer.no_padding()
        self.tokenizer.enable_truncation(max_length, strategy="longest_first")

    def encode(self, items: Sequence[Sequence[Segments]]) -> list[EncodedItem]:
        """Encode items (each a list of segment pairs) in one call to the tokenizer (which releases the GIL)."""
        flat = [a if b is None else (a, b) for segments in items for a, b in segments]
        encodings = self.tokenizer.encode_batch(flat)
        out: list[EncodedItem] = []
        position = 0
        for segments in items:
            chunk = encodings[position : position + len(segments)]
            position += len(segments)
            out.append(EncodedItem([e.ids for e in chunk], any(e.overflowing for e in chunk)))
        return out
