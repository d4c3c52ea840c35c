"""The naive reference server: FastAPI and a transformers pipeline in PyTorch, one request at a time.

What a first deployment often looks like, kept as a reference line in the bench report: the checkpoint as
trained (PyTorch, fp32), no ONNX, no dynamic batching, one request served after the other. It speaks the
``/v1`` JSON API of ``xstilts serve`` (``GET /v1/models``, ``POST /v1/models/{name}/predict``, ``/healthz``,
``/readyz``) so that the same payloads and accuracy pass run against it; it has no ``/metrics``. With
``--bundle`` (an embedding bundle) it serves ``POST /v1/models/{name}/embed`` instead, from the bundle's encoder
in PyTorch (:mod:`xstilts.bench.naive_embedder`); an extractive QA checkpoint answers questions through
transformers' question-answering pipeline (:mod:`xstilts.bench.naive_qa`); a tagging checkpoint answers
``predict`` through transformers' token-classification pipeline (:mod:`xstilts.bench.naive_tagger`).

It imports torch: run it as ``python -m xstilts.bench.naive_server --checkpoint DIR --port N`` (or ``--bundle
DIR``); nothing else in :mod:`xstilts.bench` imports it.
"""

from __future__ import annotations

import argparse
import json
import threading
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from pydantic import ValidationError
from starlette.responses import JSONResponse

from xstilts.bench.naive_embedder import VARIANT, NaiveEmbedder
from xstilts.bench.naive_qa import NaiveAnswerer, add_answer_route
from xstilts.bench.naive_tagger import NaiveTagger
from xstilts.contracts.checkpoint import CHECKPOINT_FILE
from xstilts.contracts.kinds import TaskKind
from xstilts.serve.http.v1.protocol import EmbedRequest, PredictRequest, WordsInput


class NaiveModel:
    """The checkpoint behind a transformers pipeline (classification) or a plain forward pass (multiple choice)."""

    def __init__(self, checkpoint: Path, name: str, threads: int | None = None) -> None:
        import torch
        from transformers import AutoTokenizer, pipeline

        from xstilts.models.heads import load_task_model

        if threads:
            torch.set_num_threads(threads)
        self.torch = torch
        self.info = json.loads((checkpoint / CHECKPOINT_FILE).read_text())
        self.name = name
        self.kind = TaskKind(self.info["kind"])
        self.labels = list(self.info["labels"])
        self.max_length = int(self.info["max_length"])
        self.tokenizer = AutoTokenizer.from_pretrained(checkpoint, fix_mistral_regex=False)
        self.lock = threading.Lock()
        self.model = load_task_model(checkpoint, self.kind)
        if self.kind is TaskKind.MULTIPLE_CHOICE:
            self.pipe = None
        else:
            self.pipe = pipeline("text-classification", model=self.model, tokenizer=self.tokenizer, device=-1)
            id2label = self.model.config.id2label
            self.label_index = {str(id2label[i]): i for i in range(len(self.labels))}

    def describe(self) -> dict[str, Any]:
        pair = self.kind is TaskKind.PAIR
        return {
            "name": self.name,
            "variant": VARIANT,
            "variants": [VARIANT],
            "task": self.info["task"],
            "kind": self.kind,
            "labels": self.labels,
            "languages": self.info.get("languages", []),
            "max_length": self.max_length,
            "precision": "fp32",
            "optimization": None,
            "provider": f"torch {self.torch.__version__} ({self.torch.get_num_threads()} threads), pipeline",
            "state": "ready",
            "error": None,
            "input": 'a text, or {"text": ..., "text_pair": ...}' if pair else "see xstilts serve",
        }

    def _truncated(self, first: str, second: str | None) -> bool:
        ids = self.tokenizer(first, second, truncation=False, add_special_tokens=True)["input_ids"]
        return len(ids) > self.max_length

    def predict(self, items: list[Any]) -> list[dict[str, Any]]:
        """One request: its items one after the other (the pipeline's default batch size of 1)."""
        from xstilts.serve.http.v1.protocol import ChoiceInput, PairInput
        from xstilts.tasks.encoding import choice_segments

        with self.lock, self.torch.inference_mode():
            out = []
            for item in items:
                if self.kind is TaskKind.MULTIPLE_CHOICE:
                    if not isinstance(item, ChoiceInput):
                        raise ValueError("a multiple-choice model takes {premise, question, choices} items")
                    segments = choice_segments(item.premise, item.question, item.choices)
                    batch = self.tokenizer(
                        [a for a, _ in segments],
                        [b for _, b in segments],
                        truncation="longest_first",
                        max_length=self.max_length,
                        padding=True,
                        return_tensors="pt",
                    )
                    logits = self.model(**{k: v.unsqueeze(0) for k, v in batch.items()}).logits[0]
                    probabilities = logits.softmax(-1).tolist()
                    best = max(range(len(probabilities)), key=probabilities.__getitem__)
                    truncated = any(self._truncated(a, b) for a, b in segments)
                    label = item.choices[best]
                else:
                    if isinstance(item, ChoiceInput):
                        raise ValueError("a classification model takes texts or {text, text_pair} items")
                    first, second = (item, None) if isinstance(item, str) else (item.text, item.text_pair)
                    assert isinstance(item, str | PairInput)
                    inputs: Any = first if second is None else {"text": first, "text_pair": second}
                    scores = self.pipe(inputs, top_k=None, truncation=True, max_length=self.max_length)
                    probabilities = [0.0] * len(self.labels)
                    for entry in scores:
                        probabilities[self.label_index[entry["label"]]] = float(entry["score"])
                    best = max(range(len(probabilities)), key=probabilities.__getitem__)
                    truncated = self._truncated(first, second)
                    label = self.labels[best]
                out.append(
                    {
                        "label": label,
                        "index": best,
                        "score": probabilities[best],
                        "probabilities": probabilities,
                        "truncated": truncated,
                    }
                )
            return out


