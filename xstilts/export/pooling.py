"""The sentence-embedding graph in PyTorch: an encoder cut after ``EmbeddingSpec.layer``, pooled, maybe normalised.

``SentenceEncoder`` is what export traces into an embedding bundle's graph (inputs ``input_ids`` and
``attention_mask``, output ``embedding`` [batch, dimension]). The graph keeps only the layers up to the chosen one:
``hidden_states[layer]`` of the whole encoder is the last hidden state of its first ``layer`` layers, so the cut
changes no number and saves the later layers' time. The parity gate's reference runs the uncut encoder.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

from xstilts.contracts.embedding import EmbeddingSpec
from xstilts.errors import XstiltsError


def load_encoder(folder: Path) -> Any:
    """The bare encoder of a Hugging Face folder (a base model, a phase folder or a classification checkpoint)."""
    from transformers import AutoModel

    try:
        return AutoModel.from_pretrained(folder, add_pooling_layer=False).eval()
    except (OSError, ValueError, TypeError) as exc:
        raise XstiltsError(f"{folder}: cannot load the encoder ({str(exc).splitlines()[0]})") from None


def layer_count(encoder: Any) -> int:
    return int(encoder.config.num_hidden_layers)


def check_layer(encoder: Any, spec: EmbeddingSpec, where: str) -> None:
    layers = layer_count(encoder)
    if spec.layer > layers:
        raise XstiltsError(f"{where} has {layers} layers: embedding layer {spec.layer} does not exist (0-{layers})")


def pool(hidden: Any, mask: Any, spec: EmbeddingSpec) -> Any:
    """The sentence vectors of one layer's token states: mean of the unpadded tokens, or the first token's."""
    import torch

    if spec.pooling == "cls":
        vectors = hidden[:, 0]
    else:
        weights = mask.unsqueeze(-1).to(hidden.dtype)
        vectors = (hidden * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1.0)
    if spec.normalize:
        vectors = torch.nn.functional.normalize(vectors, p=2.0, dim=-1)
    return vectors


def cut_encoder(encoder: Any, layer: int) -> Any:
    """A copy of ``encoder`` keeping its first ``layer`` layers (the whole encoder when it has no layer list)."""
    layers = getattr(getattr(encoder, "encoder", None), "layer", None)
    if layers is None or layer >= len(layers):
        return encoder
    cut = copy.deepcopy(encoder)
    cut.encoder.layer = cut.encoder.layer[:layer]
    cut.config.num_hidden_layers = layer
    return cut


def sentence_module(encoder: Any, spec: EmbeddingSpec, cut: bool = True) -> Any:
    """``encoder`` (cut after ``spec.layer`` unless ``cut`` is false) as a module giving pooled sentence vectors."""
    import torch

    class SentenceEncoder(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.encoder = cut_encoder(encoder, spec.layer) if cut else encoder

        def forward(self, input_ids: Any, attention_mask: Any) -> Any:
            output = self.encoder(input_ids=input_ids, attention_mask=attention_mask, output_hidden_states=True)
            return pool(output.hidden_states[spec.layer], attention_mask, spec)

    return SentenceEncoder().eval()
