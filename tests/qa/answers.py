"""The end-to-end answer checks of extractive QA: a server's answers against the bundle run in-process, alone.

Each check sends real XQuAD items (several languages, several items per request, contexts of several windows)
to a server serving ``tiny-xquad`` fp32 and compares every item's answers with the bundle's own: its windows made
from its ``tokenizer.json`` with its doc stride, each window run alone by a plain ONNX Runtime session (no
padding, no batching), the spans picked by the one post-processing. The sensitive tiny QA checkpoint's best span
moves with every token of question and context, so these checks fail on a server that swaps question and context,
maps a window's span to the wrong characters or mixes up windows (``tests/serve/test_mutations.py`` proves it).
"""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import numpy as np
import onnxruntime as ort

from xstilts.export.encode import complete_feeds
from xstilts.qa.postprocess import Answer, best_answers
from xstilts.qa.windows import Windower
from xstilts.tasks import Example, get_task, load_examples, sample_items

NAME = "tiny-xquad"
LANGUAGES = ("en", "de", "zh")
PER_LANGUAGE = 4
SCORE_TOLERANCE = 1e-4


def qa_examples(data_dir: Path, languages: tuple[str, ...] = LANGUAGES, per_language: int = PER_LANGUAGE) -> list:
    """The same seeded XQuAD items in each of ``languages``, languages interleaved."""
    spec = get_task("xquad")
    by_language = sample_items(
        {lang: load_examples(spec, "test", lang, data_dir) for lang in languages}, per_language, 1
    )
    return [e for group in zip(*by_language.values(), strict=True) for e in group]


def direct_answers(folder: Path, examples: list[Example], top_k: int = 1) -> list[list[Answer]]:
    """The bundle in ``folder`` without the server: every window of every item run alone."""
    manifest = json.loads((folder / "bundle.json").read_text())
    from tokenizers import Tokenizer

    windower = Windower(
        Tokenizer.from_file(str(folder / "tokenizer.json")), manifest["max_length"], manifest["span_qa"]["doc_stride"]
    )
    session = ort.InferenceSession(str(folder / "model.onnx"), providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()]
    out = []
    for example in examples:
        windows = windower.windows([example.text_b or ""], [example.text_a])
        starts, ends = [], []
        for window in windows:
            ids = np.array([window.ids], dtype=np.int64)
            feeds = complete_feeds({"input_ids": ids, "attention_mask": np.ones_like(ids)}, names)
            start, end = session.run(["start_logits", "end_logits"], feeds)
            starts.append(start[0])
            ends.append(end[0])
        max_answer = manifest["span_qa"]["max_answer_length"]
        out.append(best_answers(example.text_a, windows, starts, ends, top_k=top_k, max_answer_length=max_answer))
    return out


def assert_same_answers(served: list[list[dict]], expected: list[list[Answer]], examples: list, what: str) -> None:
    """Item by item: the same spans (text, start, end) in the same order, scores within rounding."""
    assert len(served) == len(expected), f"{what}: {len(served)} answers for {len(expected)} items"
    for index, (got, want, example) in enumerate(zip(served, expected, examples, strict=True)):
        assert [(a["text"], a["start"], a["end"]) for a in got] == [(a.text, a.start, a.end) for a in want], (
            f"{what}: item {index}"
        )
        for answer in got:
            assert example.text_a[answer["start"] : answer["end"]] == answer["text"] != "", f"{what}: item {index}"
        np.testing.assert_allclose([a["score"] for a in got], [a.score for a in want], atol=SCORE_TOLERANCE)


def check_v1_answers(client: httpx.Client, repository: Path, data_dir: Path, top_k: int = 1) -> None:
    """``POST /v1/models/tiny-xquad/predict`` with real XQuAD items answers each as the bundle does alone."""
    examples = qa_examples(data_dir)
    body = {"inputs": [{"question": e.text_b, "context": e.text_a} for e in examples], "top_k": top_k}
    response = client.post(f"/v1/models/{NAME}/predict", json=body)
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["variant"] == "fp32", "the answer checks need the fp32 bundle (int8 answers move with neighbours)"
    predictions = answer["predictions"]
    assert max(p["windows"] for p in predictions) >= 3, "the check needs contexts of several windows"
    expected = direct_answers(repository / NAME / "fp32", examples, top_k)
    assert_same_answers([p["answers"] for p in predictions], expected, examples, "v1 answers")


def check_v2_answers(client: httpx.Client, repository: Path, data_dir: Path) -> None:
    """``POST /v2/models/tiny-xquad/infer`` with BYTES ``question`` and ``context`` answers as the bundle does."""
    examples = qa_examples(data_dir)
    count = len(examples)
    request = {
        "inputs": [
            {"name": "question", "shape": [count], "datatype": "BYTES", "data": [e.text_b for e in examples]},
            {"name": "context", "shape": [count], "datatype": "BYTES", "data": [e.text_a for e in examples]},
        ]
    }
    response = client.post(f"/v2/models/{NAME}/infer", json=request)
    assert response.status_code == 200, response.text
    outputs = {o["name"]: o for o in response.json()["outputs"]}
    assert [(o["datatype"], o["shape"]) for o in outputs.values()] == [
        ("BYTES", [count]),
        ("INT64", [count]),
        ("INT64", [count]),
        ("FP32", [count]),
    ]
    served = [
        [{"text": t, "start": s, "end": e, "score": p}]
        for t, s, e, p in zip(*(outputs[n]["data"] for n in ("answer", "start", "end", "score")), strict=True)
    ]
    expected = direct_answers(repository / NAME / "fp32", examples)
    assert_same_answers(served, expected, examples, "v2 answers")


QA_CHECKS = (check_v1_answers, check_v2_answers)
