"""The end-to-end answer checks: a server's answers, item by item, against the bundle run in-process, alone.

Each check sends real evaluation items (several languages, several items per request, so that a batch holds
rows of different items) to a server serving the fp32 bundles of the tiny repository and compares every item's
probabilities with the bundle's own, computed one item at a time with export's encoder (the training rule) and
a plain ONNX Runtime session. The tiny repository is exported from the sensitive checkpoints, whose answers
move with every part of their input, so these checks fail on a server that drops ``text_pair``, swaps a pair,
reverses choices or mixes up the rows of a batch (``tests/serve/test_mutations.py`` proves it).
"""

from __future__ import annotations

from pathlib import Path

import httpx
import numpy as np
import onnxruntime as ort

from xstilts.contracts.kinds import TaskKind
from xstilts.export.encode import Encoder, complete_feeds
from xstilts.tasks import Example, get_task, load_examples, sample_items

# fp32 computes each row on its own, so served and direct answers agree to float rounding
ATOL = 1e-4
PAIR_LANGUAGES = ("en", "de", "zh", "sw")
CHOICE_LANGUAGES = ("it", "zh", "tr")
PER_LANGUAGE = 3


def direct_probabilities(folder: Path, kind: TaskKind, examples: list[Example]) -> list[np.ndarray]:
    """The bundle in ``folder`` run without the server, one example at a time (no padding anywhere)."""
    session = ort.InferenceSession(str(folder / "model.onnx"), providers=["CPUExecutionProvider"])
    encoder = Encoder(folder / "tokenizer.json", kind)
    rows = []
    for example in examples:
        feeds = complete_feeds(encoder.feeds([example]), [i.name for i in session.get_inputs()])
        logits = session.run(None, feeds)[0][0]
        exp = np.exp(logits - logits.max())
        rows.append(exp / exp.sum())
    return rows


def real_examples(task: str, split: str, languages: tuple[str, ...], data_dir: Path) -> list[Example]:
    """The same seeded items in each of ``languages``, languages interleaved."""
    spec = get_task(task)
    by_language = sample_items(
        {lang: load_examples(spec, split, lang, data_dir) for lang in languages}, PER_LANGUAGE, 0
    )
    return [e for group in zip(*by_language.values(), strict=True) for e in group]


def assert_answers(served: list[list[float]], expected: list[np.ndarray], what: str) -> None:
    assert len(served) == len(expected), f"{what}: {len(served)} answers for {len(expected)} items"
    for index, (got, want) in enumerate(zip(served, expected, strict=True)):
        np.testing.assert_allclose(got, want, atol=ATOL, err_msg=f"{what}: item {index}")


def check_v1_pairs(client: httpx.Client, repository: Path, data_dir: Path, name: str = "tiny-xnli") -> None:
    """``POST /v1/models/{name}/predict`` with real XNLI pairs answers each pair as the bundle does."""
    examples = real_examples("xnli", "test", PAIR_LANGUAGES, data_dir)
    body = {"inputs": [{"text": e.text_a, "text_pair": e.text_b} for e in examples]}
    response = client.post(f"/v1/models/{name}/predict", json=body)
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["variant"] == "fp32", "the answer checks need the fp32 bundle (int8 answers move with neighbours)"
    expected = direct_probabilities(repository / name / "fp32", TaskKind.PAIR, examples)
    assert_answers([p["probabilities"] for p in answer["predictions"]], expected, "v1 pairs")


def check_v1_choices(client: httpx.Client, repository: Path, data_dir: Path, name: str = "tiny-xcopa") -> None:
    """``POST /v1/models/{name}/predict`` with real XCOPA items answers each choice as the bundle does."""
    examples = real_examples("xcopa", "val", CHOICE_LANGUAGES, data_dir)
    body = {"inputs": [{"premise": e.text_a, "question": e.text_b, "choices": list(e.choices)} for e in examples]}
    response = client.post(f"/v1/models/{name}/predict", json=body)
    assert response.status_code == 200, response.text
    predictions = response.json()["predictions"]
    expected = direct_probabilities(repository / name / "fp32", TaskKind.MULTIPLE_CHOICE, examples)
    assert_answers([p["probabilities"] for p in predictions], expected, "v1 choices")
    for example, prediction in zip(examples, predictions, strict=True):
        assert prediction["label"] == example.choices[prediction["index"]]


def check_v2_pairs(client: httpx.Client, repository: Path, data_dir: Path, name: str = "tiny-xnli") -> None:
    """``POST /v2/models/{name}/infer`` with real XNLI pairs as BYTES tensors answers as the bundle does."""
    examples = real_examples("xnli", "test", PAIR_LANGUAGES, data_dir)
    request = {
        "inputs": [
            {"name": "text_a", "shape": [len(examples)], "datatype": "BYTES", "data": [e.text_a for e in examples]},
            {"name": "text_b", "shape": [len(examples)], "datatype": "BYTES", "data": [e.text_b for e in examples]},
        ],
        "outputs": [{"name": "probabilities"}],
    }
    response = client.post(f"/v2/models/{name}/infer", json=request)
    assert response.status_code == 200, response.text
    (output,) = response.json()["outputs"]
    served = np.array(output["data"]).reshape(output["shape"]).tolist()
    expected = direct_probabilities(repository / name / "fp32", TaskKind.PAIR, examples)
    assert_answers(served, expected, "v2 pairs")


ANSWER_CHECKS = (check_v1_pairs, check_v1_choices, check_v2_pairs)

EMBED_LANGUAGES = ("en", "de", "zh", "sw")


def direct_embeddings(folder: Path, texts: list[str]) -> list[np.ndarray]:
    """The embedding bundle in ``folder`` run without the server, one text at a time, its prefix added here."""
    import json

    from tokenizers import Tokenizer

    prefix = json.loads((folder / "bundle.json").read_text())["embedding"]["prefix"]
    tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
    session = ort.InferenceSession(str(folder / "model.onnx"), providers=["CPUExecutionProvider"])
    rows = []
    for text in texts:
        encoding = tokenizer.encode(prefix + text)
        feeds = {
            "input_ids": np.array([encoding.ids], dtype=np.int64),
            "attention_mask": np.array([encoding.attention_mask], dtype=np.int64),
        }
        rows.append(session.run(["embedding"], feeds)[0][0])
    return rows


def embed_texts(data_dir: Path) -> list[str]:
    """Real XNLI premises in several languages, interleaved."""
    return [e.text_a for e in real_examples("xnli", "test", EMBED_LANGUAGES, data_dir)]


def check_v1_embed(client: httpx.Client, repository: Path, data_dir: Path, name: str = "tiny-embed") -> None:
    """``POST /v1/models/{name}/embed`` with real sentences gives each its vector from the bundle alone."""
    texts = embed_texts(data_dir)
    response = client.post(f"/v1/models/{name}/embed", json={"inputs": texts})
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["variant"] == "fp32", "the answer checks need the fp32 bundle (int8 answers move with neighbours)"
    assert_answers(answer["embeddings"], direct_embeddings(repository / name / "fp32", texts), "v1 embed")


EMBED_CHECKS = (check_v1_embed,)
