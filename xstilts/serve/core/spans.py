"""Extractive QA on the server: (question, context) pairs into windows, the windows' logits back into answers.

The windows and the post-processing are training's and export's own (:mod:`xstilts.qa.windows`,
:mod:`xstilts.qa.postprocess`: ``tokenizers`` and numpy only), set up with the bundle's max length, doc stride and
longest answer (``bundle.json`` ``span_qa``), so the server answers as the parity gate measured. Each window is
one item for the batcher: the windows of a long context run in the same batches as everything else.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from xstilts.contracts.bundle import BundleManifest
from xstilts.qa.postprocess import Answer, item_answers
from xstilts.qa.windows import Window, Windower
from xstilts.serve.core.encoder import EncodedItem
from xstilts.serve.core.errors import too_large

Pair = tuple[str, str]  # (question, context)


@dataclass
class Spans:
    """Per item: its best answers (best first, at most top_k; none when no span qualifies) and its window count;
    ``tokens``: the real tokens of every window."""

    answers: list[list[Answer]]
    windows: list[int]
    tokens: int


class SpanReader:
    """A span QA bundle's windowing and answer picking."""

    def __init__(self, tokenizer_file: Path, manifest: BundleManifest) -> None:
        from tokenizers import Tokenizer

        assert manifest.span_qa is not None, "span QA bundles record their span setting (checked on load)"
        self.spec = manifest.span_qa
        self.max_length = manifest.max_length
        self.windower = Windower(Tokenizer.from_file(str(tokenizer_file)), manifest.max_length, self.spec.doc_stride)

    def windows(self, pairs: Sequence[Pair]) -> list[Window]:
        """Every window of every pair, in pair order."""
        return self.windower.windows([q for q, _ in pairs], [c for _, c in pairs])

    def check_windows(self, windows: Sequence[Window], items: int, limit: int) -> list[int]:
        """Each item's window count; too_large when one takes more than ``limit`` (the server's max_windows)."""
        counts = np.bincount([w.item for w in windows], minlength=items).tolist()
        for item, count in enumerate(counts):
            if count > limit:
                raise too_large(
                    f"inputs.{item}: the context takes {count} windows of {self.max_length} tokens, more than the "
                    f"limit of {limit} (max_windows): send a shorter context"
                )
        return counts

    @staticmethod
    def encoded(windows: Sequence[Window]) -> list[EncodedItem]:
        """The windows as batcher items (one sequence each, never truncated: the windows cover the context)."""
        return [EncodedItem([window.ids], False) for window in windows]

    def answers(
        self, pairs: Sequence[Pair], windows: Sequence[Window], rows: Sequence[np.ndarray], top_k: int
    ) -> list[list[Answer]]:
        """The ``top_k`` best answers of each pair from its windows' rows ([2, width]: start and end logits)."""
        return item_answers(
            [context for _, context in pairs],
            windows,
            [row[0] for row in rows],
            [row[1] for row in rows],
            top_k=top_k,
            max_answer_length=self.spec.max_answer_length,
        )
