"""The metadata file that makes a Hugging Face folder an xstilts target checkpoint (training writes, export reads)."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from xstilts.atomic import write_json_atomic
from xstilts.errors import XstiltsError

CHECKPOINT_FILE = "xstilts_checkpoint.json"
# What a task head reads: the first token's state ([CLS]) or the mean of the unpadded token states; a checkpoint's
# config.json records it under POOLING_KEY (absent: cls).
Pooling = Literal["cls", "mean"]
POOLING_KEY = "xstilts_pooling"


@dataclass
class CheckpointInfo:
    """What a checkpoint was trained for: task, head, labels, evaluation languages, max length and lineage."""

    task: str
    kind: str
    labels: list[str]
    languages: list[str]
    max_length: int
    lineage: dict[str, Any] = field(default_factory=dict)

    def save(self, folder: Path) -> None:
        write_json_atomic(folder / CHECKPOINT_FILE, asdict(self))

    @classmethod
    def load(cls, folder: Path) -> CheckpointInfo:
        path = Path(folder) / CHECKPOINT_FILE
        if not (Path(folder) / "config.json").is_file():
            raise XstiltsError(f"{folder} is not a model checkpoint: it has no config.json")
        if not path.is_file():
            raise XstiltsError(
                f"{folder} has no {CHECKPOINT_FILE}: pass a target checkpoint written by 'xstilts train'"
            )
        try:
            data = json.loads(path.read_text())
            return cls(**data)
        except (json.JSONDecodeError, TypeError) as exc:
            raise XstiltsError(f"{path} is damaged: {exc}") from None
