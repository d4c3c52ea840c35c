"""How an extractive QA bundle reads long contexts and picks answers: the setting export records and servers apply.

A (question, context) pair is split into windows of the bundle's ``max_length`` tokens whose context slices
overlap by ``doc_stride`` tokens (:class:`xstilts.qa.windows.Windower`); an answer is at most
``max_answer_length`` tokens long (:mod:`xstilts.qa.postprocess`). ``bundle.json`` of a ``span_qa`` bundle records
both, so a server windows and post-processes exactly as the parity gate did.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from xstilts.errors import XstiltsError


@dataclass(frozen=True)
class SpanSpec:
    """Window overlap and the longest answer (tokens) of an extractive QA model."""

    doc_stride: int
    max_answer_length: int

    def __post_init__(self) -> None:
        if self.doc_stride < 0 or self.max_answer_length < 1:
            raise XstiltsError(
                f"span setting needs doc_stride >= 0 and max_answer_length >= 1, got {self.doc_stride}, "
                f"{self.max_answer_length}"
            )

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any], where: str = "span_qa") -> SpanSpec:
        try:
            return cls(**data)
        except TypeError as exc:
            raise XstiltsError(f"{where}: not a span QA setting ({exc})") from None
