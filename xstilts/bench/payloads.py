"""Real evaluation texts as request bodies: one seeded sample shared by the accuracy pass and the load runs.

The sample takes the same items in every language of the task's zero-shot evaluation split (``sample_items``), as
export's parity check does, so that with the same ``per_language`` and ``seed`` the accuracy measured through the
API is measured on the very items ``bundle.json`` recorded. Items become ``POST /v1/models/{name}/predict``
bodies by the friendly API's rules: ``{"text", "text_pair"}`` for pairs, a string for single texts,
``{"premise", "question", "choices"}`` for multiple choice (the server then applies the shared segment rule of
:mod:`xstilts.tasks.encoding`), ``{"question", "context"}`` for extractive QA (the server windows long contexts);
for an embedding model, ``POST /v1/models/{name}/embed`` bodies of the retrieval sentences (each item's sentence in
its language, as plain text: the server adds the prefix); for a tagging model, each sentence as its words
(``{"words": [...]}``).

A payload file (JSON, written by :func:`write_payloads`) is what the locustfile reads: the route, and a list of
bodies with how many items and sequences each one carries. wrk's Lua script (``post.lua``) reads the same bodies
one JSON per line (:func:`write_body_lines`).
"""

from __future__ import annotations

import json
import random
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from xstilts.atomic import write_json_atomic, write_text_atomic
from xstilts.contracts.evaluation import EvaluationSample
from xstilts.contracts.kinds import TaskKind
from xstilts.errors import XstiltsError
from xstilts.tasks import Example

PAYLOAD_SCHEMA = "xstilts.bench.payloads/1"
PAYLOADS_ENV = "XSTILTS_BENCH_PAYLOADS"


def request_item(kind: TaskKind, example: Example) -> str | dict[str, Any]:
    """One item of a ``/v1`` predict (or embed) body for ``example``."""
    if kind is TaskKind.EMBEDDING:
        return example.text_a
    if kind is TaskKind.SPAN_QA:  # the example's text_a is the context, text_b the question
        return {"question": example.text_b or "", "context": example.text_a}
    if kind is TaskKind.TOKEN_CLASSIFICATION:  # the sentence's own words, so that tags line up with gold tags
        return {"words": list(example.words)}
    if kind is TaskKind.MULTIPLE_CHOICE:
        item: dict[str, Any] = {"premise": example.text_a, "choices": list(example.choices)}
        if example.text_b:
            item["question"] = example.text_b
        return item
    if kind is TaskKind.SINGLE or example.text_b is None:
        return example.text_a
    return {"text": example.text_a, "text_pair": example.text_b}


def request_body(kind: TaskKind, examples: list[Example]) -> dict[str, Any]:
    """A ``/v1`` predict (or embed) body carrying ``examples``."""
    return {"inputs": [request_item(kind, e) for e in examples]}


def sequences_of(kind: TaskKind, example: Example) -> int:
    """How many sequences the model runs for ``example``: one, or one per choice."""
    return len(example.choices) if kind is TaskKind.MULTIPLE_CHOICE else 1


def predict_path(model: str, kind: TaskKind | None = None) -> str:
    """The ``/v1`` route a ``kind`` of model answers on: ``embed`` for embedding models, else ``predict``."""
    return f"/v1/models/{model}/{'embed' if kind is TaskKind.EMBEDDING else 'predict'}"


def answer_key(kind: TaskKind) -> str:
    """The key a successful ``/v1`` answer of ``kind`` carries its results under."""
    return "embeddings" if kind is TaskKind.EMBEDDING else "predictions"


@dataclass
class PayloadSet:
    """Request bodies for one model: what the locustfile posts, in order, cycling."""

    model: str
    path: str
    items_per_request: int
    bodies: list[dict[str, Any]]
    items: list[int]
    sequences: list[int]
    data: dict[str, Any] = field(default_factory=dict)
    answer: str = "predictions"  # the key a successful answer carries (answer_key)
    schema: str = PAYLOAD_SCHEMA

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any], where: str = "payloads") -> PayloadSet:
        if data.get("schema") != PAYLOAD_SCHEMA:
            raise XstiltsError(f"{where}: schema {data.get('schema')!r} is not {PAYLOAD_SCHEMA!r}")
        try:
            payloads = cls(**data)
        except TypeError as exc:
            raise XstiltsError(f"{where}: not a payload file ({exc})") from None
        if not payloads.bodies or len(payloads.bodies) != len(payloads.sequences):
            raise XstiltsError(f"{where}: no bodies, or not one sequence count per body")
        return payloads

    @property
    def mean_sequences(self) -> float:
        return sum(self.sequences) / len(self.sequences)


def mixed_items(sample: EvaluationSample, seed: int = 0) -> list[Example]:
    """Every item of the sample, languages mixed in a seeded order (the order the bodies send them in)."""
    pool = [e for examples in sample.examples.values() for e in examples]
    random.Random(seed).shuffle(pool)
    return pool


def make_payloads(sample: EvaluationSample, model: str, items_per_request: int = 1, seed: int = 0) -> PayloadSet:
    """The sample's items, languages mixed in a seeded order, cut into bodies of ``items_per_request`` items.

    Every item is used; the last body is topped up from the start so that all bodies have the same size.
    """
    if items_per_request < 1:
        raise XstiltsError(f"items per request must be at least 1, got {items_per_request}")
    kind = sample.kind
    pool = mixed_items(sample, seed)
    count = max(1, -(-len(pool) // items_per_request))
    bodies, items, sequences = [], [], []
    for index in range(count):
        chunk = [pool[(index * items_per_request + k) % len(pool)] for k in range(items_per_request)]
        bodies.append(request_body(kind, chunk))
        items.append(len(chunk))
        sequences.append(sum(sequences_of(kind, e) for e in chunk))
    path = predict_path(model, kind)
    return PayloadSet(model, path, items_per_request, bodies, items, sequences, sample.describe(), answer_key(kind))


def write_payloads(path: Path, payloads: PayloadSet) -> Path:
    write_json_atomic(path, payloads.to_json())
    return path


def write_body_lines(path: Path, bodies: list[dict[str, Any]]) -> Path:
    """One request body per line, for wrk's ``post.lua``."""
    lines = "".join(json.dumps(body, ensure_ascii=False) + "\n" for body in bodies)
    write_text_atomic(path, lines)
    return path


def read_payloads(path: str | Path) -> PayloadSet:
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise XstiltsError(f"cannot read payload file {path}: {exc.strerror}") from None
    except json.JSONDecodeError as exc:
        raise XstiltsError(f"payload file {path} is not JSON: {exc}") from None
    return PayloadSet.from_json(data, str(path))
