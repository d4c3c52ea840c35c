"""``export_embedding``: an encoder (model alias, phase folder or checkpoint) into an embedding bundle, all or nothing.

The graph takes ``input_ids`` and ``attention_mask`` and outputs ``embedding`` [batch, dimension]: the pooled
(optionally L2-normalised) state of ``EmbeddingSpec.layer``; ``bundle.json`` records the spec, so a server applies
the prefix itself. Every variant passes the embedding parity gate (:mod:`xstilts.export.embedding_parity`).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import shutil
from collections.abc import Sequence
from pathlib import Path

from xstilts.atomic import staged_dir
from xstilts.contracts.bundle import TOKENIZER_FILE, TensorRTProfile
from xstilts.contracts.checkpoint import CheckpointInfo
from xstilts.contracts.embedding import EmbeddingSpec
from xstilts.contracts.kinds import TaskKind
from xstilts.errors import XstiltsError
from xstilts.export.embedding_parity import (
    ENGLISH,
    LANGUAGES,
    TASK,
    EmbeddingGate,
    load_retrieval_sample,
    reference_vectors,
    text_feeds,
)
from xstilts.export.encode import Encoder, configure_tokenizer
from xstilts.export.hardware import cpu_int8_target
from xstilts.export.parity import check_segments
from xstilts.export.pipeline import VariantWriter, new_bundle_folder, write_variants
from xstilts.export.variants import TRT_BATCH, BuildContext, resolve_variants
from xstilts.paths import resolve_data_dir
from xstilts.retrieval.encoders import encoder_folder

log = logging.getLogger("xstilts.export")

EMBEDDING_VARIANTS = ("fp32", "int8")  # the variants an embedding bundle is tested in
DEFAULT_MAX_LENGTH = 512


def resolve_encoder_folder(model: str | Path) -> Path:
    """The encoder folder ``model`` names (:func:`xstilts.retrieval.encoders.encoder_folder`), with its tokenizer."""
    folder = encoder_folder(str(model))
    if not (folder / TOKENIZER_FILE).is_file():
        raise XstiltsError(f"{folder} has no {TOKENIZER_FILE}: bundles tokenize with it, save a fast tokenizer")
    return folder


def encoder_max_length(folder: Path, requested: int | None) -> int:
    """The longest input the encoder's position table allows (XLM-R and RoBERTa reserve two positions)."""
    config = json.loads((folder / "config.json").read_text())
    positions = int(config.get("max_position_embeddings", DEFAULT_MAX_LENGTH))
    limit = positions - 2 if config.get("model_type") in ("xlm-roberta", "roberta") else positions
    if requested is not None and not 1 <= requested <= limit:
        raise XstiltsError(f"--max-length must be between 1 and {limit} (the encoder's positions), got {requested}")
    return requested or min(DEFAULT_MAX_LENGTH, limit)


def export_embedding(
    model: str | Path,
    repository: Path,
    name: str,
    spec: EmbeddingSpec,
    variants: Sequence[str] | str = EMBEDDING_VARIANTS,
    *,
    data_dir: Path | None = None,
    languages: Sequence[str] = LANGUAGES,
    parity_examples: int = 200,
    max_accuracy_drop: float = 1.0,
    keep_failed: bool = False,
    seed: int = 0,
    opset: int | None = None,
    int8_target: str | None = None,
    per_channel: bool = True,
    max_length: int | None = None,
) -> list[Path]:
    """Write ``repository/name/<variant>/`` embedding bundles and return those folders.

    Each variant's vectors on ``parity_examples`` XNLI premises per language (and their English counterparts)
    are compared with the PyTorch encoder's; one whose top-1 xx->en accuracy drops more than
    ``max_accuracy_drop`` points on average is rejected (then nothing is written) unless ``keep_failed``.
    """
    from xstilts.export.onnx_export import export_sentence_graph
    from xstilts.export.pooling import check_layer, load_encoder, sentence_module

    folder = resolve_encoder_folder(model)
    target = new_bundle_folder(Path(repository), name)
    chosen = resolve_variants(variants)
    refused = [v.name for v in chosen if v.name not in EMBEDDING_VARIANTS]
    if refused:
        raise XstiltsError(f"embedding bundles come as {', '.join(EMBEDDING_VARIANTS)}, not {', '.join(refused)}")
    length = encoder_max_length(folder, max_length)
    sample = load_retrieval_sample(resolve_data_dir(data_dir), list(languages), parity_examples, seed)
    encoder = load_encoder(folder)
    check_layer(encoder, spec, str(model))
    spec = dataclasses.replace(spec, dimension=int(encoder.config.hidden_size))
    info = CheckpointInfo(
        task=TASK,
        kind=TaskKind.EMBEDDING.value,
        labels=[],
        languages=[ENGLISH, *sample.sentences],
        max_length=length,
        lineage={"encoder": str(model), "head": "none: the pooled hidden state of one layer"},
    )
    with staged_dir(target) as stage:
        work = stage / ".work"
        log.info("exporting the float32 sentence-embedding graph (layer %d, %s pooling)", spec.layer, spec.pooling)
        export_sentence_graph(sentence_module(encoder, spec), encoder.config, work / "onnx", opset)
        tokenizer = work / TOKENIZER_FILE
        checked = _serving_tokenizer(folder, tokenizer, spec, sample.sides(), length)
        served = Encoder(tokenizer, TaskKind.EMBEDDING)
        feeds = {side: text_feeds(served, spec, texts) for side, texts in sample.sides().items()}
        log.info("reference: the PyTorch encoder on %d sentences", sum(len(t) for t in sample.sides().values()))
        reference = reference_vectors(sentence_module(encoder, spec, cut=False), feeds)
        gate = EmbeddingGate(reference, feeds, sample, max_accuracy_drop, checked)
        context = BuildContext(work / "onnx", int8_target or cpu_int8_target(), per_channel, _no_calibration)
        profile = TensorRTProfile(batch=TRT_BATCH, sequence=(1, min(128, length), length))
        writer = VariantWriter(folder, info, name, profile, context, gate, tokenizer, keep_failed, spec)
        write_variants(writer, chosen, stage)
        shutil.rmtree(work)
    return [target / v.name for v in chosen]


def _no_calibration() -> list:
    raise XstiltsError("embedding bundles have no TensorRT int8 variant to calibrate")


def _serving_tokenizer(
    folder: Path, target: Path, spec: EmbeddingSpec, sides: dict[str, list[str]], max_length: int
) -> int:
    """Write the bundle's ``tokenizer.json`` and check its ids against the encoder's own tokenizer's."""
    from transformers import AutoTokenizer

    hf_tokenizer = AutoTokenizer.from_pretrained(folder, fix_mistral_regex=False)
    if hf_tokenizer.pad_token_id is None:
        raise XstiltsError(f"{folder}: the tokenizer has no padding token")
    configure_tokenizer(folder / TOKENIZER_FILE, target, max_length, hf_tokenizer.pad_token_id, hf_tokenizer.pad_token)
    segments = [(spec.text(text), None) for texts in sides.values() for text in texts]
    return check_segments(hf_tokenizer, Encoder(target, TaskKind.EMBEDDING), segments, max_length)
