"""The naive reference's tagger: a tagging checkpoint behind transformers' token-classification pipeline, as a
first deployment would run it (PyTorch, fp32, one text after the other).

An item's words are found by the same rule as the server's (:mod:`xstilts.tagging.words`: raw text split, or
pre-split words joined by single spaces); the pipeline tags every token of the text (``aggregation_strategy``
"none", every label kept) and a word takes the tag of its first token, found by the pipeline's character offsets
(the first token starting at or after the previous word's end: sentencepiece's word-start piece, alone, covers the
space before its word).
The pipeline reads a sentence whole, up to the model's position limit, where the bundle's server splits it into
windows of the checkpoint's ``max_length``: on long sentences the two may differ, as a naive deployment does.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

from xstilts.bench.naive_embedder import VARIANT
from xstilts.contracts.checkpoint import CHECKPOINT_FILE
from xstilts.contracts.kinds import TaskKind
from xstilts.errors import XstiltsError
from xstilts.tagging.entities import entities, is_bio
from xstilts.tagging.words import Word, join_words, split_words


class NaiveTagger:
    """A tagging checkpoint behind ``pipeline("token-classification")``."""

    def __init__(self, checkpoint: Path, name: str, threads: int | None = None) -> None:
        import torch
        from transformers import AutoTokenizer, pipeline

        from xstilts.models.heads import load_task_model

        if threads:
            torch.set_num_threads(threads)
        self.torch = torch
        self.info = json.loads((checkpoint / CHECKPOINT_FILE).read_text())
        if self.info["kind"] != TaskKind.TOKEN_CLASSIFICATION.value:
            raise XstiltsError(f"{checkpoint} is a {self.info['kind']} checkpoint, not a tagging one")
        self.name = name
        self.labels = list(self.info["labels"])
        self.bio = is_bio(self.labels)
        tokenizer = AutoTokenizer.from_pretrained(checkpoint, fix_mistral_regex=False)
        model = load_task_model(checkpoint, TaskKind.TOKEN_CLASSIFICATION)
        self.pipe = pipeline(
            "token-classification", model=model, tokenizer=tokenizer, aggregation_strategy="none", device=-1
        )
        self.lock = threading.Lock()

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "variant": VARIANT,
            "variants": [VARIANT],
            "task": self.info["task"],
            "kind": TaskKind.TOKEN_CLASSIFICATION,
            "labels": self.labels,
            "languages": self.info.get("languages", []),
            "max_length": int(self.info["max_length"]),
            "precision": "fp32",
            "optimization": None,
            "provider": f"torch {self.torch.__version__} ({self.torch.get_num_threads()} threads), pipeline",
            "state": "ready",
            "error": None,
            "input": 'a text, or {"words": [...]}',
        }

    def tag(self, items: list[str | list[str]]) -> list[dict[str, Any]]:
        """One request: each item (a raw text, or words) tagged, in the shape ``xstilts serve`` answers."""
        out = []
        with self.lock, self.torch.inference_mode():
            for item in items:
                text, words = (item, split_words(item)) if isinstance(item, str) else join_words(item)
                tokens = self.pipe(text, ignore_labels=[])
                tags, scores = self._word_tags(words, tokens)
                found = entities(text, words, tags, scores) if self.bio else None
                out.append(
                    {
                        "text": text,
                        "words": [
                            {"text": w.text, "start": w.start, "end": w.end, "tag": t, "score": s}
                            for w, t, s in zip(words, tags, scores, strict=True)
                        ],
                        "entities": None if found is None else [vars(e) for e in found],
                        "windows": 1,
                    }
                )
        return out

    def _word_tags(self, words: list[Word], tokens: list[dict[str, Any]]) -> tuple[list[str], list[float]]:
        """Each word's tag and score: its first token's, the first token that starts after the previous word's
        end (sentencepiece's word-start piece covers the space before the word) and before the word's end."""
        tags, scores, position, previous_end = [], [], 0, 0
        for word in words:
            while position < len(tokens) and tokens[position]["start"] < previous_end:
                position += 1
            if position < len(tokens) and tokens[position]["start"] < word.end:
                tags.append(str(tokens[position]["entity"]))
                scores.append(float(tokens[position]["score"]))
            else:  # a word the tokenizer turned into no token (a lone control character)
                tags.append(self.labels[0])
                scores.append(0.0)
            previous_end = word.end
        return tags, scores
