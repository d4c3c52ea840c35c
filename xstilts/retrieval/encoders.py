"""Which encoder folder a name means (alias, phase folder, target checkpoint) and its default embedding setting."""

from __future__ import annotations

import json
from pathlib import Path

from xstilts.contracts.checkpoint import CHECKPOINT_FILE, Pooling
from xstilts.contracts.embedding import EmbeddingSpec
from xstilts.errors import XstiltsError
from xstilts.models import is_checkpoint, parse_model_name, resolve_model

PHASE_CHECKPOINT = "checkpoint"  # a phase folder keeps its encoder here (xstilts.training.phase)
PHASE_RECORD = "phase.json"


# Per base model: prefix, pooling and layer (hidden_states index) for retrieval. The me5-small layer is the best
# average of Tatoeba (4 languages) and the XNLI-premise proxy (15) in docs/results/retrieval/me5-small-layers.json.
MODEL_DEFAULTS: dict[str, tuple[str, Pooling, int]] = {"me5-small": ("query: ", "mean", 12)}


def encoder_folder(name: str) -> Path:
    """The Hugging Face folder of ``name``: a model alias, a model folder, a phase folder or a target checkpoint."""
    path = Path(name)
    if path.is_dir() and not is_checkpoint(path) and is_checkpoint(path / PHASE_CHECKPOINT):
        return path / PHASE_CHECKPOINT
    return Path(resolve_model(name))


def _alias_of(name: str) -> str:
    try:
        return parse_model_name(Path(name).name).base
    except XstiltsError:
        return ""


def base_model(name: str, folder: Path) -> str:
    """The alias ``folder`` descends from: the name itself, a checkpoint's lineage, or the start of a phase chain
    (a run's ``checkpoint`` link is followed first)."""
    folder = folder.resolve()
    if (folder / CHECKPOINT_FILE).is_file():
        model = json.loads((folder / CHECKPOINT_FILE).read_text()).get("lineage", {}).get("model")
        if model:
            return _alias_of(model)
    phase = folder.parent
    for _ in range(100):  # a phase starts from the previous phase's checkpoint, the first from the model
        record = phase / PHASE_RECORD
        if not record.is_file():
            break
        start = Path(json.loads(record.read_text())["start"])
        if not (start.parent / PHASE_RECORD).is_file():
            return _alias_of(str(start))
        phase = start.parent
    return _alias_of(name) or _alias_of(folder.name)


def default_spec(
    name: str,
    folder: Path,
    num_layers: int,
    layer: int | None = None,
    pooling: Pooling | None = None,
    prefix: str | None = None,
    normalize: bool = True,
) -> EmbeddingSpec:
    """The embedding setting for ``name``: what was asked, else the base model's default (else last layer, mean,
    no prefix); a default layer beyond a truncated model's depth becomes its last layer."""
    known_prefix, known_pooling, known_layer = MODEL_DEFAULTS.get(base_model(name, folder), ("", "mean", num_layers))
    return EmbeddingSpec(
        layer=layer if layer is not None else min(known_layer, num_layers),
        pooling=pooling or known_pooling,
        prefix=known_prefix if prefix is None else prefix,
        normalize=normalize,
    )
