"""Models: aliases, resolution to local Hugging Face folders, and the me5-small conversion."""

from xstilts.models.registry import MODELS, ModelRef, ModelSpec, get_spec, parse_model_name
from xstilts.models.resolve import is_checkpoint, resolve_model

__all__ = ["MODELS", "ModelRef", "ModelSpec", "get_spec", "is_checkpoint", "parse_model_name", "resolve_model"]
