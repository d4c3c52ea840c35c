"""The naive reference's sentence embedder: an embedding bundle's encoder in PyTorch, as a first deployment would
run it (transformers, fp32, the request's texts in one padded batch, one request after the other).

The vectors are the bundle's: the layer, pooling, prefix and normalisation its ``bundle.json`` records, pooled by
:func:`xstilts.retrieval.embedding.embed` (the rule retrieval evaluation and the export's reference use). The
encoder is the one the bundle was exported from (its build record: an alias such as ``me5-small`` or a folder,
checked against the weights' hash recorded there), or another one named on purpose.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import numpy as np

from xstilts.bench.servers import WEIGHT_FILES, encoder_of
from xstilts.contracts.bundle import load_manifest
from xstilts.contracts.hashing import file_sha256
from xstilts.contracts.kinds import TaskKind
from xstilts.errors import XstiltsError

VARIANT = "naive"
BATCH_SIZE = 32  # sentence-transformers' default encode batch


class NaiveEmbedder:
    """The encoder of an embedding bundle in PyTorch, pooled as the bundle records."""

    def __init__(self, bundle: Path, name: str, encoder: str | None = None, threads: int | None = None) -> None:
        import torch

        from xstilts.retrieval.embedding import Encoder
        from xstilts.retrieval.encoders import encoder_folder

        if threads:
            torch.set_num_threads(threads)
        self.torch = torch
        self.manifest = load_manifest(bundle)
        if self.manifest.kind is not TaskKind.EMBEDDING or self.manifest.embedding is None:
            raise XstiltsError(f"{bundle} is a {self.manifest.kind} bundle, not an embedding bundle")
        self.spec = self.manifest.embedding
        self.name = name
        recorded = encoder_of(self.manifest)
        self.source = encoder or recorded
        folder = encoder_folder(self.source)
        if self.source == recorded:
            self._check_weights(folder)
        self.encoder = Encoder(folder, max_length=self.manifest.max_length)
        self.encoder.check_layer(self.spec.layer)
        self.lock = threading.Lock()

    def _check_weights(self, folder: Path) -> None:
        """The encoder's weights are the ones the bundle was exported from (when the bundle recorded their hash)."""
        wanted = ((self.manifest.build or {}).get("checkpoint") or {}).get("weights_sha256")
        weights = next((folder / w for w in WEIGHT_FILES if (folder / w).is_file()), None)
        if wanted and weights is not None and file_sha256(weights) != wanted:
            raise XstiltsError(f"{folder} does not hold the weights {self.manifest.name} was exported from")

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "variant": VARIANT,
            "variants": [VARIANT],
            "task": self.manifest.task,
            "kind": TaskKind.EMBEDDING,
            "labels": [],
            "languages": self.manifest.languages,
            "max_length": self.manifest.max_length,
            "precision": "fp32",
            "optimization": None,
            "provider": f"torch {self.torch.__version__} ({self.torch.get_num_threads()} threads), transformers",
            "state": "ready",
            "error": None,
            "input": "a text (the server adds the model's prefix)",
            "embedding": self.spec.to_json(),
            "encoder": self.source,
        }

    def embed(self, texts: list[str], normalize: bool | None) -> tuple[list[list[float]], list[bool]]:
        """One request: its texts' vectors (in batches of ``BATCH_SIZE``) and which were cut to the max length."""
        from xstilts.retrieval.embedding import embed

        if normalize is False and self.spec.normalize:
            raise ValueError(f"model {self.name} gives unit vectors: send normalize: true or leave it out")
        with self.lock:
            vectors = embed(self.encoder, texts, self.spec, BATCH_SIZE)
        if normalize and not self.spec.normalize:
            vectors = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
        tokenizer, limit = self.encoder.tokenizer, self.manifest.max_length
        truncated = [len(tokenizer(self.spec.text(t))["input_ids"]) > limit for t in texts]
        return vectors.astype(float).tolist(), truncated
