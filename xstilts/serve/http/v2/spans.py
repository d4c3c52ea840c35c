"""The Open Inference Protocol for extractive QA models: BYTES ``question`` and ``context`` [batch] in; the best
answer per item out: ``answer`` (BYTES), ``start`` and ``end`` (INT64 character offsets in the context as sent,
end exclusive), ``score`` (FP32). An item without a candidate span answers "" at -1, -1 with score 0.
"""

from __future__ import annotations

import numpy as np

from xstilts.serve.core.spans import Spans
from xstilts.serve.http.v2.protocol import MetadataTensor

QUESTION, CONTEXT = "question", "context"
INPUTS = (QUESTION, CONTEXT)
NO_ANSWER = ("", -1, -1, 0.0)


def span_inputs() -> list[MetadataTensor]:
    return [MetadataTensor(name=name, datatype="BYTES", shape=[-1]) for name in INPUTS]


def span_outputs() -> list[MetadataTensor]:
    return [
        MetadataTensor(name="answer", datatype="BYTES", shape=[-1]),
        MetadataTensor(name="start", datatype="INT64", shape=[-1]),
        MetadataTensor(name="end", datatype="INT64", shape=[-1]),
        MetadataTensor(name="score", datatype="FP32", shape=[-1]),
    ]


def span_tensors(spans: Spans) -> dict[str, tuple]:
    """Every output as (datatype, shape, flat values, numpy array for binary): each item's best answer."""
    best = [(a[0].text, a[0].start, a[0].end, a[0].score) if a else NO_ANSWER for a in spans.answers]
    texts, starts, ends, scores = (list(column) for column in zip(*best, strict=True))
    batch = [len(best)]
    starts_array, ends_array = np.asarray(starts, dtype=np.int64), np.asarray(ends, dtype=np.int64)
    scores_array = np.asarray(scores, dtype=np.float32)
    return {
        "answer": ("BYTES", batch, texts, None),
        "start": ("INT64", batch, starts, starts_array),
        "end": ("INT64", batch, ends, ends_array),
        "score": ("FP32", batch, scores_array.tolist(), scores_array),
    }