def error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status)


def validation_message(exc: ValidationError) -> str:
    return "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()[:3])


def create_app(model: NaiveModel | NaiveEmbedder | NaiveAnswerer | NaiveTagger) -> FastAPI:
    app = FastAPI(title="xstilts naive reference", docs_url=None, redoc_url=None, openapi_url=None)

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "alive"}

    @app.get("/readyz")
    def readyz() -> dict[str, str]:
        return {"status": "ready"}

    @app.get("/v1/models")
    def models() -> dict[str, Any]:
        return {"models": [model.describe()]}

    @app.get("/v1/models/{name}")
    def describe(name: str) -> Any:
        return model.describe() if name == model.name else error(404, f"no model {name!r}")

    if isinstance(model, NaiveEmbedder):
        add_embed_route(app, model)
        return app
    if isinstance(model, NaiveAnswerer):
        add_answer_route(app, model, error, validation_message)
        return app
    if isinstance(model, NaiveTagger):
        add_tag_route(app, model)
        return app

    @app.post("/v1/models/{name}/predict")
    async def predict(name: str, request: Request) -> Any:
        # the model runs right here, on the event loop: one request at a time, the others wait their turn
        if name != model.name:
            return error(404, f"no model {name!r}; this server has: {model.name}")
        raw = await request.body()
        try:
            body = PredictRequest.model_validate_json(raw)
        except ValidationError as exc:
            return error(422, validation_message(exc))
        try:
            predictions = model.predict(list(body.inputs))
        except ValueError as exc:
            return error(422, str(exc))
        return {
            "model": model.name,
            "variant": VARIANT,
            "labels": None if model.kind is TaskKind.MULTIPLE_CHOICE else model.labels,
            "predictions": predictions,
        }

    return app


def add_embed_route(app: FastAPI, model: NaiveEmbedder) -> None:
    """``POST /v1/models/{name}/embed`` in the shape ``xstilts serve`` answers it."""

    @app.post("/v1/models/{name}/embed")
    async def embed(name: str, request: Request) -> Any:
        # on the event loop as well: one request at a time
        if name != model.name:
            return error(404, f"no model {name!r}; this server has: {model.name}")
        try:
            body = EmbedRequest.model_validate_json(await request.body())
        except ValidationError as exc:
            return error(422, validation_message(exc))
        try:
            vectors, truncated = model.embed(list(body.inputs), body.normalize)
        except ValueError as exc:
            return error(422, str(exc))
        dimension = len(vectors[0]) if vectors else 0
        return {"model": model.name, "variant": VARIANT, "dimension": dimension, "embeddings": vectors,
                "truncated": truncated}  # fmt: skip


def add_tag_route(app: FastAPI, model: NaiveTagger) -> None:
    """``POST /v1/models/{name}/predict`` for a tagging checkpoint, in the shape ``xstilts serve`` answers it."""

    @app.post("/v1/models/{name}/predict")
    async def predict(name: str, request: Request) -> Any:
        # on the event loop as well: one request at a time
        if name != model.name:
            return error(404, f"no model {name!r}; this server has: {model.name}")
        try:
            body = PredictRequest.model_validate_json(await request.body())
        except ValidationError as exc:
            return error(422, validation_message(exc))
        items: list[str | list[str]] = []
        for item in body.inputs:
            if not isinstance(item, str | WordsInput):
                return error(422, 'a tagging model takes texts or {"words": [...]} items')
            items.append(item if isinstance(item, str) else list(item.words))
        return {"model": model.name, "variant": VARIANT, "labels": model.labels, "predictions": model.tag(items)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m xstilts.bench.naive_server", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--checkpoint",
        help="a target checkpoint written by xstilts train; with --bundle, the encoder to run (an alias or a folder; "
        "default: the one the bundle records)",
    )
    parser.add_argument("--bundle", type=Path, help="an embedding bundle: serve its encoder, pooled as it records")
    parser.add_argument("--name", default=None, help="model name in the API (default: the checkpoint folder's name)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    args = parser.parse_args(argv)
    import uvicorn

    model: NaiveModel | NaiveEmbedder | NaiveAnswerer | NaiveTagger
    if args.bundle is not None:
        bundle = args.bundle.resolve()
        model = NaiveEmbedder(bundle, args.name or bundle.parent.name, args.checkpoint, args.threads)
    elif args.checkpoint:
        checkpoint = Path(args.checkpoint).resolve()
        kind = json.loads((checkpoint / CHECKPOINT_FILE).read_text())["kind"]
        naive = {TaskKind.SPAN_QA.value: NaiveAnswerer, TaskKind.TOKEN_CLASSIFICATION.value: NaiveTagger}.get(
            kind, NaiveModel
        )
        model = naive(checkpoint, args.name or checkpoint.name, args.threads)
    else:
        parser.error("give --checkpoint DIR (a classification checkpoint) or --bundle DIR (an embedding bundle)")
    uvicorn.run(create_app(model), host=args.host, port=args.port, log_level="warning", access_log=False)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
