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


# -- tagging ------------------------------------------------------------------------------------------------------

# (text, its words by the documented rule) in five scripts; the words' offsets are found in the text, in order
SCRIPT_TEXTS = (
    ("Angela Merkel visited Paris, France.", ["Angela", "Merkel", "visited", "Paris", ",", "France", "."]),
    ("Владимир  Путин посетил «Газпром».", ["Владимир", "Путин", "посетил", "«", "Газпром", "»", "."]),
    ("زار محمد بن سلمان القاهرة، اليوم", ["زار", "محمد", "بن", "سلمان", "القاهرة", "،", "اليوم"]),
    ("我住在北京市。", ["我", "住", "在", "北", "京", "市", "。"]),
    ("東京タワーはトヨタの近く", ["東", "京", "タ", "ワ", "ー", "は", "ト", "ヨ", "タ", "の", "近", "く"]),
)
TAG_LANGUAGES = {"panx": ("en", "ru", "ar", "zh", "ja"), "udpos": ("en", "de", "ja")}
TAG_SENTENCES = 3  # per language; the longest of the language's dev sentences among them, to span windows


def placed(text: str, words: list[str]) -> list[tuple[str, int, int]]:
    """Each word with its offsets, found in ``text`` in order."""
    out, position = [], 0
    for word in words:
        start = text.index(word, position)
        out.append((word, start, start + len(word)))
        position = start + len(word)
    return out


def direct_tags(folder: Path, words: list[list[str]]) -> list[list[tuple[str, float]]]:
    """Each word's (tag, probability) from the tagging bundle in ``folder`` run without the server: each window of
    each sentence alone, the tag read at the word's first sub-word."""
    import json

    from tokenizers import Tokenizer

    from xstilts.tagging.alignment import WordTokenizer

    manifest = json.loads((folder / "bundle.json").read_text())
    labels = manifest["labels"]
    windows = WordTokenizer(Tokenizer.from_file(str(folder / "tokenizer.json")), manifest["max_length"])
    session = ort.InferenceSession(str(folder / "model.onnx"), providers=["CPUExecutionProvider"])
    out = []
    for sentence in windows.windows(words):
        tags = []
        for window in sentence:
            ids = np.array([window.ids], dtype=np.int64)
            feeds = {"input_ids": ids, "attention_mask": np.ones_like(ids), "token_type_ids": np.zeros_like(ids)}
            names = [i.name for i in session.get_inputs()]
            logits = session.run(["logits"], {name: feeds[name] for name in names})[0][0]
            for position in window.first_tokens:
                exp = np.exp(logits[position] - logits[position].max())
                probabilities = exp / exp.sum()
                tags.append((labels[int(probabilities.argmax())], float(probabilities.max())))
        out.append(tags)
    return out


def direct_entities(text: str, words: list[tuple[str, int, int]], tags: list[str]) -> list[tuple[str, str, int, int]]:
    """(text, type, start, end) of each B-X I-X... run of ``tags``."""
    found, index = [], 0
    while index < len(tags):
        if not tags[index].startswith("B-"):
            index += 1
            continue
        kind, last = tags[index][2:], index
        while last + 1 < len(tags) and tags[last + 1] == f"I-{kind}":
            last += 1
        start, end = words[index][1], words[last][2]
        found.append((text[start:end], kind, start, end))
        index = last + 1
    return found


def tag_sentences(task: str, data_dir: Path) -> list[list[str]]:
    """Real dev sentences of ``task`` (words), a few per language, the longest of each language among them."""
    spec = get_task(task)
    out = []
    for lang in TAG_LANGUAGES[task]:
        examples = load_examples(spec, "dev", lang, data_dir)
        longest = max(examples[:200], key=lambda e: len(e.words))
        out += [list(e.words) for e in [longest, *examples[: TAG_SENTENCES - 1]]]
    return out


