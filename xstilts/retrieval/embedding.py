"""Sentence vectors from an encoder (torch + transformers): a pooling of one layer's unpadded token states.

One forward pass yields every layer's states (``output_hidden_states``), so ``embed_layers`` pools several layers
at once for the layer sweep; ``embed`` is the one-layer case an :class:`EmbeddingSpec` describes.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from xstilts.contracts.checkpoint import Pooling
from xstilts.contracts.embedding import EmbeddingSpec
from xstilts.errors import XstiltsError

MAX_LENGTH = 512


class Encoder:
    """An encoder and its tokenizer loaded from a Hugging Face folder (the base of a task checkpoint too)."""

    def __init__(self, folder: str | Path, max_length: int = MAX_LENGTH) -> None:
        from transformers import AutoModel

        from xstilts.training.evaluate import device, load_tokenizer

        self.folder = str(folder)
        self.tokenizer = load_tokenizer(folder)
        # AutoModel loads the base model of a classification checkpoint and drops its head
        self.model = AutoModel.from_pretrained(folder).to(device()).eval()
        self.num_layers = int(self.model.config.num_hidden_layers)
        self.dimension = int(self.model.config.hidden_size)
        self.max_length = min(max_length, int(getattr(self.model.config, "max_position_embeddings", max_length)))

    def check_layer(self, layer: int) -> None:
        if not 0 <= layer <= self.num_layers:
            raise XstiltsError(
                f"{self.folder} has layers 0-{self.num_layers} (0: the embedding layer), not layer {layer}"
            )

    @torch.no_grad()
    def hidden_states(self, texts: Sequence[str]) -> tuple[tuple[torch.Tensor, ...], torch.Tensor]:
        """Every layer's token states for one padded batch, and its attention mask."""
        batch = self.tokenizer(
            list(texts), padding=True, truncation=True, max_length=self.max_length, return_tensors="pt"
        ).to(self.model.device)
        output = self.model(
            input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], output_hidden_states=True
        )
        return output.hidden_states, batch["attention_mask"]


def pool(states: torch.Tensor, mask: torch.Tensor, pooling: Pooling) -> torch.Tensor:
    """Mean of the unpadded token states, or the first token's state, per row."""
    if pooling == "cls":
        return states[:, 0]
    weights = mask.unsqueeze(-1).to(states.dtype)
    return (states * weights).sum(1) / weights.sum(1).clamp(min=1.0)


def embed_layers(
    encoder: Encoder,
    texts: Sequence[str],
    layers: Sequence[int],
    pooling: Pooling = "mean",
    prefix: str = "",
    normalize: bool = True,
    batch_size: int = 64,
) -> dict[int, np.ndarray]:
    """Float32 vectors [len(texts), dimension] of ``texts`` at each of ``layers``, from one forward pass per batch.

    Texts are batched by length (less padding, same vectors: padded positions are masked out of attention and of
    the mean) and returned in their original order.
    """
    for layer in layers:
        encoder.check_layer(layer)
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    out = {layer: np.zeros((len(texts), encoder.dimension), dtype=np.float32) for layer in layers}
    for start in range(0, len(order), batch_size):
        rows = order[start : start + batch_size]
        states, mask = encoder.hidden_states([prefix + texts[i] for i in rows])
        for layer in layers:
            vectors = pool(states[layer], mask, pooling).float()
            if normalize:
                vectors = torch.nn.functional.normalize(vectors, dim=-1)
            out[layer][rows] = vectors.cpu().numpy()
    return out


def embed(
    model_folder: str | Path | Encoder, texts: Sequence[str], spec: EmbeddingSpec, batch_size: int = 64
) -> np.ndarray:
    """Vectors of ``texts`` as ``spec`` describes them (layer, pooling, prefix, normalisation)."""
    encoder = model_folder if isinstance(model_folder, Encoder) else Encoder(model_folder)
    return embed_layers(encoder, texts, [spec.layer], spec.pooling, spec.prefix, spec.normalize, batch_size)[spec.layer]
