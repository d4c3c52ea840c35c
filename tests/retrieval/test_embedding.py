"""Sentence vectors from the real tiny encoder: pooling of unpadded tokens, prefix, layers, normalisation."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from xstilts.contracts.embedding import EmbeddingSpec
from xstilts.errors import XstiltsError
from xstilts.retrieval.embedding import embed, embed_layers, pool

TEXT = "Ich habe nicht wieder mit ihm gesprochen."
LONG = " ".join(["Ein viel längerer Satz, der den Stapel auffüllt und die Polsterung erzwingt."] * 6)


@pytest.mark.parametrize("pooling", ["mean", "cls"])
def test_padding_does_not_change_a_texts_vector(tiny_encoder, pooling):
    layers = list(range(tiny_encoder.num_layers + 1))
    alone = embed_layers(tiny_encoder, [TEXT], layers, pooling, normalize=False)
    padded = embed_layers(tiny_encoder, [LONG, TEXT, "Ja."], layers, pooling, normalize=False, batch_size=3)
    _, mask = tiny_encoder.hidden_states([LONG, TEXT])
    assert mask.sum(1)[1] < mask.shape[1] - 10  # TEXT really was padded in that batch
    for layer in layers:
        assert np.allclose(alone[layer][0], padded[layer][1], atol=1e-5), layer
    assert not np.allclose(padded[layers[-1]][0], padded[layers[-1]][1], atol=1e-3)  # vectors depend on the text


def test_mean_pooling_ignores_padded_positions():
    states = torch.tensor([[[1.0, 2.0], [3.0, 4.0], [1e6, 1e6]]])
    mask = torch.tensor([[1, 1, 0]])
    assert pool(states, mask, "mean").tolist() == [[2.0, 3.0]]
    assert pool(states, mask, "cls").tolist() == [[1.0, 2.0]]


def test_prefix_layers_and_normalisation(tiny_encoder):
    spec = EmbeddingSpec(layer=1, pooling="mean", prefix="query: ", normalize=True)
    texts = [TEXT, "Guten Morgen.", LONG]
    vectors = embed(tiny_encoder, texts, spec, batch_size=2)
    assert vectors.shape == (3, tiny_encoder.dimension) and vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    by_hand = embed(tiny_encoder, ["query: " + t for t in texts], EmbeddingSpec(layer=1), batch_size=2)
    assert np.allclose(vectors, by_hand, atol=1e-5)  # the prefix is prepended to the text, nothing else
    plain = embed(tiny_encoder, texts, EmbeddingSpec(layer=1))
    assert not np.allclose(vectors, plain, atol=1e-3)
    layers = embed_layers(tiny_encoder, texts, [0, 1, 2], "mean", "query: ")
    assert np.allclose(layers[1], vectors, atol=1e-5)  # one pass, every layer: the same vectors as one layer
    assert not np.allclose(layers[0], layers[2], atol=1e-3)


def test_a_layer_beyond_the_model_is_a_clear_error(tiny_encoder):
    with pytest.raises(XstiltsError, match=r"has layers 0-2 \(0: the embedding layer\), not layer 3"):
        embed(tiny_encoder, [TEXT], EmbeddingSpec(layer=3))