def assert_tagged(prediction: dict, text: str, words: list[tuple[str, int, int]], tags, bio: bool, what: str) -> None:
    """One served item against the direct answer: its text, words, offsets, tags, scores and entities."""
    assert prediction["text"] == text, what
    served = [(w["text"], w["start"], w["end"]) for w in prediction["words"]]
    assert served == words, f"{what}: words or offsets"
    assert all(text[start:end] == word for word, start, end in served), f"{what}: offsets"
    assert [w["tag"] for w in prediction["words"]] == [t for t, _ in tags], f"{what}: tags"
    np.testing.assert_allclose([w["score"] for w in prediction["words"]], [s for _, s in tags], atol=ATOL)
    if bio:
        expected = direct_entities(text, words, [t for t, _ in tags])
        assert [(e["text"], e["type"], e["start"], e["end"]) for e in prediction["entities"]] == expected, what


def check_v1_tag_words(client: httpx.Client, repository: Path, data_dir: Path) -> None:
    """``/predict`` with real PAN-X and UD-POS sentences as pre-split words (long ones over several windows)."""
    for name, task in (("tiny-panx", "panx"), ("tiny-udpos", "udpos")):
        sentences = tag_sentences(task, data_dir)
        response = client.post(f"/v1/models/{name}/predict", json={"inputs": [{"words": s} for s in sentences]})
        assert response.status_code == 200, response.text
        answer = response.json()
        assert answer["variant"] == "fp32", "the answer checks need the fp32 bundle"
        expected = direct_tags(repository / name / "fp32", sentences)
        assert max(p["windows"] for p in answer["predictions"]) > 1, "no sentence spanned several windows"
        for index, (words, prediction, tags) in enumerate(zip(sentences, answer["predictions"], expected, strict=True)):
            text = " ".join(words)
            assert_tagged(prediction, text, placed(text, words), tags, task == "panx", f"{name} item {index}")


def check_v1_tag_texts(client: httpx.Client, repository: Path, data_dir: Path) -> None:
    """``/predict`` with raw texts in five scripts: words split by the rule, offsets into the texts, entities."""
    response = client.post("/v1/models/tiny-panx/predict", json={"inputs": [text for text, _ in SCRIPT_TEXTS]})
    assert response.status_code == 200, response.text
    predictions = response.json()["predictions"]
    expected = direct_tags(repository / "tiny-panx" / "fp32", [words for _, words in SCRIPT_TEXTS])
    for (text, words), prediction, tags in zip(SCRIPT_TEXTS, predictions, expected, strict=True):
        assert_tagged(prediction, text, placed(text, words), tags, True, text)
    assert sum(len(p["entities"]) for p in predictions) >= len(SCRIPT_TEXTS), "too few entities to check offsets"


def check_v2_tags(client: httpx.Client, repository: Path, data_dir: Path) -> None:
    """v2 infer with raw texts as BYTES: words, tags, scores and offsets as [batch, words] tensors."""
    texts = [text for text, _ in SCRIPT_TEXTS]
    request = {"inputs": [{"name": "text", "shape": [len(texts)], "datatype": "BYTES", "data": texts}]}
    response = client.post("/v2/models/tiny-panx/infer", json=request)
    assert response.status_code == 200, response.text
    outputs = {o["name"]: np.array(o["data"], dtype=object).reshape(o["shape"]) for o in response.json()["outputs"]}
    expected = direct_tags(repository / "tiny-panx" / "fp32", [words for _, words in SCRIPT_TEXTS])
    for row, ((text, words), tags) in enumerate(zip(SCRIPT_TEXTS, expected, strict=True)):
        count = len(words)
        columns = (outputs[name][row][:count] for name in ("words", "starts", "ends"))
        served = list(zip(*columns, strict=True))
        assert served == placed(text, words), f"v2 words or offsets of {text}"
        assert list(outputs["words"][row][count:]) == [""] * (outputs["words"].shape[1] - count)
        assert list(outputs["tags"][row][:count]) == [t for t, _ in tags], f"v2 tags of {text}"
        np.testing.assert_allclose(outputs["scores"][row][:count].astype(float), [s for _, s in tags], atol=ATOL)


TAG_CHECKS = (check_v1_tag_words, check_v1_tag_texts, check_v2_tags)
