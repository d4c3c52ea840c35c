"""How an encoder turns a text into one sentence vector: the setting retrieval evaluation, export and serving share.

``layer`` indexes transformers' ``hidden_states`` (0: the embedding layer's output, N: the N-th layer, so the last
layer of a 12-layer model is 12); ``pooling`` is the mean of the unpadded token states or the first token's state;
``prefix`` is prepended to every text before tokenization (multilingual-e5 expects ``"query: "``); ``normalize``
says whether vectors are scaled to unit length. ``bundle.json`` of an embedding bundle records it, so a server
applies the prefix and pooling itself and a client sends plain text.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from xstilts.contracts.checkpoint import Pooling
from xstilts.errors import XstiltsError


@dataclass(frozen=True)
class EmbeddingSpec:
    """Layer, pooling, prefix and normalisation of a sentence embedding (``dimension`` once known)."""

    layer: int
    pooling: Pooling = "mean"
    prefix: str = ""
    normalize: bool = True
    dimension: int | None = None

    def __post_init__(self) -> None:
        if self.layer < 0:
            raise XstiltsError(f"embedding layer must be 0 or more (0: the embedding layer), got {self.layer}")
        if self.pooling not in ("mean", "cls"):
            raise XstiltsError(f"embedding pooling must be mean or cls, got {self.pooling!r}")

    def text(self, text: str) -> str:
        """What the encoder reads for ``text``: the prefix, then the text."""
        return self.prefix + text

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any], where: str = "embedding") -> EmbeddingSpec:
        try:
            return cls(**data)
        except TypeError as exc:
            raise XstiltsError(f"{where}: not an embedding setting ({exc})") from None
