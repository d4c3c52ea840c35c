"""The naive reference for extractive QA: the checkpoint behind a transformers ``question-answering`` pipeline in
PyTorch (fp32), one question after the other, as a first deployment would run it.

The pipeline splits long contexts itself (``doc_stride``, ``max_seq_len``, ``max_question_len`` set to the
checkpoint's, as the bundles record them) and picks spans by its own scoring, so its answers are the library's,
not a copy of the server's. It answers ``POST /v1/models/{name}/predict`` in the shape ``xstilts serve`` does.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from pydantic import ValidationError

from xstilts.bench.naive_embedder import VARIANT
from xstilts.contracts.checkpoint import CheckpointInfo
from xstilts.contracts.kinds import TaskKind
from xstilts.serve.http.v1.spans import QA_INPUT, AnswerRequest


class NaiveAnswerer:
    """An extractive QA checkpoint behind transformers' question-answering pipeline."""

    def __init__(self, checkpoint: Path, name: str, threads: int | None = None) -> None:
        import torch
        from transformers import AutoTokenizer, pipeline

        from xstilts.models.heads import load_task_model
        from xstilts.qa.evaluate import doc_stride_of
        from xstilts.qa.postprocess import MAX_ANSWER_LENGTH
        from xstilts.qa.windows import MAX_QUESTION_TOKENS, Windower

        if threads:
            torch.set_num_threads(threads)
        self.torch = torch
        self.info = CheckpointInfo.load(checkpoint)
        self.name = name
        self.kind = TaskKind.SPAN_QA
        self.doc_stride = doc_stride_of(self.info)
        tokenizer = AutoTokenizer.from_pretrained(checkpoint, fix_mistral_regex=False)
        model = load_task_model(checkpoint, TaskKind.SPAN_QA)
        self.pipe = pipeline("question-answering", model=model, tokenizer=tokenizer, device=-1)
        self.options = {
            "doc_stride": self.doc_stride,
            "max_seq_len": self.info.max_length,
            "max_question_len": MAX_QUESTION_TOKENS,
            "max_answer_len": MAX_ANSWER_LENGTH,
        }
        self.windower = Windower(tokenizer, self.info.max_length, self.doc_stride)
        self.lock = threading.Lock()

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "variant": VARIANT,
            "variants": [VARIANT],
            "task": self.info.task,
            "kind": self.kind,
            "labels": [],
            "languages": self.info.languages,
            "max_length": self.info.max_length,
            "precision": "fp32",
            "optimization": None,
            "provider": f"torch {self.torch.__version__} ({self.torch.get_num_threads()} threads), pipeline",
            "state": "ready",
            "error": None,
            "input": QA_INPUT,
            "span_qa": {"doc_stride": self.doc_stride, "max_answer_length": self.options["max_answer_len"]},
        }

    def answer(self, request: AnswerRequest) -> list[dict[str, Any]]:
        """One request: each question through the pipeline in turn (its default batch size of 1)."""
        out = []
        with self.lock:
            for item in request.inputs:
                found = self.pipe(question=item.question, context=item.context, top_k=request.top_k, **self.options)
                answers = found if isinstance(found, list) else [found]
                windows = len(self.windower.windows([item.question], [item.context]))
                out.append(
                    {
                        "answers": [
                            {"text": a["answer"], "start": a["start"], "end": a["end"], "score": float(a["score"])}
                            for a in answers
                        ],
                        "windows": windows,
                    }
                )
        return out


def add_answer_route(app: FastAPI, model: NaiveAnswerer, error: Any, validation_message: Any) -> None:
    """``POST /v1/models/{name}/predict`` with questions and contexts, in the shape ``xstilts serve`` answers it."""

    @app.post("/v1/models/{name}/predict")
    async def predict(name: str, request: Request) -> Any:
        # on the event loop: one request at a time, the others wait their turn
        if name != model.name:
            return error(404, f"no model {name!r}; this server has: {model.name}")
        try:
            body = AnswerRequest.model_validate_json(await request.body())
        except ValidationError as exc:
            return error(422, validation_message(exc))
        return {"model": model.name, "variant": VARIANT, "predictions": model.answer(body)}
