"""Embedding bundles: the tiny model's pooled layer as an ONNX graph, recorded in bundle.json, gated on parity."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from tests.helpers import EMBEDDING_LANGUAGES, EMBEDDING_PARITY_PAIRS, export_tiny_embedding
from xstilts.contracts.bundle import load_manifest
from xstilts.contracts.kinds import TaskKind
from xstilts.errors import XstiltsError
from xstilts.models import resolve_model

TEXTS = ["query: Der Hund schläft.", "query: A considerably longer English sentence about a sleeping dog.", "query: x"]


@pytest.fixture(scope="module")
def embedding_bundles(tmp_path_factory: pytest.TempPathFactory, data_dir: Path) -> dict[str, Path]:
    folders = export_tiny_embedding(tmp_path_factory.mktemp("embedding"), data_dir)
    return {folder.name: folder for folder in folders}


def torch_vectors(texts: list[str], layer: int) -> np.ndarray:
    """Mean of the unpadded token states of ``hidden_states[layer]``, unit length: written here, not imported."""
    import torch
    from transformers import AutoModel, AutoTokenizer

    folder = resolve_model("tiny-xlmr")
    tokenizer = AutoTokenizer.from_pretrained(folder, fix_mistral_regex=False)
    model = AutoModel.from_pretrained(folder).eval()
    rows = []
    with torch.no_grad():
        for text in texts:  # one at a time: no padding at all
            batch = tokenizer(text, return_tensors="pt")
            states = model(**batch, output_hidden_states=True).hidden_states[layer][0]
            rows.append(torch.nn.functional.normalize(states.mean(dim=0), dim=-1).numpy())
    return np.stack(rows)


def onnx_vectors(folder: Path, texts: list[str]) -> np.ndarray:
    """The bundle's graph on a padded batch of ``texts``, tokenized by its own tokenizer.json."""
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
    encodings = tokenizer.encode_batch(texts)
    feeds = {
        "input_ids": np.array([e.ids for e in encodings], dtype=np.int64),
        "attention_mask": np.array([e.attention_mask for e in encodings], dtype=np.int64),
    }
    session = ort.InferenceSession(str(folder / "model.onnx"), providers=["CPUExecutionProvider"])
    return session.run(["embedding"], feeds)[0]


def test_bundle_json_records_the_embedding_setting_and_the_gate(embedding_bundles: dict[str, Path]) -> None:
    assert set(embedding_bundles) == {"fp32", "int8"}
    for variant, folder in embedding_bundles.items():
        manifest = load_manifest(folder)
        assert manifest.kind is TaskKind.EMBEDDING and manifest.labels == []
        assert manifest.embedding is not None
        assert manifest.embedding.to_json() == {
            "layer": 1,
            "pooling": "mean",
            "prefix": "query: ",
            "normalize": True,
            "dimension": 32,
        }
        (output,) = manifest.outputs
        assert (output.name, output.shape[0]) == ("embedding", "batch_size")  # quantization may leave D unnamed
        parity = manifest.parity
        assert parity["status"] == "passed", parity
        assert parity["data"]["pairs"] == dict.fromkeys(EMBEDDING_LANGUAGES, EMBEDDING_PARITY_PAIRS)
        assert set(parity["languages"]) == set(EMBEDDING_LANGUAGES)
        floor = 0.9999 if variant == "fp32" else 0.9
        assert floor < parity["cosine"]["min"] <= parity["cosine"]["mean"] <= 1.0 + 1e-6
        assert parity["tokenizer"]["sequences_checked"] == EMBEDDING_PARITY_PAIRS * (len(EMBEDDING_LANGUAGES) + 1)


def test_the_graph_pools_the_chosen_layer_of_the_unpadded_tokens(embedding_bundles: dict[str, Path]) -> None:
    """A padded batch through the graph gives each text's own layer-1 vector; layer 2 would be another."""
    served = onnx_vectors(embedding_bundles["fp32"], TEXTS)
    np.testing.assert_allclose(served, torch_vectors(TEXTS, layer=1), atol=1e-5)
    assert np.abs(served - torch_vectors(TEXTS, layer=2)).max() > 1e-2
    np.testing.assert_allclose(np.linalg.norm(served, axis=1), 1.0, atol=1e-5)


def test_a_gate_with_no_budget_rejects_and_writes_nothing(tmp_path: Path, data_dir: Path) -> None:
    """A budget below zero no variant can meet: the export fails with the gate's numbers and leaves no folder."""
    with pytest.raises(XstiltsError, match="parity gate rejected fp32: top-1 retrieval accuracy .* cosine"):
        export_tiny_embedding(tmp_path, data_dir, variants=("fp32",), max_accuracy_drop=-1.0)
    assert list(tmp_path.iterdir()) == []


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "xstilts.cli", "export", *args], capture_output=True, text=True, timeout=300
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--kind", "embedding", "--layer", "7"], "has 2 layers: embedding layer 7 does not exist"),
        (["--kind", "embedding", "--variants", "fp16"], "embedding bundles come as fp32, int8, not fp16"),
        (["--kind", "embedding", "--languages", "de,xx"], "split test has no language xx"),
        (["--kind", "embedding", "--languages", "en,de"], "leave en out of --languages"),
        (["--layer", "1"], "--layer only apply to --kind embedding"),
    ],
)
def test_cli_refuses_bad_embedding_exports_in_one_line(tmp_path: Path, args: list[str], message: str) -> None:
    result = run_cli("tiny-xlmr", "--repository", str(tmp_path), "--name", "e", *args)
    assert result.returncode == 2, result.stderr
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1, result.stderr


def test_cli_exports_an_embedding_bundle(tmp_path: Path, data_dir: Path) -> None:
    result = run_cli(
        "tiny-xlmr",
        "--repository",
        str(tmp_path),
        "--name",
        "cli-embed",
        "--kind",
        "embedding",
        "--layer",
        "2",
        "--pooling",
        "cls",
        "--no-normalize",
        "--variants",
        "fp32",
        "--languages",
        "de",
        "--parity-examples",
        "10",
        "--data-dir",
        str(data_dir),
        "--json",
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["bundles"]["fp32"]["parity"].startswith("passed: top-1 retrieval")
    setting = load_manifest(tmp_path / "cli-embed" / "fp32").embedding
    assert setting is not None
    assert (setting.layer, setting.pooling, setting.prefix, setting.normalize) == (2, "cls", "", False)
